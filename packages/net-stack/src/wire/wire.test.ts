import { describe, expect, it } from "vitest";
import { DropReason } from "../stats.js";
import { ipToString, macToString, parseIpv4 as parseIpText, parseMac } from "./addr.js";
import { buildArp, parseArp } from "./arp.js";
import { checksum } from "./checksum.js";
import { buildDhcpReply, DhcpType, parseDhcp } from "./dhcp.js";
import { buildEthernet, parseEthernet } from "./ethernet.js";
import { buildIcmp, parseIcmp } from "./icmp.js";
import { buildIpv4, type Ipv4Packet, parseIpv4 } from "./ipv4.js";
import { Reassembler } from "./reassembly.js";
import { buildTcp, parseTcp, seqLt, TCP_ACK, TCP_SYN } from "./tcp.js";
import { buildUdp, parseUdp } from "./udp.js";

const A = parseIpText("10.0.2.15")!;
const B = parseIpText("10.0.2.2")!;

describe("addresses", () => {
  it("round-trips MACs and IPv4 addresses and rejects malformed text", () => {
    expect(macToString(parseMac("52:55:0A:00:02:02")!)).toBe("52:55:0a:00:02:02");
    expect(parseMac("52:55:0a:00:02")).toBeNull();
    expect(ipToString(parseIpText("192.168.1.255")!)).toBe("192.168.1.255");
    expect(parseIpText("256.1.1.1")).toBeNull();
    expect(parseIpText("1.2.3")).toBeNull();
  });
});

describe("checksum", () => {
  it("matches the RFC 1071 §3 example (sum 0xddf2)", () => {
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(checksum(b, 0, b.length)).toBe(~0xddf2 & 0xffff);
  });
  it("handles odd lengths by padding with a zero byte", () => {
    expect(checksum(Uint8Array.of(0x12), 0, 1)).toBe(~0x1200 & 0xffff);
  });
});

describe("Ethernet", () => {
  it("parses a frame and rejects short, VLAN and 802.3-length frames", () => {
    const f = buildEthernet(new Uint8Array(6).fill(0xff), Uint8Array.of(2, 0, 0, 0, 0, 1), 0x0800, Uint8Array.of(1, 2));
    const e = parseEthernet(f);
    if (typeof e === "string") throw new Error(e);
    expect(e.etherType).toBe(0x0800);
    expect([...e.payload]).toEqual([1, 2]);
    expect(parseEthernet(f.subarray(0, 13))).toBe(DropReason.ETH_TOO_SHORT);
    expect(parseEthernet(new Uint8Array(2000))).toBe(DropReason.ETH_TOO_LONG);
    const vlan = f.slice();
    vlan[12] = 0x81;
    vlan[13] = 0;
    expect(parseEthernet(vlan)).toBe(DropReason.ETH_VLAN);
    const llc = f.slice();
    llc[12] = 0;
    llc[13] = 46;
    expect(parseEthernet(llc)).toBe(DropReason.ETH_UNKNOWN_TYPE);
  });
});

describe("ARP", () => {
  it("round-trips and rejects non-Ethernet/IPv4 ARP", () => {
    const a = {
      op: 1,
      senderMac: Uint8Array.of(2, 0, 0, 0, 0, 1),
      senderIp: A,
      targetMac: new Uint8Array(6),
      targetIp: B,
    };
    const p = parseArp(buildArp(a));
    expect(p).toMatchObject({ op: 1, senderIp: A, targetIp: B });
    const bad = buildArp(a);
    bad[1] = 6; // htype IEEE 802
    expect(parseArp(bad)).toBe(DropReason.ARP_UNSUPPORTED);
    expect(parseArp(bad.subarray(0, 27))).toBe(DropReason.ARP_MALFORMED);
    const op = buildArp(a);
    op[7] = 9;
    expect(parseArp(op)).toBe(DropReason.ARP_UNSUPPORTED);
  });
});

describe("IPv4", () => {
  const pkt = buildIpv4({ src: A, dst: B, protocol: 17, id: 7, ttl: 9 }, Uint8Array.of(1, 2, 3));
  it("parses what it builds, ignoring link padding", () => {
    const padded = new Uint8Array(pkt.length + 10);
    padded.set(pkt);
    const p = parseIpv4(padded) as Ipv4Packet;
    expect(p).toMatchObject({ src: A, dst: B, protocol: 17, id: 7, ttl: 9, moreFragments: false, fragmentOffset: 0 });
    expect([...p.payload]).toEqual([1, 2, 3]);
  });
  it("skips options (IHL 6)", () => {
    const o = new Uint8Array(pkt.length + 4);
    o.set(pkt.subarray(0, 20));
    o.set(Uint8Array.of(1, 1, 1, 0), 20); // NOP NOP NOP EOL
    o.set(pkt.subarray(20), 24);
    o[0] = 0x46;
    o[3] = o.length;
    o[10] = o[11] = 0;
    const c = checksum(o, 0, 24);
    o[10] = c >>> 8;
    o[11] = c & 255;
    expect([...(parseIpv4(o) as Ipv4Packet).payload]).toEqual([1, 2, 3]);
  });
  it("counts each malformation under its own reason", () => {
    const mut = (f: (b: Uint8Array) => void) => {
      const b = pkt.slice();
      f(b);
      return parseIpv4(b);
    };
    expect(parseIpv4(pkt.subarray(0, 19))).toBe(DropReason.IP_TOO_SHORT);
    expect(
      mut((b) => {
        b[0] = 0x65;
      }),
    ).toBe(DropReason.IP_BAD_VERSION);
    expect(
      mut((b) => {
        b[0] = 0x44;
      }),
    ).toBe(DropReason.IP_BAD_IHL);
    expect(
      mut((b) => {
        b[3] = 200;
      }),
    ).toBe(DropReason.IP_BAD_LENGTH);
    expect(
      mut((b) => {
        b[3] = 10;
      }),
    ).toBe(DropReason.IP_BAD_LENGTH);
    expect(
      mut((b) => {
        b[8] ^= 1;
      }),
    ).toBe(DropReason.IP_BAD_CHECKSUM);
  });
});

describe("ICMP, UDP, TCP", () => {
  it("ICMP verifies its checksum", () => {
    const m = buildIcmp({ type: 8, code: 0, rest: 0x12340001, data: Uint8Array.of(9, 9, 9) });
    expect(parseIcmp(m)).toMatchObject({ type: 8, rest: 0x12340001 });
    m[9] ^= 1;
    expect(parseIcmp(m)).toBe(DropReason.ICMP_BAD_CHECKSUM);
    expect(parseIcmp(m.subarray(0, 7))).toBe(DropReason.ICMP_MALFORMED);
  });
  it("UDP verifies length and the pseudo-header checksum; zero means none", () => {
    const u = buildUdp(A, B, 1000, 53, Uint8Array.of(1, 2, 3, 4));
    expect(parseUdp(u, A, B)).toMatchObject({ srcPort: 1000, dstPort: 53 });
    expect(parseUdp(u, A, A)).toBe(DropReason.UDP_BAD_CHECKSUM);
    const noCk = u.slice();
    noCk[6] = noCk[7] = 0;
    expect(parseUdp(noCk, A, A)).toMatchObject({ dstPort: 53 });
    const long = u.slice();
    long[5] = 40;
    expect(parseUdp(long, A, B)).toBe(DropReason.UDP_MALFORMED);
  });
  it("TCP parses MSS, window scale and SACK options and rejects broken ones", () => {
    const s = buildTcp(A, B, {
      srcPort: 40000,
      dstPort: 80,
      seq: 0xfffffff0,
      ack: 0,
      flags: TCP_SYN,
      window: 64240,
      mss: 1460,
      windowScale: 7,
      sackPermitted: true,
    });
    expect(parseTcp(s, A, B)).toMatchObject({ mss: 1460, windowScale: 7, sackPermitted: true, seq: 0xfffffff0 });
    const sack = buildTcp(A, B, {
      srcPort: 1,
      dstPort: 2,
      seq: 1,
      ack: 1,
      flags: TCP_ACK,
      window: 1,
      sack: [[10, 20]],
    });
    expect(parseTcp(sack, A, B)).toMatchObject({ sack: [[10, 20]] });
    const bad = s.slice();
    bad[21] = 40; // MSS option length beyond the header
    expect(parseTcp(bad, A, B)).toBe(DropReason.TCP_BAD_CHECKSUM); // checksum catches it first
    expect(parseTcp(s, A, A)).toBe(DropReason.TCP_BAD_CHECKSUM);
    expect(parseTcp(s.subarray(0, 19), A, B)).toBe(DropReason.TCP_MALFORMED);
  });
  it("TCP rejects an option running past the header even with a valid checksum", () => {
    const s = buildTcp(A, B, { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_SYN, window: 1, mss: 1460 });
    s[21] = 9; // MSS length 9
    s[16] = s[17] = 0;
    let sum = 0;
    const ps = [A >>> 16, A & 0xffff, B >>> 16, B & 0xffff, 6, s.length];
    for (const w of ps) sum += w;
    for (let i = 0; i < s.length; i += 2) sum += (s[i]! << 8) | (s[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    s[16] = c >>> 8;
    s[17] = c & 255;
    expect(parseTcp(s, A, B)).toBe(DropReason.TCP_BAD_OPTIONS);
  });
  it("compares sequence numbers modulo 2^32", () => {
    expect(seqLt(0xfffffff0, 5)).toBe(true);
    expect(seqLt(5, 0xfffffff0)).toBe(false);
  });
});

describe("DHCP", () => {
  it("parses a DISCOVER and builds a reply with options", () => {
    const d = new Uint8Array(300);
    d[0] = 1;
    d[1] = 1;
    d[2] = 6;
    d.set([0xde, 0xad, 0xbe, 0xef], 4);
    d.set([2, 0, 0, 0, 0, 0x15], 28);
    d.set([0x63, 0x82, 0x53, 0x63], 236);
    d.set([53, 1, 1, 50, 4, 10, 0, 2, 20, 255], 240);
    expect(parseDhcp(d)).toMatchObject({
      op: 1,
      xid: 0xdeadbeef,
      messageType: 1,
      requestedIp: parseIpText("10.0.2.20"),
    });
    const r = buildDhcpReply({
      xid: 1,
      flags: 0,
      chaddr: d.subarray(28, 34),
      ciaddr: 0,
      yiaddr: A,
      serverIp: B,
      messageType: DhcpType.OFFER,
      options: [[51, Uint8Array.of(0, 1, 0x51, 0x80)]],
    });
    expect(r.length).toBeGreaterThanOrEqual(300);
    expect(parseDhcp(r)).toMatchObject({ op: 2, yiaddr: A, messageType: 2, serverId: B });
  });
  it("rejects truncated options, a bad magic and a missing message type", () => {
    const d = new Uint8Array(244);
    d[1] = 1;
    d[2] = 6;
    d.set([0x63, 0x82, 0x53, 0x63], 236);
    expect(parseDhcp(d)).toBe(DropReason.DHCP_MALFORMED); // no message type
    const t = new Uint8Array(246);
    t.set(d);
    t.set([53, 9], 244); // option length past the end
    expect(parseDhcp(t)).toBe(DropReason.DHCP_MALFORMED);
    d[236] = 0;
    expect(parseDhcp(d)).toBe(DropReason.DHCP_MALFORMED);
  });
});

describe("fragment reassembly", () => {
  const big = Uint8Array.from({ length: 8000 }, (_, i) => i & 255);
  const data = big.subarray(0, 3000);
  const frag = (off: number, len: number, more: boolean, id = 1): Ipv4Packet => ({
    src: A,
    dst: B,
    protocol: 17,
    ttl: 64,
    id,
    dontFragment: false,
    moreFragments: more,
    fragmentOffset: off,
    headerLength: 20,
    payload: big.subarray(off, off + len),
  });

  it("reassembles fragments arriving in any order, ignoring exact duplicates", () => {
    const drops: string[] = [];
    const r = new Reassembler(undefined, (d) => drops.push(d));
    expect(r.add(frag(1480, 1480, true), 0).done).toBe(false);
    expect(r.add(frag(2960, 40, false), 0).done).toBe(false);
    expect(r.add(frag(1480, 1480, true), 0).done).toBe(false);
    const res = r.add(frag(0, 1480, true), 0);
    if (!res.done) throw new Error("not done");
    expect(res.packet.payload).toEqual(data);
    expect(r.inProgress).toBe(0);
    expect(drops).toEqual([]);
  });

  it("drops the datagram on overlap, on bad sizes, on timeout and at the limits", () => {
    const drops: string[] = [];
    const r = new Reassembler({ maxDatagrams: 2, maxFragments: 3, maxSize: 4000, timeoutMs: 100 }, (d) =>
      drops.push(d),
    );
    r.add(frag(0, 1480, true), 0);
    r.add(frag(8, 1480, true), 0);
    expect(drops).toEqual([DropReason.IP_FRAG_OVERLAP]);
    r.add(frag(0, 100, true), 0); // not a multiple of 8
    expect(drops.at(-1)).toBe(DropReason.IP_FRAG_BAD);
    r.add(frag(2960, 1480, false), 0); // ends at 4440, past maxSize
    expect(drops.at(-1)).toBe(DropReason.IP_FRAG_TOO_BIG);
    r.add(frag(0, 8, true, 10), 0);
    r.add(frag(0, 8, true, 11), 0);
    r.add(frag(0, 8, true, 12), 0);
    expect(drops.at(-1)).toBe(DropReason.IP_FRAG_LIMIT);
    r.add(frag(8, 8, true, 10), 0);
    r.add(frag(16, 8, true, 10), 0);
    r.add(frag(24, 8, true, 10), 0);
    expect(drops.at(-1)).toBe(DropReason.IP_FRAG_LIMIT);
    r.expire(1000);
    expect(drops.at(-1)).toBe(DropReason.IP_FRAG_TIMEOUT);
    expect(r.inProgress).toBe(0);
  });
});
