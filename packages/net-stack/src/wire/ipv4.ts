// IPv4 (RFC 791). Options are skipped, the header checksum is verified, and
// fragments are reported so the caller can reassemble them (see reassembly.ts).
import { DropReason } from "../stats.js";
import { type Ipv4, readIpv4, writeIpv4 } from "./addr.js";
import { checksum } from "./checksum.js";

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPV4_HEADER_LEN = 20;

export interface Ipv4Packet {
  readonly src: Ipv4;
  readonly dst: Ipv4;
  readonly protocol: number;
  readonly ttl: number;
  readonly id: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** Fragment offset in bytes. */
  readonly fragmentOffset: number;
  readonly headerLength: number;
  /** The payload without link-layer padding (view). */
  readonly payload: Uint8Array;
}

export function parseIpv4(p: Uint8Array): Ipv4Packet | DropReason {
  if (p.length < IPV4_HEADER_LEN) return DropReason.IP_TOO_SHORT;
  if (p[0]! >>> 4 !== 4) return DropReason.IP_BAD_VERSION;
  const ihl = (p[0]! & 15) * 4;
  if (ihl < IPV4_HEADER_LEN || ihl > p.length) return DropReason.IP_BAD_IHL;
  const total = (p[2]! << 8) | p[3]!;
  // RFC 791 §3.1: Total Length covers header and data; the link may pad beyond it.
  if (total < ihl || total > p.length) return DropReason.IP_BAD_LENGTH;
  if (checksum(p, 0, ihl) !== 0) return DropReason.IP_BAD_CHECKSUM;
  const flagsFrag = (p[6]! << 8) | p[7]!;
  if (flagsFrag & 0x8000) return DropReason.IP_FRAG_BAD; // reserved flag must be zero
  return {
    src: readIpv4(p, 12),
    dst: readIpv4(p, 16),
    protocol: p[9]!,
    ttl: p[8]!,
    id: (p[4]! << 8) | p[5]!,
    dontFragment: (flagsFrag & 0x4000) !== 0,
    moreFragments: (flagsFrag & 0x2000) !== 0,
    fragmentOffset: (flagsFrag & 0x1fff) * 8,
    headerLength: ihl,
    payload: p.subarray(ihl, total),
  };
}

export interface Ipv4Header {
  readonly src: Ipv4;
  readonly dst: Ipv4;
  readonly protocol: number;
  readonly ttl?: number;
  readonly id?: number;
  readonly dontFragment?: boolean;
}

/** Writes a 20-byte IPv4 header (no options) at `off` for a payload of `payloadLen` bytes. */
export function writeIpv4Header(out: Uint8Array, off: number, h: Ipv4Header, payloadLen: number): void {
  const total = IPV4_HEADER_LEN + payloadLen;
  out[off] = 0x45;
  out[off + 1] = 0;
  out[off + 2] = total >>> 8;
  out[off + 3] = total & 255;
  const id = h.id ?? 0;
  out[off + 4] = (id >>> 8) & 255;
  out[off + 5] = id & 255;
  out[off + 6] = h.dontFragment ? 0x40 : 0;
  out[off + 7] = 0;
  out[off + 8] = h.ttl ?? 64;
  out[off + 9] = h.protocol;
  out[off + 10] = 0;
  out[off + 11] = 0;
  writeIpv4(out, off + 12, h.src);
  writeIpv4(out, off + 16, h.dst);
  const c = checksum(out, off, IPV4_HEADER_LEN);
  out[off + 10] = c >>> 8;
  out[off + 11] = c & 255;
}

export function buildIpv4(h: Ipv4Header, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV4_HEADER_LEN + payload.length);
  writeIpv4Header(out, 0, h, payload.length);
  out.set(payload, IPV4_HEADER_LEN);
  return out;
}
