// Differential tests of the F and D extensions through the whole hart
// (FLD/FSD, NaN-boxing, fcsr, rounding modes, flags) against QEMU: random FP
// instruction streams over edge-case operands; f registers, integer results
// and the accrued flags are dumped through the UART and must match.
import { describe, expect, it } from "vitest";
import { runElf } from "../testing/machine.js";
import { PRELUDE } from "../testing/prelude.js";
import { runQemu } from "../testing/qemu.js";
import { rng } from "../testing/rng.js";
import { buildElf, requireTool } from "../testing/toolchain.js";
import { ENGINES } from "./translator.js";

const D_EDGE = [
  0x0000000000000000n,
  0x8000000000000000n,
  0x3ff0000000000000n,
  0xbff0000000000000n,
  0x7ff0000000000000n,
  0xfff0000000000000n,
  0x7ff8000000000000n,
  0x7ff4000000000000n /* sNaN */,
  0x0000000000000001n,
  0x000fffffffffffffn,
  0x0010000000000000n,
  0x7fefffffffffffffn,
  0x43e0000000000000n /* 2^63 */,
  0xc3e0000000000000n,
  0x41dfffffffc00000n,
  0x3fe0000000000000n /* 0.5 */,
  0x4004000000000000n /* 2.5 */,
  0x3cb0000000000000n,
];
const S_EDGE = [
  0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fa00000 /* sNaN */, 0x00000001,
  0x007fffff, 0x00800000, 0x7f7fffff, 0x4f000000 /* 2^31 */, 0xcf000000, 0x3f000000, 0x40200000, 0x33800000,
];
const RM = ["rne", "rtz", "rdn", "rup", "rmm"];
const BIN = ["fadd", "fsub", "fmul", "fdiv", "fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"];
const ROUNDED = new Set(["fadd", "fsub", "fmul", "fdiv", "fsqrt"]);
const FMA = ["fmadd", "fmsub", "fnmadd", "fnmsub"];
const CMP = ["feq", "flt", "fle"];
const TO_INT = ["fcvt.w", "fcvt.wu", "fcvt.l", "fcvt.lu"];
const FROM_INT = ["w", "wu", "l", "lu"];

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function program(seed: number, count: number): string {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const f = () => `f${Math.floor(r() * 32)}`;
  const xr = () => `s${2 + Math.floor(r() * 10)}`; // s2..s11: not touched by the dump routine
  const lines: string[] = [];
  for (let i = 0; i < 32; i++) {
    const k = r();
    if (k < 0.45) {
      const bits =
        r() < 0.6 ? pick(D_EDGE) : (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
      lines.push(`    li t0, ${hex(bits)}`, `    fmv.d.x f${i}, t0`);
    } else if (k < 0.9) {
      const bits = r() < 0.6 ? pick(S_EDGE) : Math.floor(r() * 2 ** 32);
      lines.push(`    li t0, ${hex(BigInt(bits))}`, `    fmv.w.x f${i}, t0`);
    } else {
      // an improperly NaN-boxed single (upper half not all ones)
      lines.push(`    li t0, ${hex(0x12345678_3f800000n)}`, `    fmv.d.x f${i}, t0`);
    }
  }
  for (let i = 2; i < 12; i++) lines.push(`    li s${i}, ${Math.floor(r() * 2 ** 32) - 2 ** 31}`);
  for (let i = 0; i < count; i++) {
    const fmt = r() < 0.5 ? "d" : "s";
    const k = r();
    const rm = r() < 0.3 ? "" : `, ${pick(RM)}`;
    if (k < 0.4) {
      const op = pick(BIN);
      lines.push(`    ${op}.${fmt} ${f()}, ${f()}, ${f()}${ROUNDED.has(op) ? rm : ""}`);
    } else if (k < 0.48) lines.push(`    fsqrt.${fmt} ${f()}, ${f()}${rm}`);
    else if (k < 0.62) lines.push(`    ${pick(FMA)}.${fmt} ${f()}, ${f()}, ${f()}, ${f()}${rm}`);
    else if (k < 0.7) lines.push(`    ${pick(CMP)}.${fmt} ${xr()}, ${f()}, ${f()}`);
    else if (k < 0.74) lines.push(`    fclass.${fmt} ${xr()}, ${f()}`);
    else if (k < 0.84) lines.push(`    ${pick(TO_INT)}.${fmt} ${xr()}, ${f()}${rm}`);
    else if (k < 0.92) {
      const src = pick(FROM_INT);
      const exact = fmt === "d" && (src === "w" || src === "wu"); // exact conversions take no rm in gas
      lines.push(`    fcvt.${fmt}.${src} ${f()}, ${xr()}${exact ? "" : rm}`);
    } else if (k < 0.97) lines.push(fmt === "d" ? `    fcvt.d.s ${f()}, ${f()}` : `    fcvt.s.d ${f()}, ${f()}${rm}`);
    else lines.push(`    fmv.x.${fmt === "d" ? "d" : "w"} ${xr()}, ${f()}`);
  }
  const dumpF = Array.from({ length: 32 }, (_, i) => `    fmv.x.d a0, f${i}\n    call puthex`).join("\n");
  const dumpX = Array.from({ length: 10 }, (_, i) => `    mv a0, s${i + 2}\n    call puthex`).join("\n");
  return `${PRELUDE}
test_main:
${lines.join("\n")}
    frflags a0
    call puthex
${dumpF}
${dumpX}
    j pass
`;
}

describe("differential vs QEMU: random F/D streams through the hart", () => {
  const ok = requireTool("riscv64-unknown-elf-gcc") && requireTool("qemu-system-riscv64");
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    it.skipIf(!ok)(`seed ${seed}`, () => {
      const elf = buildElf(program(seed, 300));
      const ref = runQemu(elf);
      expect(ref.code).toBe(0);
      for (const engine of ENGINES) {
        const ours = runElf(elf, { maxInstructions: 2_000_000, hart: { engine, translateAfter: 1 } });
        expect(ours.code, engine).toBe(0);
        expect(ours.output.split("\n"), engine).toEqual(ref.output.split("\n"));
      }
    });
  }
});
