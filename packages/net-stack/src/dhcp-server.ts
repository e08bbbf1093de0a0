// DHCP server state (RFC 2131 §4.3): a lease per client MAC from a fixed pool.
import { type Ipv4, macToString } from "./wire/addr.js";
import { type DhcpMessage, DhcpType } from "./wire/dhcp.js";

export interface Lease {
  readonly mac: string;
  readonly ip: Ipv4;
  expires: number;
}

export type DhcpDecision =
  | { readonly kind: "offer" | "ack"; readonly ip: Ipv4 }
  | { readonly kind: "inform" }
  | { readonly kind: "nak" }
  | { readonly kind: "none" };

export class DhcpServer {
  private readonly byMac = new Map<string, Lease>();
  private readonly byIp = new Map<Ipv4, Lease>();

  constructor(
    private readonly pool: readonly Ipv4[],
    readonly serverIp: Ipv4,
    private readonly leaseMs: number,
  ) {}

  get leases(): readonly Lease[] {
    return [...this.byMac.values()];
  }

  /** Installs a lease from saved state; false when the address is not in the pool or taken. */
  restore(mac: string, ip: Ipv4, expires: number): boolean {
    if (!this.pool.includes(ip) || this.byIp.has(ip) || this.byMac.has(mac)) return false;
    const lease: Lease = { mac, ip, expires };
    this.byMac.set(mac, lease);
    this.byIp.set(ip, lease);
    return true;
  }

  leaseOf(mac: string): Lease | undefined {
    return this.byMac.get(mac);
  }

  handle(m: DhcpMessage, now: number): DhcpDecision {
    if (m.op !== 1) return { kind: "none" }; // BOOTREQUEST only
    const mac = macToString(m.chaddr);
    switch (m.messageType) {
      case DhcpType.DISCOVER: {
        const ip = this.pick(mac, m.requestedIp, now);
        return ip === null ? { kind: "none" } : { kind: "offer", ip };
      }
      case DhcpType.REQUEST: {
        // §4.3.2: a REQUEST naming another server means the client chose that one.
        if (m.serverId !== undefined && m.serverId !== this.serverIp) {
          this.release(mac, now);
          return { kind: "none" };
        }
        const wanted = m.requestedIp ?? m.ciaddr;
        const ip = this.pick(mac, wanted, now);
        if (ip === null || (wanted !== 0 && wanted !== ip)) return { kind: "nak" };
        const lease: Lease = { mac, ip, expires: now + this.leaseMs };
        this.byMac.set(mac, lease);
        this.byIp.set(ip, lease);
        return { kind: "ack", ip };
      }
      case DhcpType.RELEASE:
      case DhcpType.DECLINE:
        this.release(mac, now);
        return { kind: "none" };
      case DhcpType.INFORM:
        return { kind: "inform" };
      default:
        return { kind: "none" };
    }
  }

  /** The client's existing lease, its requested address if free, else the first free address. */
  private pick(mac: string, requested: Ipv4 | undefined, now: number): Ipv4 | null {
    const own = this.byMac.get(mac);
    if (own && this.byIp.get(own.ip) === own) return own.ip;
    if (own) this.byMac.delete(mac); // expired and taken over by another client
    const free = (ip: Ipv4) => {
      const l = this.byIp.get(ip);
      return !l || l.expires <= now;
    };
    if (requested !== undefined && this.pool.includes(requested) && free(requested)) return requested;
    for (const ip of this.pool) if (free(ip)) return ip;
    return null;
  }

  private release(mac: string, _now: number): void {
    const l = this.byMac.get(mac);
    if (!l) return;
    this.byMac.delete(mac);
    if (this.byIp.get(l.ip) === l) this.byIp.delete(l.ip);
  }
}
