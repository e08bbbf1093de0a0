// Property tests: random and mutated frames never make the stack throw or hit
// an internal error, and everything it sends back is well-formed.
import { createServer, type Server } from "node:net";
import { PassThrough } from "node:stream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, GUEST, GW, GW_MAC, isTcp, type Received, SimGuest } from "./testing-internal/sim-guest.js";
import { StreamTransport } from "./transport.js";
import { UserNet } from "./user-net.js";
import { buildArp } from "./wire/arp.js";
import { checksum, foldChecksum, pseudoHeaderSum, sumBytes } from "./wire/checksum.js";
import { buildEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from "./wire/ethernet.js";
import { buildIcmp } from "./wire/icmp.js";
import { buildIpv4 } from "./wire/ipv4.js";
import { buildTcp, TCP_ACK, TCP_SYN } from "./wire/tcp.js";
import { buildUdp } from "./wire/udp.js";

const guestMac = Uint8Array.of(2, 0, 0, 0, 0, 0x15);
const ipFrame = (protocol: number, l4: Uint8Array, id = 1) =>
  buildEthernet(GW_MAC, guestMac, ETHERTYPE_IPV4, buildIpv4({ src: GUEST, dst: GW, protocol, id }, l4));

function dhcp(type: number): Uint8Array {
  const d = new Uint8Array(300);
  d.set([1, 1, 6], 0);
  d.set(guestMac, 28);
  d.set([0x63, 0x82, 0x53, 0x63, 53, 1, type, 50, 4, 10, 0, 2, 15, 12, 3, 97, 98, 99, 255], 236);
  const udp = buildUdp(0, 0xffffffff, 68, 67, d);
  return buildEthernet(
    new Uint8Array(6).fill(255),
    guestMac,
    ETHERTYPE_IPV4,
    buildIpv4({ src: 0, dst: 0xffffffff, protocol: 17 }, udp),
  );
}

function fragment(off: number, more: boolean): Uint8Array {
  const f = ipFrame(17, new Uint8Array(64).fill(off), 999);
  const ff = (more ? 0x2000 : 0) | (off >> 3);
  f[20] = ff >> 8;
  f[21] = ff & 255;
  return f;
}

const CORPUS: Uint8Array[] = [
  buildEthernet(
    new Uint8Array(6).fill(255),
    guestMac,
    ETHERTYPE_ARP,
    buildArp({ op: 1, senderMac: guestMac, senderIp: GUEST, targetMac: new Uint8Array(6), targetIp: GW }),
  ),
  ipFrame(1, buildIcmp({ type: 8, code: 0, rest: 0x10001, data: new Uint8Array(32) })),
  dhcp(1),
  dhcp(3),
  ipFrame(
    17,
    buildUdp(GUEST, GW + 1, 3333, 53, Uint8Array.of(1, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 97, 0, 0, 1, 0, 1)),
  ),
  ipFrame(17, buildUdp(GUEST, GW, 3333, 9, new Uint8Array(10))),
  ipFrame(
    6,
    buildTcp(GUEST, GW, {
      srcPort: 1234,
      dstPort: 9,
      seq: 1,
      ack: 0,
      flags: TCP_SYN,
      window: 100,
      mss: 1460,
      windowScale: 7,
      sackPermitted: true,
    }),
  ),
  ipFrame(
    6,
    buildTcp(GUEST, GW, {
      srcPort: 1234,
      dstPort: 9,
      seq: 1,
      ack: 5,
      flags: TCP_ACK,
      window: 100,
      sack: [[1, 2]],
      payload: new Uint8Array(20),
    }),
  ),
  fragment(0, true),
  fragment(64, false),
];

/** Recomputes the IPv4 header and the transport checksum so mutations reach the deeper parsers. */
function fixChecksums(f: Uint8Array): Uint8Array {
  if (f.length < 34 || f[12] !== 8 || f[13] !== 0) return f;
  const ihl = (f[14]! & 15) * 4;
  if (ihl < 20 || 14 + ihl > f.length) return f;
  f[24] = f[25] = 0;
  const c = checksum(f, 14, ihl);
  f[24] = c >> 8;
  f[25] = c & 255;
  const total = (f[16]! << 8) | f[17]!;
  const end = Math.min(14 + total, f.length);
  const l4 = 14 + ihl;
  const len = end - l4;
  const proto = f[23]!;
  const ckOff = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
  if (ckOff < 0 || len < ckOff + 2) return f;
  f[l4 + ckOff] = f[l4 + ckOff + 1] = 0;
  const view = new DataView(f.buffer, f.byteOffset);
  const src = view.getUint32(26);
  const dst = view.getUint32(30);
  const sum = proto === 1 ? sumBytes(f, l4, len) : sumBytes(f, l4, len, pseudoHeaderSum(src, dst, proto, len));
  const k = foldChecksum(sum);
  f[l4 + ckOff] = k >> 8;
  f[l4 + ckOff + 1] = k & 255;
  return f;
}

const mutated = fc
  .tuple(
    fc.constantFrom(...CORPUS),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    fc.oneof(fc.constant(-1), fc.nat({ max: 1600 })),
    fc.boolean(),
  )
  .map(([base, edits, cut, fix]) => {
    let f = base.slice();
    for (const [pos, v] of edits) f[pos % f.length] = v;
    if (cut >= 0) {
      const g = new Uint8Array(cut);
      g.set(f.subarray(0, Math.min(cut, f.length)));
      f = g;
    }
    return fix ? fixChecksums(f) : f;
  });

function checkOutput(frames: Uint8Array[]): void {
  for (const f of frames) {
    const r = decode(f);
    expect(r.kind, "stack emitted an unparseable frame").not.toBe("other");
  }
}

describe("the stack never throws on hostile frames", () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((s) => {
      s.on("data", () => {});
      s.on("error", () => {});
      s.write("banner\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => server.close());

  it("random bytes, restricted stack", async () => {
    const n = await UserNet.create({ restrict: true });
    const out: Uint8Array[] = [];
    n.setReceiver((f) => out.push(f));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1600 }), (f) => {
        n.send(f);
      }),
      { numRuns: 3000 },
    );
    expect(n.stats.counters.internalErrors ?? 0).toBe(0);
    checkOutput(out);
    n.close();
  });

  it("mutated valid frames (with and without repaired checksums), stack limited to 127.0.0.1", async () => {
    const n = await UserNet.create({ allow: [{ cidr: "127.0.0.1/32" }], dnsUpstream: { host: "127.0.0.1", port: 9 } });
    const out: Uint8Array[] = [];
    n.setReceiver((f) => out.push(f));
    fc.assert(
      fc.property(mutated, (f) => {
        n.send(f);
      }),
      { numRuns: 5000 },
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(n.stats.counters.internalErrors ?? 0).toBe(0);
    expect(n.stats.dropped).toBeGreaterThan(1000);
    checkOutput(out);
    n.close();
  });

  it("random segments on an established TCP flow keep the endpoint consistent", async () => {
    const n = await UserNet.create({ allow: [{ cidr: "127.0.0.1/32" }], timeouts: { tcpRtoMinMs: 10 } });
    const g = new SimGuest(n);
    g.tcp(GW, {
      srcPort: 5555,
      dstPort: port,
      seq: 100,
      ack: 0,
      flags: TCP_SYN,
      window: 2000,
      windowScale: 2,
      sackPermitted: true,
    });
    const iss = ((await g.wait(isTcp)) as Extract<Received, { kind: "ip" }>).tcp!.seq;
    g.tcp(GW, { srcPort: 5555, dstPort: port, seq: 101, ack: iss + 1, flags: TCP_ACK, window: 2000 });
    const seg = fc.record({
      dseq: fc.integer({ min: -70000, max: 70000 }),
      dack: fc.integer({ min: -70000, max: 70000 }),
      flags: fc.integer({ min: 0, max: 63 }),
      window: fc.integer({ min: 0, max: 65535 }),
      len: fc.nat({ max: 1460 }),
      mss: fc.option(fc.integer({ min: 0, max: 65535 })),
      sack: fc.option(fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 })),
    });
    await fc.assert(
      fc.asyncProperty(seg, async (s) => {
        g.tcp(GW, {
          srcPort: 5555,
          dstPort: port,
          seq: (101 + s.dseq) >>> 0,
          ack: (iss + 1 + s.dack) >>> 0,
          flags: s.flags,
          window: s.window,
          payload: new Uint8Array(s.len),
          ...(s.mss === null ? {} : { mss: s.mss }),
          ...(s.sack === null ? {} : { sack: s.sack }),
        });
        if (Math.random() < 0.05) await new Promise((r) => setImmediate(r));
      }),
      { numRuns: 3000 },
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(n.stats.counters.internalErrors ?? 0).toBe(0);
    checkOutput(g.inbox.map((r) => ("frame" in r ? r.frame : new Uint8Array(0))).filter((f) => f.length));
    expect(g.inbox.every((r) => r.kind !== "other")).toBe(true);
    n.close();
  });

  it("a stream transport fed arbitrary bytes in arbitrary chunks never throws and bounds its frames", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }), (chunks) => {
        const stream = new PassThrough();
        const t = new StreamTransport(stream, { maxFrame: 1600 });
        const got: Uint8Array[] = [];
        t.setReceiver((f) => got.push(f));
        for (const c of chunks) stream.emit("data", Buffer.from(c));
        expect(got.every((f) => f.length <= 1600)).toBe(true);
        t.close();
      }),
      { numRuns: 2000 },
    );
  });
});
