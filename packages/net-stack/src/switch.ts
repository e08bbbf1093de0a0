// A learning Ethernet switch (IEEE 802.1D §7.8 filtering database, without
// spanning tree): frames to a learned unicast MAC go to that port only, the
// rest are flooded to every other port. Entries age out.
import type { FrameReceiver, NetBackend } from "./backend.js";
import { DropReason, NetStats } from "./stats.js";
import { isMulticastMac, macToString } from "./wire/addr.js";
import { ETH_HEADER_LEN } from "./wire/ethernet.js";

export interface VirtualSwitchOptions {
  /** Milliseconds a learned MAC stays valid (802.1D default 300 s). */
  readonly ageingMs?: number;
  /** Upper bound on learned MACs; beyond it frames are flooded and nothing new is learned. */
  readonly maxMacs?: number;
  /** Largest frame forwarded. */
  readonly maxFrame?: number;
}

interface Port {
  readonly id: number;
  /** Delivers a frame out of this port. */
  deliver: FrameReceiver | null;
  readonly detach: () => void;
}

export class VirtualSwitch {
  readonly stats = new NetStats();
  private readonly ports = new Map<number, Port>();
  private readonly table = new Map<string, { port: number; seen: number }>();
  private nextId = 1;
  private readonly ageingMs: number;
  private readonly maxMacs: number;
  private readonly maxFrame: number;

  constructor(opts: VirtualSwitchOptions = {}) {
    this.ageingMs = opts.ageingMs ?? 300_000;
    this.maxMacs = opts.maxMacs ?? 4096;
    this.maxFrame = opts.maxFrame ?? 1522;
  }

  get portCount(): number {
    return this.ports.size;
  }

  /** A new port for a guest NIC: the NIC sends into it and receives from it. */
  createPort(): NetBackend {
    const id = this.nextId++;
    const port: Port = { id, deliver: null, detach: () => this.removePort(id) };
    this.ports.set(id, port);
    return {
      send: (frame) => this.input(id, frame),
      setReceiver: (r) => {
        port.deliver = r;
      },
      close: () => this.removePort(id),
    };
  }

  /** Plugs a network (a UserNet, a socket transport, another switch's port) into a new port. */
  connect(backend: NetBackend): () => void {
    const id = this.nextId++;
    const port: Port = {
      id,
      deliver: (frame) => backend.send(frame),
      detach: () => {
        backend.setReceiver(null);
        this.removePort(id);
      },
    };
    this.ports.set(id, port);
    backend.setReceiver((frame) => this.input(id, frame));
    return port.detach;
  }

  /** The port a MAC was learned on, for diagnostics. */
  lookup(mac: string): number | undefined {
    return this.table.get(mac.toLowerCase())?.port;
  }

  private removePort(id: number): void {
    this.ports.delete(id);
    for (const [mac, e] of this.table) if (e.port === id) this.table.delete(mac);
  }

  private input(from: number, frame: Uint8Array): void {
    if (!this.ports.has(from)) return;
    this.stats.framesIn++;
    this.stats.bytesIn += frame.length;
    if (frame.length < ETH_HEADER_LEN) {
      this.stats.drop(DropReason.ETH_TOO_SHORT);
      return;
    }
    if (frame.length > this.maxFrame) {
      this.stats.drop(DropReason.ETH_TOO_LONG);
      return;
    }
    const now = Date.now();
    if (!isMulticastMac(frame, 6)) {
      const src = macToString(frame, 6);
      const e = this.table.get(src);
      if (e) {
        e.port = from;
        e.seen = now;
      } else if (this.table.size < this.maxMacs) this.table.set(src, { port: from, seen: now });
    }
    if (!isMulticastMac(frame, 0)) {
      const e = this.table.get(macToString(frame, 0));
      if (e && now - e.seen < this.ageingMs) {
        if (e.port === from) {
          this.stats.count("filtered");
          return;
        } // destination on the same segment
        const p = this.ports.get(e.port);
        if (p) {
          this.out(p, frame);
          return;
        }
      }
    }
    this.stats.count("flooded");
    for (const p of this.ports.values()) if (p.id !== from) this.out(p, frame);
  }

  private out(p: Port, frame: Uint8Array): void {
    if (!p.deliver) {
      this.stats.count("outWhileDetached");
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    // Each receiver owns its bytes (NetBackend contract), so flooded frames are copied.
    p.deliver(frame.slice());
  }
}
