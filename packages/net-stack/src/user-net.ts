// The user-mode network: a virtual gateway, DNS and DHCP server on a private
// subnet that NATs the guest's TCP and UDP flows to host sockets, as QEMU's
// slirp does. It is a NetBackend: plug a NIC (or a switch port) straight in.
import { createSocket, type Socket as DgramSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { FrameReceiver, NetBackend } from "./backend.js";
import { parseUserNetConfig, splitCidr, type UserNetConfig, type UserNetConfigInput } from "./config.js";
import { DhcpServer } from "./dhcp-server.js";
import { DnsForwarder } from "./dns-forwarder.js";
import { NetError, NetErrorCode } from "./errors.js";
import { hostResolver } from "./host-resolver.js";
import { parseUserNetState, type UserNetState } from "./persist.js";
import { EgressPolicy } from "./policy.js";
import { DropReason, NetStats } from "./stats.js";
import { BufferBudget, TcpFlow, type TcpFlowHost } from "./tcp-flow.js";
import { UdpFlow, type UdpFlowHost } from "./udp-nat.js";
import {
  BROADCAST_MAC,
  type Ipv4,
  inSubnet,
  ipToString,
  isBroadcastMac,
  macEquals,
  macToString,
  parseIpv4 as parseIpv4Text,
  prefixMask,
  slirpMac,
} from "./wire/addr.js";
import { ARP_REPLY, ARP_REQUEST, buildArp, parseArp } from "./wire/arp.js";
import {
  buildDhcpReply,
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  DhcpOption,
  DhcpType,
  ipBytes,
  parseDhcp,
  u32Bytes,
} from "./wire/dhcp.js";
import { ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, parseEthernet, writeEthernetHeader } from "./wire/ethernet.js";
import { buildIcmp, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, parseIcmp } from "./wire/icmp.js";
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  type Ipv4Packet,
  parseIpv4,
  writeIpv4Header,
} from "./wire/ipv4.js";
import { Reassembler } from "./wire/reassembly.js";
import { buildTcp, parseTcp, TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment, type TcpSegmentSpec } from "./wire/tcp.js";
import { buildUdp, parseUdp } from "./wire/udp.js";

const LOOPBACK = 0x7f000001;
const LIMITED_BROADCAST = 0xffffffff;
const MAX_NEIGHBOURS = 1024;
const MAX_DEFERRED = 4096;

interface UdpForwardPeer {
  readonly server: DgramSocket;
  readonly address: string;
  readonly port: number;
  readonly guestIp: Ipv4;
  readonly guestPort: number;
  readonly localPort: number;
  timer: NodeJS.Timeout;
}

export interface HostForwardBinding {
  readonly protocol: "tcp" | "udp";
  readonly hostAddress: string;
  readonly hostPort: number;
  readonly guestAddress: string;
  readonly guestPort: number;
}

export class UserNet implements NetBackend {
  readonly stats = new NetStats();
  readonly config: UserNetConfig;
  private receiver: FrameReceiver | null = null;
  private closed = false;
  private readonly net: Ipv4;
  private readonly prefix: number;
  private readonly gatewayIp: Ipv4;
  private readonly dnsIp: Ipv4;
  private readonly gatewayMac: Uint8Array;
  private readonly dnsMac: Uint8Array;
  private readonly directedBroadcast: Ipv4;
  private readonly neighbours = new Map<Ipv4, Uint8Array>();
  private readonly dhcp: DhcpServer;
  private readonly reassembler: Reassembler;
  private readonly dns: DnsForwarder;
  private readonly dnsUpstream: { host: string; port: number } | null;
  private readonly policy: EgressPolicy;
  private readonly tcpFlows = new Map<string, TcpFlow>();
  private readonly udpFlows = new Map<string, UdpFlow>();
  private readonly udpForwardPeers = new Map<string, UdpForwardPeer>();
  private readonly flowsPerGuest = new Map<Ipv4, number>();
  private readonly budgets = new Map<Ipv4, BufferBudget>();
  private readonly servers: (Server | DgramSocket)[] = [];
  private readonly forwards: HostForwardBinding[] = [];
  private ipId = 1;
  private totalFlows = 0;
  private emitDepth = 0;
  private readonly deferred: Uint8Array[] = [];
  private nextLocalPort = 49152;
  private readonly tcpHost: TcpFlowHost;
  private readonly udpHost: UdpFlowHost;

  private constructor(config: UserNetConfig) {
    this.config = config;
    [this.net, this.prefix] = splitCidr(config.network);
    this.gatewayIp = parseIpv4Text(config.gateway)!;
    this.dnsIp = parseIpv4Text(config.dns)!;
    this.gatewayMac = slirpMac(this.gatewayIp);
    this.dnsMac = slirpMac(this.dnsIp);
    this.directedBroadcast = (this.net | ~prefixMask(this.prefix)) >>> 0;
    const pool: Ipv4[] = [];
    const start = parseIpv4Text(config.dhcpStart)!;
    for (let i = 0; i < config.dhcpCount; i++) {
      const ip = (start + i) >>> 0;
      if (!inSubnet(ip, this.net, this.prefix) || ip === this.directedBroadcast) break;
      if (ip !== this.gatewayIp && ip !== this.dnsIp) pool.push(ip);
    }
    this.dhcp = new DhcpServer(pool, this.gatewayIp, config.leaseTimeSeconds * 1000);
    const t = config.timeouts;
    this.reassembler = new Reassembler(
      { maxDatagrams: 16, maxFragments: 64, maxSize: 65515, timeoutMs: t.fragmentMs },
      (r) => this.stats.drop(r),
    );
    this.dnsUpstream = config.restrict ? null : (config.dnsUpstream ?? hostResolver());
    this.dns = new DnsForwarder(this.dnsUpstream, this.stats, t.dnsMs, config.limits.maxDnsPending);
    this.policy = new EgressPolicy(config.restrict, config.allow, config.deny);
    this.tcpHost = {
      stats: this.stats,
      timeouts: t,
      flowBufferBytes: config.limits.flowBufferBytes,
      linkMss: config.mtu - 40,
      output: (flow, seg) => this.sendTcp(flow, seg),
      removed: (flow) => {
        if (this.tcpFlows.get(flow.key) === flow) {
          this.tcpFlows.delete(flow.key);
          this.flowEnded(flow.guestIp);
        }
      },
    };
    this.udpHost = {
      stats: this.stats,
      deliver: (flow, payload) => this.sendUdp(flow.remoteIp, flow.remotePort, flow.guestIp, flow.guestPort, payload),
      unreachable: (flow) => this.portUnreachable(flow),
      removed: (flow) => {
        if (this.udpFlows.get(flow.key) === flow) {
          this.udpFlows.delete(flow.key);
          this.flowEnded(flow.guestIp);
        }
      },
    };
  }

  /**
   * Validates `config` (throws NetError CONFIG_INVALID) and opens the host port forwards.
   * `state` (from `state()`) restores DHCP leases; leases outside the pool throw STATE_INVALID.
   */
  static async create(config: UserNetConfigInput = {}, state?: unknown): Promise<UserNet> {
    const n = new UserNet(parseUserNetConfig(config));
    if (state !== undefined) {
      const s = parseUserNetState(state);
      for (const l of s.leases) {
        if (!n.dhcp.restore(l.mac, parseIpv4Text(l.ip)!, l.expiresAt)) {
          n.close();
          throw new NetError(NetErrorCode.STATE_INVALID, { lease: l }, "lease outside the pool or duplicated");
        }
      }
    }
    try {
      for (const f of n.config.hostForwards) await n.openForward(f);
    } catch (e) {
      n.close();
      throw e;
    }
    return n;
  }

  /** The host forwards with the ports actually bound (useful with hostPort 0). */
  get hostForwards(): readonly HostForwardBinding[] {
    return this.forwards;
  }

  /** The state worth keeping across restarts (DHCP leases), versioned; see persist.ts. */
  state(): UserNetState {
    return {
      version: 1,
      leases: this.dhcp.leases.map((l) => ({ mac: l.mac, ip: ipToString(l.ip), expiresAt: l.expires })),
    };
  }

  /** Current DHCP leases: MAC and address. */
  get leases(): readonly { mac: string; ip: string }[] {
    return this.dhcp.leases.map((l) => ({ mac: l.mac, ip: ipToString(l.ip) }));
  }

  get flowCount(): { tcp: number; udp: number } {
    return { tcp: this.tcpFlows.size, udp: this.udpFlows.size + this.udpForwardPeers.size };
  }

  setReceiver(receiver: FrameReceiver | null): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.emitDepth > 0) {
      // Called back from inside our own receiver (a NIC or switch answering synchronously): the
      // code that emitted is still mid-update, so process this frame once it has returned.
      if (this.deferred.length >= MAX_DEFERRED) {
        this.stats.drop(DropReason.LIMIT_BUFFER);
        return;
      }
      this.deferred.push(frame.slice());
      if (this.deferred.length === 1) queueMicrotask(() => this.drainDeferred());
      return;
    }
    this.stats.framesIn++;
    this.stats.bytesIn += frame.length;
    try {
      this.input(frame);
    } catch {
      // A bug here must not take the hypervisor down; the counter makes it visible (tests assert 0).
      this.stats.count("internalErrors");
    }
  }

  private drainDeferred(): void {
    const frames = this.deferred.splice(0);
    for (const f of frames) this.send(f);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.tcpFlows.values()) f.dispose();
    this.tcpFlows.clear();
    for (const f of [...this.udpFlows.values()]) f.close();
    for (const p of this.udpForwardPeers.values()) clearTimeout(p.timer);
    this.udpForwardPeers.clear();
    for (const s of this.servers) s.close();
    this.dns.close();
    this.reassembler.clear();
    this.receiver = null;
  }

  // ---- input ------------------------------------------------------------

  private input(frame: Uint8Array): void {
    const eth = parseEthernet(frame);
    if (typeof eth === "string") {
      this.stats.drop(eth);
      return;
    }
    if (!isBroadcastMac(eth.dst) && !macEquals(eth.dst, 0, this.gatewayMac) && !macEquals(eth.dst, 0, this.dnsMac)) {
      this.stats.drop(DropReason.ETH_NOT_FOR_US);
      return;
    }
    if (eth.etherType === ETHERTYPE_ARP) {
      this.inputArp(eth.payload);
      return;
    }
    if (eth.etherType === ETHERTYPE_IPV4) {
      this.inputIpv4(eth.payload, eth.src);
      return;
    }
    this.stats.drop(DropReason.ETH_UNKNOWN_TYPE);
  }

  private isVirtual(ip: Ipv4): boolean {
    return ip === this.gatewayIp || ip === this.dnsIp;
  }

  private isGuestAddress(ip: Ipv4): boolean {
    return (
      inSubnet(ip, this.net, this.prefix) && !this.isVirtual(ip) && ip !== this.net && ip !== this.directedBroadcast
    );
  }

  private learn(ip: Ipv4, mac: Uint8Array): void {
    if (!this.isGuestAddress(ip) || (mac[0]! & 1) === 1) return;
    if (!this.neighbours.has(ip) && this.neighbours.size >= MAX_NEIGHBOURS) return;
    this.neighbours.set(ip, mac.slice(0, 6));
  }

  private inputArp(p: Uint8Array): void {
    const a = parseArp(p);
    if (typeof a === "string") {
      this.stats.drop(a);
      return;
    }
    this.learn(a.senderIp, a.senderMac);
    if (a.op !== ARP_REQUEST) return;
    if (!this.isVirtual(a.targetIp)) {
      this.stats.drop(DropReason.ARP_NOT_FOR_US);
      return;
    }
    const mac = a.targetIp === this.gatewayIp ? this.gatewayMac : this.dnsMac;
    const reply = buildArp({
      op: ARP_REPLY,
      senderMac: mac,
      senderIp: a.targetIp,
      targetMac: a.senderMac,
      targetIp: a.senderIp,
    });
    this.stats.count("arpReplies");
    this.emitEthernet(a.senderMac, mac, ETHERTYPE_ARP, reply);
  }

  private inputIpv4(p: Uint8Array, srcMac: Uint8Array): void {
    let ip = parseIpv4(p);
    if (typeof ip === "string") {
      this.stats.drop(ip);
      return;
    }
    if (ip.src !== 0 && !this.isGuestAddress(ip.src)) {
      this.stats.drop(DropReason.IP_BAD_SOURCE);
      return;
    }
    if (ip.ttl === 0) {
      this.stats.drop(DropReason.IP_TTL_EXPIRED);
      return;
    }
    if (ip.src !== 0) this.learn(ip.src, srcMac);
    if (ip.moreFragments || ip.fragmentOffset !== 0) {
      const r = this.reassembler.add(ip, Date.now());
      if (!r.done) return;
      ip = r.packet;
      this.stats.count("ipReassembled");
    }
    if (ip.src === 0 && ip.protocol !== IPPROTO_UDP) {
      this.stats.drop(DropReason.IP_BAD_SOURCE);
      return;
    }
    switch (ip.protocol) {
      case IPPROTO_ICMP:
        this.inputIcmp(ip);
        return;
      case IPPROTO_UDP:
        this.inputUdp(ip, srcMac);
        return;
      case IPPROTO_TCP:
        this.inputTcp(ip);
        return;
      default:
        this.stats.drop(DropReason.IP_UNKNOWN_PROTOCOL);
        return;
    }
  }

  private inputIcmp(ip: Ipv4Packet): void {
    const m = parseIcmp(ip.payload);
    if (typeof m === "string") {
      this.stats.drop(m);
      return;
    }
    if (m.type !== ICMP_ECHO_REQUEST || m.code !== 0 || !this.isVirtual(ip.dst)) {
      this.stats.drop(DropReason.ICMP_UNHANDLED);
      return;
    }
    this.stats.count("icmpEchoReplies");
    this.sendIpv4(
      ip.dst,
      ip.src,
      IPPROTO_ICMP,
      buildIcmp({ type: ICMP_ECHO_REPLY, code: 0, rest: m.rest, data: m.data }),
    );
  }

  // ---- UDP --------------------------------------------------------------

  private inputUdp(ip: Ipv4Packet, srcMac: Uint8Array): void {
    const u = parseUdp(ip.payload, ip.src, ip.dst);
    if (typeof u === "string") {
      this.stats.drop(u);
      return;
    }
    if (u.dstPort === DHCP_SERVER_PORT && (ip.dst === LIMITED_BROADCAST || ip.dst === this.gatewayIp)) {
      this.inputDhcp(u.payload, srcMac);
      return;
    }
    if (ip.src === 0) {
      this.stats.drop(DropReason.IP_BAD_SOURCE);
      return;
    }
    if (ip.dst === this.dnsIp && u.dstPort === 53) {
      const { src, srcPort } = { src: ip.src, srcPort: u.srcPort };
      this.dns.forward(u.payload, (answer) => this.sendUdp(this.dnsIp, 53, src, srcPort, answer));
      return;
    }
    const fwdKey = `${ip.src}|${u.srcPort}|${ip.dst}|${u.dstPort}`;
    const peer = this.udpForwardPeers.get(fwdKey);
    if (peer) {
      peer.timer.refresh();
      this.stats.count("udpForwardReplies");
      peer.server.send(Buffer.from(u.payload), peer.port, peer.address);
      return;
    }
    const hostDst = this.hostDestination(ip.dst);
    if (hostDst === null) {
      this.stats.drop(DropReason.NO_ROUTE);
      return;
    }
    const key = fwdKey;
    let flow = this.udpFlows.get(key);
    if (!flow) {
      if (!this.policy.permits("udp", hostDst, u.dstPort)) {
        this.stats.drop(DropReason.POLICY_DENIED);
        return;
      }
      if (!this.flowStarted(ip.src)) {
        this.stats.drop(DropReason.LIMIT_FLOWS);
        return;
      }
      flow = new UdpFlow(
        this.udpHost,
        key,
        ip.src,
        u.srcPort,
        ip.dst,
        u.dstPort,
        hostDst,
        this.config.timeouts.udpIdleMs,
      );
      this.udpFlows.set(key, flow);
    }
    flow.send(u.payload);
  }

  /** Where a guest destination goes on the host, or null when it has no route. */
  private hostDestination(dst: Ipv4): Ipv4 | null {
    if (dst === this.gatewayIp) return this.config.gatewayToLoopback ? LOOPBACK : null;
    if (inSubnet(dst, this.net, this.prefix)) return null;
    const top = dst >>> 24;
    // 0/8, loopback, link-local, multicast and reserved are never NAT'ed.
    if (top === 0 || top === 127 || top >= 224 || dst >>> 16 === 0xa9fe) return null;
    return dst;
  }

  private flowStarted(guest: Ipv4): boolean {
    const n = this.flowsPerGuest.get(guest) ?? 0;
    if (n >= this.config.limits.maxFlowsPerGuest || this.totalFlows >= this.config.limits.maxFlows) return false;
    this.flowsPerGuest.set(guest, n + 1);
    this.totalFlows++;
    return true;
  }

  private flowEnded(guest: Ipv4): void {
    this.totalFlows--;
    const n = (this.flowsPerGuest.get(guest) ?? 1) - 1;
    if (n > 0) {
      this.flowsPerGuest.set(guest, n);
      return;
    }
    this.flowsPerGuest.delete(guest);
    const b = this.budgets.get(guest);
    if (b && b.used <= 0) this.budgets.delete(guest);
  }

  private budget(guest: Ipv4): BufferBudget {
    let b = this.budgets.get(guest);
    if (!b) {
      b = new BufferBudget(this.config.limits.maxBufferedBytesPerGuest);
      this.budgets.set(guest, b);
    }
    return b;
  }

  private sendUdp(src: Ipv4, srcPort: number, dst: Ipv4, dstPort: number, payload: Uint8Array): void {
    if (payload.length > 65507) {
      this.stats.count("udpTooLargeForGuest");
      return;
    }
    this.sendIpv4(src, dst, IPPROTO_UDP, buildUdp(src, dst, srcPort, dstPort, payload));
  }

  /** ICMP destination unreachable, port unreachable (RFC 792), quoting the guest's IP and UDP headers. */
  private portUnreachable(flow: UdpFlow): void {
    const quoted = new Uint8Array(IPV4_HEADER_LEN + 8);
    writeIpv4Header(quoted, 0, { src: flow.guestIp, dst: flow.remoteIp, protocol: IPPROTO_UDP }, 8);
    quoted.set(
      [flow.guestPort >> 8, flow.guestPort & 255, flow.remotePort >> 8, flow.remotePort & 255, 0, 8, 0, 0],
      20,
    );
    this.stats.count("icmpUnreachableToGuest");
    const msg = buildIcmp({ type: ICMP_DEST_UNREACHABLE, code: 3, rest: 0, data: quoted });
    this.sendIpv4(flow.remoteIp, flow.guestIp, IPPROTO_ICMP, msg);
  }

  // ---- DHCP -------------------------------------------------------------

  private inputDhcp(p: Uint8Array, srcMac: Uint8Array): void {
    const m = parseDhcp(p);
    if (typeof m === "string") {
      this.stats.drop(m);
      return;
    }
    const d = this.dhcp.handle(m, Date.now());
    if (d.kind === "none") {
      this.stats.drop(DropReason.DHCP_IGNORED);
      return;
    }
    const mask = prefixMask(this.prefix);
    const lease = this.config.leaseTimeSeconds;
    const common: [number, Uint8Array][] = [
      [DhcpOption.SUBNET_MASK, ipBytes(mask)],
      [DhcpOption.ROUTER, ipBytes(this.gatewayIp)],
      [DhcpOption.DNS, ipBytes(this.dnsIp)],
      [DhcpOption.BROADCAST, ipBytes(this.directedBroadcast)],
    ];
    let type: number;
    let yiaddr = 0;
    let options: [number, Uint8Array][] = [];
    if (d.kind === "nak") type = DhcpType.NAK;
    else if (d.kind === "inform") {
      type = DhcpType.ACK;
      options = common;
    } else {
      type = d.kind === "offer" ? DhcpType.OFFER : DhcpType.ACK;
      yiaddr = d.ip;
      options = [
        ...common,
        [DhcpOption.LEASE_TIME, u32Bytes(lease)],
        [DhcpOption.RENEWAL_TIME, u32Bytes(Math.floor(lease / 2))],
        [DhcpOption.REBINDING_TIME, u32Bytes(Math.floor((lease * 7) / 8))],
      ];
      if (d.kind === "ack") this.learn(d.ip, m.chaddr);
    }
    this.stats.count(`dhcp${["", "", "Offer", "", "", "Ack", "Nak"][type]}`);
    const reply = buildDhcpReply({
      xid: m.xid,
      flags: m.flags,
      chaddr: m.chaddr,
      ciaddr: d.kind === "inform" ? m.ciaddr : 0,
      yiaddr,
      serverIp: this.gatewayIp,
      messageType: type,
      options,
    });
    // RFC 2131 §4.1: unicast to ciaddr when set; broadcast for NAKs or when the client asks; else to yiaddr.
    let dstIp: Ipv4;
    let dstMac: Uint8Array;
    if (m.ciaddr !== 0 && d.kind !== "nak") {
      dstIp = m.ciaddr;
      dstMac = srcMac;
    } else if (d.kind === "nak" || m.flags & 0x8000) {
      dstIp = LIMITED_BROADCAST;
      dstMac = BROADCAST_MAC;
    } else {
      dstIp = yiaddr;
      dstMac = m.chaddr;
    }
    const udp = buildUdp(this.gatewayIp, dstIp, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, reply);
    this.emitIpv4(dstMac, this.gatewayMac, this.gatewayIp, dstIp, IPPROTO_UDP, udp);
  }

  // ---- TCP --------------------------------------------------------------

  private inputTcp(ip: Ipv4Packet): void {
    if (ip.dst === LIMITED_BROADCAST || ip.dst === this.directedBroadcast || ip.dst >>> 28 === 14) {
      this.stats.drop(DropReason.NO_ROUTE); // TCP is unicast only; never answer a broadcast with a RST
      return;
    }
    const seg = parseTcp(ip.payload, ip.src, ip.dst);
    if (typeof seg === "string") {
      this.stats.drop(seg);
      return;
    }
    const key = `${ip.src}|${seg.srcPort}|${ip.dst}|${seg.dstPort}`;
    const flow = this.tcpFlows.get(key);
    if (flow && flow.state === "TIME_WAIT" && (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
      flow.endTimeWait(); // RFC 6191: a new SYN may reopen a 4-tuple in TIME-WAIT
    } else if (flow) {
      flow.input(seg);
      return;
    }
    if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) {
      this.stats.drop(DropReason.TCP_NO_FLOW);
      this.resetFor(ip, seg);
      return;
    }
    // DNS over TCP (RFC 7766) to the DNS address goes to the upstream resolver, like UDP queries.
    const dnsTcp = ip.dst === this.dnsIp && seg.dstPort === 53 ? this.dnsUpstream : null;
    const hostDst = dnsTcp ? parseIpv4Text(dnsTcp.host) : this.hostDestination(ip.dst);
    if (hostDst === null) {
      this.stats.drop(DropReason.NO_ROUTE);
      this.resetFor(ip, seg);
      return;
    }
    if (!dnsTcp && !this.policy.permits("tcp", hostDst, seg.dstPort)) {
      this.stats.drop(DropReason.POLICY_DENIED);
      this.resetFor(ip, seg);
      return;
    }
    if (!this.flowStarted(ip.src)) {
      this.stats.drop(DropReason.LIMIT_FLOWS);
      this.resetFor(ip, seg);
      return;
    }
    const host = ipToString(hostDst);
    const port = dnsTcp ? dnsTcp.port : seg.dstPort;
    const f = TcpFlow.fromGuestSyn(this.tcpHost, key, ip.src, ip.dst, seg, this.budget(ip.src), () =>
      connect({ host, port, allowHalfOpen: true, noDelay: true }),
    );
    this.tcpFlows.set(key, f);
    this.stats.count("tcpFlowsOpened");
  }

  /** RFC 9293 §3.10.7.1: answer a segment for no connection with a RST. */
  private resetFor(ip: Ipv4Packet, seg: TcpSegment): void {
    if (seg.flags & TCP_RST) return;
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & 1 ? 1 : 0);
    const spec: TcpSegmentSpec =
      seg.flags & TCP_ACK
        ? { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: TCP_RST, window: 0 }
        : {
            srcPort: seg.dstPort,
            dstPort: seg.srcPort,
            seq: 0,
            ack: (seg.seq + len) >>> 0,
            flags: TCP_RST | TCP_ACK,
            window: 0,
          };
    this.sendIpv4(ip.dst, ip.src, IPPROTO_TCP, buildTcp(ip.dst, ip.src, spec));
  }

  private sendTcp(flow: TcpFlow, seg: TcpSegmentSpec): void {
    const s = { ...seg, srcPort: flow.remotePort, dstPort: flow.guestPort };
    this.sendIpv4(flow.remoteIp, flow.guestIp, IPPROTO_TCP, buildTcp(flow.remoteIp, flow.guestIp, s));
  }

  // ---- host port forwarding ----------------------------------------------

  private async openForward(f: UserNetConfig["hostForwards"][number]): Promise<void> {
    const guestIp = f.guestAddress ? parseIpv4Text(f.guestAddress)! : parseIpv4Text(this.config.dhcpStart)!;
    if (!this.isGuestAddress(guestIp)) {
      throw new NetError(NetErrorCode.CONFIG_INVALID, { guestAddress: ipToString(guestIp) }, "not a guest address");
    }
    const fail = (e: Error) =>
      new NetError(NetErrorCode.HOST_RESOURCE, { host: f.hostAddress, port: f.hostPort }, e.message);
    if (f.protocol === "tcp") {
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) =>
        this.acceptTcp(s, guestIp, f.guestPort),
      );
      await new Promise<void>((resolve, reject) => {
        server.once("error", (e) => reject(fail(e)));
        server.listen(f.hostPort, f.hostAddress, () => resolve());
      });
      server.on("error", () => this.stats.count("hostForwardErrors"));
      this.servers.push(server);
      const a = server.address();
      const port = typeof a === "object" && a ? a.port : f.hostPort;
      this.forwards.push({
        protocol: "tcp",
        hostAddress: f.hostAddress,
        hostPort: port,
        guestAddress: ipToString(guestIp),
        guestPort: f.guestPort,
      });
    } else {
      const sock = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        sock.once("error", (e) => reject(fail(e)));
        sock.bind(f.hostPort, f.hostAddress, () => resolve());
      });
      sock.on("error", () => this.stats.count("hostForwardErrors"));
      sock.on("message", (msg, rinfo) => this.acceptUdp(sock, msg, rinfo.address, rinfo.port, guestIp, f.guestPort));
      this.servers.push(sock);
      this.forwards.push({
        protocol: "udp",
        hostAddress: f.hostAddress,
        hostPort: sock.address().port,
        guestAddress: ipToString(guestIp),
        guestPort: f.guestPort,
      });
    }
  }

  private allocLocalPort(inUse: (port: number) => boolean): number | null {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextLocalPort;
      this.nextLocalPort = p >= 65535 ? 49152 : p + 1;
      if (!inUse(p)) return p;
    }
    return null;
  }

  private acceptTcp(s: Socket, guestIp: Ipv4, guestPort: number): void {
    if (this.closed || !this.flowStarted(guestIp)) {
      this.stats.drop(DropReason.LIMIT_FLOWS);
      s.destroy();
      return;
    }
    const gw = this.gatewayIp;
    const port = this.allocLocalPort((p) => this.tcpFlows.has(`${guestIp}|${guestPort}|${gw}|${p}`));
    if (port === null) {
      this.flowEnded(guestIp);
      s.destroy();
      return;
    }
    const key = `${guestIp}|${guestPort}|${gw}|${port}`;
    s.setNoDelay(true);
    const f = TcpFlow.toGuest(this.tcpHost, key, guestIp, guestPort, gw, port, this.budget(guestIp), s);
    this.tcpFlows.set(key, f);
    this.stats.count("tcpForwardsAccepted");
  }

  private acceptUdp(
    server: DgramSocket,
    msg: Buffer,
    address: string,
    port: number,
    guestIp: Ipv4,
    guestPort: number,
  ): void {
    if (this.closed) return;
    let peer: UdpForwardPeer | undefined;
    for (const p of this.udpForwardPeers.values()) {
      if (p.server === server && p.address === address && p.port === port) {
        peer = p;
        break;
      }
    }
    const gw = this.gatewayIp;
    if (!peer) {
      if (!this.flowStarted(guestIp)) {
        this.stats.drop(DropReason.LIMIT_FLOWS);
        return;
      }
      const local = this.allocLocalPort((p) => this.udpForwardPeers.has(`${guestIp}|${guestPort}|${gw}|${p}`));
      if (local === null) {
        this.flowEnded(guestIp);
        return;
      }
      const key = `${guestIp}|${guestPort}|${gw}|${local}`;
      const timer = setTimeout(() => {
        this.udpForwardPeers.delete(key);
        this.flowEnded(guestIp);
      }, this.config.timeouts.udpIdleMs);
      peer = { server, address, port, guestIp, guestPort, localPort: local, timer };
      this.udpForwardPeers.set(key, peer);
    }
    peer.timer.refresh();
    this.stats.count("udpForwarded");
    this.sendUdp(gw, peer.localPort, guestIp, guestPort, new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
  }

  // ---- output -----------------------------------------------------------

  /** Sends an IPv4 packet to a guest address, resolving its MAC (ARP request when unknown). */
  private sendIpv4(src: Ipv4, dst: Ipv4, protocol: number, l4: Uint8Array): void {
    const mac = this.neighbours.get(dst);
    const srcMac = src === this.dnsIp ? this.dnsMac : this.gatewayMac;
    if (!mac) {
      this.stats.count("noNeighbour");
      if (this.isGuestAddress(dst)) {
        const req = buildArp({
          op: ARP_REQUEST,
          senderMac: this.gatewayMac,
          senderIp: this.gatewayIp,
          targetMac: new Uint8Array(6),
          targetIp: dst,
        });
        this.emitEthernet(BROADCAST_MAC, this.gatewayMac, ETHERTYPE_ARP, req);
      }
      return;
    }
    this.emitIpv4(mac, srcMac, src, dst, protocol, l4);
  }

  /** Emits one IPv4 datagram, fragmenting it to the MTU (RFC 791 §3.2) when needed. */
  private emitIpv4(
    dstMac: Uint8Array,
    srcMac: Uint8Array,
    src: Ipv4,
    dst: Ipv4,
    protocol: number,
    l4: Uint8Array,
  ): void {
    const id = this.ipId;
    this.ipId = (this.ipId + 1) & 0xffff;
    const maxPayload = this.config.mtu - IPV4_HEADER_LEN;
    if (l4.length <= maxPayload) {
      const out = new Uint8Array(ETH_HEADER_LEN + IPV4_HEADER_LEN + l4.length);
      writeEthernetHeader(out, dstMac, srcMac, ETHERTYPE_IPV4);
      writeIpv4Header(
        out,
        ETH_HEADER_LEN,
        { src, dst, protocol, id, dontFragment: protocol === IPPROTO_TCP },
        l4.length,
      );
      out.set(l4, ETH_HEADER_LEN + IPV4_HEADER_LEN);
      this.emit(out);
      return;
    }
    const chunk = maxPayload & ~7;
    for (let off = 0; off < l4.length; off += chunk) {
      const part = l4.subarray(off, Math.min(off + chunk, l4.length));
      const out = new Uint8Array(ETH_HEADER_LEN + IPV4_HEADER_LEN + part.length);
      writeEthernetHeader(out, dstMac, srcMac, ETHERTYPE_IPV4);
      const o = ETH_HEADER_LEN;
      writeIpv4Header(out, o, { src, dst, protocol, id }, part.length);
      const more = off + chunk < l4.length;
      const ff = (more ? 0x2000 : 0) | (off >>> 3);
      out[o + 6] = ff >>> 8;
      out[o + 7] = ff & 255;
      fixIpChecksum(out, o);
      out.set(part, o + IPV4_HEADER_LEN);
      this.emit(out);
    }
    this.stats.count("ipFragmentedToGuest");
  }

  private emitEthernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): void {
    const out = new Uint8Array(ETH_HEADER_LEN + payload.length);
    writeEthernetHeader(out, dst, src, type);
    out.set(payload, ETH_HEADER_LEN);
    this.emit(out);
  }

  private emit(frame: Uint8Array): void {
    const r = this.receiver;
    if (!r || this.closed) {
      this.stats.count("outWhileDetached");
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    this.emitDepth++;
    try {
      r(frame);
    } finally {
      this.emitDepth--;
    }
  }

  /** For diagnostics: the MAC learned for a guest address. */
  neighbour(ip: string): string | undefined {
    const a = parseIpv4Text(ip);
    const m = a === null ? undefined : this.neighbours.get(a);
    return m ? macToString(m) : undefined;
  }
}

function fixIpChecksum(b: Uint8Array, off: number): void {
  b[off + 10] = 0;
  b[off + 11] = 0;
  let sum = 0;
  for (let i = 0; i < IPV4_HEADER_LEN; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  b[off + 10] = c >>> 8;
  b[off + 11] = c & 255;
}
