// Cross-check against a real RISC-V implementation: testdata/rvref.c (freestanding, built
// with riscv64-unknown-elf-gcc) runs each instruction word under QEMU user mode
// (qemu-riscv64). This covers what the host-IEEE test cannot: RMM, FMIN/FMAX, FCLASS,
// FSGNJ, FMV, NaN boxing of unboxed operands, canonical NaNs and the FCVT saturation,
// all through the real encodings, with dynamic rounding too.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFp } from "./index.js";
import { EDGE32, EDGE64, near32, near64, newCtx, opfp, r4, rand32, rand64, rng } from "./testdata/gen.js";

const CC = "riscv64-unknown-elf-gcc";
const QEMU = "qemu-riscv64";
const have = (cmd: string) => {
  const r = spawnSync(cmd, ["--version"]);
  return !r.error && r.status === 0;
};
const missing = [CC, QEMU].filter((c) => !have(c));
if (missing.length > 0 && process.env.CI) {
  throw new Error(
    `fpu-qemu.test: missing ${missing.join(", ")} (Debian: gcc-riscv64-unknown-elf, qemu-user; see scripts/setup.sh)`,
  );
}

interface Tmpl {
  insn: number;
  src: 0 | 1; // binary32 or binary64 operands in f10..f12
  name: string;
}
function templates(): Tmpl[] {
  const t: Tmpl[] = [];
  const RMS = [0, 1, 2, 3, 4, 7];
  for (const fmt of [0, 1] as const) {
    const k = fmt ? "d" : "s";
    ["fadd", "fsub", "fmul", "fdiv"].forEach((n, f5) => {
      for (const rm of RMS) t.push({ insn: opfp(f5, fmt, rm, 13, 10, 11), src: fmt, name: `${n}.${k} rm${rm}` });
    });
    for (const rm of RMS) t.push({ insn: opfp(0x0b, fmt, rm, 13, 10, 0), src: fmt, name: `fsqrt.${k} rm${rm}` });
    for (let f3 = 0; f3 < 3; f3++) t.push({ insn: opfp(0x04, fmt, f3, 13, 10, 11), src: fmt, name: `fsgnj${f3}.${k}` });
    for (let f3 = 0; f3 < 2; f3++)
      t.push({ insn: opfp(0x05, fmt, f3, 13, 10, 11), src: fmt, name: `fminmax${f3}.${k}` });
    for (let f3 = 0; f3 < 3; f3++) t.push({ insn: opfp(0x14, fmt, f3, 11, 10, 11), src: fmt, name: `fcmp${f3}.${k}` });
    for (let c = 0; c < 4; c++) {
      for (const rm of RMS) {
        t.push({ insn: opfp(0x18, fmt, rm, 11, 10, c), src: fmt, name: `fcvt.int${c}.${k} rm${rm}` });
        t.push({ insn: opfp(0x1a, fmt, rm, 13, 10, c), src: fmt, name: `fcvt.${k}.int${c} rm${rm}` });
      }
    }
    t.push({ insn: opfp(0x1c, fmt, 0, 11, 10, 0), src: fmt, name: `fmv.x.${k}` });
    t.push({ insn: opfp(0x1c, fmt, 1, 11, 10, 0), src: fmt, name: `fclass.${k}` });
    t.push({ insn: opfp(0x1e, fmt, 0, 13, 10, 0), src: fmt, name: `fmv.${k}.x` });
    for (const op of [0x43, 0x47, 0x4b, 0x4f]) {
      for (const rm of RMS)
        t.push({ insn: r4(op, fmt, rm, 13, 10, 11, 12), src: fmt, name: `fma${op.toString(16)}.${k} rm${rm}` });
    }
    for (const rm of RMS) {
      t.push({
        insn: opfp(0x08, fmt, rm, 13, 10, fmt ? 0 : 1),
        src: fmt ? 0 : 1,
        name: `fcvt.${k}.${fmt ? "s" : "d"} rm${rm}`,
      });
    }
  }
  return t;
}

const M64 = (1n << 64n) - 1n;
function operand(r: () => number, src: 0 | 1, partner: bigint | null): bigint {
  if (src === 1) {
    if (partner !== null && r() < 0.5) return near64(r, partner);
    return r() < 0.3 ? EDGE64[Math.floor(r() * EDGE64.length)] : rand64(r);
  }
  const lo = BigInt(
    partner !== null && r() < 0.5
      ? near32(r, Number(partner & 0xffffffffn))
      : r() < 0.3
        ? EDGE32[Math.floor(r() * EDGE32.length)]
        : rand32(r),
  );
  // 4%: an improperly NaN-boxed value (must read as the canonical NaN)
  const hi = r() < 0.04 ? BigInt(Math.floor(r() * 2 ** 32)) : 0xffffffffn;
  return (hi << 32n) | lo;
}
function intSrc(r: () => number): bigint {
  const k = Math.floor(r() * 4);
  if (k === 0) return BigInt(Math.floor(r() * 2000) - 1000) & M64;
  if (k === 1) {
    const e = 20 + Math.floor(r() * 44);
    return (((1n << BigInt(e)) + BigInt(Math.floor(r() * 2 ** 20))) * (r() < 0.5 ? 1n : -1n)) & M64;
  }
  return ((BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32))) & M64;
}

let dir = "";
let bin = "";
beforeAll(() => {
  if (missing.length > 0) return;
  dir = mkdtempSync(join(tmpdir(), "rz-rvref-"));
  bin = join(dir, "rvref");
  const src = join(dirname(fileURLToPath(import.meta.url)), "testdata", "rvref.c");
  execFileSync(CC, [
    "-O1",
    "-march=rv64gc",
    "-mabi=lp64d",
    "-nostdlib",
    "-ffreestanding",
    "-static",
    "-mno-relax",
    "-Wl,--no-warn-rwx-segments",
    "-o",
    bin,
    src,
  ]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const PER = 220;
// Special values, every pair of which is run for each template (unboxed: an S operand whose upper half is not all ones).
const SPECIAL32 = [
  0, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffc00001, 1, 0x7f7fffff,
  0x00800000, 0x3fc00000, 0x40200000, 0xcf000000, 0x4f800000,
];
const SPECIAL64 = [
  0n,
  1n << 63n,
  0x3ff0000000000000n,
  0xbff0000000000000n,
  0x7ff0000000000000n,
  0xfff0000000000000n,
  0x7ff8000000000000n,
  0x7ff0000000000001n,
  0xfff8000000000001n,
  1n,
  0x7fefffffffffffffn,
  0x0010000000000000n,
  0x3ff8000000000000n,
  0x4004000000000000n,
  0xc1e0000000000000n,
  0x43f0000000000000n,
];
function special(src: 0 | 1, i: number): bigint {
  if (src === 1) return SPECIAL64[i];
  return i === 15 ? 0x000000003f800000n : (0xffffffffn << 32n) | BigInt(SPECIAL32[i]);
}
describe.skipIf(missing.length > 0)("execFp against QEMU's RISC-V F/D (qemu-riscv64)", () => {
  it("matches every instruction word: rd, x rd, and fflags", () => {
    const r = rng(424242);
    const tm = templates();
    const recs: { t: Tmpl; frm: number; f: bigint[]; x: bigint }[] = [];
    for (const t of tm) {
      for (let i = 0; i < 256; i++) {
        const a = special(t.src, i >> 4);
        const b = special(t.src, i & 15);
        recs.push({ t, frm: Math.floor(r() * 5), f: [a, b, special(t.src, Math.floor(r() * 16))], x: intSrc(r) });
      }
      for (let i = 0; i < PER; i++) {
        const a = operand(r, t.src, null);
        const b = operand(r, t.src, a);
        const c = operand(r, t.src, null);
        recs.push({ t, frm: Math.floor(r() * 5), f: [a, b, c], x: intSrc(r) });
      }
    }
    const buf = Buffer.alloc(recs.length * 72);
    recs.forEach((rec, i) => {
      const o = i * 72;
      buf.writeBigUInt64LE(BigInt(rec.t.insn), o);
      buf.writeBigUInt64LE(BigInt(rec.frm), o + 8);
      buf.writeBigUInt64LE(rec.f[0], o + 16);
      buf.writeBigUInt64LE(rec.f[1], o + 24);
      buf.writeBigUInt64LE(rec.f[2], o + 32);
      buf.writeBigUInt64LE(rec.x, o + 40);
    });
    const out = execFileSync(QEMU, [bin], { input: buf, maxBuffer: 1 << 28 });
    expect(out.length).toBe(buf.length);
    const bad: string[] = [];
    const ctx = newCtx();
    const fw = ctx.fw;
    recs.forEach((rec, i) => {
      const o = i * 72;
      for (let k = 0; k < 3; k++) {
        fw[20 + 2 * k] = Number(rec.f[k] & 0xffffffffn) | 0;
        fw[21 + 2 * k] = Number(rec.f[k] >> 32n) | 0;
      }
      fw[26] = 0x5555;
      fw[27] = 0;
      ctx.x[20] = Number(rec.x & 0xffffffffn) | 0;
      ctx.x[21] = Number(rec.x >> 32n) | 0;
      ctx.x[22] = 0x1234;
      ctx.x[23] = 0;
      ctx.frm = rec.frm;
      ctx.fflags = 0;
      const ok = execFp(ctx, rec.t.insn);
      const gf = (BigInt(fw[27] >>> 0) << 32n) | BigInt(fw[26] >>> 0);
      const gx = (BigInt(ctx.x[23] >>> 0) << 32n) | BigInt(ctx.x[22] >>> 0);
      const wf = out.readBigUInt64LE(o + 48);
      const wx = out.readBigUInt64LE(o + 56);
      const wfl = Number(out.readBigUInt64LE(o + 64));
      if (!ok || gf !== wf || gx !== wx || ctx.fflags !== wfl) {
        if (bad.length < 20) {
          bad.push(
            `${rec.t.name} frm=${rec.frm} f=${rec.f.map((v) => v.toString(16)).join(",")} x=${rec.x.toString(16)}: ` +
              `got ${ok ? "" : "ILLEGAL "}f13=${gf.toString(16)} x11=${gx.toString(16)} fl=${ctx.fflags} ` +
              `want f13=${wf.toString(16)} x11=${wx.toString(16)} fl=${wfl}`,
          );
        }
      }
    });
    expect(bad).toEqual([]);
    expect(recs.length).toBeGreaterThan(50_000);
  });
});
