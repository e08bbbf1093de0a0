import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { NetBackend } from "./backend.js";
import { capture } from "./pcap.js";
import { PcapWriter } from "./pcap-file.js";
import { VirtualSwitch } from "./switch.js";
import { GUEST, GW, type Received, SimGuest } from "./testing-internal/sim-guest.js";
import { spawnTs } from "./testing-internal/spawn-ts.js";
import { StreamTransport } from "./transport.js";
import { UserNet } from "./user-net.js";
import { buildEthernet } from "./wire/ethernet.js";

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const frame = (dst: Uint8Array, src: Uint8Array, tag: number) => buildEthernet(dst, src, 0x88b5, Uint8Array.of(tag));
const BCAST = new Uint8Array(6).fill(255);

function nic(sw: VirtualSwitch): { port: NetBackend; got: Uint8Array[] } {
  const port = sw.createPort();
  const got: Uint8Array[] = [];
  port.setReceiver((f) => got.push(f));
  return { port, got };
}

describe("VirtualSwitch", () => {
  it("floods unknown and broadcast destinations, then forwards learned unicast to one port only", () => {
    const sw = new VirtualSwitch();
    const [a, b, c] = [nic(sw), nic(sw), nic(sw)];
    a.port.send(frame(mac(2), mac(1), 1)); // b unknown yet: flood to b and c
    expect([a.got.length, b.got.length, c.got.length]).toEqual([0, 1, 1]);
    b.port.send(frame(mac(1), mac(2), 2)); // a learned: only a
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 1, 1]);
    a.port.send(frame(mac(2), mac(1), 3)); // b learned now: only b
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 2, 1]);
    c.port.send(frame(BCAST, mac(3), 4));
    expect([a.got.length, b.got.length, c.got.length]).toEqual([2, 3, 1]);
    expect(sw.lookup("02:00:00:00:00:02")).toBeDefined();
  });

  it("ages entries out, forgets a closed port, and counts malformed frames", async () => {
    const sw = new VirtualSwitch({ ageingMs: 30 });
    const [a, b, c] = [nic(sw), nic(sw), nic(sw)];
    b.port.send(frame(BCAST, mac(2), 0));
    a.port.send(frame(mac(2), mac(1), 1));
    expect(c.got.length).toBe(1); // the broadcast only
    await new Promise((r) => setTimeout(r, 50));
    a.port.send(frame(mac(2), mac(1), 2)); // aged: flooded again
    expect(c.got.length).toBe(2);
    b.port.close();
    expect(sw.lookup("02:00:00:00:00:02")).toBeUndefined();
    a.port.send(new Uint8Array(5));
    a.port.send(new Uint8Array(3000));
    expect(sw.stats.drops).toMatchObject({ ETH_TOO_SHORT: 1, ETH_TOO_LONG: 1 });
  });

  it("hands each port its own copy of a flooded frame", () => {
    const sw = new VirtualSwitch();
    const a = nic(sw);
    const b = sw.createPort();
    b.setReceiver((f) => f.fill(0));
    const c = nic(sw);
    a.port.send(frame(BCAST, mac(1), 9));
    expect(c.got[0]![14]).toBe(9);
  });

  it("joins a UserNet: a guest on the switch gets DHCP and ping answers through it", async () => {
    const sw = new VirtualSwitch();
    const net = await UserNet.create();
    sw.connect(net);
    const g = new SimGuest(sw.createPort());
    g.arp(GW);
    g.ping(GW, 1, 1, new Uint8Array(8));
    await g.wait((r) => r.kind === "arp");
    await g.wait((r) => r.kind === "ip" && r.icmp?.type === 0);
    net.close();
  });
});

describe("StreamTransport", () => {
  it("joins two switches over a TCP connection on 127.0.0.1 with QEMU's 4-byte length framing", async () => {
    const left = new VirtualSwitch();
    const right = new VirtualSwitch();
    const server = createServer((s) => right.connect(new StreamTransport(s)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const sock = connect((server.address() as { port: number }).port, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    left.connect(new StreamTransport(sock));
    const a = nic(left);
    const b = nic(right);
    for (let i = 0; i < 200; i++) a.port.send(frame(BCAST, mac(1), i & 255));
    for (let i = 0; i < 100 && b.got.length < 200; i++) await new Promise((r) => setTimeout(r, 10));
    expect(b.got.length).toBe(200);
    expect(b.got.map((f) => f[14])).toEqual(Array.from({ length: 200 }, (_, i) => i & 255));
    b.port.send(frame(mac(1), mac(2), 77));
    for (let i = 0; i < 100 && a.got.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(a.got[0]![14]).toBe(77);
    sock.destroy();
    server.close();
  });

  it("joins the switches of two processes: a guest here reaches ARP and UDP NAT of a UserNet in a child process", async () => {
    const echo = createSocket("udp4");
    echo.on("message", (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, "127.0.0.1", () => r()));
    const child = spawnTs(new URL("./testing-internal/remote-nat.ts", import.meta.url), ["{}"]);
    let err = "";
    child.stderr!.on("data", (d) => {
      err += d;
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`child did not start: ${err}`)), 15_000);
        child.stdout!.on("data", (d) => {
          const m = /port (\d+)/.exec(String(d));
          if (m) {
            clearTimeout(t);
            resolve(Number(m[1]));
          }
        });
      });
      const local = new VirtualSwitch();
      const sock = connect(port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      local.connect(new StreamTransport(sock));
      const g = new SimGuest(local.createPort());
      g.arp(GW);
      await g.wait((r) => r.kind === "arp", 5000);
      g.udp(GW, 7000, echo.address().port, Uint8Array.of(1, 2, 3));
      const r = (await g.wait((x) => x.kind === "ip" && x.udp?.srcPort === echo.address().port, 5000)) as Extract<
        Received,
        { kind: "ip" }
      >;
      expect([...r.udp!.payload]).toEqual([1, 2, 3]);
      sock.destroy();
    } finally {
      child.stdin!.end();
      child.kill();
      echo.close();
    }
  }, 30_000);

  it("closes a stream that announces an oversized frame", async () => {
    const server = createServer((s: Socket) => s.end(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const sock = connect((server.address() as { port: number }).port, "127.0.0.1");
    const t = new StreamTransport(sock);
    t.setReceiver(() => {});
    await new Promise((r) => sock.once("close", r));
    expect(t.stats.drops.TRANSPORT_FRAME_TOO_LONG).toBe(1);
    server.close();
  });
});

function tsharkAvailable(): boolean {
  try {
    execFileSync("tshark", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env["CI"] === "true")
      throw new Error("tshark is required under CI (Debian package tshark, see scripts/setup.sh)");
    console.warn("net-stack: tshark missing, skipping the pcap read-back test");
    return false;
  }
}

describe.skipIf(!tsharkAvailable())("PcapWriter", () => {
  const dir = mkdtempSync(join(tmpdir(), "rz-pcap-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes a capture of ARP, ICMP and UDP traffic that tshark decodes", async () => {
    const file = join(dir, "t.pcap");
    const pcap = new PcapWriter(file);
    const net = await UserNet.create();
    const g = new SimGuest(capture(net, pcap));
    g.arp(GW);
    g.ping(GW, 0x42, 1, new Uint8Array(16));
    g.udp(GW, 1, 2, new Uint8Array(0), GUEST);
    pcap.close();
    net.close();
    const out = execFileSync(
      "tshark",
      ["-r", file, "-T", "fields", "-E", "separator=,", "-e", "frame.protocols", "-e", "ip.src", "-e", "icmp.type"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
    );
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^eth:ethertype:arp/);
    expect(lines[1]).toMatch(/^eth:ethertype:arp/);
    expect(lines[2]).toBe("eth:ethertype:ip:icmp:data,10.0.2.15,8");
    expect(lines[3]).toBe("eth:ethertype:ip:icmp:data,10.0.2.2,0");
    expect(lines).toHaveLength(5);
  });
});
