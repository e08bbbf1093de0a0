// The Linux kernel's TCP/IP stack as the guest (see testing-internal/netns.ts):
// DHCP with udhcpc, ping, HTTP download and upload through the gateway alias,
// DNS through the forwarder, UDP NAT, host port forwarding both protocols,
// and a lossy link that still moves files intact.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type Socket as DgramSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capture } from "./pcap.js";
import { PcapWriter } from "./pcap-file.js";
import { VirtualSwitch } from "./switch.js";
import { startTestDnsServer } from "./testing.js";
import { NetnsGuest, requireNetns, UDHCPC_SCRIPT } from "./testing-internal/netns.js";
import { UserNet } from "./user-net.js";

const enabled = requireNetns();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!enabled)("Linux kernel as guest (network namespace + TAP)", () => {
  let net: UserNet;
  let guest: NetnsGuest;
  let guest2: NetnsGuest;
  let sw: VirtualSwitch;
  let pcap: PcapWriter;
  let http: Server;
  let httpPort: number;
  let dns: DgramSocket;
  let echo: DgramSocket;
  let dir: string;
  const blob = randomBytes(2 * 1024 * 1024);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rz-net-"));
    writeFileSync(join(dir, "udhcpc.sh"), UDHCPC_SCRIPT, { mode: 0o755 });
    http = createServer((req, res) => {
      if (req.url === "/blob" || req.url === "/mib") {
        const body = req.url === "/blob" ? blob : blob.subarray(0, 1024 * 1024);
        res.writeHead(200, { "content-length": body.length });
        res.end(body);
        return;
      }
      const h = createHash("sha256");
      let n = 0;
      req.on("data", (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on("end", () => res.end(`${n} ${h.digest("hex")}\n`));
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
    httpPort = (http.address() as { port: number }).port;
    dns = await startTestDnsServer({ "test.ringzero": "192.0.2.7" });
    echo = createSocket("udp4");
    echo.on("message", (m, r) => echo.send(Buffer.from(m.toString().toUpperCase()), r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, "127.0.0.1", () => r()));
    net = await UserNet.create({
      dnsUpstream: { host: "127.0.0.1", port: dns.address().port },
      hostForwards: [
        { protocol: "tcp", hostPort: 0, guestPort: 8080 },
        { protocol: "tcp", hostPort: 0, guestPort: 8081 },
        { protocol: "udp", hostPort: 0, guestPort: 9000 },
      ],
      timeouts: { tcpRtoMinMs: 50 },
    });
    // The NAT and two Linux guests share one virtual switch; the NAT's port is captured to a pcap.
    sw = new VirtualSwitch();
    pcap = new PcapWriter(join(dir, "nat.pcap"));
    sw.connect(capture(net, pcap));
    guest = await NetnsGuest.start(sw.createPort());
    guest2 = await NetnsGuest.start(sw.createPort());
  }, 30_000);

  afterAll(() => {
    guest?.stop();
    guest2?.stop();
    net?.close();
    pcap?.close();
    http?.close();
    dns?.close();
    echo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("udhcpc gets 10.0.2.15/24 with router and DNS", async () => {
    const r = await guest.exec(`busybox udhcpc -i ${guest.dev} -n -q -f -t 5 -T 1 -s ${dir}/udhcpc.sh`);
    expect(r.stdout + r.stderr).toContain("lease 10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3 lease=86400");
    expect(guest.sh(`ip -4 addr show ${guest.dev}`)).toContain("inet 10.0.2.15/24");
    expect(guest.sh("ip route")).toContain("default via 10.0.2.2");
    expect(net.leases).toHaveLength(1);
  });

  it("pings the gateway and the DNS address", async () => {
    const r = await guest.exec("busybox ping -c 3 -i 0.2 -W 2 10.0.2.2 && busybox ping -c 2 -i 0.2 -W 2 10.0.2.3");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("3 packets transmitted, 3 packets received");
    expect(net.stats.counters["icmpEchoReplies"]).toBeGreaterThanOrEqual(5);
  });

  it("downloads a 2 MiB file over HTTP from the host's 127.0.0.1 through 10.0.2.2", async () => {
    const r = await guest.exec(`curl -sS --max-time 20 http://10.0.2.2:${httpPort}/blob | sha256sum`);
    expect(r.stderr).toBe("");
    expect(r.stdout.split(" ")[0]).toBe(sha(blob));
  });

  it("uploads a 2 MiB file over HTTP", async () => {
    writeFileSync(join(dir, "up.bin"), blob);
    const r = await guest.exec(`curl -sS --max-time 20 --data-binary @${dir}/up.bin http://10.0.2.2:${httpPort}/up`);
    expect(r.stdout.trim()).toBe(`${blob.length} ${sha(blob)}`);
  });

  it("resolves a name through the forwarder to the upstream on 127.0.0.1", async () => {
    const r = await guest.exec("busybox nslookup test.ringzero 10.0.2.3");
    expect(r.stdout).toContain("192.0.2.7");
    const nx = await guest.exec("busybox nslookup nothing.ringzero 10.0.2.3");
    expect(nx.stdout + nx.stderr).toMatch(/NXDOMAIN|can't find/);
  });

  it("carries UDP to a host datagram socket and back", async () => {
    const port = echo.address().port;
    const r = await guest.exec(`echo hello | socat -T 3 - UDP4:10.0.2.2:${port}`);
    expect(r.stdout.trim()).toBe("HELLO");
    expect(net.flowCount.udp).toBeGreaterThanOrEqual(1);
  });

  it("answers a connection to a closed host port with RST (connection refused)", async () => {
    const t0 = Date.now();
    const r = await guest.exec("curl -sS --max-time 5 http://10.0.2.2:1/ ; echo rc=$?");
    expect(r.stdout).toContain("rc=7"); // CURLE_COULDNT_CONNECT, not 28 (timeout)
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("forwards host 127.0.0.1:PORT to a TCP server in the guest, both directions", async () => {
    const [toHost, toGuest] = net.hostForwards.filter((f) => f.protocol === "tcp");
    const small = randomBytes(300_000);
    writeFileSync(join(dir, "serve.bin"), small);
    guest.spawn(`socat -u FILE:${dir}/serve.bin TCP4-LISTEN:8080,reuseaddr`);
    guest.spawn(`socat -u TCP4-LISTEN:8081,reuseaddr CREATE:${dir}/recv.bin`);
    await waitListening(guest, [8080, 8081]);
    const got = await readAll(toHost!.hostPort);
    expect(sha(got)).toBe(sha(small));
    await writeAll(toGuest!.hostPort, small);
    await waitFor(() => {
      try {
        return sha(readFileSync(join(dir, "recv.bin"))) === sha(small);
      } catch {
        return false;
      }
    });
  });

  it("forwards a host UDP port to the guest", async () => {
    const fwd = net.hostForwards.find((f) => f.protocol === "udp")!;
    guest.spawn("socat -T 5 UDP4-LISTEN:9000 SYSTEM:'read l; echo \"$l\" | tr a-z A-Z'");
    await new Promise((r) => setTimeout(r, 300));
    const c = createSocket("udp4");
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("no UDP reply")), 5000);
        c.on("message", (m) => {
          clearTimeout(t);
          resolve(m.toString());
        });
        c.send("ping me\n", fwd.hostPort, "127.0.0.1");
      });
      expect(reply).toBe("PING ME\n");
    } finally {
      c.close();
    }
  });

  it("moves 1 MiB each way intact over a link that drops 5% of frames each way", async () => {
    const mib = blob.subarray(0, 1024 * 1024);
    writeFileSync(join(dir, "up1.bin"), mib);
    let seed = 12345;
    let dropped = 0;
    guest.filter = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      if (seed % 100 < 5) {
        dropped++;
        return false;
      }
      return true;
    };
    try {
      const before = net.stats.counters["tcpRetransmits"] ?? 0;
      const t0 = Date.now();
      const r = await guest.exec(`curl -sS --max-time 40 http://10.0.2.2:${httpPort}/mib | sha256sum`, 45_000);
      expect(r.stdout.split(" ")[0]).toBe(sha(mib));
      const t1 = Date.now();
      const up = await guest.exec(
        `curl -sS --max-time 40 --data-binary @${dir}/up1.bin http://10.0.2.2:${httpPort}/u`,
        45_000,
      );
      expect(up.stdout.trim()).toBe(`${mib.length} ${sha(mib)}`);
      const c = net.stats.counters;
      console.log(
        `lossy link: 1 MiB down ${t1 - t0} ms, up ${Date.now() - t1} ms; frames dropped ${dropped}; ` +
          `RTO ${c["tcpRetransmits"] ?? 0}, fast ${c["tcpFastRetransmits"] ?? 0}, SACK ${c["tcpSackRetransmits"] ?? 0}`,
      );
      expect(dropped).toBeGreaterThan(30);
      const after = (net.stats.counters["tcpRetransmits"] ?? 0) + (net.stats.counters["tcpFastRetransmits"] ?? 0);
      expect(after).toBeGreaterThan(before);
    } finally {
      guest.filter = null;
    }
  }, 100_000);

  it("puts two guests on one switch: the second gets 10.0.2.16 and they reach each other", async () => {
    const r = await guest2.exec(`busybox udhcpc -i ${guest2.dev} -n -q -f -t 5 -T 1 -s ${dir}/udhcpc.sh`);
    expect(r.stdout).toContain("lease 10.0.2.16/24");
    const p = await guest.exec("busybox ping -c 2 -W 2 10.0.2.16");
    expect(p.stdout).toContain("2 packets received");
    guest2.spawn(`echo from-guest2 | socat -T 3 - TCP4-LISTEN:7000,reuseaddr`);
    await waitListening(guest2, [7000]);
    const c = await guest.exec("socat -T 3 - TCP4:10.0.2.16:7000 </dev/null");
    expect(c.stdout.trim()).toBe("from-guest2");
    expect(sw.lookup(net.neighbour("10.0.2.16")!)).toBeDefined();
  });

  it("wrote a pcap of the real traffic that tshark reads", () => {
    pcap.close();
    let out: string;
    try {
      out = execFileSync("tshark", ["-r", join(dir, "nat.pcap"), "-T", "fields", "-e", "frame.protocols"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
    } catch (e) {
      if (process.env["CI"] === "true") throw e;
      console.warn(`net-stack: tshark unavailable (${(e as Error).message}), pcap read-back skipped`);
      return;
    }
    const protos = new Set(out.trim().split("\n"));
    expect(protos).toContain("eth:ethertype:ip:udp:dhcp");
    expect(protos).toContain("eth:ethertype:ip:udp:dns");
    expect(protos).toContain("eth:ethertype:ip:icmp:data");
    expect(protos).toContain("eth:ethertype:ip:tcp:http");
  });

  it("never hit an internal error", () => {
    expect(net.stats.counters["internalErrors"] ?? 0).toBe(0);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function waitListening(g: NetnsGuest, ports: number[]): Promise<void> {
  await waitFor(() => {
    const out = g.sh("cat /proc/net/tcp");
    return ports.every((p) => out.includes(`:${p.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A`));
  });
}

function readAll(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    const parts: Buffer[] = [];
    s.on("data", (d) => parts.push(d));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
    s.setTimeout(10_000, () => reject(new Error("read timeout")));
  });
}

function writeAll(port: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.end(data));
    s.on("close", () => resolve());
    s.on("error", reject);
    s.resume();
  });
}
