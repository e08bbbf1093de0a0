// Egress policy: restrict mode, deny rules (first), then allow rules (when any
// are given, everything else is denied). Decided on the host-side destination.
import { type PolicyRule, splitCidr } from "./config.js";
import { type Ipv4, inSubnet } from "./wire/addr.js";

interface CompiledRule {
  readonly net: Ipv4;
  readonly prefix: number;
  readonly lo: number;
  readonly hi: number;
  readonly protocol: "tcp" | "udp" | undefined;
}

export class EgressPolicy {
  private readonly allow: CompiledRule[];
  private readonly deny: CompiledRule[];

  constructor(
    private readonly restrict: boolean,
    allow: readonly PolicyRule[],
    deny: readonly PolicyRule[],
  ) {
    this.allow = allow.map(compile);
    this.deny = deny.map(compile);
  }

  permits(protocol: "tcp" | "udp", dst: Ipv4, port: number): boolean {
    if (this.restrict) return false;
    if (this.deny.some((r) => matches(r, protocol, dst, port))) return false;
    return this.allow.length === 0 || this.allow.some((r) => matches(r, protocol, dst, port));
  }
}

function compile(r: PolicyRule): CompiledRule {
  const [net, prefix] = splitCidr(r.cidr);
  return { net, prefix, lo: r.ports?.[0] ?? 0, hi: r.ports?.[1] ?? 65535, protocol: r.protocol };
}

function matches(r: CompiledRule, protocol: "tcp" | "udp", dst: Ipv4, port: number): boolean {
  return (
    (r.protocol === undefined || r.protocol === protocol) &&
    inSubnet(dst, r.net, r.prefix) &&
    port >= r.lo &&
    port <= r.hi
  );
}
