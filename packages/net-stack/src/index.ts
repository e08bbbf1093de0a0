// Public surface of @ringzero/net-stack: browser-safe. What needs host sockets
// or files (UserNet, StreamTransport, PcapWriter, hostResolver) is at "./node".
export type { FrameReceiver, NetBackend } from "./backend.js";
export {
  type HostForward,
  HostForwardSchema,
  type PolicyRule,
  PolicyRuleSchema,
  parseResolvConf,
  parseUserNetConfig,
  type UserNetConfig,
  type UserNetConfigInput,
  UserNetConfigSchema,
  withQemuAddresses,
} from "./config.js";
export { NetError, NetErrorCode } from "./errors.js";
export { type NetdevUser, parseNetdevUser, splitQemuOpts } from "./netdev.js";
export { capture, type FrameRecorder, LINKTYPE_ETHERNET } from "./pcap.js";
export { parseUserNetState, type UserNetState, UserNetStateSchema } from "./persist.js";
export { DropReason, NetStats, type NetStatsSnapshot } from "./stats.js";
export { VirtualSwitch, type VirtualSwitchOptions } from "./switch.js";
export type { StreamTransportOptions } from "./transport.js";
export type { HostForwardBinding } from "./user-net.js";
export {
  BROADCAST_MAC,
  type Ipv4,
  ipToString,
  macToString,
  parseIpv4 as parseIpv4Address,
  parseMac,
} from "./wire/addr.js";
export { type ArpPacket, buildArp, parseArp } from "./wire/arp.js";
export { checksum } from "./wire/checksum.js";
export { buildDhcpReply, type DhcpMessage, DhcpOption, DhcpType, parseDhcp } from "./wire/dhcp.js";
export { buildEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, type EthernetFrame, parseEthernet } from "./wire/ethernet.js";
export { buildIcmp, type IcmpMessage, parseIcmp } from "./wire/icmp.js";
export {
  buildIpv4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Ipv4Header,
  type Ipv4Packet,
  parseIpv4,
} from "./wire/ipv4.js";
export { DEFAULT_REASSEMBLY_LIMITS, Reassembler, type ReassemblyLimits } from "./wire/reassembly.js";
export {
  buildTcp,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
  type TcpSegmentSpec,
} from "./wire/tcp.js";
export { buildUdp, parseUdp, type UdpDatagram } from "./wire/udp.js";
