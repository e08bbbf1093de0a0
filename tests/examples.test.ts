// The custom hypervisors in examples/, run as a user runs them (node, the
// published packages' built entries through the workspace), in CI.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const bench = resolve(root, "../shared/bench/elf/rzbench-s1.elf");
const tmp = mkdtempSync(join(tmpdir(), "rz-examples-"));
const hasGcc = spawnSync("riscv64-unknown-elf-gcc", ["--version"]).status === 0;

function node(script: string, args: string[]) {
  return spawnSync(process.execPath, [resolve(root, script), ...args], { encoding: "utf8", timeout: 120_000 });
}

/** A riscv-tests-style program that writes `value` to tohost (HTIF), linked at 0x8000_0000. */
function tohostElf(name: string, value: number): string {
  const src = join(tmp, `${name}.S`);
  const elf = join(tmp, `${name}.elf`);
  writeFileSync(
    src,
    `.section .text.init, "ax"\n.globl _start\n_start:\n  la t0, tohost\n  li t1, ${value}\n  sd t1, 0(t0)\n1: j 1b\n` +
      `.section .tohost, "aw"\n.align 6\n.globl tohost\ntohost: .dword 0\n.globl fromhost\nfromhost: .dword 0\n`,
  );
  const r = spawnSync(
    "riscv64-unknown-elf-gcc",
    ["-nostdlib", "-static", "-Wl,-N", "-Wl,-Ttext=0x80000000", "-o", elf, src],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  return elf;
}

describe("examples/bare-metal-runner", () => {
  const runner = "examples/bare-metal-runner/runner.mjs";

  it("runs the shared CPU benchmark to its PASS line and the finisher's pass (exit 0)", () => {
    const r = node(runner, [bench]);
    expect(r.stdout).toContain("RESULT PASS");
    expect(r.stderr).toMatch(/runner: finisher pass after \d+ instructions/);
    expect(r.status).toBe(0);
  });

  it.runIf(hasGcc || process.env.CI === "true")("HTIF tohost: 1 passes, (n << 1) | 1 fails with status n", () => {
    expect(node(runner, [tohostElf("pass", 1)]).status).toBe(0);
    const fail = node(runner, [tohostElf("fail", (5 << 1) | 1)]);
    expect(fail.status).toBe(5);
    expect(fail.stderr).toContain("FAIL 5");
  });

  it("stops at --max-instructions with 124, and refuses bad arguments", () => {
    const r = node(runner, [bench, "--max-instructions", "100000"]);
    expect(r.status).toBe(124);
    expect(r.stderr).toContain("stopped after 100000 instructions");
    expect(node(runner, []).status).toBe(2);
    const notElf = join(tmp, "not.elf");
    writeFileSync(notElf, "hello");
    const bad = node(runner, [notElf]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^runner: .*not\.elf: ELF_/);
  });
});

// The Linux guest kit (CI sets RINGZERO_9P_LINUX_KIT to its directory, as for the README examples).
const kit = process.env.RINGZERO_9P_LINUX_KIT;

/** examples/linux-vmm on the kit with `args`, `input` written to its console at once. */
function vmm(args: string[], input: string) {
  const k = kit as string;
  const boot = ["--kernel", join(k, "Image"), "--initrd", join(k, "initramfs.cpio.gz")];
  return spawnSync(process.execPath, [resolve(root, "examples/linux-vmm/vmm.mjs"), ...boot, ...args], {
    input,
    encoding: "utf8",
    timeout: 240_000,
  });
}

describe.runIf(kit !== undefined || process.env.CI === "true")("examples/linux-vmm", () => {
  it("boots the kit with a qcow2 disk and user networking, no hypervisor-monolithic: reads the disk, gets a DHCP lease, powers off", () => {
    const disk = join(tmp, "disk.qcow2");
    const mk = spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", disk, "32M"], { encoding: "utf8" });
    expect(mk.status, mk.stderr).toBe(0);
    const w = spawnSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x41 0 4k", disk], { encoding: "utf8" });
    expect(w.status, w.stderr).toBe(0);
    // Typed at once, before boot: the VMM holds input until the 8250 driver listens.
    const r = vmm(
      ["--disk", disk, "--net"],
      "head -c 8 /dev/vda; echo; udhcpc -q -n -i eth0 2>&1 | tail -1; poweroff -f\n",
    );
    expect(r.stdout).toContain("AAAAAAAA");
    expect(r.stdout).toMatch(/lease of 10\.0\.2\.15 obtained/);
    expect(r.stderr).toMatch(/vmm: powered off \(shutdown\)/);
    expect(r.status).toBe(0);
  }, 300_000);

  it("plugs in a device of the user's own (examples/custom-virtio-device): Linux's virtio-rng driver reads it", () => {
    const r = vmm(
      ["--device", resolve(root, "examples/custom-virtio-device/counting-rng.mjs")],
      "cat /sys/class/misc/hw_random/rng_current; head -c 16 /dev/hwrng | od -An -tx1; poweroff -f\n",
    );
    expect(r.stdout).toMatch(/^virtio_rng\.0$/m);
    const line = r.stdout.split("\n").find((l) => /^( [0-9a-f]{2}){16}$/.test(l.trimEnd()));
    expect(line, r.stdout.slice(-1500)).toBeDefined();
    const bytes = (line as string)
      .trim()
      .split(" ")
      .map((h) => Number.parseInt(h, 16));
    for (let i = 1; i < 16; i++) expect(bytes[i]).toBe((bytes[0] + i) & 0xff);
    expect(r.status).toBe(0);
  }, 300_000);
});

describe.runIf(kit !== undefined || process.env.CI === "true")("examples/custom-vsp", () => {
  it("serves a device from a VSP of the user's own: Linux reads the parent's counter through the child's VSC, across a VSP kill", () => {
    const k = kit as string;
    // The marker is split in the typed line (echoed by the tty) so only the guest's echo prints it whole.
    const r = spawnSync(
      process.execPath,
      [
        resolve(root, "examples/custom-vsp/run.mjs"),
        ...["--kernel", join(k, "Image"), "--initrd", join(k, "initramfs.cpio.gz")],
        ...["--start", "5", "--step", "7", "--kill-on", "KILL-NOW"],
      ],
      {
        input:
          "cat /sys/class/misc/hw_random/rng_current; head -c 16 /dev/hwrng | od -An -tx1; " +
          'echo KILL-""NOW; sleep 1; head -c 16 /dev/hwrng | od -An -tx1; poweroff -f\n',
        encoding: "utf8",
        timeout: 240_000,
      },
    );
    expect(r.stdout).toMatch(/^virtio_rng\.0$/m);
    const lines = r.stdout.split("\n").filter((l) => /^( [0-9a-f]{2}){16}$/.test(l.trimEnd()));
    expect(lines, r.stdout.slice(-1500)).toHaveLength(2);
    // Only the VSP's counter makes these bytes: each one 7 (its configured step) past the one before.
    for (const line of lines) {
      const bytes = line
        .trim()
        .split(" ")
        .map((h) => Number.parseInt(h, 16));
      for (let i = 1; i < 16; i++) expect(bytes[i]).toBe((bytes[i - 1] + 7) & 0xff);
    }
    // The second read came after the kill, from the successor.
    expect(r.stdout.indexOf("\nKILL-NOW")).toBeLessThan(r.stdout.lastIndexOf(lines[1]));
    expect(r.stderr).toContain("run: killed counter");
    const stats = JSON.parse(/counter VSP: (\{.*\})/.exec(r.stderr)?.[1] ?? "{}");
    expect(stats.requests).toBeGreaterThan(0);
    expect(stats.vsp.kills).toBe(1);
    expect(stats.vsp.restarts).toBe(1);
    expect(r.status).toBe(0);
  }, 300_000);

  it("prints its usage and exits 2 without a kernel", () => {
    const r = spawnSync(process.execPath, [resolve(root, "examples/custom-vsp/run.mjs")], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("usage:");
  });
});
