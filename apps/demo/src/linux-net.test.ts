// Unmodified Linux (virtio-net driver, its own TCP/IP stack, busybox tools)
// on ringzero's user-mode network (@ringzero/net-stack): DHCP, ping to the
// gateway, an HTTP download and upload through the gateway alias to servers
// this test runs on 127.0.0.1, DNS through a test upstream on 127.0.0.1, a
// guest server reached through hostfwd, and a second ringzero process whose
// guest joins the first one's switch and reaches its guest. Once with the
// first VM under hypervisor-monolithic and the second under micro, once the
// other way round (under micro the NAT and the switch live in the parent
// partition, the NIC's frames cross a VMBus channel). Runs under CI=true;
// locally RINGZERO_SKIP_LINUX=1 skips it.
import { createHash, randomBytes } from "node:crypto";
import type { Socket as DgramSocket } from "node:dgram";
import { mkdtempSync } from "node:fs";
import { createServer, get, type Server } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestDnsServer } from "@ringzero/net-stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drive, prepareLinux, type Session, skipLinux } from "./test-linux.js";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createTcpServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

describe.skipIf(skipLinux)("Linux on ringzero's user-mode network", () => {
  let kit: { image: string; initrd: string };
  let http: Server;
  let httpPort: number;
  let dns: DgramSocket;
  const blob = randomBytes(512 * 1024);
  let uploaded: Buffer | undefined;

  beforeAll(async () => {
    kit = await prepareLinux();
    http = createServer((req, res) => {
      if (req.method === "GET" && req.url === "/blob") {
        res.writeHead(200, { "content-length": blob.length }).end(blob);
      } else if (req.method === "POST" && req.url === "/upload") {
        const parts: Buffer[] = [];
        req.on("data", (d: Buffer) => parts.push(d));
        req.on("end", () => {
          uploaded = Buffer.from(Buffer.concat(parts).toString("latin1"), "base64");
          res.end(`got ${uploaded.length} ${sha(uploaded).slice(0, 16)}\n`);
        });
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    httpPort = (http.address() as { port: number }).port;
    dns = await startTestDnsServer({ "test.ringzero": "192.0.2.7" });
  }, 90 * 60_000);

  afterAll(() => {
    http?.close();
    dns?.close();
  });

  const pairs = [
    ["monolithic", "micro"],
    ["micro", "monolithic"],
  ] as const;
  it.each(pairs)(
    "DHCP, ping, HTTP both ways via 10.0.2.2, DNS upstream, hostfwd, and a second VM on the switch (%s, then %s)",
    async (hv, otherHv) => {
      const dir = mkdtempSync(join(tmpdir(), "rz-linux-net-"));
      const sock = join(dir, "switch.sock");
      const fwd = await freePort();
      const dnsPort = (dns.address() as { port: number }).port;
      let fromHost = "";
      let second: Session | undefined;
      // udhcpc's deconfig event brings eth0 up (the kit's /etc/udhcpc/default.script).
      const up =
        "ip link set lo up; udhcpc -i eth0 -n -q -t 5 2>&1 | tail -1; ip -4 addr show eth0 | grep -o 'inet [0-9./]*'";
      const first = await drive(
        [
          "--hypervisor",
          hv,
          "--kernel",
          kit.image,
          "--initrd",
          kit.initrd,
          "--net",
          `user,hostfwd=tcp:${fwd}-8080,listen=${sock},dns-upstream=127.0.0.1:${dnsPort}`,
        ],
        [
          `${up}; cat /etc/resolv.conf`,
          "ping -c 2 10.0.2.2 | grep -E 'transmitted|round-trip'",
          `wget -q -O /tmp/blob http://10.0.2.2:${httpPort}/blob && sha256sum /tmp/blob`,
          // busybox wget sends --post-file up to its first NUL byte (strlen): upload the blob in base64.
          `base64 /tmp/blob > /tmp/up && wget -q -O - --post-file=/tmp/up http://10.0.2.2:${httpPort}/upload`,
          "nslookup -type=a test.ringzero 2>&1 | grep Address | tail -1",
          "mkdir -p /www && echo served-by-the-guest > /www/index.html && httpd -p 8080 -h /www && echo httpd-up",
          async () => {
            fromHost = await fetchText(`http://127.0.0.1:${fwd}/index.html`);
            second = await drive(
              ["--hypervisor", otherHv, "--kernel", kit.image, "--initrd", kit.initrd].concat([
                "--net",
                `socket,connect=${sock},mac=52:54:00:12:34:57`,
              ]),
              [
                up,
                "ping -c 2 10.0.2.15 | grep transmitted",
                "wget -q -O - http://10.0.2.15:8080/index.html",
                "poweroff -f",
              ],
            );
            return "poweroff -f";
          },
        ],
        300_000,
      );
      expect(first.status, first.out).toBe(0);
      expect(first.out).toMatch(/inet 10\.0\.2\.15\/24/);
      expect(first.out).toMatch(/nameserver 10\.0\.2\.3/);
      expect(first.out).toMatch(/2 packets transmitted, 2 packets received/);
      expect(first.out).toContain(sha(blob));
      expect(uploaded && sha(uploaded)).toBe(sha(blob));
      expect(first.out).toContain(`got ${blob.length} ${sha(blob).slice(0, 16)}`);
      expect(first.out).toMatch(/Address:?\s+192\.0\.2\.7/);
      expect(fromHost).toBe("served-by-the-guest\n");
      expect(second?.status, second?.out).toBe(0);
      expect(second?.out).toMatch(/inet 10\.0\.2\.16\/24/);
      expect(second?.out).toMatch(/2 packets transmitted, 2 packets received/);
      expect(second?.out).toContain("served-by-the-guest");
    },
    600_000,
  );
});
