// UDP (RFC 768) with the IPv4 pseudo-header checksum.
import { DropReason } from "../stats.js";
import type { Ipv4 } from "./addr.js";
import { foldChecksum, pseudoHeaderSum, sumBytes } from "./checksum.js";
import { IPPROTO_UDP } from "./ipv4.js";

export const UDP_HEADER_LEN = 8;

export interface UdpDatagram {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Uint8Array;
}

export function parseUdp(p: Uint8Array, src: Ipv4, dst: Ipv4): UdpDatagram | DropReason {
  if (p.length < UDP_HEADER_LEN) return DropReason.UDP_MALFORMED;
  const len = (p[4]! << 8) | p[5]!;
  if (len < UDP_HEADER_LEN || len > p.length) return DropReason.UDP_MALFORMED;
  const ck = (p[6]! << 8) | p[7]!;
  // RFC 768: a zero checksum means none was computed.
  if (ck !== 0 && foldChecksum(sumBytes(p, 0, len, pseudoHeaderSum(src, dst, IPPROTO_UDP, len))) !== 0) {
    return DropReason.UDP_BAD_CHECKSUM;
  }
  return { srcPort: (p[0]! << 8) | p[1]!, dstPort: (p[2]! << 8) | p[3]!, payload: p.subarray(8, len) };
}

export function buildUdp(src: Ipv4, dst: Ipv4, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const len = UDP_HEADER_LEN + payload.length;
  const p = new Uint8Array(len);
  p[0] = srcPort >>> 8;
  p[1] = srcPort & 255;
  p[2] = dstPort >>> 8;
  p[3] = dstPort & 255;
  p[4] = len >>> 8;
  p[5] = len & 255;
  p.set(payload, 8);
  let c = foldChecksum(sumBytes(p, 0, len, pseudoHeaderSum(src, dst, IPPROTO_UDP, len)));
  if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
  p[6] = c >>> 8;
  p[7] = c & 255;
  return p;
}
