// The register-file layout, defined once and imported by every engine
// (interpreter, translator, FPU, debugger): STYLE.md 5.
//
// Integer registers: 64-bit values held as pairs of 32-bit halves in one
// Int32Array, little-endian: x[2*i] = bits 31..0, x[2*i + 1] = bits 63..32.
// x0 is kept at zero by the engines (writes to it are dropped).
//
// FP registers: 64-bit raw bit patterns in one buffer seen as Float64Array
// (f[i]) and as Int32Array halves (fw[2*i] = low word, fw[2*i + 1] = high word).
// Single-precision values are NaN-boxed: the high word is 0xffffffff
// (RISC-V unpriv 20240411 §21.2).

export const XLEN = 64;
export const NUM_XREGS = 32;
export const NUM_FREGS = 32;

export interface RegisterFile {
  /** x0..x31 as (lo, hi) Int32 pairs: 64 entries. */
  readonly x: Int32Array;
  /** f0..f31 as doubles (for arithmetic on D values). Same memory as `fw`. */
  readonly f: Float64Array;
  /** f0..f31 as (lo, hi) Int32 pairs (for raw bits, NaN-boxing). */
  readonly fw: Int32Array;
}

/**
 * A register file; in `buffer` at `xOffset` (x) and `fOffset` (f) when given (the translator's
 * WebAssembly memory).
 */
export function createRegisterFile(buffer?: ArrayBuffer | SharedArrayBuffer, xOffset = 0, fOffset = 256): RegisterFile {
  if (buffer) {
    return {
      x: new Int32Array(buffer, xOffset, NUM_XREGS * 2),
      f: new Float64Array(buffer, fOffset, NUM_FREGS),
      fw: new Int32Array(buffer, fOffset, NUM_FREGS * 2),
    };
  }
  const fbuf = new ArrayBuffer(NUM_FREGS * 8);
  return { x: new Int32Array(NUM_XREGS * 2), f: new Float64Array(fbuf), fw: new Int32Array(fbuf) };
}

/** ABI names, index = register number. */
export const XREG_ABI = [
  "zero",
  "ra",
  "sp",
  "gp",
  "tp",
  "t0",
  "t1",
  "t2",
  "s0",
  "s1",
  "a0",
  "a1",
  "a2",
  "a3",
  "a4",
  "a5",
  "a6",
  "a7",
  "s2",
  "s3",
  "s4",
  "s5",
  "s6",
  "s7",
  "s8",
  "s9",
  "s10",
  "s11",
  "t3",
  "t4",
  "t5",
  "t6",
] as const;
export const FREG_ABI = [
  "ft0",
  "ft1",
  "ft2",
  "ft3",
  "ft4",
  "ft5",
  "ft6",
  "ft7",
  "fs0",
  "fs1",
  "fa0",
  "fa1",
  "fa2",
  "fa3",
  "fa4",
  "fa5",
  "fa6",
  "fa7",
  "fs2",
  "fs3",
  "fs4",
  "fs5",
  "fs6",
  "fs7",
  "fs8",
  "fs9",
  "fs10",
  "fs11",
  "ft8",
  "ft9",
  "ft10",
  "ft11",
] as const;

/** Read x[i] as an unsigned 64-bit bigint (slow path: debuggers, tests). */
export function readX(x: Int32Array, i: number): bigint {
  return (BigInt(x[2 * i + 1] >>> 0) << 32n) | BigInt(x[2 * i] >>> 0);
}

/** Write x[i] from a bigint (taken modulo 2^64); writes to x0 are dropped. */
export function writeX(x: Int32Array, i: number, v: bigint): void {
  if (i === 0) return;
  const u = BigInt.asUintN(64, v);
  x[2 * i] = Number(u & 0xffffffffn) | 0;
  x[2 * i + 1] = Number(u >> 32n) | 0;
}
