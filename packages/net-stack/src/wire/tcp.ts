// TCP segments (RFC 9293 §3.1) with the options this stack uses: MSS (kind 2),
// window scale (kind 3, RFC 7323 §2). Other options are skipped by length.
import { DropReason } from "../stats.js";
import type { Ipv4 } from "./addr.js";
import { foldChecksum, pseudoHeaderSum, sumBytes } from "./checksum.js";
import { IPPROTO_TCP } from "./ipv4.js";

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

export interface TcpSegment {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  /** The raw 16-bit window field (unscaled). */
  readonly window: number;
  /** MSS option, when present. */
  readonly mss?: number;
  /** Window-scale shift option (clamped to 14 per RFC 7323 §2.3), when present. */
  readonly windowScale?: number;
  /** SACK-permitted option (kind 4, RFC 2018 §2) in a SYN. */
  readonly sackPermitted?: boolean;
  /** SACK blocks (kind 5, RFC 2018 §3): [left edge, right edge) pairs. */
  readonly sack?: readonly (readonly [number, number])[];
  readonly payload: Uint8Array;
}

export function parseTcp(p: Uint8Array, src: Ipv4, dst: Ipv4): TcpSegment | DropReason {
  if (p.length < 20) return DropReason.TCP_MALFORMED;
  const hl = (p[12]! >>> 4) * 4;
  if (hl < 20 || hl > p.length) return DropReason.TCP_MALFORMED;
  if (foldChecksum(sumBytes(p, 0, p.length, pseudoHeaderSum(src, dst, IPPROTO_TCP, p.length))) !== 0) {
    return DropReason.TCP_BAD_CHECKSUM;
  }
  let mss: number | undefined;
  let windowScale: number | undefined;
  let sackPermitted = false;
  let sack: [number, number][] | undefined;
  let i = 20;
  while (i < hl) {
    const kind = p[i]!;
    if (kind === 0) break; // end of option list
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= hl) return DropReason.TCP_BAD_OPTIONS;
    const len = p[i + 1]!;
    if (len < 2 || i + len > hl) return DropReason.TCP_BAD_OPTIONS;
    if (kind === 2) {
      if (len !== 4) return DropReason.TCP_BAD_OPTIONS;
      mss = (p[i + 2]! << 8) | p[i + 3]!;
    } else if (kind === 3) {
      if (len !== 3) return DropReason.TCP_BAD_OPTIONS;
      windowScale = Math.min(p[i + 2]!, 14);
    } else if (kind === 4) {
      if (len !== 2) return DropReason.TCP_BAD_OPTIONS;
      sackPermitted = true;
    } else if (kind === 5) {
      if ((len - 2) % 8 !== 0 || len < 10) return DropReason.TCP_BAD_OPTIONS;
      sack = [];
      for (let b = i + 2; b < i + len; b += 8) sack.push([readU32(p, b), readU32(p, b + 4)]);
    }
    i += len;
  }
  const seg: TcpSegment = {
    srcPort: (p[0]! << 8) | p[1]!,
    dstPort: (p[2]! << 8) | p[3]!,
    seq: ((p[4]! << 24) | (p[5]! << 16) | (p[6]! << 8) | p[7]!) >>> 0,
    ack: ((p[8]! << 24) | (p[9]! << 16) | (p[10]! << 8) | p[11]!) >>> 0,
    flags: p[13]! & 0x3f,
    window: (p[14]! << 8) | p[15]!,
    payload: p.subarray(hl),
  };
  if (mss !== undefined) (seg as { mss?: number }).mss = mss;
  if (windowScale !== undefined) (seg as { windowScale?: number }).windowScale = windowScale;
  if (sackPermitted) (seg as { sackPermitted?: boolean }).sackPermitted = true;
  if (sack) (seg as { sack?: readonly (readonly [number, number])[] }).sack = sack;
  return seg;
}

export interface TcpSegmentSpec {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly mss?: number;
  readonly windowScale?: number;
  readonly sackPermitted?: boolean;
  /** Up to 4 SACK blocks. */
  readonly sack?: readonly (readonly [number, number])[];
  readonly payload?: Uint8Array;
}

export function buildTcp(src: Ipv4, dst: Ipv4, s: TcpSegmentSpec): Uint8Array {
  let optLen = 0;
  if (s.mss !== undefined) optLen += 4;
  if (s.windowScale !== undefined) optLen += 4; // NOP + 3-byte option
  if (s.sackPermitted) optLen += 4; // NOP NOP + 2-byte option
  const blocks = s.sack ? s.sack.slice(0, 4) : [];
  if (blocks.length) optLen += 4 + 8 * blocks.length; // NOP NOP + kind, len, blocks
  const hl = 20 + optLen;
  const payload = s.payload ?? new Uint8Array(0);
  const p = new Uint8Array(hl + payload.length);
  p[0] = s.srcPort >>> 8;
  p[1] = s.srcPort & 255;
  p[2] = s.dstPort >>> 8;
  p[3] = s.dstPort & 255;
  writeU32(p, 4, s.seq);
  writeU32(p, 8, s.ack);
  p[12] = (hl / 4) << 4;
  p[13] = s.flags;
  p[14] = (s.window >>> 8) & 255;
  p[15] = s.window & 255;
  let o = 20;
  if (s.mss !== undefined) {
    p[o] = 2;
    p[o + 1] = 4;
    p[o + 2] = s.mss >>> 8;
    p[o + 3] = s.mss & 255;
    o += 4;
  }
  if (s.windowScale !== undefined) {
    p[o] = 1;
    p[o + 1] = 3;
    p[o + 2] = 3;
    p[o + 3] = s.windowScale;
    o += 4;
  }
  if (s.sackPermitted) {
    p[o] = 1;
    p[o + 1] = 1;
    p[o + 2] = 4;
    p[o + 3] = 2;
    o += 4;
  }
  if (blocks.length) {
    p[o] = 1;
    p[o + 1] = 1;
    p[o + 2] = 5;
    p[o + 3] = 2 + 8 * blocks.length;
    o += 4;
    for (const [l, r] of blocks) {
      writeU32(p, o, l);
      writeU32(p, o + 4, r);
      o += 8;
    }
  }
  p.set(payload, hl);
  const c = foldChecksum(sumBytes(p, 0, p.length, pseudoHeaderSum(src, dst, IPPROTO_TCP, p.length)));
  p[16] = c >>> 8;
  p[17] = c & 255;
  return p;
}

function readU32(p: Uint8Array, off: number): number {
  return ((p[off]! << 24) | (p[off + 1]! << 16) | (p[off + 2]! << 8) | p[off + 3]!) >>> 0;
}

function writeU32(p: Uint8Array, off: number, v: number): void {
  p[off] = v >>> 24;
  p[off + 1] = (v >>> 16) & 255;
  p[off + 2] = (v >>> 8) & 255;
  p[off + 3] = v & 255;
}

/** Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}
export function seqLt(a: number, b: number): boolean {
  return seqDiff(a, b) < 0;
}
export function seqLe(a: number, b: number): boolean {
  return seqDiff(a, b) <= 0;
}
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}
