// Unmodified Linux virtio drivers as the clients of ringzero's virtio devices
// (hypervisor-monolithic): virtio-blk (a pattern the host verifies byte for
// byte; an ext2 file system that survives a second boot), virtio-9p (host
// files read, guest files written), virtio-rng (/dev/hwrng), virtio-console
// (the shell on hvc1) and virtio-balloon (inflated on request through the
// monitor; the host sees the pages come back). Runs under CI=true; locally
// RINGZERO_SKIP_LINUX=1 skips it.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { drive, prepareLinux, skipLinux } from "./test-linux.js";

function monitor(path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let out = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      out += d;
      if (/^(ok|error: .*)$/m.test(out)) {
        s.end();
        resolve(out);
      }
    });
    s.on("error", reject);
    s.write(`${command}\n`);
  });
}

/** What the guest writes to /dev/vda: 64 KiB of numbered lines. */
function pattern(): Buffer {
  let s = "";
  for (let i = 0; s.length < 65536; i++) s += `ringzero line ${String(i).padStart(6, "0")}\n`;
  return Buffer.from(s.slice(0, 65536));
}

describe.skipIf(skipLinux)("Linux drives ringzero's virtio devices", () => {
  let kit: { image: string; initrd: string };
  const dir = mkdtempSync(join(tmpdir(), "rz-linux-virtio-"));
  beforeAll(async () => {
    kit = await prepareLinux();
  }, 90 * 60_000);

  it("virtio-blk, -9p and -rng: a pattern on /dev/vda, ext2 on /dev/vdb, host files through 9p, /dev/hwrng", async () => {
    const vda = join(dir, "vda.img");
    const vdb = join(dir, "vdb.img");
    for (const f of [vda, vdb]) {
      writeFileSync(f, "");
      truncateSync(f, 16 << 20);
    }
    const share = mkdtempSync(join(dir, "share-"));
    writeFileSync(join(share, "from-host.txt"), "written by the host\n");
    const base = ["--kernel", kit.image, "--initrd", kit.initrd, "--drive", `${vda},format=raw`, "--drive", vdb];
    const s = await drive(
      [...base, "--share", `${share},tag=hostshare`, "--rng"],
      [
        // 64 KiB of numbered lines, built in the guest, written with O_DIRECT-free dd and fsync.
        "i=0; while [ $i -lt 3200 ]; do printf 'ringzero line %06d\\n' $i; i=$((i+1)); done | head -c 65536 > /tmp/p",
        "dd if=/tmp/p of=/dev/vda bs=4096 conv=fsync 2>&1 | tail -1; sha256sum /dev/vda | head -c 16; echo",
        "mke2fs -q /dev/vdb && mkdir -p /d && mount -t ext2 /dev/vdb /d && echo persisted > /d/kept.txt && umount /d && echo ext2-ok",
        "mkdir -p /mnt && mount -t 9p -o trans=virtio,version=9p2000.L hostshare /mnt && cat /mnt/from-host.txt",
        "echo 'written by the guest' > /mnt/from-guest.txt && ls /mnt",
        "dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | head -1; cat /sys/class/misc/hw_random/rng_current",
        "umount /mnt; poweroff -f",
      ],
    );
    expect(s.out).toContain("ext2-ok");
    expect(s.out).toContain("written by the host");
    expect(s.out).toMatch(/from-guest\.txt/);
    expect(s.out).toMatch(/virtio_rng/);
    expect(s.out).toMatch(/( [0-9a-f]{2}){16}/);
    expect(s.status).toBe(0);
    // The host verifies what the guest wrote, byte for byte.
    const p = pattern();
    expect(readFileSync(vda).subarray(0, p.length).equals(p)).toBe(true);
    expect(readFileSync(join(share, "from-guest.txt"), "utf8")).toBe("written by the guest\n");
    // The guest's sha256 of the whole 16 MiB disk matches the host's.
    const host = createHash("sha256").update(readFileSync(vda)).digest("hex").slice(0, 16);
    expect(s.out).toContain(host);

    // Second boot: the ext2 file system and its file are still there.
    const again = await drive(base, ["mkdir -p /d && mount -t ext2 /dev/vdb /d && cat /d/kept.txt", "poweroff -f"]);
    expect(again.out).toMatch(/\npersisted\n/);
    expect(again.status).toBe(0);
  }, 300_000);

  it("virtio-console: the shell runs on it (hvc1, as hvc_riscv_sbi holds hvc0)", async () => {
    const s = await drive(
      ["--kernel", kit.image, "--initrd", kit.initrd, "--console", "virtio"],
      ["cat /proc/consoles; ls /sys/bus/virtio/drivers/virtio_console/ | grep -c virtio", "poweroff -f"],
    );
    // Input reaches the shell only through the virtio console's receiveq: the commands ran at all.
    expect(s.out).toMatch(/^hvc1 .*\(EC/m);
    expect(s.out).toMatch(/\n1\n/);
    expect(s.status).toBe(0);
  }, 300_000);

  // Under micro the balloon lives in the child's paravisor and the monitor reaches it through the
  // parent partition and a VMBus control channel (Hyper-V's dynamic memory path).
  for (const hv of ["monolithic", "micro"] as const) {
    it(`virtio-balloon (${hv}): inflated through the monitor, the host sees the pages released`, async () => {
      const sock = join(dir, `monitor-${hv}.sock`);
      let info = "";
      const s = await drive(
        ["--hypervisor", hv, "--kernel", kit.image, "--initrd", kit.initrd, "--memory", "256M", "--balloon"].concat([
          "--monitor",
          sock,
          "--stats",
        ]),
        [
          async () => {
            expect(await monitor(sock, "balloon 192M")).toMatch(/^ok$/m);
            return "sleep 2; grep MemTotal /proc/meminfo";
          },
          async () => {
            // The guest inflates in steps; on a loaded machine that takes longer than the sleep above.
            const t0 = performance.now();
            do {
              info = await monitor(sock, "info balloon");
              if (/actual 16384 pages/.test(info)) break;
              await new Promise((r) => setTimeout(r, 500));
            } while (performance.now() - t0 < 60_000);
            return "poweroff -f";
          },
        ],
      );
      expect(s.status).toBe(0);
      // 64 MiB asked back: 16384 pages; the guest reports them in `actual` and the device released them.
      expect(info).toMatch(/target 16384 pages, actual 16384 pages/);
      const released = Number(/released (\d+) bytes/.exec(info)?.[1]);
      expect(released).toBeGreaterThanOrEqual(64 * 1024 * 1024);
      // and the VM's statistics at exit say so
      expect(s.out).toMatch(/ringzero: balloon \d+ pages held, inflated 16384, deflated \d+, released (\d+) bytes/);
    }, 300_000);
  }
});
