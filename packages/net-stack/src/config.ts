// Configuration of the user-mode network (zod 4). Defaults follow QEMU's user
// networking: 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, first guest 10.0.2.15.

import { NetError, NetErrorCode } from "./errors.js";
import { type Ipv4, inSubnet, ipToString, parseIpv4, prefixMask } from "./wire/addr.js";
import * as z from "./zod.js";

const port = z.int().check(z.minimum(1), z.maximum(65535));

export const PolicyRuleSchema = z.object({
  /** Destination network as seen by the host (after the gateway alias maps 10.0.2.2 to 127.0.0.1). */
  cidr: z.cidrv4(),
  /** Inclusive destination port range; all ports when absent. */
  ports: z.optional(z.tuple([port, port])),
  /** Both protocols when absent. */
  protocol: z.optional(z.enum(["tcp", "udp"])),
});
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

export const HostForwardSchema = z.object({
  protocol: z.enum(["tcp", "udp"]),
  /** Host address to listen on; loopback by default. */
  hostAddress: z._default(z.ipv4(), "127.0.0.1"),
  /** Host port; 0 picks a free port (read it back from `UserNet.hostForwardPorts`). */
  hostPort: z.int().check(z.minimum(0), z.maximum(65535)),
  /** Guest address; the first DHCP address when absent. */
  guestAddress: z.optional(z.ipv4()),
  guestPort: port,
});
export type HostForward = z.infer<typeof HostForwardSchema>;

export const UserNetConfigSchema = z
  .object({
    network: z._default(z.cidrv4(), "10.0.2.0/24"),
    gateway: z._default(z.ipv4(), "10.0.2.2"),
    dns: z._default(z.ipv4(), "10.0.2.3"),
    dhcpStart: z._default(z.ipv4(), "10.0.2.15"),
    /** Number of addresses the DHCP server hands out from dhcpStart on. */
    dhcpCount: z._default(z.int().check(z.minimum(1), z.maximum(256)), 16),
    leaseTimeSeconds: z._default(z.int().check(z.minimum(60), z.maximum(0x7fffffff)), 86400),
    mtu: z._default(z.int().check(z.minimum(576), z.maximum(1500)), 1500),
    /** QEMU's restrict=on: no egress at all; DHCP, ARP, ICMP to the gateway and host forwards still work. */
    restrict: z._default(z.boolean(), false),
    /** Map the gateway address to the host's 127.0.0.1 (QEMU's default). */
    gatewayToLoopback: z._default(z.boolean(), true),
    /** DNS upstream; the first nameserver of /etc/resolv.conf when absent. */
    dnsUpstream: z.optional(z.object({ host: z.ipv4(), port: z._default(port, 53) })),
    allow: z._default(z.array(PolicyRuleSchema).check(z.maxLength(1024)), []),
    deny: z._default(z.array(PolicyRuleSchema).check(z.maxLength(1024)), []),
    hostForwards: z._default(z.array(HostForwardSchema).check(z.maxLength(256)), []),
    limits: z.prefault(
      z.object({
        /** NAT flows (TCP and UDP) per guest address. */
        maxFlowsPerGuest: z._default(z.int().check(z.minimum(1), z.maximum(65536)), 1024),
        /** NAT flows of all guest addresses together (a guest can claim many source addresses). */
        maxFlows: z._default(z.int().check(z.minimum(1), z.maximum(262144)), 4096),
        /** Bytes buffered by all flows of one guest address, both directions. */
        maxBufferedBytesPerGuest: z._default(z.int().check(z.minimum(65536)), 64 * 1024 * 1024),
        /** Bytes buffered per TCP flow and direction before backpressure. */
        flowBufferBytes: z._default(z.int().check(z.minimum(4096), z.maximum(16 * 1024 * 1024)), 256 * 1024),
        maxDnsPending: z._default(z.int().check(z.minimum(1), z.maximum(4096)), 256),
      }),
      {},
    ),
    timeouts: z.prefault(
      z.object({
        udpIdleMs: z._default(z.int().check(z.minimum(1)), 60_000),
        dnsMs: z._default(z.int().check(z.minimum(1)), 5_000),
        tcpConnectMs: z._default(z.int().check(z.minimum(1)), 20_000),
        tcpTimeWaitMs: z._default(z.int().check(z.minimum(0)), 2_000),
        tcpRtoMinMs: z._default(z.int().check(z.minimum(1)), 200),
        tcpRtoMaxMs: z._default(z.int().check(z.minimum(1)), 60_000),
        tcpMaxRetransmits: z._default(z.int().check(z.minimum(1), z.maximum(64)), 12),
        fragmentMs: z._default(z.int().check(z.minimum(1)), 30_000),
      }),
      {},
    ),
  })
  .check(
    z.superRefine((c, ctx) => {
      const [net, prefix] = splitCidr(c.network);
      for (const key of ["gateway", "dns", "dhcpStart"] as const) {
        if (!inSubnet(parseIpv4(c[key])!, net, prefix)) {
          ctx.addIssue({ code: "custom", path: [key], message: `${key} is outside ${c.network}` });
        }
      }
      if (prefix > 30) ctx.addIssue({ code: "custom", path: ["network"], message: "prefix must be /30 or shorter" });
    }),
  );

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
