// The M extension's 64-bit multiply-high and divide paths (no BigInt in the
// hart) against a BigInt reference of unpriv §13.1–13.2, on edge and random operands.
import { describe, expect, it } from "vitest";
import { rng } from "../testing/rng.js";
import { Bus } from "./bus.js";
import { Hart } from "./hart.js";
import { ENGINES } from "./translator.js";

const M64 = (1n << 64n) - 1n;
const s64 = (v: bigint) => BigInt.asIntN(64, v);
const u64 = (v: bigint) => BigInt.asUintN(64, v);

function reference(f3: number, a: bigint, b: bigint): bigint {
  const as = s64(a);
  const bs = s64(b);
  switch (f3) {
    case 0:
      return u64(a * b);
    case 1:
      return u64((as * bs) >> 64n);
    case 2:
      return u64((as * b) >> 64n);
    case 3:
      return u64((a * b) >> 64n);
    case 4:
      return b === 0n ? M64 : as === -(1n << 63n) && bs === -1n ? a : u64(as / bs);
    case 5:
      return b === 0n ? M64 : a / b;
    case 6:
      return b === 0n ? a : as === -(1n << 63n) && bs === -1n ? 0n : u64(as % bs);
    default:
      return b === 0n ? a : a % b;
  }
}

// under both engines: the translator's blocks inline MUL and call the hart for the rest
for (const engine of ENGINES)
  describe(`M extension, 64-bit (unpriv §13), ${engine}`, () => {
    const bus = new Bus({ ramBase: 0x80000000, ramSize: 1 << 16 });
    const hart = new Hart(bus, { engine, translateAfter: 1 });
    for (let f3 = 0; f3 < 8; f3++) {
      bus.i32[2 * f3] = (1 << 25) | (7 << 20) | (6 << 15) | (f3 << 12) | (5 << 7) | 0x33; // op t0, t1, t2
      bus.i32[2 * f3 + 1] = 0x6f; // j .
    }
    const exec = (f3: number, a: bigint, b: bigint): bigint => {
      hart.pc = 0x80000000 + 8 * f3;
      hart.x[12] = Number(a & 0xffffffffn) | 0;
      hart.x[13] = Number(a >> 32n) | 0;
      hart.x[14] = Number(b & 0xffffffffn) | 0;
      hart.x[15] = Number(b >> 32n) | 0;
      hart.run(2);
      return (BigInt(hart.x[11] >>> 0) << 32n) | BigInt(hart.x[10] >>> 0);
    };
    const edges = [
      0n,
      1n,
      2n,
      3n,
      7n,
      M64,
      M64 - 1n,
      1n << 63n,
      (1n << 63n) - 1n,
      1n << 32n,
      (1n << 32n) - 1n,
      (1n << 32n) + 1n,
      1n << 53n,
      (1n << 53n) + 1n,
      0xffffffff00000000n,
      0x123456789abcdefn,
      1n << 21n,
    ];
    const r = rng(99);
    const rand = () => (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
    const pairs: [bigint, bigint][] = [];
    for (const a of edges) for (const b of edges) pairs.push([a, b]);
    for (let i = 0; i < 3000; i++) {
      const k = r();
      const a = rand();
      const b = k < 0.3 ? rand() >> BigInt(Math.floor(r() * 64)) : k < 0.6 ? BigInt(Math.floor(r() * 2 ** 32)) : rand();
      pairs.push([a, b], [b, a]);
    }
    for (const [f3, name] of ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"].entries()) {
      it(name, () => {
        const bad: string[] = [];
        for (const [a, b] of pairs) {
          const got = exec(f3, a, b);
          const want = reference(f3, a, b);
          if (got !== want)
            bad.push(
              `${name}(0x${a.toString(16)}, 0x${b.toString(16)}) = 0x${got.toString(16)}, want 0x${want.toString(16)}`,
            );
        }
        expect(bad.slice(0, 10)).toEqual([]);
      });
    }
  });
