// Pure FP primitives on values (doubles). binary32 operands and results are doubles holding
// exact binary32 values. A NaN result means "the canonical NaN" (the caller writes
// 0x7fc00000 / 0x7ff8000000000000, RISC-V unpriv §20.3). Contract with the caller: JS NaN
// payloads are not trusted, so the caller raises NV for signalling-NaN operands (read from
// the raw bits, see isSNaN32 / isSNaN64); the primitives treat every NaN operand as quiet.
// Flags accumulate in fpState.fx (read them with takeFpFlags()).
// Method: see DESIGN.md (JS double result + error-free transform, exact BigInt slow path).
import { exactAdd, exactDiv, exactFma, exactMul, exactSqrt, FMT_F64 } from "./exact.js";
import {
  adj64,
  DZ,
  fpState,
  isPosZero,
  MIN_NORMAL_F64,
  NV,
  NX,
  nextAway,
  OF,
  pow2,
  RDN,
  RMM,
  RNE,
  RTZ,
  RUP,
  roundF32,
  SF,
  SI,
  twoProdErr,
} from "./round.js";

const SAFE_LO = pow2(-967); // below: Dekker's product error may underflow
const SAFE_HI = pow2(995); // above: Veltkamp's split may overflow
const BIG = pow2(1020); // above: TwoSum intermediates may overflow
const TWO_32 = 4294967296;
const TWO_63 = pow2(63);
const TWO_64 = pow2(64);

/** RDN gives -0 for an exact zero sum unless both addends are +0 (IEEE 754-2019 §6.3). */
function zeroSum(r: number, a: number, b: number, rm: number): number {
  return rm === RDN && !(isPosZero(a) && isPosZero(b)) ? -0 : r;
}

// ---------------------------------------------------------------- binary64

/** binary64 a + b in mode rm (0..4). */
export function f64Add(a: number, b: number, rm: number): number {
  const r = a + b;
  if (r - r !== 0) {
    if (Number.isNaN(r)) {
      if (!Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV; // inf - inf
      return Number.NaN;
    }
    if (a - a === 0 && b - b === 0) return exactAdd(a, b, FMT_F64, rm); // overflow
    return r;
  }
  if (r === 0) return zeroSum(r, a, b, rm);
  // TwoSum (Knuth): exact; a subnormal sum is always exact (err = 0).
  const bb = r - a;
  const err = a - (r - bb) + (b - bb);
  if (Number.isNaN(err)) return exactAdd(a, b, FMT_F64, rm);
  return adj64(r, err, rm, true);
}

/** binary64 a - b. */
export function f64Sub(a: number, b: number, rm: number): number {
  return f64Add(a, -b, rm);
}

/** binary64 a * b. */
export function f64Mul(a: number, b: number, rm: number): number {
  const r = a * b;
  if (Number.isNaN(r)) {
    if (!Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV; // 0 * inf
    return Number.NaN;
  }
  const ar = Math.abs(r);
  // |r| < 2^1020 keeps Dekker's partial products finite.
  if (ar >= SAFE_LO && ar < BIG && Math.abs(a) < SAFE_HI && Math.abs(b) < SAFE_HI) {
    return adj64(r, twoProdErr(a, b, r), rm, true);
  }
  if (a - a !== 0 || b - b !== 0 || a === 0 || b === 0) return r; // exact: infinity or zero
  return exactMul(a, b, FMT_F64, rm);
}

/** binary64 a / b. */
export function f64Div(a: number, b: number, rm: number): number {
  const r = a / b;
  if (Number.isNaN(r)) {
    if (!Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV; // 0/0, inf/inf
    return Number.NaN;
  }
  if (b === 0) {
    if (a - a === 0) fpState.fx |= DZ;
    return r;
  }
  const ar = Math.abs(r);
  const aa = Math.abs(a);
  if (ar > MIN_NORMAL_F64 && ar < SAFE_HI && aa >= SAFE_LO && aa < SAFE_HI && Math.abs(b) < SAFE_HI) {
    // Residual a - r*b exactly: p + pe = r*b; a - p is exact (Sterbenz).
    const p = r * b;
    const rem = a - p - twoProdErr(r, b, p);
    if (rem === 0) return r;
    return adj64(r, rem > 0 === b > 0 ? 1 : -1, rm, false);
  }
  if (a - a !== 0 || b - b !== 0 || a === 0) return r; // exact: inf/x, x/inf, 0/x
  return exactDiv(a, b, FMT_F64, rm);
}

/** binary64 sqrt(a). */
export function f64Sqrt(a: number, rm: number): number {
  if (Number.isNaN(a)) return Number.NaN;
  if (a < 0) {
    fpState.fx |= NV;
    return Number.NaN;
  }
  if (a === 0 || a === Number.POSITIVE_INFINITY) return a;
  const r = Math.sqrt(a);
  if (a >= SAFE_LO && a < BIG) {
    const p = r * r;
    const rem = a - p - twoProdErr(r, r, p);
    if (rem === 0) return r;
    return adj64(r, rem, rm, false);
  }
  return exactSqrt(a, FMT_F64, rm);
}

/**
 * Exact sign of th + tl + pe - r - h (Shewchuk's grow-expansion: each TwoSum is exact, the
 * components stay nonoverlapping, the sign is that of the largest nonzero one).
 */
function expSign(th: number, tl: number, pe: number, r: number, h: number): number {
  // [tl, th] + pe
  let q = pe;
  let s = q + tl;
  let z = s - q;
  const h0 = q - (s - z) + (tl - z);
  q = s;
  s = q + th;
  z = s - q;
  const h1 = q - (s - z) + (th - z);
  const h2 = s;
  // + (-r)
  q = -r;
  s = q + h0;
  z = s - q;
  let g0 = q - (s - z) + (h0 - z);
  q = s;
  s = q + h1;
  z = s - q;
  let g1 = q - (s - z) + (h1 - z);
  q = s;
  s = q + h2;
  z = s - q;
  let g2 = q - (s - z) + (h2 - z);
  let g3 = s;
  if (h !== 0) {
    q = -h;
    s = q + g0;
    z = s - q;
    const k0 = q - (s - z) + (g0 - z);
    q = s;
    s = q + g1;
    z = s - q;
    const k1 = q - (s - z) + (g1 - z);
    q = s;
    s = q + g2;
    z = s - q;
    const k2 = q - (s - z) + (g2 - z);
    q = s;
    s = q + g3;
    z = s - q;
    const k3 = q - (s - z) + (g3 - z);
    if (s !== 0) return s > 0 ? 1 : -1;
    g0 = k0;
    g1 = k1;
    g2 = k2;
    g3 = k3;
  }
  if (g3 !== 0) return g3 > 0 ? 1 : -1;
  if (g2 !== 0) return g2 > 0 ? 1 : -1;
  if (g1 !== 0) return g1 > 0 ? 1 : -1;
  return g0 > 0 ? 1 : g0 < 0 ? -1 : 0;
}

/**
 * binary64 fused a*b + c, one rounding. `flags` false lets the caller skip the exactness
 * analysis when rm is RNE and NX is already accrued (the result is the same).
 */
export function f64FmaCore(a: number, b: number, c: number, rm: number, flags: boolean): number {
  const p = a * b;
  const ap = Math.abs(p);
  // Fast path first: these range checks also exclude NaN, infinities and zero products.
  if (ap >= SAFE_LO && ap < BIG && Math.abs(c) < BIG && Math.abs(a) < SAFE_HI && Math.abs(b) < SAFE_HI) {
    // Boldo-Melquiond: RN(th + RO(tl + pe)) = RN(a*b + c), RO = round to odd.
    const pe = twoProdErr(a, b, p);
    const th = c + p;
    let z = th - c;
    const tl = c - (th - z) + (p - z);
    let v = tl + pe;
    z = v - tl;
    const e2 = tl - (v - z) + (pe - z);
    if (e2 !== 0) {
      // v inexact: if its last significand bit is even, take the odd neighbour toward e2.
      SF[0] = v;
      const lo = SI[0];
      if ((lo & 1) === 0) {
        if (e2 > 0 === v > 0) SI[0] = lo | 1;
        else {
          if (lo === 0) SI[1] = (SI[1] - 1) | 0;
          SI[0] = (lo - 1) | 0;
        }
        v = SF[0];
      }
    }
    const r = th + v;
    const ar = Math.abs(r);
    if (ar > MIN_NORMAL_F64 && ar < Number.POSITIVE_INFINITY) {
      if (!flags && rm === RNE) return r;
      const s = expSign(th, tl, pe, r, 0);
      if (s === 0) return r;
      if (rm !== RMM) return adj64(r, s, rm, false);
      fpState.fx |= NX;
      if (s > 0 === r > 0) {
        const n = nextAway(r);
        if (expSign(th, tl, pe, r, (n - r) * 0.5) === 0) {
          if (n - n !== 0) fpState.fx |= OF;
          return n;
        }
      }
      return r;
    }
    return exactFma(a, b, c, FMT_F64, rm); // tiny, subnormal or zero result
  }
  return fmaSpecial(a, b, c, p, rm);
}

/** fma with NaN, infinite or zero operands, or operands outside the fast path's range. */
function fmaSpecial(a: number, b: number, c: number, p: number, rm: number): number {
  if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c)) {
    // RISC-V unpriv §20.6: inf * 0 + qNaN still raises NV.
    if ((a === 0 && b - b !== 0 && !Number.isNaN(b)) || (b === 0 && a - a !== 0 && !Number.isNaN(a))) fpState.fx |= NV;
    return Number.NaN;
  }
  if (Number.isNaN(p)) {
    fpState.fx |= NV; // inf * 0
    return Number.NaN;
  }
  if (p - p !== 0 || c - c !== 0) {
    if (a - a !== 0 || b - b !== 0) {
      if (c - c !== 0 && c > 0 !== p > 0) {
        fpState.fx |= NV; // inf - inf
        return Number.NaN;
      }
      return p;
    }
    if (c - c !== 0) return c;
    return exactFma(a, b, c, FMT_F64, rm); // finite product overflowed
  }
  if (a === 0 || b === 0) return f64Add(p, c, rm); // exact signed-zero product
  if (c === 0) return f64Mul(a, b, rm);
  return exactFma(a, b, c, FMT_F64, rm);
}

/** binary64 fused a*b + c (FMADD.D; negate operands for FMSUB/FNMSUB/FNMADD). */
export function f64Fma(a: number, b: number, c: number, rm: number): number {
  return f64FmaCore(a, b, c, rm, true);
}

// ---------------------------------------------------------------- binary32 (computed in double)

/** binary32 a + b. */
export function f32Add(a: number, b: number, rm: number): number {
  const d = a + b;
  if (d - d !== 0) {
    if (Number.isNaN(d) && !Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV;
    return d;
  }
  if (d === 0) return zeroSum(d, a, b, rm);
  const bb = d - a;
  return roundF32(d, a - (d - bb) + (b - bb), rm);
}

/** binary32 a - b. */
export function f32Sub(a: number, b: number, rm: number): number {
  return f32Add(a, -b, rm);
}

/** binary32 a * b (the double product is exact: 24 + 24 bits). */
export function f32Mul(a: number, b: number, rm: number): number {
  const d = a * b;
  if (d - d !== 0 || d === 0) {
    if (Number.isNaN(d) && !Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV;
    return d;
  }
  return roundF32(d, 0, rm);
}

/** binary32 a / b. */
export function f32Div(a: number, b: number, rm: number): number {
  const d = a / b;
  if (d - d !== 0 || d === 0) {
    if (Number.isNaN(d)) {
      if (!Number.isNaN(a) && !Number.isNaN(b)) fpState.fx |= NV;
    } else if (b === 0 && a - a === 0) fpState.fx |= DZ;
    return d;
  }
  const p = d * b;
  const rem = a - p - twoProdErr(d, b, p);
  return roundF32(d, rem === 0 ? 0 : rem > 0 === b > 0 ? 1 : -1, rm);
}

/** binary32 sqrt(a). */
export function f32Sqrt(a: number, rm: number): number {
  if (Number.isNaN(a)) return Number.NaN;
  if (a < 0) {
    fpState.fx |= NV;
    return Number.NaN;
  }
  if (a === 0 || a === Number.POSITIVE_INFINITY) return a;
  const d = Math.sqrt(a);
  const p = d * d;
  return roundF32(d, a - p - twoProdErr(d, d, p), rm);
}

/** binary32 fused a*b + c (the double product is exact; TwoSum gives the exact sum). */
export function f32Fma(a: number, b: number, c: number, rm: number): number {
  if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c)) {
    if ((a === 0 && b - b !== 0 && !Number.isNaN(b)) || (b === 0 && a - a !== 0 && !Number.isNaN(a))) fpState.fx |= NV;
    return Number.NaN;
  }
  const p = a * b;
  const d = p + c;
  if (d - d !== 0) {
    if (Number.isNaN(d)) fpState.fx |= NV; // inf * 0 or inf - inf
    return d;
  }
  if (d === 0) return zeroSum(d, p, c, rm);
  const bb = d - p;
  return roundF32(d, p - (d - bb) + (c - bb), rm);
}

// ---------------------------------------------------------------- conversions

/** FCVT.S.D: narrow a double to binary32. */
export function f32FromF64(v: number, rm: number): number {
  if (v - v !== 0 || v === 0) return v;
  return roundF32(v, 0, rm);
}

/** Conversion kinds, as encoded in rs2 of FCVT.int.fmt / FCVT.fmt.int. */
export const CVT = { W: 0, WU: 1, L: 2, LU: 3 } as const;

/**
 * FCVT.{W,WU,L,LU}.{S,D}: convert v to an integer in mode rm and write it to x[rd] (dropped
 * for rd = 0). 32-bit results are sign-extended. Out-of-range and NaN inputs saturate and
 * raise NV only (RISC-V unpriv §20.7); in-range inexact results raise NX.
 */
export function fpToInt(v: number, rm: number, kind: number, x: Int32Array, rd: number): void {
  let r: number;
  let inx = false;
  if (Number.isNaN(v)) r = Number.POSITIVE_INFINITY;
  else if (v - v !== 0) r = v;
  else {
    const t = Math.trunc(v);
    const fr = v - t;
    if (fr === 0) r = t;
    else {
      inx = true;
      switch (rm) {
        case RTZ:
          r = t;
          break;
        case RDN:
          r = fr < 0 ? t - 1 : t;
          break;
        case RUP:
          r = fr > 0 ? t + 1 : t;
          break;
        case RMM:
          r = Math.abs(fr) >= 0.5 ? t + (fr > 0 ? 1 : -1) : t;
          break;
        default: {
          const af = Math.abs(fr);
          r = af > 0.5 || (af === 0.5 && t % 2 !== 0) ? t + (fr > 0 ? 1 : -1) : t;
        }
      }
    }
  }
  let lo: number;
  let hi: number;
  let nv = false;
  switch (kind) {
    case 0: // W
      if (r > 2147483647) {
        nv = true;
        lo = 0x7fffffff;
      } else if (r < -2147483648) {
        nv = true;
        lo = -2147483648;
      } else lo = r | 0;
      hi = lo >> 31;
      break;
    case 1: // WU
      if (r > 4294967295) {
        nv = true;
        lo = -1;
      } else if (r < 0) {
        nv = true;
        lo = 0;
      } else lo = r | 0;
      hi = lo >> 31;
      break;
    case 2: // L
      if (r >= TWO_63) {
        nv = true;
        lo = -1;
        hi = 0x7fffffff;
      } else if (r < -TWO_63) {
        nv = true;
        lo = 0;
        hi = -2147483648;
      } else {
        const h = Math.floor(r / TWO_32);
        lo = (r - h * TWO_32) | 0;
        hi = h | 0;
      }
      break;
    default: // LU
      if (r >= TWO_64) {
        nv = true;
        lo = -1;
        hi = -1;
      } else if (r < 0) {
        nv = true;
        lo = 0;
        hi = 0;
      } else {
        const h = Math.floor(r / TWO_32);
        lo = (r - h * TWO_32) | 0;
        hi = h | 0;
      }
  }
  if (nv) fpState.fx |= NV;
  else if (inx) fpState.fx |= NX;
  if (rd !== 0) {
    x[2 * rd] = lo;
    x[2 * rd + 1] = hi;
  }
}

/** FCVT.D.{W,WU,L,LU}: the integer (lo, hi halves of x) rounded to binary64. */
export function intToF64(lo: number, hi: number, kind: number, rm: number): number {
  if (kind === 0) return lo | 0;
  if (kind === 1) return lo >>> 0;
  const H = (kind === 2 ? hi | 0 : hi >>> 0) * TWO_32;
  const L = lo >>> 0;
  const d = H + L;
  const z = d - H;
  const err = H - (d - z) + (L - z);
  return d === 0 ? 0 : adj64(d, err, rm, true);
}

/** FCVT.S.{W,WU,L,LU}: the integer (lo, hi halves of x) rounded to binary32. */
export function intToF32(lo: number, hi: number, kind: number, rm: number): number {
  if (kind === 0) return roundF32(lo | 0, 0, rm);
  if (kind === 1) return roundF32(lo >>> 0, 0, rm);
  const H = (kind === 2 ? hi | 0 : hi >>> 0) * TWO_32;
  const L = lo >>> 0;
  const d = H + L;
  const z = d - H;
  return roundF32(d, H - (d - z) + (L - z), rm);
}

// ---------------------------------------------------------------- compare, min/max, classify

/** FEQ: quiet (the caller raises NV for signalling NaNs). */
export function fpEq(a: number, b: number): number {
  return a === b ? 1 : 0;
}
/** FLT: signalling, NV on any NaN (RISC-V unpriv §20.8). */
export function fpLt(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) {
    fpState.fx |= NV;
    return 0;
  }
  return a < b ? 1 : 0;
}
/** FLE: signalling, NV on any NaN. */
export function fpLe(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) {
    fpState.fx |= NV;
    return 0;
  }
  return a <= b ? 1 : 0;
}

/** FMIN (IEEE 754-2019 minimumNumber, RISC-V F 2.2): -0 < +0; one NaN → the other; two → NaN. */
export function fpMin(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  if (a < b) return a;
  if (b < a) return b;
  return a === 0 && (1 / a < 0 || 1 / b < 0) ? -0 : a;
}
/** FMAX (maximumNumber): +0 > -0; one NaN → the other; two → NaN. */
export function fpMax(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  if (a > b) return a;
  if (b > a) return b;
  return a === 0 && (1 / a > 0 || 1 / b > 0) ? 0 : a;
}

/** binary32 bit pattern is a signalling NaN. */
export function isSNaN32(bits: number): boolean {
  return (bits & 0x7fc00000) === 0x7f800000 && (bits & 0x3fffff) !== 0;
}
/** binary64 (hi, lo words) is a signalling NaN. */
export function isSNaN64(hi: number, lo: number): boolean {
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) | lo) !== 0;
}

/** FCLASS.S mask (RISC-V unpriv §20.9). */
export function classifyF32(bits: number): number {
  const neg = bits < 0;
  const e = (bits >>> 23) & 0xff;
  const m = bits & 0x7fffff;
  if (e === 0xff) {
    if (m === 0) return neg ? 1 : 1 << 7;
    return (m & 0x400000) !== 0 ? 1 << 9 : 1 << 8;
  }
  if (e === 0) {
    if (m === 0) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}
/** FCLASS.D mask from the (hi, lo) words. */
export function classifyF64(hi: number, lo: number): number {
  const neg = hi < 0;
  const e = (hi >>> 20) & 0x7ff;
  const m = (hi & 0xfffff) | lo;
  if (e === 0x7ff) {
    if (m === 0) return neg ? 1 : 1 << 7;
    return (hi & 0x80000) !== 0 ? 1 << 9 : 1 << 8;
  }
  if (e === 0) {
    if (m === 0) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}
