// Per-reason drop counters and traffic counters. Every frame the stack refuses
// bumps exactly one drop reason; nothing a guest sends throws (STYLE.md 9).

export const DropReason = {
  ETH_TOO_SHORT: "ETH_TOO_SHORT",
  ETH_TOO_LONG: "ETH_TOO_LONG",
  ETH_NOT_FOR_US: "ETH_NOT_FOR_US",
  ETH_VLAN: "ETH_VLAN",
  ETH_UNKNOWN_TYPE: "ETH_UNKNOWN_TYPE",
  ARP_MALFORMED: "ARP_MALFORMED",
  ARP_UNSUPPORTED: "ARP_UNSUPPORTED",
  ARP_NOT_FOR_US: "ARP_NOT_FOR_US",
  IP_TOO_SHORT: "IP_TOO_SHORT",
  IP_BAD_VERSION: "IP_BAD_VERSION",
  IP_BAD_IHL: "IP_BAD_IHL",
  IP_BAD_LENGTH: "IP_BAD_LENGTH",
  IP_BAD_CHECKSUM: "IP_BAD_CHECKSUM",
  IP_BAD_SOURCE: "IP_BAD_SOURCE",
  IP_TTL_EXPIRED: "IP_TTL_EXPIRED",
  IP_NOT_FOR_US: "IP_NOT_FOR_US",
  IP_UNKNOWN_PROTOCOL: "IP_UNKNOWN_PROTOCOL",
  IP_FRAG_BAD: "IP_FRAG_BAD",
  IP_FRAG_OVERLAP: "IP_FRAG_OVERLAP",
  IP_FRAG_TOO_BIG: "IP_FRAG_TOO_BIG",
  IP_FRAG_LIMIT: "IP_FRAG_LIMIT",
  IP_FRAG_TIMEOUT: "IP_FRAG_TIMEOUT",
  ICMP_MALFORMED: "ICMP_MALFORMED",
  ICMP_BAD_CHECKSUM: "ICMP_BAD_CHECKSUM",
  ICMP_UNHANDLED: "ICMP_UNHANDLED",
  UDP_MALFORMED: "UDP_MALFORMED",
  UDP_BAD_CHECKSUM: "UDP_BAD_CHECKSUM",
  TCP_MALFORMED: "TCP_MALFORMED",
  TCP_BAD_OPTIONS: "TCP_BAD_OPTIONS",
  TCP_BAD_CHECKSUM: "TCP_BAD_CHECKSUM",
  TCP_NO_FLOW: "TCP_NO_FLOW",
  TCP_OUT_OF_WINDOW: "TCP_OUT_OF_WINDOW",
  TCP_OUT_OF_ORDER: "TCP_OUT_OF_ORDER",
  DHCP_MALFORMED: "DHCP_MALFORMED",
  DHCP_IGNORED: "DHCP_IGNORED",
  DNS_MALFORMED: "DNS_MALFORMED",
  DNS_LIMIT: "DNS_LIMIT",
  POLICY_DENIED: "POLICY_DENIED",
  LIMIT_FLOWS: "LIMIT_FLOWS",
  LIMIT_BUFFER: "LIMIT_BUFFER",
  NO_ROUTE: "NO_ROUTE",
  TRANSPORT_FRAME_TOO_LONG: "TRANSPORT_FRAME_TOO_LONG",
  DETACHED: "DETACHED",
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export interface NetStatsSnapshot {
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly dropped: number;
  readonly drops: Readonly<Partial<Record<DropReason, number>>>;
  readonly counters: Readonly<Record<string, number>>;
}

export class NetStats {
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  dropped = 0;
  readonly drops: Partial<Record<DropReason, number>> = {};
  readonly counters: Record<string, number> = {};

  drop(reason: DropReason): void {
    this.dropped++;
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  count(name: string, n = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + n;
  }

  snapshot(): NetStatsSnapshot {
    return {
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      dropped: this.dropped,
      drops: { ...this.drops },
      counters: { ...this.counters },
    };
  }
}
