// IPv4 fragment reassembly (RFC 791 §3.2, RFC 815) with hard limits: a bounded
// number of datagrams in progress, bounded size and fragment count per datagram,
// a timeout, and overlapping fragments discard the whole datagram (as RFC 5722
// requires for IPv6; the same defence against overlap attacks).
import { DropReason } from "../stats.js";
import type { Ipv4Packet } from "./ipv4.js";

export interface ReassemblyLimits {
  /** Datagrams being reassembled at once. */
  readonly maxDatagrams: number;
  /** Fragments kept per datagram. */
  readonly maxFragments: number;
  /** Largest reassembled payload in bytes (at most 65515 for IPv4). */
  readonly maxSize: number;
  /** Milliseconds after the first fragment before an incomplete datagram is dropped. */
  readonly timeoutMs: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  maxDatagrams: 16,
  maxFragments: 64,
  maxSize: 65515,
  timeoutMs: 30_000,
};

interface Pending {
  readonly created: number;
  readonly pieces: { off: number; data: Uint8Array }[];
  /** Total payload length once the last fragment (MF=0) was seen, else -1. */
  total: number;
  bytes: number;
}

export type ReassemblyResult = { readonly done: true; readonly packet: Ipv4Packet } | { readonly done: false };

export class Reassembler {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY_LIMITS,
    private readonly onDrop: (r: DropReason) => void = () => {},
  ) {}

  get inProgress(): number {
    return this.pending.size;
  }

  /** Drops incomplete datagrams older than the timeout. */
  expire(now: number): void {
    for (const [k, p] of this.pending) {
      if (now - p.created >= this.limits.timeoutMs) {
        this.pending.delete(k);
        this.onDrop(DropReason.IP_FRAG_TIMEOUT);
      }
    }
  }

  /** Feeds one fragment (MF set or offset non-zero). Returns the whole datagram when complete. */
  add(pkt: Ipv4Packet, now: number): ReassemblyResult {
    this.expire(now);
    const key = `${pkt.src}/${pkt.dst}/${pkt.protocol}/${pkt.id}`;
    const len = pkt.payload.length;
    const off = pkt.fragmentOffset;
    // RFC 791: every fragment but the last carries a multiple of 8 bytes.
    if ((pkt.moreFragments && (len & 7) !== 0) || (pkt.moreFragments && len === 0)) {
      this.fail(key, DropReason.IP_FRAG_BAD);
      return { done: false };
    }
    if (off + len > this.limits.maxSize) {
      this.fail(key, DropReason.IP_FRAG_TOO_BIG);
      return { done: false };
    }
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= this.limits.maxDatagrams) {
        this.onDrop(DropReason.IP_FRAG_LIMIT);
        return { done: false };
      }
      p = { created: now, pieces: [], total: -1, bytes: 0 };
      this.pending.set(key, p);
    }
    if (p.pieces.length >= this.limits.maxFragments) {
      this.fail(key, DropReason.IP_FRAG_LIMIT);
      return { done: false };
    }
    if (!pkt.moreFragments) {
      if ((p.total !== -1 && p.total !== off + len) || off + len < maxEnd(p)) {
        this.fail(key, DropReason.IP_FRAG_BAD);
        return { done: false };
      }
      p.total = off + len;
    } else if (p.total !== -1 && off + len > p.total) {
      this.fail(key, DropReason.IP_FRAG_BAD);
      return { done: false };
    }
    for (const q of p.pieces) {
      if (off < q.off + q.data.length && q.off < off + len) {
        // An exact duplicate is harmless (retransmission); any other overlap kills the datagram.
        if (q.off === off && q.data.length === len) return { done: false };
        this.fail(key, DropReason.IP_FRAG_OVERLAP);
        return { done: false };
      }
    }
    p.pieces.push({ off, data: pkt.payload.slice() });
    p.bytes += len;
    if (p.total === -1 || p.bytes !== p.total) return { done: false };
    // No overlaps and the byte count equals the total: the pieces tile [0, total).
    const data = new Uint8Array(p.total);
    for (const q of p.pieces) data.set(q.data, q.off);
    this.pending.delete(key);
    return {
      done: true,
      packet: { ...pkt, moreFragments: false, fragmentOffset: 0, payload: data },
    };
  }

  clear(): void {
    this.pending.clear();
  }

  private fail(key: string, reason: DropReason): void {
    this.pending.delete(key);
    this.onDrop(reason);
  }
}

function maxEnd(p: Pending): number {
  let m = 0;
  for (const q of p.pieces) m = Math.max(m, q.off + q.data.length);
  return m;
}
