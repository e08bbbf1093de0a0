// Shared low-level machinery of the FPU: the exception-flag accumulator,
// scratch views for reading raw bits, powers of two, neighbour stepping,
// overflow results, and the two fast rounding helpers (`adj64` for binary64
// results already rounded to nearest, `roundF32` for binary32 results).
// RISC-V unpriv 20240411 §20.2 (fcsr), IEEE 754-2019 §4.3, §7.4, §7.5.

/** Accrued exception flags as in fflags (RISC-V unpriv §20.2). */
export const FFLAG = { NX: 1, UF: 2, OF: 4, DZ: 8, NV: 16 } as const;
/** Rounding modes as encoded in rm / frm (RISC-V unpriv §20.2). */
export const RM = { RNE: 0, RTZ: 1, RDN: 2, RUP: 3, RMM: 4, DYN: 7 } as const;

export const NX = 1;
export const UF = 2;
export const OF = 4;
export const DZ = 8;
export const NV = 16;
export const RNE = 0;
export const RTZ = 1;
export const RDN = 2;
export const RUP = 3;
export const RMM = 4;

/** Flags raised by primitives since the last `takeFpFlags()` (one mutable field, no allocation). */
export const fpState = { fx: 0 };

/** Return the exception flags raised by primitives since the last call, and clear them. */
export function takeFpFlags(): number {
  const f = fpState.fx;
  fpState.fx = 0;
  return f;
}

// Scratch views (little-endian host, as regs.ts assumes).
export const SF = new Float64Array(1);
export const SI = new Int32Array(SF.buffer);
export const S32F = new Float32Array(1);
export const S32I = new Int32Array(S32F.buffer);

const POW2 = new Float64Array(2098);
{
  let v = 1;
  for (let k = 0; k <= 1023; k++, v *= 2) POW2[k + 1074] = v;
  v = 1;
  for (let k = 0; k >= -1074; k--, v /= 2) POW2[k + 1074] = v;
}
/** 2^k exactly, for integer k in [-1074, 1023]. */
export function pow2(k: number): number {
  return POW2[k + 1074];
}

export const MAX_F32 = (2 - pow2(-23)) * pow2(127);
export const MAX_F64 = Number.MAX_VALUE;
export const MIN_NORMAL_F32 = pow2(-126);
export const MIN_NORMAL_F64 = pow2(-1022);
const TWO_M127 = pow2(-127);
const TWO_M149 = pow2(-149);
const TWO_128 = pow2(127) * 2;

/** Bits of a binary32 value held in a double (the value must be exactly representable). */
export function f32ToBits(v: number): number {
  S32F[0] = v;
  return S32I[0];
}
/** The binary32 value of a bit pattern, as a double (NaN payloads are not preserved). */
export function f32FromBits(b: number): number {
  S32I[0] = b;
  return S32F[0];
}

/** The next double away from zero (r finite, nonzero). MAX steps to Infinity. */
export function nextAway(r: number): number {
  SF[0] = r;
  const lo = (SI[0] + 1) | 0;
  SI[0] = lo;
  if (lo === 0) SI[1] = (SI[1] + 1) | 0;
  return SF[0];
}
/** The next double toward zero (r finite, nonzero). */
export function nextTowardZero(r: number): number {
  SF[0] = r;
  const lo = SI[0];
  if (lo === 0) SI[1] = (SI[1] - 1) | 0;
  SI[0] = (lo - 1) | 0;
  return SF[0];
}

/** Result of an overflow (IEEE 754-2019 §7.4): raises OF|NX, returns ±Inf or ±max by mode. */
export function overflowResult(neg: boolean, rm: number, max: number): number {
  fpState.fx |= OF | NX;
  if (rm === RTZ || (rm === RDN && !neg) || (rm === RUP && neg)) return neg ? -max : max;
  return neg ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
}

/**
 * Directed rounding for a binary64 result. `r` = RN(X) (finite, nonzero, |r| > 2^-1022, so
 * neither tininess nor a subnormal result is possible); `err` = X - r exactly when `tieable`,
 * else only its sign is meaningful (division, square root: exact ties cannot occur).
 * Raises NX when inexact and OF when stepping past the largest finite value.
 */
export function adj64(r: number, err: number, rm: number, tieable: boolean): number {
  if (err === 0) return r;
  fpState.fx |= NX;
  let out = r;
  switch (rm) {
    case RNE:
      return r;
    case RTZ:
      if (r > 0 !== err > 0) out = nextTowardZero(r);
      break;
    case RDN:
      if (err < 0) out = r > 0 ? nextTowardZero(r) : nextAway(r);
      break;
    case RUP:
      if (err > 0) out = r > 0 ? nextAway(r) : nextTowardZero(r);
      break;
    default: // RMM: differs from RNE only on an exact tie broken toward zero.
      if (tieable && r > 0 === err > 0) {
        const n = nextAway(r);
        if (err + err === n - r) out = n;
      }
  }
  if (out - out !== 0) fpState.fx |= OF;
  return out;
}

let qInx = false;
/**
 * Round a magnitude to a grid of spacing `ulp`. The exact value is a + ε where sign(ε) = es
 * (in the direction of growing magnitude) and |ε| is below the granularity of `a` (so ε only
 * matters when `a` is on the grid or exactly halfway). `binadeLow` is the grid index of the
 * bottom of a binade (below it the grid halves), or -1 for a uniform grid. Sets qInx.
 */
function quant(a: number, es: number, ulp: number, rm: number, neg: boolean, binadeLow: number): number {
  const q = a / ulp;
  const qi = Math.floor(q);
  const fr = q - qi;
  if (fr === 0) {
    if (es === 0) {
      qInx = false;
      return a;
    }
    qInx = true;
    if (es > 0) return (rm === RUP && !neg) || (rm === RDN && neg) ? a + ulp : a;
    if (rm === RTZ || (rm === RDN && !neg) || (rm === RUP && neg)) return a - (qi === binadeLow ? ulp * 0.5 : ulp);
    return a;
  }
  qInx = true;
  let up: boolean;
  if (rm === RNE || rm === RMM) {
    if (fr !== 0.5) up = fr > 0.5;
    else if (es !== 0) up = es > 0;
    else up = rm === RMM || (qi & 1) === 1;
  } else if (rm === RTZ) up = false;
  else up = rm === RDN ? neg : !neg;
  return (up ? qi + 1 : qi) * ulp;
}

/**
 * Round X = d + ε to binary32 in mode rm, where d is a finite double, sign(ε) = sign(es), and
 * |ε| is smaller than the spacing of doubles at d (true when d = RN64(X)). When d is 0, X
 * must be exactly 0. Handles overflow, subnormals and tininess after rounding (§20.4: RISC-V
 * detects tininess after rounding). Returns the binary32 value as a double.
 */
export function roundF32(d: number, es: number, rm: number): number {
  if (d === 0) return d;
  const neg = d < 0;
  const a = neg ? -d : d;
  const em = neg ? -es : es;
  if (a >= TWO_128) return overflowResult(neg, rm, MAX_F32);
  if (a >= TWO_M127) {
    SF[0] = a;
    const e = ((SI[1] >>> 20) & 0x7ff) - 1023;
    const v = quant(a, em, pow2(e - 23), rm, neg, 0x800000);
    if (v >= TWO_128) return overflowResult(neg, rm, MAX_F32);
    if (v >= MIN_NORMAL_F32) {
      if (qInx) fpState.fx |= NX;
      return neg ? -v : v;
    }
  }
  // Tiny after rounding: deliver on the subnormal grid.
  const v = quant(a, em, TWO_M149, rm, neg, -1);
  if (qInx) fpState.fx |= UF | NX;
  return neg ? -v : v;
}

const SPLIT = 134217729; // 2^27 + 1 (Veltkamp)
/**
 * Dekker's TwoProduct error: a*b - p exactly, for p = RN(a*b), provided |a|,|b| < 2^995 and
 * the exponents satisfy e_a + e_b >= -969 (no underflow of the partial products).
 */
export function twoProdErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

/** x is +0. */
export function isPosZero(x: number): boolean {
  return x === 0 && 1 / x > 0;
}
