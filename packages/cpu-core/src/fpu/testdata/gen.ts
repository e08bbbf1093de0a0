// Operand generators and register helpers shared by the FPU tests (under testdata/, so
// the package does not publish it).
import { createRegisterFile } from "../../regs.js";
import type { FpContext } from "../index.js";

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export type Rand = () => number;
const u32 = (r: Rand) => Math.floor(r() * 4294967296) >>> 0;
const int = (r: Rand, n: number) => Math.floor(r() * n);

const dv = new DataView(new ArrayBuffer(8));
export function bitsToF64(b: bigint): number {
  dv.setBigUint64(0, b, true);
  return dv.getFloat64(0, true);
}
export function f64ToBitsBig(v: number): bigint {
  dv.setFloat64(0, v, true);
  return dv.getBigUint64(0, true);
}
export function bitsToF32(b: number): number {
  dv.setUint32(0, b >>> 0, true);
  return dv.getFloat32(0, true);
}
export function f32ToBitsU(v: number): number {
  dv.setFloat32(0, v, true);
  return dv.getUint32(0, true);
}

export const EDGE32: number[] = [
  0, 0x80000000, 1, 0x80000001, 3, 0x00400000, 0x007fffff, 0x807fffff, 0x00800000, 0x80800000, 0x00800001, 0x7f7fffff,
  0xff7fffff, 0x7f7ffffe, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xffa00000, 0x7fc12345,
  0x3f800000, 0xbf800000, 0x3f800001, 0x3f7fffff, 0x3f000000, 0xbf000000, 0x3effffff, 0x3fc00000, 0xbfc00000,
  0x40200000, 0xc0200000, 0x4b000000, 0x4b7fffff, 0x4b800000, 0x4b800001, 0x4effffff, 0x4f000000, 0xcf000000,
  0xcf000001, 0x4f7fffff, 0x4f800000, 0x5effffff, 0x5f000000, 0xdf000000, 0xdf000001, 0x5f7fffff, 0x5f800000,
  0x33800000, 0x34000000, 0x0c000000, 0x1f800000, 0x5f800001, 0x40400000, 0x40490fdb,
].map((x) => x >>> 0);

export const EDGE64: bigint[] = [
  0x0n,
  0x8000000000000000n,
  0x1n,
  0x8000000000000001n,
  0x3n,
  0x0008000000000000n,
  0x000fffffffffffffn,
  0x800fffffffffffffn,
  0x0010000000000000n,
  0x8010000000000000n,
  0x0010000000000001n,
  0x7fefffffffffffffn,
  0xffefffffffffffffn,
  0x7feffffffffffffen,
  0x7ff0000000000000n,
  0xfff0000000000000n,
  0x7ff8000000000000n,
  0xfff8000000000000n,
  0x7ff0000000000001n,
  0xfff4000000000000n,
  0x7ff8000012345678n,
  0x3ff0000000000000n,
  0xbff0000000000000n,
  0x3ff0000000000001n,
  0x3fefffffffffffffn,
  0x3fe0000000000000n,
  0xbfe0000000000000n,
  0x3fdfffffffffffffn,
  0x3ff8000000000000n,
  0xbff8000000000000n,
  0x4004000000000000n,
  0xc004000000000000n,
  0x4330000000000000n,
  0x433fffffffffffffn,
  0x4340000000000000n,
  0x41dfffffffc00000n,
  0x41dfffffffe00000n,
  0x41dfffffffffffffn,
  0x41e0000000000000n,
  0xc1e0000000000000n,
  0xc1e0000000200000n,
  0xc1e0000000000001n,
  0x41efffffffe00000n,
  0x41efffffffffffffn,
  0x41f0000000000000n,
  0x43dfffffffffffffn,
  0x43e0000000000000n,
  0xc3e0000000000000n,
  0xc3e0000000000001n,
  0x43efffffffffffffn,
  0x43f0000000000000n,
  0x3ca0000000000000n,
  0x3cb0000000000000n,
  0x3690000000000000n,
  0x36a0000000000000n,
  0x47efffffe0000000n,
  0x47efffff00000000n,
  0x47f0000000000000n,
  0x3810000000000000n,
  0x380fffffffffffffn,
  0x36a0000000000001n,
  0x3800000000000000n,
  0x4008000000000000n,
  0x400921fb54442d18n,
];

/** A random binary32 bit pattern from one of several distributions. */
export function rand32(r: Rand): number {
  const k = int(r, 8);
  const sign = r() < 0.5 ? 0 : 0x80000000;
  let mant = u32(r) & 0x7fffff;
  if (r() < 0.3) mant &= int(r, 2) ? 0x7ff000 : 0x7;
  if (r() < 0.15) mant |= 0x7ffff0;
  let exp: number;
  switch (k) {
    case 0:
      return u32(r);
    case 1:
      exp = 127 + int(r, 61) - 30;
      break;
    case 2:
      exp = int(r, 28);
      break;
    case 3:
      exp = 227 + int(r, 28);
      break;
    case 4:
      exp = 150 + int(r, 50); // near integer-conversion limits
      break;
    default:
      exp = 1 + int(r, 253);
  }
  return (sign | (exp << 23) | mant) >>> 0;
}

/** A random binary64 bit pattern. */
export function rand64(r: Rand): bigint {
  const k = int(r, 8);
  const sign = r() < 0.5 ? 0n : 1n << 63n;
  let mant = ((BigInt(u32(r) & 0xfffff) << 32n) | BigInt(u32(r))) & 0xfffffffffffffn;
  if (r() < 0.3) mant &= int(r, 2) ? 0xfffffff000000n : 0x7n;
  if (r() < 0.15) mant |= 0xffffffffffff0n;
  let exp: number;
  switch (k) {
    case 0:
      return (BigInt(u32(r)) << 32n) | BigInt(u32(r));
    case 1:
      exp = 1023 + int(r, 121) - 60;
      break;
    case 2:
      exp = int(r, 60);
      break;
    case 3:
      exp = 1987 + int(r, 60);
      break;
    case 4:
      exp = 1023 + 20 + int(r, 50);
      break;
    default:
      exp = 1 + int(r, 2045);
  }
  return sign | (BigInt(exp) << 52n) | mant;
}

/** A partner operand of a: nearby bits (cancellation), or a shifted exponent (alignment). */
export function near32(r: Rand, a: number): number {
  const k = int(r, 3);
  if (k === 0) return ((a ^ 0x80000000) + int(r, 9) - 4) >>> 0;
  if (k === 1) return (a + ((int(r, 30) - 15) << 23) + int(r, 5) - 2) >>> 0;
  return rand32(r);
}
export function near64(r: Rand, a: bigint): bigint {
  const k = int(r, 3);
  const m = (1n << 64n) - 1n;
  if (k === 0) return ((a ^ (1n << 63n)) + BigInt(int(r, 9) - 4)) & m;
  if (k === 1) return (a + (BigInt(int(r, 120) - 60) << 52n) + BigInt(int(r, 5) - 2)) & m;
  return rand64(r);
}

export function newCtx(): FpContext {
  const rf = createRegisterFile();
  return { x: rf.x, f: rf.f, fw: rf.fw, fflags: 0, frm: 0 };
}
export function setS(ctx: FpContext, r: number, bits: number): void {
  ctx.fw[2 * r] = bits | 0;
  ctx.fw[2 * r + 1] = -1;
}
export function setD(ctx: FpContext, r: number, bits: bigint): void {
  ctx.fw[2 * r] = Number(bits & 0xffffffffn) | 0;
  ctx.fw[2 * r + 1] = Number(bits >> 32n) | 0;
}
export function getD(ctx: FpContext, r: number): bigint {
  return (BigInt(ctx.fw[2 * r + 1] >>> 0) << 32n) | BigInt(ctx.fw[2 * r] >>> 0);
}
export function setX(ctx: FpContext, r: number, v: bigint): void {
  ctx.x[2 * r] = Number(v & 0xffffffffn) | 0;
  ctx.x[2 * r + 1] = Number((v >> 32n) & 0xffffffffn) | 0;
}
export function getX(ctx: FpContext, r: number): bigint {
  return (BigInt(ctx.x[2 * r + 1] >>> 0) << 32n) | BigInt(ctx.x[2 * r] >>> 0);
}

/** OP-FP encoding. */
export function opfp(funct5: number, fmt: number, rm: number, rd: number, rs1: number, rs2: number): number {
  return ((funct5 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | 0x53) >>> 0;
}
/** FMADD (0x43) / FMSUB (0x47) / FNMSUB (0x4b) / FNMADD (0x4f) encoding. */
export function r4(op: number, fmt: number, rm: number, rd: number, rs1: number, rs2: number, rs3: number): number {
  return ((rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | op) >>> 0;
}
