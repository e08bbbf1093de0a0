// The `ringzero` command end to end (in-process): the embedded guest, rzbench
// from ../shared/bench to its PASS line, riscv-tests-style tohost, and bad input.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { parseElf } from "@ringzero/cpu-core";
import { buildElf, requireTool } from "@ringzero/cpu-core/testing";
import { parseSize } from "@ringzero/disk-formats";
import { describe, expect, it } from "vitest";
import { main } from "./main.js";
import { parseMemorySize } from "./size.js";

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
    expect(r.err).toMatch(/neither a RISC-V Linux Image nor an ELF/);
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
  it("device back ends that cannot open, and bad device specs", async () => {
    let r = await run(["run", "--drive", join(tmp, "missing.qcow2")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/DEVICE_OPEN|drive 0 \(.*missing\.qcow2\)/);
    writeFileSync(join(tmp, "lying.qcow2"), Buffer.from("QFI\xfb\0\0\0\x03garbage", "latin1"));
    r = await run(["run", "--drive", join(tmp, "lying.qcow2")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/drive 0/);
    r = await run(["run", "--share", join(tmp, "no-such-dir")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/share 0/);
    expect((await run(["run", "--net", "tap"])).status).toBe(1);
    expect((await run(["run", "--drive", "x,format=floppy"])).status).toBe(1);
    expect((await run(["run", "--console", "serial"])).status).toBe(1);
  });
  it("an unknown option or firmware", async () => {
    expect((await run(["run", "--frobnicate"])).status).toBe(1);
    const r = await run(["run", "--bios", "opensbi.bin"]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/"sbi" or "none"/);
  });
  it("a guest that never ends stops at --max-instructions with status 124", async () => {
    const r = await run(["run", "--max-instructions", "1000"]);
    expect(r.status).toBe(124);
  });
  it("--max-instructions and --engine work under --hypervisor micro too", async () => {
    const r = await run(["run", "--hypervisor", "micro", "--max-instructions", "1000"]);
    expect(r.status).toBe(124);
    expect(r.err).toContain("stopped after 1000 instructions");
    const t = await run(["run", "--hypervisor", "micro", "--engine", "translator"]);
    expect(t.status).toBe(0);
    expect(t.out).toContain("bye");
  });

  it("--stats=json prints one JSON object on one line under both hypervisors; a bad format is a usage error", async () => {
    for (const hv of ["monolithic", "micro"]) {
      const r = await run(["run", "--hypervisor", hv, "--stats=json"]);
      expect(r.status).toBe(0);
      const lines = r.err.trim().split("\n");
      expect(lines.length).toBe(1);
      const s = JSON.parse(lines[0]);
      expect(s.hypervisor).toBe(hv);
      const instructions = hv === "micro" ? s.vp.instructions : s.instructions;
      expect(instructions).toBeGreaterThan(1000);
    }
    const bad = await run(["run", "--stats=xml"]);
    expect(bad.status).toBe(1);
    expect(bad.err).toMatch(/--stats: "xml" is not json or text\nTry 'ringzero run --help'/);
  });
});

/** A 64-byte RISC-V Image header (Documentation/riscv/boot-image-header.rst, v0.2). */
function imageHeader(textOffset: number, imageSize: number): Uint8Array {
  const h = new Uint8Array(64);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0x0400006f, true); // j +64: over the header
  dv.setBigUint64(8, BigInt(textOffset), true);
  dv.setBigUint64(16, BigInt(imageSize), true);
  dv.setUint32(32, 2, true);
  h.set(new TextEncoder().encode("RISCV\0\0\0RSC\x05"), 48);
  return h;
}

describe("ringzero run --kernel Image (the Linux boot protocol, without Linux)", () => {
  const gcc = requireTool("riscv64-unknown-elf-gcc");
  // A position-independent stand-in for a kernel: checks the boot registers
  // (a0 = hart 0, a1 = a device tree, S-mode), prints its command line from
  // /chosen via the SBI debug console, and shuts down with SBI SRST.
  const stub = () => {
    const elf = buildElf(`
    .section .text.init, "ax"
    .globl _start
_start:
    bnez    a0, bad
    lwu     t0, 0(a1)
    li      t1, 0xedfe0dd0          # FDT magic 0xd00dfeed, big-endian
    bne     t0, t1, bad
    csrr    t0, sstatus             # traps unless in S-mode or above; mstatus would trap in S
    la      a1, msg                 # base, low half
    la      t0, msg_end
    sub     a0, t0, a1              # length
    li      a2, 0                   # base, high half
    li      a7, 0x4442434E          # DBCN write(len, base_lo, base_hi)
    li      a6, 0
    ecall
    li      a7, 0x53525354          # SRST shutdown, no reason
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
bad:
    li      a7, 0x53525354          # SRST shutdown, system failure
    li      a6, 0
    li      a0, 0
    li      a1, 1
    ecall
msg: .ascii "stub kernel booted\n"
msg_end:
`);
    const e = parseElf(elf);
    const seg = e.segments[0];
    const code = elf.slice(seg.offset, seg.offset + seg.fileSize);
    const img = new Uint8Array(64 + code.length);
    img.set(imageHeader(0x200000, 0x10000), 0);
    img.set(code, 64);
    return img;
  };
  it.skipIf(!gcc)("loads it at RAM + text_offset in S-mode with a0 = 0, a1 = the DTB", async () => {
    const f = join(tmp, "stub-Image");
    writeFileSync(f, stub());
    const r = await run(["run", "--kernel", f, "--append", "console=ttyS0 quiet"]);
    expect(r.err).toBe("");
    expect(r.out).toBe("stub kernel booted\n");
    expect(r.status).toBe(0);
  });
  it.skipIf(!gcc)("takes a gzip-compressed Image (Image.gz) as well", async () => {
    const f = join(tmp, "stub-Image.gz");
    writeFileSync(f, gzipSync(stub()));
    const r = await run(["run", "--kernel", f]);
    expect(r.out).toBe("stub kernel booted\n");
    expect(r.status).toBe(0);
  });
  it("an Image larger than RAM", async () => {
    const f = join(tmp, "huge-Image");
    writeFileSync(f, imageHeader(0x200000, 512 * 1024 * 1024));
    const r = await run(["run", "--kernel", f, "--memory", "256M"]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/LOAD_DOES_NOT_FIT|does not fit/);
  });
  it("an Image whose text_offset is not 2 MiB aligned", async () => {
    const f = join(tmp, "odd-Image");
    writeFileSync(f, imageHeader(0x1000, 0x10000));
    const r = await run(["run", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/2 MiB aligned/);
  });
  it("an Image with image_size 0 (header < 0.2)", async () => {
    const f = join(tmp, "nosize-Image");
    writeFileSync(f, imageHeader(0x200000, 0));
    const r = await run(["run", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/image_size/);
  });
  it("a kernel that is neither an Image nor an ELF", async () => {
    const f = join(tmp, "random-Image");
    writeFileSync(
      f,
      new Uint8Array(4096).map((_, i) => (i * 131 + 7) & 0xff),
    );
    const r = await run(["run", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/neither a RISC-V Linux Image nor an ELF/);
  });
  it("a corrupt Image.gz", async () => {
    const f = join(tmp, "bad-Image.gz");
    const gz = gzipSync(new Uint8Array(100_000));
    writeFileSync(f, gz.subarray(0, gz.length - 20));
    const r = await run(["run", "--kernel", f]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/cannot decompress/);
  });
  it("a missing initrd", async () => {
    const f = join(tmp, "hdr-Image");
    writeFileSync(f, imageHeader(0x200000, 0x10000));
    const r = await run(["run", "--kernel", f, "--initrd", join(tmp, "no-such-initrd.cpio.gz")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/cannot read initrd .*ENOENT/);
  });
  it("an initrd that does not fit beside the kernel", async () => {
    const f = join(tmp, "hdr2-Image");
    writeFileSync(f, imageHeader(0x200000, 0x10000));
    const big = join(tmp, "big-initrd");
    writeFileSync(big, new Uint8Array(20 * 1024 * 1024));
    const r = await run(["run", "--kernel", f, "--initrd", big, "--memory", "16M"]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/do not fit in RAM/);
  });
  it("--initrd with an ELF kernel, an Image with --bios none, an over-long command line", async () => {
    const f = join(tmp, "hdr3-Image");
    writeFileSync(f, imageHeader(0x200000, 0x10000));
    expect((await run(["run", "--initrd", f])).err).toMatch(/need a Linux Image/);
    expect((await run(["run", "--bios", "none", "--kernel", f])).err).toMatch(/needs an SBI/);
    const r = await run(["run", "--kernel", f, "--append", "x".repeat(5000)]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/4 KiB/);
  });
});

describe("command-line conventions (QEMU's and qemu-img's)", () => {
  const version = JSON.parse(readFileSync(resolve(import.meta.dirname, "../package.json"), "utf8")).version;
  it("--version and -V print the version on stdout", async () => {
    for (const flag of ["--version", "-V"]) {
      expect(await run([flag])).toEqual({ status: 0, out: `ringzero version ${version}\n`, err: "" });
    }
  });
  it("the command and every subcommand answer -h/--help on stdout with exit 0", async () => {
    for (const args of [
      ["--help"],
      ["-h"],
      ["help"],
      ["run", "--help"],
      ["run", "-h"],
      ["run", "--memory", "1G", "-h"],
    ]) {
      const r = await run(args);
      expect(r.err).toBe("");
      expect(r.status).toBe(0);
      expect(r.out).toMatch(/^usage: ringzero run /);
      expect(r.out).toContain("--memory SIZE");
    }
    for (const flag of ["--help", "-h"]) {
      const r = await run(["compare", flag]);
      expect(r).toMatchObject({ status: 0, err: "" });
      expect(r.out).toMatch(/^usage: ringzero compare /);
    }
  });
  it("an unknown option: one line and a pointer to --help on stderr, exit 1", async () => {
    expect(await run(["run", "--frobnicate"])).toEqual({
      status: 1,
      out: "",
      err: "ringzero: unrecognized option '--frobnicate'\nTry 'ringzero run --help' for more information\n",
    });
    expect(await run(["compare", "--frobnicate"])).toEqual({
      status: 1,
      out: "",
      err: "ringzero: unrecognized option '--frobnicate'\nTry 'ringzero compare --help' for more information\n",
    });
    expect((await run(["run", "-Z"])).err).toBe(
      "ringzero: unrecognized option '-Z'\nTry 'ringzero run --help' for more information\n",
    );
  });
  it("usage errors and bad values exit 1, with one line", async () => {
    expect(await run(["run", "--memory"])).toEqual({
      status: 1,
      out: "",
      err: "ringzero: option '--memory' requires an argument\nTry 'ringzero run --help' for more information\n",
    });
    expect((await run(["run", "-m"])).err).toMatch(/^ringzero: option '-m' requires an argument\n/);
    expect((await run(["run", "--stats=yes"])).err).toMatch(/^ringzero: --stats: "yes" is not json or text\n/);
    expect((await run(["run", "extra"])).err).toMatch(/^ringzero: unexpected argument 'extra'\n/);
    expect(await run(["frob"])).toEqual({
      status: 1,
      out: "",
      err: `ringzero: unknown command "frob"\nTry 'ringzero --help' for more information\n`,
    });
    const image = join(tmp, "usage-Image");
    writeFileSync(image, imageHeader(0x200000, 0x10000));
    const none = await run([]);
    expect(none.status).toBe(1);
    expect(none.err).toMatch(/^usage: ringzero run/);
    for (const args of [
      ["run", "--memory", "lots"],
      ["run", "--hypervisor", "kvm"],
      ["run", "--max-instructions", "many"],
      ["compare", "--runs", "0"],
      ["compare", "--memory", "lots"],
      ["run", "--bios", "none", "--kernel", image], // a Linux Image needs an SBI (was exit 2)
    ]) {
      const r = await run(args);
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.err.trimEnd().split("\n").length, r.err).toBeLessThanOrEqual(2);
    }
  });
  it("--memory takes the sizes ringzero-img takes (one parser: @ringzero/disk-formats' parseSize)", async () => {
    expect(parseMemorySize("1.5G")).toBe(1.5 * 2 ** 30);
    expect(parseMemorySize("1.5g")).toBe(1.5 * 2 ** 30);
    expect(parseMemorySize("262144K")).toBe(256 * 2 ** 20);
    expect(parseMemorySize("256MiB")).toBe(256 * 2 ** 20);
    expect(parseMemorySize("256")).toBe(256 * 2 ** 20); // a bare number < 4096 is MiB, as qemu's -m
    expect(parseMemorySize("268435456")).toBe(256 * 2 ** 20);
    expect(parseSize("1.5G")).toBe(parseMemorySize("1.5G"));
    const r = await run(["run", "--memory", "1.5G", "--max-instructions", "1000"]);
    expect(r.err).toMatch(/stopped after/);
    expect(r.status).toBe(124);
  });
  const cli = resolve(import.meta.dirname, "../dist/cli.js");
  it.skipIf(!existsSync(cli))("the real process: --version, --help, an unknown option (dist/cli.js)", () => {
    const v = spawnSync(process.execPath, [cli, "--version"], { encoding: "utf8" });
    expect([v.status, v.stdout, v.stderr]).toEqual([0, `ringzero version ${version}\n`, ""]);
    const h = spawnSync(process.execPath, [cli, "run", "--help"], { encoding: "utf8" });
    expect([h.status, h.stderr]).toEqual([0, ""]);
    expect(h.stdout).toMatch(/^usage: ringzero run /);
    const u = spawnSync(process.execPath, [cli, "run", "--frobnicate"], { encoding: "utf8" });
    expect([u.status, u.stdout, u.stderr]).toEqual([
      1,
      "",
      "ringzero: unrecognized option '--frobnicate'\nTry 'ringzero run --help' for more information\n",
    ]);
  });
  it.skipIf(!existsSync(cli))("the real process: a reader that goes away (| head -1) ends nothing with EPIPE", () => {
    // `sh -c` with a pipe to head: head exits after one line, the rest of the help meets EPIPE
    const r = spawnSync("sh", ["-c", `"${process.execPath}" "${cli}" run --help | head -1; echo "status $?"`], {
      encoding: "utf8",
    });
    expect(r.stdout).toMatch(/^usage: ringzero run .*\nstatus 0\n$/);
    expect(r.stderr).toBe("");
    const s = spawnSync("sh", ["-c", `"${process.execPath}" "${cli}" run --help | true; echo "status $?"`], {
      encoding: "utf8",
    });
    expect(s.stderr).toBe("");
  });
});
