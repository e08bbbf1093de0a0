// Differential test: the fast primitives (JS doubles + error-free transforms) against the
// exact BigInt slow path, on random finite operands, all five rounding modes, flags included.
import { describe, expect, it } from "vitest";
import {
  exactAdd,
  exactDiv,
  exactFma,
  exactFromInt,
  exactMul,
  exactNarrow,
  exactSqrt,
  FMT_F32,
  FMT_F64,
  f32Add,
  f32Div,
  f32Fma,
  f32FromF64,
  f32Mul,
  f32Sqrt,
  f64Add,
  f64Div,
  f64Fma,
  f64Mul,
  f64Sqrt,
  intToF32,
  intToF64,
  takeFpFlags,
} from "./index.js";
import { bitsToF32, bitsToF64, f64ToBitsBig, near32, near64, type Rand, rand32, rand64, rng } from "./testdata/gen.js";

const finite = (x: number) => x - x === 0;
const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
const show = (x: number) => `${x} (0x${f64ToBitsBig(x).toString(16)})`;

function fin64(r: Rand): number {
  for (;;) {
    const v = bitsToF64(rand64(r));
    if (finite(v)) return v;
  }
}
function fin32(r: Rand): number {
  for (;;) {
    const v = bitsToF32(rand32(r));
    if (finite(v)) return v;
  }
}
/** Operands whose product lands near the fast-path limits (2^-1022, 2^-967, 2^995, max). */
function boundary64(r: Rand): [number, number] {
  const targets = [
    -1074, -1060, -1023, -1022, -1021, -968, -967, -966, 994, 995, 996, 1019, 1020, 1021, 1022, 1023, 1024,
  ];
  const t = targets[Math.floor(r() * targets.length)];
  const ea = Math.floor(r() * 1000) - 500;
  const eb = Math.max(-1074, Math.min(1023, t - ea));
  const m = () => 1 + r();
  return [m() * 2 ** Math.max(-1022, Math.min(1023, ea)) * (r() < 0.5 ? -1 : 1), m() * 2 ** eb];
}

type Case = { name: string; run: (r: Rand, rm: number) => string | null };

function check(name: string, args: number[], fast: () => number, exact: () => number): string | null {
  takeFpFlags();
  const a = fast();
  const fa = takeFpFlags();
  const b = exact();
  const fb = takeFpFlags();
  if (same(a, b) && fa === fb) return null;
  return `${name}(${args.map(show).join(", ")}): fast ${show(a)}/${fa} exact ${show(b)}/${fb}`;
}

const cases: Case[] = [
  {
    name: "f64Add",
    run: (r, rm) => {
      const a = fin64(r);
      const b = r() < 0.5 ? bitsToF64(near64(r, f64ToBitsBig(a))) : fin64(r);
      if (!finite(b)) return null;
      return check(
        "f64Add",
        [a, b],
        () => f64Add(a, b, rm),
        () => exactAdd(a, b, FMT_F64, rm),
      );
    },
  },
  {
    name: "f64Mul",
    run: (r, rm) => {
      const [a, b0] = r() < 0.5 ? boundary64(r) : [fin64(r), fin64(r)];
      // 15%: a product right at the overflow threshold
      const b = r() < 0.15 ? (Number.MAX_VALUE / a) * (1 - r() * 2 ** -30) : b0;
      if (!finite(b)) return null;
      return check(
        "f64Mul",
        [a, b],
        () => f64Mul(a, b, rm),
        () => exactMul(a, b, FMT_F64, rm),
      );
    },
  },
  {
    name: "f64Div",
    run: (r, rm) => {
      const [a, b0] = r() < 0.5 ? boundary64(r) : [fin64(r), fin64(r)];
      const b = r() < 0.5 ? 1 / b0 : b0;
      if (b === 0 || !finite(b)) return null;
      return check(
        "f64Div",
        [a, b],
        () => f64Div(a, b, rm),
        () => exactDiv(a, b, FMT_F64, rm),
      );
    },
  },
  {
    name: "f64Sqrt",
    run: (r, rm) => {
      const a = Math.abs(fin64(r));
      return check(
        "f64Sqrt",
        [a],
        () => f64Sqrt(a, rm),
        () => exactSqrt(a, FMT_F64, rm),
      );
    },
  },
  {
    name: "f64Fma",
    run: (r, rm) => {
      const [a, b] = r() < 0.3 ? boundary64(r) : [fin64(r), fin64(r)];
      let c = fin64(r);
      const k = r();
      if (k < 0.4) {
        // cancellation: c ≈ -(a*b), a few ulps away
        const p = a * b;
        if (finite(p) && p !== 0)
          c = bitsToF64((f64ToBitsBig(-p) + BigInt(Math.floor(r() * 9) - 4)) & ((1n << 64n) - 1n));
      } else if (k < 0.6) {
        // c near an ulp of a*b (halfway / sticky cases)
        const p = a * b;
        if (finite(p) && p !== 0)
          c = p * 2 ** -(52 + Math.floor(r() * 4)) * (r() < 0.5 ? -1 : 1) * (1 + Math.floor(r() * 3) / 4);
      }
      if (!finite(c)) return null;
      return check(
        "f64Fma",
        [a, b, c],
        () => f64Fma(a, b, c, rm),
        () => exactFma(a, b, c, FMT_F64, rm),
      );
    },
  },
  {
    name: "f32Add",
    run: (r, rm) => {
      const ab = rand32(r);
      const a = bitsToF32(ab);
      const b = bitsToF32(r() < 0.5 ? near32(r, ab) : rand32(r));
      if (!finite(a) || !finite(b)) return null;
      return check(
        "f32Add",
        [a, b],
        () => f32Add(a, b, rm),
        () => exactAdd(a, b, FMT_F32, rm),
      );
    },
  },
  {
    name: "f32Mul",
    run: (r, rm) => {
      const a = fin32(r);
      const b = fin32(r);
      return check(
        "f32Mul",
        [a, b],
        () => f32Mul(a, b, rm),
        () => exactMul(a, b, FMT_F32, rm),
      );
    },
  },
  {
    name: "f32Div",
    run: (r, rm) => {
      const a = fin32(r);
      const b = fin32(r);
      if (b === 0) return null;
      return check(
        "f32Div",
        [a, b],
        () => f32Div(a, b, rm),
        () => exactDiv(a, b, FMT_F32, rm),
      );
    },
  },
  {
    name: "f32Sqrt",
    run: (r, rm) => {
      const a = Math.abs(fin32(r));
      return check(
        "f32Sqrt",
        [a],
        () => f32Sqrt(a, rm),
        () => exactSqrt(a, FMT_F32, rm),
      );
    },
  },
  {
    name: "f32Fma",
    run: (r, rm) => {
      const a = fin32(r);
      const b = fin32(r);
      let c = fin32(r);
      if (r() < 0.4) {
        const p = Math.fround(a * b);
        if (finite(p)) c = -p;
      }
      return check(
        "f32Fma",
        [a, b, c],
        () => f32Fma(a, b, c, rm),
        () => exactFma(a, b, c, FMT_F32, rm),
      );
    },
  },
  {
    name: "f32FromF64",
    run: (r, rm) => {
      const a = r() < 0.5 ? fin64(r) : fin32(r) * (1 + r() * 2 ** -20);
      return check(
        "f32FromF64",
        [a],
        () => f32FromF64(a, rm),
        () => exactNarrow(a, FMT_F32, rm),
      );
    },
  },
  {
    name: "intToF",
    run: (r, rm) => {
      const hi = Math.floor(r() * 2 ** 32) | 0;
      const lo = r() < 0.5 ? Math.floor(r() * 2 ** 32) | 0 : (Math.floor(r() * 16) << Math.floor(r() * 28)) | 0;
      const kind = Math.floor(r() * 4);
      const v = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
      const n =
        kind === 0 ? BigInt.asIntN(32, v) : kind === 1 ? BigInt.asUintN(32, v) : kind === 2 ? BigInt.asIntN(64, v) : v;
      return (
        check(
          `intToF64/${kind}`,
          [hi, lo],
          () => intToF64(lo, hi, kind, rm),
          () => exactFromInt(n, FMT_F64, rm),
        ) ??
        check(
          `intToF32/${kind}`,
          [hi, lo],
          () => intToF32(lo, hi, kind, rm),
          () => exactFromInt(n, FMT_F32, rm),
        )
      );
    },
  },
];

describe("fast primitives agree with the exact BigInt path", () => {
  for (const c of cases) {
    it(`${c.name}, all rounding modes`, () => {
      const r = rng(c.name.length * 7919 + 17);
      const bad: string[] = [];
      for (let rm = 0; rm <= 4; rm++) {
        for (let i = 0; i < 5000; i++) {
          const m = c.run(r, rm);
          if (m !== null && bad.length < 10) bad.push(`rm=${rm} ${m}`);
        }
      }
      expect(bad).toEqual([]);
    });
  }
});
