import { createSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { NetError } from "./errors.js";
import { DNS, decode, GUEST, GW, GW_MAC, ip, isTcp, type Received, SimGuest } from "./testing-internal/sim-guest.js";
import { UserNet } from "./user-net.js";
import { macToString } from "./wire/addr.js";
import { DhcpType, parseDhcp } from "./wire/dhcp.js";
import { buildEthernet, ETHERTYPE_IPV4 } from "./wire/ethernet.js";
import { buildIpv4, IPPROTO_UDP } from "./wire/ipv4.js";
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "./wire/tcp.js";
import { buildUdp } from "./wire/udp.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function stack(config: Parameters<typeof UserNet.create>[0] = {}): Promise<[UserNet, SimGuest]> {
  const n = await UserNet.create(config);
  cleanups.push(() => n.close());
  return [n, new SimGuest(n)];
}

function dhcpMessage(mac: Uint8Array, type: number, opts: number[] = []): Uint8Array {
  const d = new Uint8Array(300);
  d[0] = 1;
  d[1] = 1;
  d[2] = 6;
  d.set([1, 2, 3, 4], 4);
  d.set(mac, 28);
  d.set([0x63, 0x82, 0x53, 0x63], 236);
  d.set([53, 1, type, ...opts, 255], 240);
  return d;
}

function sendDhcp(g: SimGuest, type: number, opts: number[] = []): void {
  const udp = buildUdp(0, 0xffffffff, 68, 67, dhcpMessage(g.mac, type, opts));
  const pkt = buildIpv4({ src: 0, dst: 0xffffffff, protocol: IPPROTO_UDP }, udp);
  g.net.send(buildEthernet(new Uint8Array(6).fill(0xff), g.mac, ETHERTYPE_IPV4, pkt));
}

const udpFrom = (port: number) => (r: Received) => r.kind === "ip" && r.udp?.srcPort === port;

describe("UserNet: link and network layer", () => {
  it("answers ARP for the gateway and DNS addresses with slirp's MACs, and nothing else", async () => {
    const [n, g] = await stack();
    g.arp(GW);
    g.arp(DNS);
    g.arp(ip("10.0.2.99"));
    const replies = g.inbox.filter((r) => r.kind === "arp");
    expect(replies.map((r) => r.kind === "arp" && macToString(r.arp.senderMac))).toEqual([
      "52:55:0a:00:02:02",
      "52:55:0a:00:02:03",
    ]);
    expect(n.neighbour("10.0.2.15")).toBe("02:00:00:00:00:15");
    expect(n.stats.drops.ARP_NOT_FOR_US).toBe(1);
  });

  it("answers ICMP echo for gateway and DNS with the same id, sequence and data", async () => {
    const [n, g] = await stack();
    const data = Uint8Array.of(1, 2, 3, 4, 5);
    g.ping(GW, 0x1234, 7, data);
    g.ping(DNS, 0x1234, 8, data);
    g.ping(ip("8.8.8.8"), 0x1234, 9, data);
    const echo = g.inbox.filter((r) => r.kind === "ip" && r.icmp?.type === 0);
    expect(echo).toHaveLength(2);
    const first = echo[0] as Extract<Received, { kind: "ip" }>;
    expect(first.icmp!.rest).toBe(0x12340007);
    expect([...first.icmp!.data]).toEqual([...data]);
    expect(first.ip.src).toBe(GW);
    expect(n.stats.drops.ICMP_UNHANDLED).toBe(1);
  });

  it("drops spoofed sources, frames for other MACs, TTL 0 and unknown protocols, each counted", async () => {
    const [n, g] = await stack({ restrict: true });
    g.udp(GW, 1, 2, new Uint8Array(1), ip("192.168.0.1"));
    g.sendIp(GW, IPPROTO_UDP, new Uint8Array(8), { dstMac: Uint8Array.of(2, 9, 9, 9, 9, 9) });
    g.net.send(
      buildEthernet(
        GW_MAC,
        g.mac,
        ETHERTYPE_IPV4,
        buildIpv4({ src: GUEST, dst: GW, protocol: 1, ttl: 0 }, new Uint8Array(8)),
      ),
    );
    g.sendIp(GW, 99, new Uint8Array(4));
    expect(n.stats.drops).toMatchObject({
      IP_BAD_SOURCE: 1,
      ETH_NOT_FOR_US: 1,
      IP_TTL_EXPIRED: 1,
      IP_UNKNOWN_PROTOCOL: 1,
    });
    expect(g.inbox).toHaveLength(0);
  });

  it("reassembles fragmented ICMP from the guest and fragments large UDP toward it", async () => {
    const [n, g] = await stack();
    const icmpPayload = new Uint8Array(3000).map((_, i) => i);
    const { buildIcmp } = await import("./wire/icmp.js");
    const l4 = buildIcmp({ type: 8, code: 0, rest: 1, data: icmpPayload });
    for (let off = 0; off < l4.length; off += 1480) {
      const part = l4.subarray(off, off + 1480);
      const pkt = buildIpv4({ src: GUEST, dst: GW, protocol: 1, id: 77 }, part);
      const more = off + 1480 < l4.length;
      const ff = (more ? 0x2000 : 0) | (off >> 3);
      pkt[6] = ff >> 8;
      pkt[7] = ff & 255;
      pkt[10] = pkt[11] = 0;
      const { checksum } = await import("./wire/checksum.js");
      const c = checksum(pkt, 0, 20);
      pkt[10] = c >> 8;
      pkt[11] = c & 255;
      g.net.send(buildEthernet(GW_MAC, g.mac, ETHERTYPE_IPV4, pkt));
    }
    expect(n.stats.counters.ipReassembled).toBe(1);
    // The 3008-byte echo reply goes back in three fragments.
    const frags = g.inbox.filter((r) => r.kind === "ip" && r.ip.protocol === 1);
    expect(frags).toHaveLength(3);
    expect(n.stats.counters.ipFragmentedToGuest).toBe(1);
  });
});

describe("UserNet: DHCP", () => {
  it("offers and acknowledges 10.0.2.15 with router, DNS, netmask and lease time", async () => {
    const [n, g] = await stack({ leaseTimeSeconds: 3600 });
    sendDhcp(g, DhcpType.DISCOVER);
    const offer = (await g.wait(udpFrom(67))) as Extract<Received, { kind: "ip" }>;
    const o = parseDhcp(offer.udp!.payload);
    if (typeof o === "string") throw new Error(o);
    expect(o).toMatchObject({ op: 2, messageType: DhcpType.OFFER, yiaddr: GUEST, serverId: GW, xid: 0x01020304 });
    const opts = offer.udp!.payload.subarray(240);
    const find = (code: number) => {
      for (let i = 0; i < opts.length && opts[i] !== 255; i += 2 + opts[i + 1]!)
        if (opts[i] === code) return [...opts.subarray(i + 2, i + 2 + opts[i + 1]!)];
      return undefined;
    };
    expect(find(1)).toEqual([255, 255, 255, 0]);
    expect(find(3)).toEqual([10, 0, 2, 2]);
    expect(find(6)).toEqual([10, 0, 2, 3]);
    expect(find(51)).toEqual([0, 0, 0x0e, 0x10]);
    sendDhcp(g, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2]);
    const ack = (await g.wait(udpFrom(67))) as Extract<Received, { kind: "ip" }>;
    expect(parseDhcp(ack.udp!.payload)).toMatchObject({ messageType: DhcpType.ACK, yiaddr: GUEST });
    expect(n.leases).toEqual([{ mac: "02:00:00:00:00:15", ip: "10.0.2.15" }]);
  });

  it("gives a second client the next address, NAKs a request for a taken one, frees on RELEASE", async () => {
    const [n, g] = await stack();
    sendDhcp(g, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15]);
    await g.wait(udpFrom(67));
    const g2 = new SimGuest(n, Uint8Array.of(2, 0, 0, 0, 0, 0x16));
    sendDhcp(g2, DhcpType.DISCOVER);
    const offer = (await g2.wait(udpFrom(67))) as Extract<Received, { kind: "ip" }>;
    expect(parseDhcp(offer.udp!.payload)).toMatchObject({ yiaddr: ip("10.0.2.16") });
    sendDhcp(g2, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15]);
    const nak = (await g2.wait(udpFrom(67))) as Extract<Received, { kind: "ip" }>;
    expect(parseDhcp(nak.udp!.payload)).toMatchObject({ messageType: DhcpType.NAK });
    expect(nak.ip.dst).toBe(0xffffffff);
    sendDhcp(g, DhcpType.RELEASE);
    expect(n.leases).toEqual([]);
  });

  it("saves leases as versioned state and restores them into a new stack", async () => {
    const [n, g] = await stack();
    sendDhcp(g, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15]);
    await g.wait(udpFrom(67));
    const saved = JSON.parse(JSON.stringify(n.state()));
    expect(saved).toMatchObject({ version: 1, leases: [{ mac: "02:00:00:00:00:15", ip: "10.0.2.15" }] });
    const n2 = await UserNet.create({}, saved);
    cleanups.push(() => n2.close());
    // Another client asking for .15 is refused: the restored lease holds it.
    const other = new SimGuest(n2, Uint8Array.of(2, 0, 0, 0, 0, 0x99));
    sendDhcp(other, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15]);
    const nak = (await other.wait(udpFrom(67))) as Extract<Received, { kind: "ip" }>;
    expect(parseDhcp(nak.udp!.payload)).toMatchObject({ messageType: DhcpType.NAK });
    await expect(UserNet.create({}, { version: 2, leases: [] })).rejects.toMatchObject({ code: "STATE_INVALID" });
    await expect(
      UserNet.create({}, { version: 1, leases: [{ mac: "02:00:00:00:00:01", ip: "10.0.2.200", expiresAt: 0 }] }),
    ).rejects.toMatchObject({ code: "STATE_INVALID" });
  });

  it("stops offering when the pool is exhausted", async () => {
    const [n] = await stack({ dhcpCount: 1 });
    const a = new SimGuest(n, Uint8Array.of(2, 0, 0, 0, 0, 1));
    sendDhcp(a, DhcpType.REQUEST, [50, 4, 10, 0, 2, 15]);
    await a.wait(udpFrom(67));
    const b = new SimGuest(n, Uint8Array.of(2, 0, 0, 0, 0, 2));
    sendDhcp(b, DhcpType.DISCOVER);
    expect(b.inbox).toHaveLength(0);
    expect(n.stats.drops.DHCP_IGNORED).toBe(1);
  });
});

describe("UserNet: UDP and DNS", () => {
  it("forwards DNS to the configured upstream with a fresh id and restores the guest's id", async () => {
    const up = createSocket("udp4");
    const seen: number[] = [];
    up.on("message", (m, r) => {
      seen.push(m.readUInt16BE(0));
      const a = Buffer.from(m);
      a[2] |= 0x80;
      up.send(a, r.port, r.address);
    });
    await new Promise<void>((r) => up.bind(0, "127.0.0.1", () => r()));
    cleanups.push(() => up.close());
    const [n, g] = await stack({ dnsUpstream: { host: "127.0.0.1", port: up.address().port } });
    const q = new Uint8Array(17);
    q.set([0xab, 0xcd, 1, 0, 0, 1], 0);
    g.udp(DNS, 5353, 53, q);
    const a = (await g.wait(udpFrom(53))) as Extract<Received, { kind: "ip" }>;
    expect(a.ip.src).toBe(DNS);
    expect(a.udp!.dstPort).toBe(5353);
    expect([...a.udp!.payload.subarray(0, 3)]).toEqual([0xab, 0xcd, 0x81]);
    expect(n.stats.counters.dnsAnswers).toBe(1);
    g.udp(DNS, 5353, 53, new Uint8Array(5)); // too short for a DNS header
    expect(n.stats.drops.DNS_MALFORMED).toBe(1);
  });

  it("carries DNS over TCP to the DNS address to the upstream's TCP port", async () => {
    let got = "";
    const up: Server = createServer((s) => {
      s.on("data", (d) => {
        got += d;
        s.end("answer");
      });
    });
    await new Promise<void>((r) => up.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => up.close());
    const upPort = (up.address() as { port: number }).port;
    const [, g] = await stack({ dnsUpstream: { host: "127.0.0.1", port: upPort } });
    g.tcp(DNS, { srcPort: 40500, dstPort: 53, seq: 0, ack: 0, flags: TCP_SYN, window: 8000 });
    const synAck = (await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>;
    expect(synAck.ip.src).toBe(DNS);
    const iss = synAck.tcp!.seq;
    g.tcp(DNS, {
      srcPort: 40500,
      dstPort: 53,
      seq: 1,
      ack: (iss + 1) >>> 0,
      flags: TCP_ACK,
      window: 8000,
      payload: new TextEncoder().encode("query"),
    });
    const d = (await g.wait((r) => isTcp(r) && r.tcp!.payload.length > 0)) as Extract<Received, { kind: "ip" }>;
    expect(new TextDecoder().decode(d.tcp!.payload)).toBe("answer");
    expect(got).toBe("query");
  });

  it("NATs UDP to 10.0.2.2 as host 127.0.0.1 and closes idle flows", async () => {
    const echo = createSocket("udp4");
    echo.on("message", (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, "127.0.0.1", () => r()));
    cleanups.push(() => echo.close());
    const [n, g] = await stack({ timeouts: { udpIdleMs: 150 } });
    g.udp(GW, 4000, echo.address().port, Uint8Array.of(42));
    const r = (await g.wait(udpFrom(echo.address().port))) as Extract<Received, { kind: "ip" }>;
    expect(r.ip.src).toBe(GW);
    expect([...r.udp!.payload]).toEqual([42]);
    expect(n.flowCount.udp).toBe(1);
    await new Promise((res) => setTimeout(res, 300));
    expect(n.flowCount.udp).toBe(0);
  });

  it("turns the host's port unreachable into ICMP port unreachable for the guest", async () => {
    const probe = createSocket("udp4");
    await new Promise<void>((r) => probe.bind(0, "127.0.0.1", () => r()));
    const closedPort = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const [n, g] = await stack();
    g.udp(GW, 4444, closedPort, Uint8Array.of(1));
    const r = (await g.wait((x) => x.kind === "ip" && x.icmp?.type === 3)) as Extract<Received, { kind: "ip" }>;
    expect(r.icmp!.code).toBe(3);
    expect(r.ip.src).toBe(GW);
    const q = r.icmp!.data;
    expect([q[9], (q[20]! << 8) | q[21]!, (q[22]! << 8) | q[23]!]).toEqual([17, 4444, closedPort]);
    expect(n.flowCount.udp).toBe(0);
  });

  it("enforces restrict mode, deny and allow rules, and the per-guest flow limit", async () => {
    const [n, g] = await stack({ restrict: true });
    g.udp(GW, 4000, 9, Uint8Array.of(1));
    g.tcp(GW, { srcPort: 4000, dstPort: 9, seq: 1, ack: 0, flags: TCP_SYN, window: 1000 });
    const rst = g.take(isTcp);
    expect(rst?.tcp?.flags).toBe(TCP_RST | TCP_ACK);
    expect(rst?.tcp?.ack).toBe(2);
    expect(n.stats.drops.POLICY_DENIED).toBe(2);

    const [n2, g2] = await stack({ deny: [{ cidr: "127.0.0.0/8", ports: [1, 100] }] });
    g2.udp(GW, 4000, 9, Uint8Array.of(1));
    g2.udp(ip("10.0.2.77"), 4000, 9, Uint8Array.of(1));
    expect(n2.stats.drops).toMatchObject({ POLICY_DENIED: 1, NO_ROUTE: 1 });

    const [n3, g3] = await stack({
      allow: [{ cidr: "127.0.0.1/32", protocol: "udp" }],
      limits: { maxFlowsPerGuest: 2 },
    });
    g3.tcp(GW, { srcPort: 4000, dstPort: 9, seq: 1, ack: 0, flags: TCP_SYN, window: 1000 });
    for (const p of [5000, 5001, 5002]) g3.udp(GW, p, 9, Uint8Array.of(1));
    expect(n3.stats.drops).toMatchObject({ POLICY_DENIED: 1, LIMIT_FLOWS: 1 });
    expect(n3.flowCount.udp).toBe(2);
  });

  it("caps flows across all source addresses a guest may claim", async () => {
    const [n, g] = await stack({ limits: { maxFlows: 3 } });
    for (let i = 0; i < 5; i++) g.udp(GW, 6000, 9, Uint8Array.of(1), ip(`10.0.2.${100 + i}`));
    expect(n.flowCount.udp).toBe(3);
    expect(n.stats.drops.LIMIT_FLOWS).toBe(2);
  });

  it("never lets the guest make the host listen: no host socket listens after arbitrary guest traffic", async () => {
    const [n, g] = await stack();
    // A guest "listening" is invisible to the host; SYNs to the guest's own subnet have no route.
    g.tcp(ip("10.0.2.50"), { srcPort: 80, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1000 });
    g.udp(ip("10.0.2.50"), 68, 67, new Uint8Array(10));
    expect(n.hostForwards).toEqual([]);
    expect(n.stats.drops.NO_ROUTE).toBe(2);
  });
});

describe("UserNet: configuration", () => {
  it("rejects invalid configuration with a typed error", async () => {
    await expect(UserNet.create({ gateway: "192.168.0.1" })).rejects.toBeInstanceOf(NetError);
    await expect(UserNet.create({ mtu: 100 } as never)).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    await expect(
      UserNet.create({ hostForwards: [{ protocol: "tcp", hostPort: 0, guestPort: 1, guestAddress: "10.0.2.2" }] }),
    ).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });

  it("reports a port forward it cannot bind as HOST_RESOURCE", async () => {
    const s: Server = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => s.close());
    const port = (s.address() as { port: number }).port;
    await expect(
      UserNet.create({ hostForwards: [{ protocol: "tcp", hostPort: port, guestPort: 80 }] }),
    ).rejects.toMatchObject({
      code: "HOST_RESOURCE",
    });
  });
});

describe("UserNet: TCP endpoint", () => {
  async function tcpServer(onConn: (s: Socket) => void): Promise<number> {
    const s = createServer({ allowHalfOpen: true }, onConn);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => s.close());
    return (s.address() as { port: number }).port;
  }

  it("handshakes with MSS, window scale and SACK, delivers data both ways and closes with FIN", async () => {
    let hostGot = "";
    let hostEnded = false;
    const port = await tcpServer((s) => {
      s.on("data", (d) => {
        hostGot += d;
      });
      s.on("end", () => {
        hostEnded = true;
        s.end("bye");
      });
    });
    const [n, g] = await stack();
    g.tcp(GW, {
      srcPort: 40000,
      dstPort: port,
      seq: 1000,
      ack: 0,
      flags: TCP_SYN,
      window: 65535,
      mss: 1000,
      windowScale: 2,
      sackPermitted: true,
    });
    const synAck = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!;
    expect(synAck.flags).toBe(TCP_SYN | TCP_ACK);
    expect(synAck).toMatchObject({ ack: 1001, mss: 1460, windowScale: 7, sackPermitted: true });
    const iss = synAck.seq;
    g.tcp(GW, { srcPort: 40000, dstPort: port, seq: 1001, ack: iss + 1, flags: TCP_ACK, window: 1000 });
    g.tcp(GW, {
      srcPort: 40000,
      dstPort: port,
      seq: 1001,
      ack: iss + 1,
      flags: TCP_ACK,
      window: 1000,
      payload: new TextEncoder().encode("hello"),
    });
    g.tcp(GW, { srcPort: 40000, dstPort: port, seq: 1006, ack: iss + 1, flags: TCP_ACK | TCP_FIN, window: 1000 });
    const fin = await g.wait((r) => isTcp(r) && (r.tcp!.flags & TCP_FIN) !== 0);
    expect(hostGot).toBe("hello");
    expect(hostEnded).toBe(true);
    const segs = [...g.tcpSegments(), (fin as Extract<Received, { kind: "ip" }>).tcp!];
    const data = segs
      .filter((s) => s.payload.length)
      .map((s) => new TextDecoder().decode(s.payload))
      .join("");
    expect(data).toBe("bye");
    const last = segs.at(-1)!;
    expect(last.ack).toBe(1007);
    g.tcp(GW, { srcPort: 40000, dstPort: port, seq: 1007, ack: last.seq + 1, flags: TCP_ACK, window: 1000 });
    await new Promise((r) => setTimeout(r, 20));
    expect(n.stats.counters.tcpClosed).toBe(1);
  });

  it("lets a new SYN reuse a 4-tuple still in TIME-WAIT", async () => {
    const port = await tcpServer((s) => s.end("x"));
    const [n, g] = await stack({ timeouts: { tcpTimeWaitMs: 60_000 } });
    const connectAndClose = async () => {
      g.tcp(GW, { srcPort: 40100, dstPort: port, seq: 0, ack: 0, flags: TCP_SYN, window: 8000 });
      const iss = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!.seq;
      g.tcp(GW, { srcPort: 40100, dstPort: port, seq: 1, ack: (iss + 1) >>> 0, flags: TCP_ACK, window: 8000 });
      const fin = (await g.wait((r) => isTcp(r) && (r.tcp!.flags & TCP_FIN) !== 0)) as Extract<
        Received,
        { kind: "ip" }
      >;
      g.tcp(GW, {
        srcPort: 40100,
        dstPort: port,
        seq: 1,
        ack: (fin.tcp!.seq + 1) >>> 0,
        flags: TCP_ACK | TCP_FIN,
        window: 8000,
      });
      await g.wait((r) => isTcp(r) && r.tcp!.ack === 2);
      g.inbox.length = 0;
    };
    await connectAndClose();
    expect(n.stats.counters.tcpClosed).toBe(1);
    await connectAndClose();
    expect(n.stats.counters.tcpClosed).toBe(2);
  });

  it("never has more unacknowledged bytes in flight than the guest's window, and probes a zero window", async () => {
    const big = Buffer.alloc(20_000, 7);
    const port = await tcpServer((s) => s.end(big));
    const [n, g] = await stack({ timeouts: { tcpRtoMinMs: 20 } });
    g.tcp(GW, { srcPort: 40001, dstPort: port, seq: 0, ack: 0, flags: TCP_SYN, window: 3000, mss: 500 });
    const synAck = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!;
    const iss = synAck.seq;
    g.tcp(GW, { srcPort: 40001, dstPort: port, seq: 1, ack: iss + 1, flags: TCP_ACK, window: 3000 });
    await new Promise((r) => setTimeout(r, 100));
    let segs = g.tcpSegments().filter((s) => s.payload.length);
    expect(segs.every((s) => s.payload.length <= 500)).toBe(true);
    expect(segs.reduce((a, s) => a + s.payload.length, 0)).toBe(3000);
    // Acknowledge all of it but close the window: the stack must only probe.
    g.tcp(GW, { srcPort: 40001, dstPort: port, seq: 1, ack: iss + 1 + 3000, flags: TCP_ACK, window: 0 });
    await new Promise((r) => setTimeout(r, 1500));
    segs = g.tcpSegments().filter((s) => s.payload.length);
    expect(segs.length).toBeGreaterThan(0);
    expect(segs.every((s) => s.payload.length === 1 && (s.seq - iss) >>> 0 === 3001)).toBe(true);
    // Reopen: the rest flows.
    g.tcp(GW, { srcPort: 40001, dstPort: port, seq: 1, ack: iss + 1 + 3000, flags: TCP_ACK, window: 60000 });
    await new Promise((r) => setTimeout(r, 100));
    const rest = g.tcpSegments().filter((s) => s.payload.length);
    expect(rest.length).toBeGreaterThan(0);
    expect(n.stats.counters.internalErrors ?? 0).toBe(0);
  });

  it("tolerates a guest that ACKs synchronously from inside the receiver (no stalls, no retransmits)", async () => {
    const total = 512 * 1024;
    const port = await tcpServer((s) => s.end(Buffer.alloc(total, 3)));
    const n = await UserNet.create();
    cleanups.push(() => n.close());
    const g = new SimGuest(n);
    let got = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => {
      done = r;
    });
    n.setReceiver((f) => {
      const r = decode(f);
      if (r.kind !== "ip" || !r.tcp) return;
      const t = r.tcp;
      if (t.flags & TCP_SYN) {
        g.tcp(GW, { srcPort: 5000, dstPort: port, seq: 1, ack: (t.seq + 1) >>> 0, flags: TCP_ACK, window: 65535 });
      } else if (t.payload.length) {
        got += t.payload.length;
        g.tcp(GW, {
          srcPort: 5000,
          dstPort: port,
          seq: 1,
          ack: (t.seq + t.payload.length) >>> 0,
          flags: TCP_ACK,
          window: 65535,
        });
        if (got === total) done();
      }
    });
    g.tcp(GW, {
      srcPort: 5000,
      dstPort: port,
      seq: 0,
      ack: 0,
      flags: TCP_SYN,
      window: 65535,
      windowScale: 7,
      mss: 1460,
    });
    await Promise.race([
      finished,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`stalled at ${got}`)), 5000)),
    ]);
    expect(n.stats.counters.tcpRetransmits ?? 0).toBe(0);
  });

  it("retransmits unacknowledged data after the RTO", async () => {
    const port = await tcpServer((s) => s.write("x".repeat(100)));
    const [n, g] = await stack({ timeouts: { tcpRtoMinMs: 20 } });
    g.tcp(GW, { srcPort: 40002, dstPort: port, seq: 0, ack: 0, flags: TCP_SYN, window: 8000 });
    const iss = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!.seq;
    g.tcp(GW, { srcPort: 40002, dstPort: port, seq: 1, ack: iss + 1, flags: TCP_ACK, window: 8000 });
    const first = (await g.wait((r) => isTcp(r) && r.tcp!.payload.length > 0)) as Extract<Received, { kind: "ip" }>;
    const again = (await g.wait((r) => isTcp(r) && r.tcp!.payload.length > 0, 3000)) as Extract<
      Received,
      { kind: "ip" }
    >;
    expect(again.tcp!.seq).toBe(first.tcp!.seq);
    expect(n.stats.counters.tcpRetransmits).toBeGreaterThanOrEqual(1);
  });

  it("resets the host socket when the guest sends RST, and RSTs the guest when the host resets", async () => {
    let hostErr = "";
    let hostSock: Socket | undefined;
    const port = await tcpServer((s) => {
      hostSock = s;
      s.on("error", (e: NodeJS.ErrnoException) => {
        hostErr = e.code ?? "";
      });
    });
    const [n, g] = await stack();
    const open = async (sport: number) => {
      g.tcp(GW, { srcPort: sport, dstPort: port, seq: 0, ack: 0, flags: TCP_SYN, window: 8000 });
      const iss = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!.seq;
      g.tcp(GW, { srcPort: sport, dstPort: port, seq: 1, ack: iss + 1, flags: TCP_ACK, window: 8000 });
      await new Promise((r) => setTimeout(r, 30));
      return iss;
    };
    await open(40003);
    g.tcp(GW, { srcPort: 40003, dstPort: port, seq: 1, ack: 0, flags: TCP_RST, window: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(hostErr).toBe("ECONNRESET");
    await open(40004);
    hostSock!.resetAndDestroy();
    const rst = await g.wait((r) => isTcp(r) && (r.tcp!.flags & TCP_RST) !== 0);
    expect((rst as Extract<Received, { kind: "ip" }>).tcp!.dstPort).toBe(40004);
    await new Promise((r) => setTimeout(r, 20));
    expect(n.flowCount.tcp).toBe(0);
  });

  it("answers segments of unknown connections with RST, and ignores out-of-window RSTs (RFC 5961)", async () => {
    const port = await tcpServer(() => {});
    const [n, g] = await stack();
    g.tcp(GW, { srcPort: 41000, dstPort: port, seq: 5, ack: 99, flags: TCP_ACK, window: 1 });
    const r = (await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>;
    expect(r.tcp).toMatchObject({ flags: TCP_RST, seq: 99 });
    g.tcp(GW, { srcPort: 41001, dstPort: port, seq: 0, ack: 0, flags: TCP_SYN, window: 8000 });
    const iss = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!.seq;
    g.tcp(GW, { srcPort: 41001, dstPort: port, seq: 1, ack: iss + 1, flags: TCP_ACK, window: 8000 });
    g.tcp(GW, { srcPort: 41001, dstPort: port, seq: 500, ack: 0, flags: TCP_RST, window: 0 });
    const challenge = (await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>;
    expect(challenge.tcp).toMatchObject({ flags: TCP_ACK, ack: 1, seq: (iss + 1) >>> 0 });
    expect(n.flowCount.tcp).toBe(1);
  });

  it("opens toward the guest for a host port forward and relays both ways", async () => {
    const [n, g] = await stack({ hostForwards: [{ protocol: "tcp", hostPort: 0, guestPort: 22 }] });
    g.arp(GW); // the stack learns the guest's MAC
    g.inbox.length = 0;
    const { connect } = await import("node:net");
    const c = connect(n.hostForwards[0]!.hostPort, "127.0.0.1");
    let got = "";
    c.on("data", (d) => {
      got += d;
    });
    const syn = (await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>;
    expect(syn.ip.src).toBe(GW);
    expect(syn.tcp).toMatchObject({ flags: TCP_SYN, dstPort: 22, windowScale: 7, mss: 1460 });
    const sp = syn.tcp!.srcPort;
    g.tcp(GW, {
      srcPort: 22,
      dstPort: sp,
      seq: 7000,
      ack: syn.tcp!.seq + 1,
      flags: TCP_SYN | TCP_ACK,
      window: 8000,
      mss: 1460,
    });
    await g.wait(isTcp); // our ACK
    g.tcp(GW, {
      srcPort: 22,
      dstPort: sp,
      seq: 7001,
      ack: syn.tcp!.seq + 1,
      flags: TCP_ACK,
      window: 8000,
      payload: new TextEncoder().encode("SSH-2.0"),
    });
    for (let i = 0; i < 100 && got !== "SSH-2.0"; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toBe("SSH-2.0");
    c.write("client");
    const d = (await g.wait((r) => isTcp(r) && r.tcp!.payload.length > 0)) as Extract<Received, { kind: "ip" }>;
    expect(new TextDecoder().decode(d.tcp!.payload)).toBe("client");
    c.destroy();
  });
});
