// Reference vectors from the host's own IEEE 754 hardware: testdata/fpref.c, compiled with
// the host gcc, computes every vector under RNE/RTZ/RDN/RUP with fenv flags; execFp must
// match bit-exactly (modulo RISC-V's canonical-NaN rule) with exactly the same flags.
// RMM (no host mode) is checked against the exact BigInt path on the same vectors.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  exactAdd,
  exactDiv,
  exactFma,
  exactFromInt,
  exactMul,
  exactNarrow,
  exactSqrt,
  execFp,
  FMT_F32,
  FMT_F64,
  type FpFormat,
  takeFpFlags,
} from "./index.js";
import {
  bitsToF32,
  bitsToF64,
  EDGE32,
  EDGE64,
  f32ToBitsU,
  f64ToBitsBig,
  near32,
  near64,
  newCtx,
  opfp,
  r4,
  rand32,
  rand64,
  rng,
} from "./testdata/gen.js";

type Kind = "s" | "d" | "x";
interface Op {
  id: number;
  name: string;
  n: number;
  src: Kind;
  dst: Kind;
  insn: (rm: number) => number;
  rmDep: boolean;
}

const ops: Op[] = [];
const arith = ["fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmadd", "fmsub", "fnmsub", "fnmadd"];
for (const [fmt, k] of [
  [0, "s"],
  [1, "d"],
] as const) {
  arith.forEach((name, i) => {
    const id = fmt * 10 + i;
    const insn =
      i < 4
        ? (rm: number) => opfp(i, fmt, rm, 4, 1, 2)
        : i === 4
          ? (rm: number) => opfp(0x0b, fmt, rm, 4, 1, 0)
          : (rm: number) => r4([0x43, 0x47, 0x4b, 0x4f][i - 5], fmt, rm, 4, 1, 2, 3);
    ops.push({ id, name: `${name}.${k}`, n: i === 4 ? 1 : i < 4 ? 2 : 3, src: k, dst: k, insn, rmDep: true });
  });
}
ops.push({ id: 20, name: "fcvt.s.d", n: 1, src: "d", dst: "s", insn: (rm) => opfp(8, 0, rm, 4, 1, 1), rmDep: true });
ops.push({ id: 21, name: "fcvt.d.s", n: 1, src: "s", dst: "d", insn: (rm) => opfp(8, 1, rm, 4, 1, 0), rmDep: false });
const ik = ["w", "wu", "l", "lu"];
for (let k = 0; k < 4; k++) {
  ops.push({
    id: 22 + k,
    name: `fcvt.${ik[k]}.s`,
    n: 1,
    src: "s",
    dst: "x",
    insn: (rm) => opfp(0x18, 0, rm, 5, 1, k),
    rmDep: true,
  });
  ops.push({
    id: 26 + k,
    name: `fcvt.${ik[k]}.d`,
    n: 1,
    src: "d",
    dst: "x",
    insn: (rm) => opfp(0x18, 1, rm, 5, 1, k),
    rmDep: true,
  });
  ops.push({
    id: 30 + k,
    name: `fcvt.s.${ik[k]}`,
    n: 1,
    src: "x",
    dst: "s",
    insn: (rm) => opfp(0x1a, 0, rm, 4, 1, k),
    rmDep: true,
  });
  ops.push({
    id: 34 + k,
    name: `fcvt.d.${ik[k]}`,
    n: 1,
    src: "x",
    dst: "d",
    insn: (rm) => opfp(0x1a, 1, rm, 4, 1, k),
    rmDep: k >= 2,
  });
}
["feq", "flt", "fle"].forEach((name, i) => {
  const f3 = [2, 1, 0][i];
  ops.push({
    id: 38 + i,
    name: `${name}.s`,
    n: 2,
    src: "s",
    dst: "x",
    insn: () => opfp(0x14, 0, f3, 5, 1, 2),
    rmDep: false,
  });
  ops.push({
    id: 41 + i,
    name: `${name}.d`,
    n: 2,
    src: "d",
    dst: "x",
    insn: () => opfp(0x14, 1, f3, 5, 1, 2),
    rmDep: false,
  });
});

// Operands as [hi, lo] uint32 pairs (binary32 and 32-bit ints in lo).
type W = [number, number];
const fromBig = (b: bigint): W => [Number(b >> 32n), Number(b & 0xffffffffn)];
const hex = (w: W) => ((BigInt(w[0]) << 32n) | BigInt(w[1])).toString(16);

function operands(op: Op, seed: number): W[][] {
  const r = rng(seed);
  const out: W[][] = [];
  const one = (): W => (op.src === "s" ? [0, rand32(r)] : op.src === "d" ? fromBig(rand64(r)) : intOperand(r));
  if (op.src === "x") {
    for (let i = 0; i < 1000; i++) out.push([intOperand(r)]);
    return out;
  }
  const edges: W[] = op.src === "s" ? EDGE32.map((b) => [0, b] as W) : EDGE64.map(fromBig);
  if (op.n === 1) {
    for (const e of edges) out.push([e]);
    for (let i = 0; i < 1000; i++) out.push([one()]);
  } else if (op.n === 2) {
    for (const a of edges) for (const b of edges) out.push([a, b]);
    for (let i = 0; i < 1000; i++) {
      if (op.src === "s") {
        const a = rand32(r);
        out.push([
          [0, a],
          [0, near32(r, a)],
        ]);
      } else {
        const a = rand64(r);
        out.push([fromBig(a), fromBig(near64(r, a))]);
      }
    }
  } else {
    const pick = () => edges[Math.floor(r() * edges.length)];
    for (let i = 0; i < 1200; i++) out.push([pick(), pick(), r() < 0.5 ? pick() : one()]);
    for (let i = 0; i < 1300; i++) {
      // random, and c ≈ -(a*b) for cancellation
      const a = one();
      const b = one();
      let c = one();
      if (r() < 0.5) {
        if (op.src === "s") {
          const p = Math.fround(bitsToF32(a[1]) * bitsToF32(b[1]));
          c = [0, (f32ToBitsU(-p) + Math.floor(r() * 5) - 2) >>> 0];
        } else {
          const p = bitsToF64((BigInt(a[0]) << 32n) | BigInt(a[1])) * bitsToF64((BigInt(b[0]) << 32n) | BigInt(b[1]));
          c = fromBig((f64ToBitsBig(-p) + BigInt(Math.floor(r() * 5) - 2)) & ((1n << 64n) - 1n));
        }
      }
      out.push([a, b, c]);
    }
  }
  return out;
}

function intOperand(r: () => number): W {
  const k = Math.floor(r() * 5);
  let v: bigint;
  if (k === 0) v = (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  else if (k === 1) v = BigInt(Math.floor(r() * 2000) - 1000);
  else {
    // 2^e plus a few low bits around the rounding point of binary32/binary64 (ties)
    const e = 20 + Math.floor(r() * 44);
    const sh = BigInt(Math.max(0, e - (r() < 0.5 ? 24 : 53) - 1));
    v = (1n << BigInt(e)) + (BigInt(Math.floor(r() * 8)) << sh) + BigInt(Math.floor(r() * 2));
    if (r() < 0.4) v = -v;
    if (k === 4) v = (v & 0xffffffffn) | (BigInt(Math.floor(r() * 2 ** 32)) << 32n); // junk upper half
  }
  return fromBig(BigInt.asUintN(64, v));
}

let dir = "";
let bin = "";
beforeAll(() => {
  const probe = spawnSync("gcc", ["--version"]);
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "fpu-host.test: the host C compiler `gcc` is required to build the reference (apt-get install gcc)",
    );
  }
  dir = mkdtempSync(join(tmpdir(), "rz-fpref-"));
  bin = join(dir, "fpref");
  const src = join(dirname(fileURLToPath(import.meta.url)), "testdata", "fpref.c");
  execFileSync("gcc", ["-O0", "-ffp-contract=off", "-frounding-math", "-fsignaling-nans", "-o", bin, src, "-lm"]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function isNaNBits(k: Kind, hi: number, lo: number): boolean {
  if (k === "s") return (lo & 0x7f800000) === 0x7f800000 && (lo & 0x7fffff) !== 0;
  return (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | lo) !== 0;
}
function isInf(k: Kind, w: W): boolean {
  return k === "s" ? (w[1] & 0x7fffffff) === 0x7f800000 : (w[0] & 0x7fffffff) === 0x7ff00000 && w[1] === 0;
}
function isZero(k: Kind, w: W): boolean {
  return k === "s" ? (w[1] & 0x7fffffff) === 0 : (w[0] & 0x7fffffff) === 0 && w[1] === 0;
}

/** Run one vector through execFp; returns [hi, lo, flags]. */
function run(op: Op, rm: number, v: W[], preFlags = 0): [number, number, number] {
  const ctx = newCtx();
  ctx.fflags = preFlags;
  for (let i = 0; i < v.length; i++) {
    if (op.src === "x") {
      ctx.x[2 * (i + 1)] = v[i][1] | 0;
      ctx.x[2 * (i + 1) + 1] = v[i][0] | 0;
    } else {
      ctx.fw[2 * (i + 1)] = v[i][1] | 0;
      ctx.fw[2 * (i + 1) + 1] = op.src === "s" ? -1 : v[i][0] | 0;
    }
  }
  ctx.fw[8] = 0x12345678;
  ctx.fw[9] = 0x9abcdef;
  ctx.x[10] = 0x12345678;
  ctx.x[11] = 0x9abcdef;
  if (!execFp(ctx, op.insn(rm))) return [-1, -1, -1];
  if (op.dst === "x") return [ctx.x[11] >>> 0, ctx.x[10] >>> 0, ctx.fflags];
  if (op.dst === "s") return [ctx.fw[9] === -1 ? 0 : 0xbad, ctx.fw[8] >>> 0, ctx.fflags];
  return [ctx.fw[9] >>> 0, ctx.fw[8] >>> 0, ctx.fflags];
}

describe("execFp against the host's IEEE hardware (RNE, RTZ, RDN, RUP)", () => {
  it("matches every vector bit-exactly with identical flags", () => {
    const lines: string[] = [];
    const jobs: { op: Op; rm: number; v: W[] }[] = [];
    let seed = 1;
    for (const op of ops) {
      const vs = operands(op, seed++);
      for (const rm of op.rmDep ? [0, 1, 2, 3] : [0]) {
        for (const v of vs) {
          lines.push(`${op.id} ${rm} ${v.map(hex).join(" ")}`);
          jobs.push({ op, rm, v });
        }
      }
    }
    const out = execFileSync(bin, { input: lines.join("\n") + "\n", maxBuffer: 1 << 28 })
      .toString()
      .split("\n");
    expect(out.length - 1).toBe(jobs.length);
    const bad: string[] = [];
    for (let i = 0; i < jobs.length; i++) {
      const { op, rm, v } = jobs[i];
      const [eh, ef] = out[i].split(" ");
      const e = BigInt(`0x${eh}`);
      let ehi = Number(e >> 32n);
      let elo = Number(e & 0xffffffffn);
      let eflags = Number(ef);
      if (op.dst !== "x" && isNaNBits(op.dst, ehi, elo)) {
        // RISC-V: arithmetic NaN results are the canonical NaN (§20.3)
        ehi = op.dst === "s" ? 0 : 0x7ff80000;
        elo = op.dst === "s" ? 0x7fc00000 : 0;
      }
      if (op.n === 3 && isNaNBits(op.src, v[2][0], v[2][1])) {
        // §20.6: inf * 0 + qNaN raises NV on RISC-V (the host leaves it implementation-defined)
        if ((isInf(op.src, v[0]) && isZero(op.src, v[1])) || (isZero(op.src, v[0]) && isInf(op.src, v[1])))
          eflags |= 16;
      }
      const [gh, gl, gf] = run(op, rm, v);
      // Again with NX already accrued: exercises the RNE quick paths (no exactness analysis).
      const [qh, ql, qf] = rm === 0 ? run(op, rm, v, 1) : [gh, gl, gf | 1];
      if (gh !== ehi || gl !== elo || gf !== eflags || qh !== ehi || ql !== elo || qf !== (eflags | 1)) {
        if (bad.length < 25)
          bad.push(
            `${op.name} rm=${rm} ${v.map(hex).join(",")}: got ${hex([gh, gl])}/${gf} quick ${hex([qh, ql])}/${qf} want ${hex([ehi, elo])}/${eflags}`,
          );
        else if (bad.length === 25) bad.push("...");
      }
    }
    expect(bad).toEqual([]);
    expect(jobs.length).toBeGreaterThan(100_000);
  });
});

describe("execFp in RMM against the exact BigInt path", () => {
  const val = (k: Kind, w: W) => (k === "s" ? bitsToF32(w[1]) : bitsToF64((BigInt(w[0]) << 32n) | BigInt(w[1])));
  const bitsOf = (k: Kind, x: number): W =>
    k === "s"
      ? [0, Number.isNaN(x) ? 0x7fc00000 : f32ToBitsU(x)]
      : Number.isNaN(x)
        ? [0x7ff80000, 0]
        : fromBig(f64ToBitsBig(x));
  const finite = (x: number) => x - x === 0;
  it("matches on all finite arithmetic and conversion vectors", () => {
    const bad: string[] = [];
    let checked = 0;
    let seed = 1000;
    for (const op of ops) {
      if (!op.rmDep) continue;
      const vs = operands(op, seed++);
      const fmt: FpFormat = op.dst === "s" ? FMT_F32 : FMT_F64;
      for (const v of vs) {
        let want: number;
        const xs = op.src === "x" ? [] : v.map((w) => val(op.src, w));
        if (!xs.every(finite)) continue;
        takeFpFlags();
        const i = op.id % 10;
        if (op.id < 20) {
          const [a, b, c] = xs;
          if (i === 3 && b === 0) continue;
          if (i === 4 && a < 0) continue;
          want =
            i === 0
              ? exactAdd(a, b, fmt, 4)
              : i === 1
                ? exactAdd(a, -b, fmt, 4)
                : i === 2
                  ? exactMul(a, b, fmt, 4)
                  : i === 3
                    ? exactDiv(a, b, fmt, 4)
                    : i === 4
                      ? exactSqrt(a, fmt, 4)
                      : exactFma(i >= 7 ? -a : a, b, i === 6 || i === 8 ? -c : c, fmt, 4);
        } else if (op.id === 20) want = exactNarrow(xs[0], FMT_F32, 4);
        else if (op.id >= 30) {
          const raw = (BigInt(v[0][0]) << 32n) | BigInt(v[0][1]);
          const k = (op.id - 30) % 4;
          const n =
            k === 0
              ? BigInt.asIntN(32, raw)
              : k === 1
                ? BigInt.asUintN(32, raw)
                : k === 2
                  ? BigInt.asIntN(64, raw)
                  : raw;
          want = exactFromInt(n, fmt, 4);
        } else continue; // float→int RMM: hand cases in fpu-spec.test.ts
        const wantFlags = takeFpFlags();
        const [gh, gl, gf] = run(op, 4, v);
        const [wh, wl] = bitsOf(op.dst, want);
        checked++;
        if (gh !== wh || gl !== wl || gf !== wantFlags) {
          if (bad.length < 20)
            bad.push(
              `${op.name} ${v.map(hex).join(",")}: got ${hex([gh, gl])}/${gf} want ${hex([wh, wl])}/${wantFlags}`,
            );
        }
      }
    }
    expect(bad).toEqual([]);
    expect(checked).toBeGreaterThan(30_000);
  });
});
