// A scripted guest for unit tests: builds frames with the package's own
// builders, collects what the stack sends back and decodes it.
import type { NetBackend } from "../backend.js";
import { type Ipv4, parseIpv4 as parseIpText } from "../wire/addr.js";
import { buildArp, parseArp } from "../wire/arp.js";
import { buildEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, parseEthernet } from "../wire/ethernet.js";
import { buildIcmp, type IcmpMessage, parseIcmp } from "../wire/icmp.js";
import { buildIpv4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, type Ipv4Packet, parseIpv4 } from "../wire/ipv4.js";
import { buildTcp, parseTcp, type TcpSegment, type TcpSegmentSpec } from "../wire/tcp.js";
import { buildUdp, parseUdp, type UdpDatagram } from "../wire/udp.js";

export const ip = (s: string): Ipv4 => parseIpText(s)!;
export const GW = ip("10.0.2.2");
export const DNS = ip("10.0.2.3");
export const GUEST = ip("10.0.2.15");
export const GW_MAC = Uint8Array.of(0x52, 0x55, 10, 0, 2, 2);

export type Received =
  | { kind: "arp"; arp: Exclude<ReturnType<typeof parseArp>, string>; eth: Uint8Array }
  | { kind: "ip"; ip: Ipv4Packet; dstMac: Uint8Array; icmp?: IcmpMessage; udp?: UdpDatagram; tcp?: TcpSegment }
  | { kind: "other"; frame: Uint8Array };

export class SimGuest {
  readonly inbox: Received[] = [];
  ipId = 1;

  constructor(
    readonly net: NetBackend,
    readonly mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0x15),
    public addr = GUEST,
  ) {
    net.setReceiver((f) => this.inbox.push(decode(f)));
  }

  sendIp(dst: Ipv4, protocol: number, l4: Uint8Array, opts: { src?: Ipv4; dstMac?: Uint8Array } = {}): void {
    const pkt = buildIpv4({ src: opts.src ?? this.addr, dst, protocol, id: this.ipId++ }, l4);
    this.net.send(buildEthernet(opts.dstMac ?? GW_MAC, this.mac, ETHERTYPE_IPV4, pkt));
  }

  arp(targetIp: Ipv4): void {
    const a = buildArp({ op: 1, senderMac: this.mac, senderIp: this.addr, targetMac: new Uint8Array(6), targetIp });
    this.net.send(buildEthernet(new Uint8Array(6).fill(0xff), this.mac, ETHERTYPE_ARP, a));
  }

  ping(dst: Ipv4, id: number, seq: number, data: Uint8Array): void {
    this.sendIp(dst, IPPROTO_ICMP, buildIcmp({ type: 8, code: 0, rest: ((id << 16) | seq) >>> 0, data }));
  }

  udp(dst: Ipv4, srcPort: number, dstPort: number, payload: Uint8Array, src?: Ipv4): void {
    const s = src ?? this.addr;
    this.sendIp(dst, IPPROTO_UDP, buildUdp(s, dst, srcPort, dstPort, payload), { src: s });
  }

  tcp(dst: Ipv4, spec: TcpSegmentSpec): void {
    this.sendIp(dst, IPPROTO_TCP, buildTcp(this.addr, dst, spec));
  }

  take<T extends Received>(pred: (r: Received) => r is T): T | undefined;
  take(pred: (r: Received) => boolean): Received | undefined;
  take(pred: (r: Received) => boolean): Received | undefined {
    const i = this.inbox.findIndex(pred);
    return i < 0 ? undefined : this.inbox.splice(i, 1)[0];
  }

  /** Waits (bounded) until a received frame matches, and removes it. */
  async wait(pred: (r: Received) => boolean, ms = 3000): Promise<Received> {
    const end = Date.now() + ms;
    for (;;) {
      const r = this.take(pred);
      if (r) return r;
      if (Date.now() > end) throw new Error("SimGuest.wait: timed out");
      await new Promise((res) => setTimeout(res, 5));
    }
  }

  tcpSegments(): TcpSegment[] {
    const out: TcpSegment[] = [];
    for (let r = this.take(isTcp); r; r = this.take(isTcp)) out.push(r.tcp!);
    return out;
  }
}

export function isTcp(r: Received): r is Extract<Received, { kind: "ip" }> {
  return r.kind === "ip" && r.tcp !== undefined;
}

export function decode(f: Uint8Array): Received {
  const e = parseEthernet(f);
  if (typeof e === "string") return { kind: "other", frame: f };
  if (e.etherType === ETHERTYPE_ARP) {
    const a = parseArp(e.payload);
    return typeof a === "string" ? { kind: "other", frame: f } : { kind: "arp", arp: a, eth: f };
  }
  const p = parseIpv4(e.payload);
  if (typeof p === "string") return { kind: "other", frame: f };
  const r: Extract<Received, { kind: "ip" }> = { kind: "ip", ip: p, dstMac: e.dst.slice() };
  if (p.moreFragments || p.fragmentOffset) return r;
  if (p.protocol === IPPROTO_ICMP) {
    const m = parseIcmp(p.payload);
    if (typeof m !== "string") r.icmp = m;
  } else if (p.protocol === IPPROTO_UDP) {
    const u = parseUdp(p.payload, p.src, p.dst);
    if (typeof u !== "string") r.udp = u;
  } else if (p.protocol === IPPROTO_TCP) {
    const t = parseTcp(p.payload, p.src, p.dst);
    if (typeof t !== "string") r.tcp = t;
  }
  return r;
}
