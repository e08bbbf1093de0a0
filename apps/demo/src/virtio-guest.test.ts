// The virtio probe guest (guests/virtio) is the fast test driver for virtio
// devices. Its driver is checked against QEMU's devices (the reference), and
// on ringzero it sees the eight empty virtio-mmio transports QEMU virt has.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { requireTool } from "@ringzero/cpu-core/testing";
import { describe, expect, it } from "vitest";
import { main } from "./main.js";

const guest = resolve(import.meta.dirname, "../guests/virtio/virtio.elf");

describe("virtio probe guest", () => {
  it.skipIf(!requireTool("qemu-system-riscv64"))(
    "drives QEMU's virtio-blk, -net (user), -rng and -console through virtio-mmio v2",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "rz-vprobe-"));
      const disk = join(dir, "disk.img");
      writeFileSync(disk, "");
      truncateSync(disk, 8 << 20);
      const con = join(dir, "console.txt");
      const r = spawnSync(
        "qemu-system-riscv64",
        [
          ...["-M", "virt", "-m", "128M", "-bios", "default", "-nographic", "-no-reboot"],
          ...["-global", "virtio-mmio.force-legacy=false", "-kernel", guest],
          ...["-drive", `if=none,id=d0,file=${disk},format=raw`, "-device", "virtio-blk-device,drive=d0"],
          ...[
            "-device",
            "virtio-rng-device",
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-device,netdev=n0",
          ],
          ...[
            "-chardev",
            `file,id=c0,path=${con}`,
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=c0",
          ],
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      expect(r.stdout).toContain("virtio-blk: write status 0, read status 0, sector 1 read back ok");
      expect(r.stdout).toContain("virtio-blk: read past the end gives status 1");
      expect(r.stdout).toMatch(/virtio-net: sent an ARP request, ARP reply from 10\.0\.2\.2/);
      expect(r.stdout).toContain("virtio-rng: 64 bytes of entropy");
      expect(r.stdout).toContain("virtio probe guest: 4 devices, 0 failed");
      expect(readFileSync(con, "utf8")).toBe("hello from the virtio console\n");
      expect(readFileSync(disk).subarray(512, 540).toString()).toBe("ringzero virtio-blk sector 1");
    },
  );

  it("drives ringzero's virtio-blk (raw file), -net (user, restrict), -rng and -console the same way", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rz-vprobe-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, "");
    truncateSync(disk, 8 << 20);
    let out = "";
    const status = await main(
      [
        ...["run", "--kernel", guest, "--drive", `${disk},format=raw`],
        ...["--net", "user,restrict=on", "--rng", "--console", "virtio"],
      ],
      {
        stdout: (b) => {
          out += new TextDecoder().decode(b);
        },
        stderr: (t) => {
          out += t;
        },
      },
    );
    expect(out).toContain("virtio-blk: capacity 16384 sectors");
    expect(out).toContain("virtio-blk: write status 0, read status 0, sector 1 read back ok");
    expect(out).toContain("virtio-blk: flush status 0");
    expect(out).toContain("virtio-blk: read past the end gives status 1");
    expect(out).toMatch(
      /virtio-net: mac 52:54:00:12:34:56\nvirtio-net: sent an ARP request, ARP reply from 10\.0\.2\.2/,
    );
    expect(out).toContain("virtio-rng: 64 bytes of entropy");
    expect(out).toContain("hello from the virtio console\n");
    expect(out).toContain("virtio probe guest: 4 devices, 0 failed");
    expect(status).toBe(0);
    // What the guest wrote is in the image, byte for byte.
    const sector = readFileSync(disk).subarray(512, 1024);
    expect(sector.subarray(0, 28).toString()).toBe("ringzero virtio-blk sector 1");
    for (let i = 28; i < 512; i++) expect(sector[i]).toBe((i * 7 + 3) & 0xff);
  });

  it("drives the same devices under --hypervisor micro: virtio in the child's paravisor, back ends in the parent over VMBus", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rz-vprobe-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, "");
    truncateSync(disk, 8 << 20);
    let out = "";
    const status = await main(
      [
        ...["run", "--hypervisor", "micro", "--kernel", guest, "--drive", `${disk},format=raw`],
        ...["--net", "user,restrict=on", "--rng", "--console", "virtio", "--stats"],
      ],
      {
        stdout: (b) => {
          out += new TextDecoder().decode(b);
        },
        stderr: (t) => {
          out += t;
        },
      },
    );
    // The virtio console's line travels through its VSP worker, the UART's through the parent: on
    // stdout it may land inside a UART line. Check it, then read the UART lines without it.
    expect(out).toContain("hello from the virtio console\n");
    const uart = out.replace("hello from the virtio console\n", "");
    expect(uart).toContain("virtio-blk: capacity 16384 sectors");
    expect(uart).toContain("virtio-blk: write status 0, read status 0, sector 1 read back ok");
    expect(uart).toContain("virtio-blk: flush status 0");
    expect(uart).toContain("virtio-blk: read past the end gives status 1");
    expect(uart).toMatch(/virtio-net: sent an ARP request, ARP reply from 10\.0\.2\.2/);
    expect(uart).toContain("virtio-rng: 64 bytes of entropy");
    expect(uart).toContain("virtio probe guest: 4 devices, 0 failed");
    // The exits took the paravisor path, and VMBus carried the I/O.
    expect(out).toMatch(/exits by path: microkernel [1-9]\d*, paravisor [1-9]\d*, intercept \d+/);
    expect(out).toMatch(/PostMessage [1-9]/);
    expect(out).toMatch(/SignalEvent [1-9]/);
    expect(status).toBe(0);
    const sector = readFileSync(disk).subarray(512, 1024);
    expect(sector.subarray(0, 28).toString()).toBe("ringzero virtio-blk sector 1");
    for (let i = 28; i < 512; i++) expect(sector[i]).toBe((i * 7 + 3) & 0xff);
  });

  it("finds no device in ringzero's empty virtio-mmio slots and powers off cleanly", async () => {
    let out = "";
    const status = await main(["run", "--kernel", guest], {
      stdout: (b) => {
        out += new TextDecoder().decode(b);
      },
      stderr: () => {},
    });
    expect(out).toContain("virtio probe guest: 0 devices, 0 failed");
    expect(status).toBe(0);
  });
});
