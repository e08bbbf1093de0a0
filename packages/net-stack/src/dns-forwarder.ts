// DNS forwarder: queries the guest sends to the virtual DNS address go to an
// upstream resolver from one host socket; each query gets a fresh random id so
// answers are matched (and spoofed answers with unknown ids dropped).
import { createSocket, type Socket } from "node:dgram";
import { DropReason, type NetStats } from "./stats.js";
import { parseDnsHeader, withDnsId } from "./wire/dns.js";

interface PendingQuery {
  readonly guestId: number;
  readonly reply: (answer: Uint8Array) => void;
  readonly timer: NodeJS.Timeout;
}

export class DnsForwarder {
  private socket: Socket | null = null;
  private readonly pending = new Map<number, PendingQuery>();
  private closed = false;

  constructor(
    private readonly upstream: { host: string; port: number } | null,
    private readonly stats: NetStats,
    private readonly timeoutMs: number,
    private readonly maxPending: number,
  ) {}

  /** Forwards `query`; `reply` gets the upstream answer with the guest's id restored. */
  forward(query: Uint8Array, reply: (answer: Uint8Array) => void): void {
    const h = parseDnsHeader(query);
    if (typeof h === "string" || h.isResponse) {
      this.stats.drop(DropReason.DNS_MALFORMED);
      return;
    }
    if (this.closed || !this.upstream) {
      this.stats.drop(DropReason.NO_ROUTE);
      return;
    }
    if (this.pending.size >= this.maxPending) {
      this.stats.drop(DropReason.DNS_LIMIT);
      return;
    }
    const sock = this.ensureSocket();
    let id = 0;
    for (let tries = 0; tries < 64; tries++) {
      id = (Math.random() * 65536) | 0;
      if (!this.pending.has(id)) break;
    }
    if (this.pending.has(id)) {
      this.stats.drop(DropReason.DNS_LIMIT);
      return;
    }
    const timer = setTimeout(() => {
      this.pending.delete(id);
      this.stats.count("dnsTimeouts");
    }, this.timeoutMs);
    this.pending.set(id, { guestId: h.id, reply, timer });
    this.stats.count("dnsQueries");
    sock.send(withDnsId(query, id), this.upstream.port, this.upstream.host);
  }

  private ensureSocket(): Socket {
    if (this.socket) return this.socket;
    const s = createSocket("udp4");
    s.on("message", (msg, rinfo) => {
      const up = this.upstream!;
      if (rinfo.address !== up.host || rinfo.port !== up.port) return this.stats.count("dnsForeignAnswers");
      const a = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
      const h = parseDnsHeader(a);
      if (typeof h === "string" || !h.isResponse) return this.stats.drop(DropReason.DNS_MALFORMED);
      const q = this.pending.get(h.id);
      if (!q) return this.stats.count("dnsUnmatchedAnswers");
      this.pending.delete(h.id);
      clearTimeout(q.timer);
      this.stats.count("dnsAnswers");
      q.reply(withDnsId(a, q.guestId));
    });
    s.on("error", () => this.stats.count("dnsSocketErrors"));
    this.socket = s;
    return s;
  }

  close(): void {
    this.closed = true;
    for (const q of this.pending.values()) clearTimeout(q.timer);
    this.pending.clear();
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.socket = null;
  }
}
