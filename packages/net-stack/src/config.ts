// Configuration of the user-mode network (zod 4). Defaults follow QEMU's user
// networking: 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, first guest 10.0.2.15.
import { z } from "zod";
import { NetError, NetErrorCode } from "./errors.js";
import { type Ipv4, inSubnet, ipToString, parseIpv4, prefixMask } from "./wire/addr.js";

const port = z.number().int().min(1).max(65535);

export const PolicyRuleSchema = z.object({
  /** Destination network as seen by the host (after the gateway alias maps 10.0.2.2 to 127.0.0.1). */
  cidr: z.cidrv4(),
  /** Inclusive destination port range; all ports when absent. */
  ports: z.tuple([port, port]).optional(),
  /** Both protocols when absent. */
  protocol: z.enum(["tcp", "udp"]).optional(),
});
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

export const HostForwardSchema = z.object({
  protocol: z.enum(["tcp", "udp"]),
  /** Host address to listen on; loopback by default. */
  hostAddress: z.ipv4().default("127.0.0.1"),
  /** Host port; 0 picks a free port (read it back from `UserNet.hostForwardPorts`). */
  hostPort: z.number().int().min(0).max(65535),
  /** Guest address; the first DHCP address when absent. */
  guestAddress: z.ipv4().optional(),
  guestPort: port,
});
export type HostForward = z.infer<typeof HostForwardSchema>;

export const UserNetConfigSchema = z
  .object({
    network: z.cidrv4().default("10.0.2.0/24"),
    gateway: z.ipv4().default("10.0.2.2"),
    dns: z.ipv4().default("10.0.2.3"),
    dhcpStart: z.ipv4().default("10.0.2.15"),
    /** Number of addresses the DHCP server hands out from dhcpStart on. */
    dhcpCount: z.number().int().min(1).max(256).default(16),
    leaseTimeSeconds: z.number().int().min(60).max(0x7fffffff).default(86400),
    mtu: z.number().int().min(576).max(1500).default(1500),
    /** QEMU's restrict=on: no egress at all; DHCP, ARP, ICMP to the gateway and host forwards still work. */
    restrict: z.boolean().default(false),
    /** Map the gateway address to the host's 127.0.0.1 (QEMU's default). */
    gatewayToLoopback: z.boolean().default(true),
    /** DNS upstream; the first nameserver of /etc/resolv.conf when absent. */
    dnsUpstream: z.object({ host: z.ipv4(), port: port.default(53) }).optional(),
    allow: z.array(PolicyRuleSchema).max(1024).default([]),
    deny: z.array(PolicyRuleSchema).max(1024).default([]),
    hostForwards: z.array(HostForwardSchema).max(256).default([]),
    limits: z
      .object({
        /** NAT flows (TCP and UDP) per guest address. */
        maxFlowsPerGuest: z.number().int().min(1).max(65536).default(1024),
        /** NAT flows of all guest addresses together (a guest can claim many source addresses). */
        maxFlows: z.number().int().min(1).max(262144).default(4096),
        /** Bytes buffered by all flows of one guest address, both directions. */
        maxBufferedBytesPerGuest: z
          .number()
          .int()
          .min(65536)
          .default(64 * 1024 * 1024),
        /** Bytes buffered per TCP flow and direction before backpressure. */
        flowBufferBytes: z
          .number()
          .int()
          .min(4096)
          .max(16 * 1024 * 1024)
          .default(256 * 1024),
        maxDnsPending: z.number().int().min(1).max(4096).default(256),
      })
      .prefault({}),
    timeouts: z
      .object({
        udpIdleMs: z.number().int().min(1).default(60_000),
        dnsMs: z.number().int().min(1).default(5_000),
        tcpConnectMs: z.number().int().min(1).default(20_000),
        tcpTimeWaitMs: z.number().int().min(0).default(2_000),
        tcpRtoMinMs: z.number().int().min(1).default(200),
        tcpRtoMaxMs: z.number().int().min(1).default(60_000),
        tcpMaxRetransmits: z.number().int().min(1).max(64).default(12),
        fragmentMs: z.number().int().min(1).default(30_000),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const [net, prefix] = splitCidr(c.network);
    for (const key of ["gateway", "dns", "dhcpStart"] as const) {
      if (!inSubnet(parseIpv4(c[key])!, net, prefix)) {
        ctx.addIssue({ code: "custom", path: [key], message: `${key} is outside ${c.network}` });
      }
    }
    if (prefix > 30) ctx.addIssue({ code: "custom", path: ["network"], message: "prefix must be /30 or shorter" });
  });

export type UserNetConfigInput = z.input<typeof UserNetConfigSchema>;
export type UserNetConfig = z.output<typeof UserNetConfigSchema>;

export function splitCidr(cidr: string): [Ipv4, number] {
  const [a, p] = cidr.split("/");
  return [parseIpv4(a!)!, Number(p)];
}

/**
 * QEMU's rule (net/slirp.c) for a network given without the addresses in it:
 * the network is masked, and the gateway, DNS and first DHCP address not given
 * are network | (0.0.2.2, 0.0.2.3, 0.0.2.15 & ~mask) — .2, .3 and .15 of a /24
 * ("10.0.3.0/24" → 10.0.3.2, 10.0.3.3, 10.0.3.15). Other input is returned as is.
 */
export function withQemuAddresses(input: unknown): unknown {
  if (typeof input !== "object" || input === null) return input;
  const c = input as Record<string, unknown>;
  const m = typeof c.network === "string" ? /^([0-9.]+)\/(\d{1,2})$/.exec(c.network) : null;
  const ip = m ? parseIpv4(m[1]!) : null;
  const prefix = m ? Number(m[2]) : 33;
  if (ip === null || prefix > 32) return input;
  const mask = prefixMask(prefix);
  const net = (ip & mask) >>> 0;
  const at = (low: number) => ipToString((net | (low & ~mask)) >>> 0);
  return {
    ...c,
    network: `${ipToString(net)}/${prefix}`,
    gateway: c.gateway ?? at(0x0202),
    dns: c.dns ?? at(0x0203),
    dhcpStart: c.dhcpStart ?? at(0x020f),
  };
}

/** Validates a configuration, deriving the addresses of a network given alone as QEMU does (`withQemuAddresses`). */
export function parseUserNetConfig(input: unknown): UserNetConfig {
  const r = UserNetConfigSchema.safeParse(withQemuAddresses(input ?? {}));
  if (!r.success) throw new NetError(NetErrorCode.CONFIG_INVALID, { issues: r.error.issues.map((i) => i.message) });
  return r.data;
}

/** The first IPv4 `nameserver` of a resolv.conf text, or null. */
export function parseResolvConf(text: string): string | null {
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && parseIpv4(m[1]!) !== null) return m[1]!;
  }
  return null;
}
