// The `ringzero` command end to end (in-process): the embedded guest, rzbench
// from ../shared/bench to its PASS line, riscv-tests-style tohost, and bad input.
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildElf, requireTool } from "@ringzero/cpu-core/testing";
import { describe, expect, it } from "vitest";
import { main } from "./main.js";

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const dec = new TextDecoder();
  const status = await main(args, {
    stdout: (b) => {
      out += dec.decode(b, { stream: true });
    },
    stderr: (t) => {
      err += t;
    },
  });
  return { status, out, err };
}

const tmp = mkdtempSync(join(tmpdir(), "rz-demo-"));

describe("ringzero run --bios none", () => {
  it("boots the embedded demo guest (S-mode, built-in SBI) by default", async () => {
    const r = await run(["run"]);
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(r.out).toContain("ringzero demo guest");
    expect(r.out).toContain("fib(40)            = 102334155");
    expect(r.out).toContain("sqrt(2) * 1e9      = 1414213562");
    expect(r.out).toContain("trap scause        = 2");
    const rtc = Number(/rtc seconds += (\d+)/.exec(r.out)?.[1]);
    expect(Math.abs(rtc - Date.now() / 1000)).toBeLessThan(5);
    const slept = Number(/slept in WFI \(ms\) += (\d+)/.exec(r.out)?.[1]);
    expect(slept).toBeGreaterThanOrEqual(10);
    expect(r.out).toContain("bye");
  });

  const benchDir = resolve(import.meta.dirname, "../../../../shared/bench/elf");
  const haveBench = existsSync(benchDir);
  if (!haveBench && process.env.CI)
    throw new Error(`${benchDir} is missing: CI runs with shared/ beside the repository`);
  for (const name of ["rzbench-s1.elf", "rzbench-sv39-s1.elf"]) {
    it.skipIf(!haveBench)(`runs ${name} to its PASS line with every checksum ok`, async () => {
      const r = await run(["run", "--bios", "none", "--kernel", join(benchDir, name), "--memory", "256M"]);
      expect(r.status).toBe(0);
      const kernels = r.out.split("\n").filter((l) => l.startsWith("kernel "));
      expect(kernels).toHaveLength(10);
      for (const k of kernels) expect(k).toMatch(/ ok$/);
      expect(r.out).toContain("RESULT PASS");
    });
  }
});

describe("HTIF tohost (riscv-tests convention)", () => {
  const ok = requireTool("riscv64-unknown-elf-gcc");
  const prog = (value: number) => `
    .section .text.init, "ax"
    .globl _start
_start:
    la t0, tohost
    li t1, ${value}
    sd t1, 0(t0)
1:  j 1b
    .section .tohost, "aw"
    .align 6
    .globl tohost
tohost: .dword 0
    .globl fromhost
fromhost: .dword 0
`;
  it.skipIf(!ok)("tohost = 1 passes (exit 0)", async () => {
    const f = join(tmp, "pass.elf");
    writeFileSync(f, buildElf(prog(1)));
    expect((await run(["run", "--bios", "none", "--kernel", f])).status).toBe(0);
  });
  it.skipIf(!ok)("tohost = (n << 1) | 1 fails with status n", async () => {
    const f = join(tmp, "fail.elf");
    writeFileSync(f, buildElf(prog((5 << 1) | 1)));
    expect((await run(["run", "--bios", "none", "--kernel", f])).status).toBe(5);
  });
});

describe("bad input gives a clear error, never a crash", () => {
  it("a file that is not an ELF", async () => {
    const f = join(tmp, "garbage.elf");
    writeFileSync(
      f,
      new Uint8Array(200).map((_, i) => (i * 37) & 0xff),
    );
    const r = await run(["run", "--bios", "none", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/ELF_MALFORMED.*bad magic/);
  });
  it("a truncated ELF", async () => {
    const f = join(tmp, "short.elf");
    writeFileSync(f, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
    expect((await run(["run", "--bios", "none", "--kernel", f])).err).toMatch(/ELF_MALFORMED.*too short/);
  });
  it.skipIf(!requireTool("riscv64-unknown-elf-gcc"))("an ELF linked outside RAM", async () => {
    const f = join(tmp, "low.elf");
    const elf = buildElf(`.section .text.init, "ax"\n.globl _start\n_start: j _start\n`, {
      extraFlags: ["-Wl,--section-start=.text.init=0x1000"],
    });
    writeFileSync(f, elf);
    const r = await run(["run", "--bios", "none", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/ELF_OUTSIDE_RAM/);
  });
  it("a missing kernel file", async () => {
    const r = await run(["run", "--bios", "none", "--kernel", join(tmp, "nope.elf")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/cannot read kernel .*ENOENT/);
  });
  it.each(["0", "0M", "64G", "12345", "lots"])("memory size %s", async (m) => {
    const r = await run(["run", "--bios", "none", "--memory", m]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/memory size/);
  });
  it("an unknown option or firmware", async () => {
    expect((await run(["run", "--frobnicate"])).status).toBe(2);
    const r = await run(["run", "--bios", "opensbi.bin"]);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/"sbi" or "none"/);
  });
  it("a guest that never ends stops at --max-instructions with status 124", async () => {
    const r = await run(["run", "--max-instructions", "1000"]);
    expect(r.status).toBe(124);
  });
});
