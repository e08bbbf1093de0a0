// The same unmodified Linux kit under `ringzero run --hypervisor micro`: the
// vCPU in a child partition's worker, virtio-mmio in the child's paravisor, the
// back ends (raw files, user-mode network, console) in the parent partition's
// worker, the two connected by VMBus channels. Linux's own virtio drivers are
// the clients: a pattern written to /dev/vda that the host verifies byte for
// byte, an ext2 file system that survives a second boot, /dev/hwrng, DHCP,
// ping and an HTTP download from a server this test runs on 127.0.0.1, and the
// shell on the virtio console. Runs under CI=true; locally RINGZERO_SKIP_LINUX=1 skips it.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LINUX_KIT_MARKER } from "@ringzero/guest-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drive, prepareLinux, skipLinux } from "./test-linux.js";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** What the guest writes to /dev/vda: 64 KiB of numbered lines. */
function pattern(): Buffer {
  let s = "";
  for (let i = 0; s.length < 65536; i++) s += `ringzero line ${String(i).padStart(6, "0")}\n`;
  return Buffer.from(s.slice(0, 65536));
}

describe.skipIf(skipLinux)("Linux under hypervisor-micro (ringzero run --hypervisor micro)", () => {
  let kit: { image: string; initrd: string };
  let http: Server;
  let httpPort: number;
  const blob = randomBytes(256 * 1024);
  const dir = mkdtempSync(join(tmpdir(), "rz-linux-micro-"));

  beforeAll(async () => {
    kit = await prepareLinux();
    http = createServer((req, res) => {
      if (req.url === "/blob") res.writeHead(200, { "content-length": blob.length }).end(blob);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    httpPort = (http.address() as { port: number }).port;
  }, 90 * 60_000);

  afterAll(() => {
    http?.close();
  });

  it("boots to the shell with virtio-blk, -net, -rng over VMBus; the host sees what the guest wrote", async () => {
    const vda = join(dir, "vda.img");
    const vdb = join(dir, "vdb.img");
    for (const f of [vda, vdb]) {
      writeFileSync(f, "");
      truncateSync(f, 16 << 20);
    }
    const base = ["--hypervisor", "micro", "--kernel", kit.image, "--initrd", kit.initrd];
    const drives = ["--drive", `${vda},format=raw`, "--drive", `${vdb},format=raw`];
    const s = await drive(
      [...base, ...drives, "--memory", "256M", "--net", "user", "--rng", "--stats"],
      [
        "uname -a",
        "i=0; while [ $i -lt 3200 ]; do printf 'ringzero line %06d\\n' $i; i=$((i+1)); done | head -c 65536 > /tmp/p",
        "dd if=/tmp/p of=/dev/vda bs=4096 conv=fsync 2>&1 | tail -1; sha256sum /dev/vda | head -c 16; echo",
        "mke2fs -q /dev/vdb && mkdir -p /d && mount -t ext2 /dev/vdb /d && echo persisted > /d/kept.txt && umount /d && echo ext2-ok",
        "dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | head -1; cat /sys/class/misc/hw_random/rng_current",
        "ip link set lo up; udhcpc -i eth0 -n -q -t 5 2>&1 | tail -1; ip -4 addr show eth0 | grep -o 'inet [0-9./]*'",
        "ping -c 2 10.0.2.2 | grep -E 'transmitted'",
        `wget -q -O /tmp/blob http://10.0.2.2:${httpPort}/blob && sha256sum /tmp/blob`,
        "poweroff -f",
      ],
    );
    expect(s.out).toContain(LINUX_KIT_MARKER);
    expect(s.out).toMatch(/Linux ringzero 6\.1\.\d+ .* riscv64 GNU\/Linux/);
    expect(s.out).toContain("ext2-ok");
    expect(s.out).toMatch(/( [0-9a-f]{2}){16}\nvirtio_rng/);
    expect(s.out).toContain("lease of 10.0.2.15 obtained from 10.0.2.2");
    expect(s.out).toContain("2 packets transmitted, 2 packets received");
    expect(s.out).toContain(sha(blob));
    expect(s.out).toContain("reboot: Power down");
    expect(s.status).toBe(0);
    // The I/O went through the paravisor and over VMBus, not through the microkernel.
    expect(s.out).toMatch(/exits by path: microkernel \d+, paravisor [1-9]\d*, intercept [1-9]\d*/);
    expect(s.out).toMatch(/SignalEvent [1-9]\d*/);
    // The host verifies what the guest wrote, byte for byte, and the guest's hash of the disk.
    const p = pattern();
    expect(readFileSync(vda).subarray(0, p.length).equals(p)).toBe(true);
    expect(s.out).toContain(sha(readFileSync(vda)).slice(0, 16));
    console.log(`ringzero: Linux kit to the shell prompt under micro in ${s.promptMs.toFixed(0)} ms`);

    // Second boot: the ext2 file system and its file are still there.
    const again = await drive(
      [...base, ...drives],
      ["mkdir -p /d && mount -t ext2 /dev/vdb /d && cat /d/kept.txt", "poweroff -f"],
    );
    expect(again.out).toMatch(/\npersisted\n/);
    expect(again.status).toBe(0);
  }, 300_000);

  it("virtio-9p: a host directory through the 9P VSP (the server in the parent, the transport in the paravisor)", async () => {
    const share = mkdtempSync(join(dir, "share-"));
    const big = randomBytes(1 << 20);
    writeFileSync(join(share, "from-host.txt"), "written by the host\n");
    writeFileSync(join(share, "big.bin"), big);
    const s = await drive(
      ["--hypervisor", "micro", "--kernel", kit.image, "--initrd", kit.initrd, "--share", `${share},tag=hostshare`],
      [
        "mkdir -p /mnt && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt && cat /mnt/from-host.txt",
        "sha256sum /mnt/big.bin; cp /mnt/big.bin /mnt/copy.bin && mkdir /mnt/sub && mv /mnt/copy.bin /mnt/sub/ && ls /mnt/sub",
        "echo 'written by the guest' > /mnt/from-guest.txt && umount /mnt && echo unmounted",
        "poweroff -f",
      ],
    );
    expect(s.out).toContain("written by the host");
    expect(s.out).toContain(`${sha(big)}  /mnt/big.bin`);
    expect(s.out).toContain("unmounted");
    expect(s.status).toBe(0);
    expect(readFileSync(join(share, "sub", "copy.bin")).equals(big)).toBe(true);
    expect(readFileSync(join(share, "from-guest.txt"), "utf8")).toBe("written by the guest\n");
  }, 300_000);

  it("virtio-console: the shell runs on hvc1, its bytes carried by a VMBus channel", async () => {
    const s = await drive(
      ["--hypervisor", "micro", "--kernel", kit.image, "--initrd", kit.initrd, "--console", "virtio"],
      ["cat /proc/consoles; ls /sys/bus/virtio/drivers/virtio_console/ | grep -c virtio", "poweroff -f"],
    );
    expect(s.out).toMatch(/^hvc1 .*\(EC/m);
    expect(s.out).toMatch(/\n1\n/);
    expect(s.status).toBe(0);
  }, 300_000);
});
