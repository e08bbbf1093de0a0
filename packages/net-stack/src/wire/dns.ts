// The 12-byte DNS header (RFC 1035 §4.1.1): the forwarder only needs the id and
// the QR bit; the message body is passed through untouched.
import { DropReason } from "../stats.js";

export interface DnsHeader {
  readonly id: number;
  readonly isResponse: boolean;
  readonly questions: number;
}

export function parseDnsHeader(p: Uint8Array): DnsHeader | DropReason {
  if (p.length < 12 || p.length > 65535) return DropReason.DNS_MALFORMED;
  return { id: (p[0]! << 8) | p[1]!, isResponse: (p[2]! & 0x80) !== 0, questions: (p[4]! << 8) | p[5]! };
}

/** Returns a copy of `p` with the id replaced. */
export function withDnsId(p: Uint8Array, id: number): Uint8Array {
  const c = p.slice();
  c[0] = id >>> 8;
  c[1] = id & 255;
  return c;
}
