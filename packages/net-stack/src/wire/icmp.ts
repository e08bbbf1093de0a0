// ICMP for IPv4 (RFC 792): echo request/reply is all the stack answers.
import { DropReason } from "../stats.js";
import { checksum } from "./checksum.js";

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;

export interface IcmpMessage {
  readonly type: number;
  readonly code: number;
  /** Bytes 4..7 (identifier and sequence number for echo). */
  readonly rest: number;
  readonly data: Uint8Array;
}

export function parseIcmp(p: Uint8Array): IcmpMessage | DropReason {
  if (p.length < 8) return DropReason.ICMP_MALFORMED;
  if (checksum(p, 0, p.length) !== 0) return DropReason.ICMP_BAD_CHECKSUM;
  return {
    type: p[0]!,
    code: p[1]!,
    rest: ((p[4]! << 24) | (p[5]! << 16) | (p[6]! << 8) | p[7]!) >>> 0,
    data: p.subarray(8),
  };
}

export function buildIcmp(m: IcmpMessage): Uint8Array {
  const p = new Uint8Array(8 + m.data.length);
  p[0] = m.type;
  p[1] = m.code;
  p[4] = m.rest >>> 24;
  p[5] = (m.rest >>> 16) & 255;
  p[6] = (m.rest >>> 8) & 255;
  p[7] = m.rest & 255;
  p.set(m.data, 8);
  const c = checksum(p, 0, p.length);
  p[2] = c >>> 8;
  p[3] = c & 255;
  return p;
}
