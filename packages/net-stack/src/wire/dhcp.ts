// DHCP messages (RFC 2131 §2 layout, RFC 2132 options). Only what a server needs.
import { DropReason } from "../stats.js";
import { type Ipv4, readIpv4, writeIpv4 } from "./addr.js";

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
const MAGIC = 0x63825363;
const FIXED_LEN = 236;

export const DhcpType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  BROADCAST: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  END: 255,
} as const;

export interface DhcpMessage {
  readonly op: number;
  readonly xid: number;
  readonly flags: number;
  readonly ciaddr: Ipv4;
  readonly yiaddr: Ipv4;
  readonly chaddr: Uint8Array;
  readonly messageType: number;
  readonly requestedIp?: Ipv4;
  readonly serverId?: Ipv4;
}

export function parseDhcp(p: Uint8Array): DhcpMessage | DropReason {
  if (p.length < FIXED_LEN + 4) return DropReason.DHCP_MALFORMED;
  // Ethernet hardware addresses only (htype 1, hlen 6).
  if (p[1] !== 1 || p[2] !== 6) return DropReason.DHCP_MALFORMED;
  if (readIpv4(p, FIXED_LEN) !== MAGIC) return DropReason.DHCP_MALFORMED;
  let messageType = 0;
  let requestedIp: Ipv4 | undefined;
  let serverId: Ipv4 | undefined;
  let i = FIXED_LEN + 4;
  // Option overload (52) is ignored: sname/file are never read. The loop is bounded by the packet.
  while (i < p.length) {
    const code = p[i]!;
    if (code === DhcpOption.END) break;
    if (code === DhcpOption.PAD) {
      i++;
      continue;
    }
    if (i + 1 >= p.length) return DropReason.DHCP_MALFORMED;
    const len = p[i + 1]!;
    if (i + 2 + len > p.length) return DropReason.DHCP_MALFORMED;
    const v = i + 2;
    if (code === DhcpOption.MESSAGE_TYPE && len === 1) messageType = p[v]!;
    else if (code === DhcpOption.REQUESTED_IP && len === 4) requestedIp = readIpv4(p, v);
    else if (code === DhcpOption.SERVER_ID && len === 4) serverId = readIpv4(p, v);
    i = v + len;
  }
  if (messageType < 1 || messageType > 8) return DropReason.DHCP_MALFORMED;
  const m: DhcpMessage = {
    op: p[0]!,
    xid: readIpv4(p, 4),
    flags: (p[10]! << 8) | p[11]!,
    ciaddr: readIpv4(p, 12),
    yiaddr: readIpv4(p, 16),
    chaddr: p.slice(28, 34),
    messageType,
  };
  if (requestedIp !== undefined) (m as { requestedIp?: Ipv4 }).requestedIp = requestedIp;
  if (serverId !== undefined) (m as { serverId?: Ipv4 }).serverId = serverId;
  return m;
}

export interface DhcpReplySpec {
  readonly xid: number;
  readonly flags: number;
  readonly chaddr: Uint8Array;
  readonly ciaddr: Ipv4;
  readonly yiaddr: Ipv4;
  readonly serverIp: Ipv4;
  readonly messageType: number;
  /** Option code and value pairs, written in order after message type and server id. */
  readonly options: readonly (readonly [number, Uint8Array])[];
}

export function buildDhcpReply(r: DhcpReplySpec): Uint8Array {
  let optLen = 3 + 6 + 1;
  for (const [, v] of r.options) optLen += 2 + v.length;
  // BOOTP minimum message of 300 bytes (RFC 1542 §3.1.1 notes relays expect it).
  const p = new Uint8Array(Math.max(300, FIXED_LEN + 4 + optLen));
  p[0] = 2; // BOOTREPLY
  p[1] = 1;
  p[2] = 6;
  writeIpv4(p, 4, r.xid);
  p[10] = r.flags >>> 8;
  p[11] = r.flags & 255;
  writeIpv4(p, 12, r.ciaddr);
  writeIpv4(p, 16, r.yiaddr);
  writeIpv4(p, 20, r.serverIp);
  p.set(r.chaddr.subarray(0, 6), 28);
  writeIpv4(p, FIXED_LEN, MAGIC);
  let i = FIXED_LEN + 4;
  p[i++] = DhcpOption.MESSAGE_TYPE;
  p[i++] = 1;
  p[i++] = r.messageType;
  p[i++] = DhcpOption.SERVER_ID;
  p[i++] = 4;
  writeIpv4(p, i, r.serverIp);
  i += 4;
  for (const [code, v] of r.options) {
    p[i++] = code;
    p[i++] = v.length;
    p.set(v, i);
    i += v.length;
  }
  p[i] = DhcpOption.END;
  return p;
}

export function ipBytes(ip: Ipv4): Uint8Array {
  const b = new Uint8Array(4);
  writeIpv4(b, 0, ip);
  return b;
}

export function u32Bytes(v: number): Uint8Array {
  return ipBytes(v >>> 0);
}
