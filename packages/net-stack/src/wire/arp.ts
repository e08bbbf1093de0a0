// ARP for IPv4 over Ethernet (RFC 826).
import { DropReason } from "../stats.js";
import { type Ipv4, readIpv4, writeIpv4 } from "./addr.js";

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_LEN = 28;

export interface ArpPacket {
  readonly op: number;
  readonly senderMac: Uint8Array;
  readonly senderIp: Ipv4;
  readonly targetMac: Uint8Array;
  readonly targetIp: Ipv4;
}

export function parseArp(p: Uint8Array): ArpPacket | DropReason {
  if (p.length < ARP_LEN) return DropReason.ARP_MALFORMED;
  const htype = (p[0]! << 8) | p[1]!;
  const ptype = (p[2]! << 8) | p[3]!;
  // RFC 826: hardware type 1 (Ethernet), protocol 0x0800, lengths 6 and 4.
  if (htype !== 1 || ptype !== 0x0800 || p[4] !== 6 || p[5] !== 4) return DropReason.ARP_UNSUPPORTED;
  const op = (p[6]! << 8) | p[7]!;
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return DropReason.ARP_UNSUPPORTED;
  return {
    op,
    senderMac: p.slice(8, 14),
    senderIp: readIpv4(p, 14),
    targetMac: p.slice(18, 24),
    targetIp: readIpv4(p, 24),
  };
}

export function buildArp(a: ArpPacket): Uint8Array {
  const p = new Uint8Array(ARP_LEN);
  p[1] = 1;
  p[2] = 0x08;
  p[4] = 6;
  p[5] = 4;
  p[7] = a.op;
  p.set(a.senderMac.subarray(0, 6), 8);
  writeIpv4(p, 14, a.senderIp);
  p.set(a.targetMac.subarray(0, 6), 18);
  writeIpv4(p, 24, a.targetIp);
  return p;
}
