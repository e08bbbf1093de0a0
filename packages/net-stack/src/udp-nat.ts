// UDP NAT: each guest flow (guest address and port, destination address and
// port) becomes one connected host datagram socket, so only the peer the guest
// addressed can answer. Flows close after an idle timeout.
import { createSocket, type Socket } from "node:dgram";
import type { NetStats } from "./stats.js";
import { type Ipv4, ipToString } from "./wire/addr.js";

export interface UdpFlowHost {
  /** Delivers a datagram to the guest from (remoteIp, remotePort) as the guest knows them. */
  deliver(flow: UdpFlow, payload: Uint8Array): void;
  removed(flow: UdpFlow): void;
  /** The host peer answered with ICMP port unreachable. */
  unreachable(flow: UdpFlow): void;
  readonly stats: NetStats;
}

export class UdpFlow {
  private readonly socket: Socket;
  private timer: NodeJS.Timeout | null = null;
  private ready = false;
  private readonly backlog: Buffer[] = [];
  private closed = false;

  constructor(
    private readonly host: UdpFlowHost,
    readonly key: string,
    readonly guestIp: Ipv4,
    readonly guestPort: number,
    /** Destination as the guest addressed it. */
    readonly remoteIp: Ipv4,
    readonly remotePort: number,
    /** Destination on the host network (after the gateway alias). */
    hostIp: Ipv4,
    private readonly idleMs: number,
  ) {
    this.socket = createSocket("udp4");
    this.socket.on("message", (msg) => {
      this.touch();
      host.stats.count("udpHostToGuest");
      host.deliver(this, new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
    });
    this.socket.on("error", (e: NodeJS.ErrnoException) => {
      host.stats.count("udpSocketErrors");
      // A connected socket reports the host's ICMP port unreachable as ECONNREFUSED: pass it on.
      if (e.code === "ECONNREFUSED" && !this.closed) host.unreachable(this);
      this.close();
    });
    this.socket.connect(remotePort, ipToString(hostIp), () => {
      if (this.closed) return;
      this.ready = true;
      for (const b of this.backlog.splice(0)) this.transmit(b);
    });
    this.touch();
  }

  send(payload: Uint8Array): void {
    if (this.closed) return;
    this.touch();
    this.host.stats.count("udpGuestToHost");
    const copy = Buffer.from(payload);
    if (this.ready) this.transmit(copy);
    else if (this.backlog.length < 16) this.backlog.push(copy);
  }

  private transmit(b: Buffer): void {
    try {
      this.socket.send(b);
    } catch {
      // the socket closed under us (error event already handled)
      this.close();
    }
  }

  private touch(): void {
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.close(), this.idleMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    try {
      this.socket.close();
    } catch {
      // already closed by an error
    }
    this.host.removed(this);
  }
}
