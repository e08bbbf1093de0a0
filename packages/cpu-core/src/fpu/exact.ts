// Exact slow path: IEEE 754 arithmetic on finite operands with BigInt significands, one
// rounding per operation in any of the five RISC-V modes, with all five flags. Used for the
// hard cases of binary64 (subnormal or overflowing results, huge or tiny operands, fma
// corners) and as the independent reference of the differential tests. Not for hot paths.
import { fpState, MAX_F32, MAX_F64, NX, overflowResult, pow2, RDN, RMM, RNE, RTZ, SF, SI, UF } from "./round.js";

/** A binary interchange format: precision p (with the hidden bit), emin, emax, largest finite. */
export interface FpFormat {
  readonly p: number;
  readonly emin: number;
  readonly emax: number;
  readonly max: number;
}
export const FMT_F32: FpFormat = { p: 24, emin: -126, emax: 127, max: MAX_F32 };
export const FMT_F64: FpFormat = { p: 53, emin: -1022, emax: 1023, max: MAX_F64 };

let dM = 0n;
let dE = 0;
let dNeg = false;
/** Split a finite double into dNeg, dM, dE with |x| = dM * 2^dE. */
function decompose(x: number): void {
  SF[0] = x;
  const hi = SI[1];
  const ex = (hi >>> 20) & 0x7ff;
  dNeg = hi < 0;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(SI[0] >>> 0);
  if (ex === 0) dE = -1074;
  else {
    m |= 1n << 52n;
    dE = ex - 1075;
  }
  dM = m;
}

function bitLen(m: bigint): number {
  return m === 0n ? 0 : m.toString(2).length;
}

let rInx = false;
/** m >> k (k >= 1) rounded in mode rm; `sticky` = nonzero bits below m. Sets rInx. */
function shiftRound(m: bigint, k: number, sticky: boolean, rm: number, neg: boolean): bigint {
  const K = BigInt(k);
  const q = m >> K;
  const rem = m - (q << K);
  rInx = rem !== 0n || sticky;
  if (!rInx) return q;
  const half = 1n << (K - 1n);
  let up: boolean;
  switch (rm) {
    case RNE:
      up = rem > half || (rem === half && (sticky || (q & 1n) === 1n));
      break;
    case RMM:
      up = rem >= half;
      break;
    case RTZ:
      up = false;
      break;
    case RDN:
      up = neg;
      break;
    default:
      up = !neg;
  }
  return up ? q + 1n : q;
}

/**
 * Round (-1)^neg * (m + s) * 2^e to `fmt` in mode rm, where m > 0 and s is a nonzero fraction
 * in (0, 1) when `sticky`, else 0. Overflow and tininess are judged after rounding with an
 * unbounded exponent (IEEE 754-2019 §7.4, §7.5; RISC-V unpriv §20.4).
 */
export function roundExact(neg: boolean, m: bigint, e: number, sticky: boolean, fmt: FpFormat, rm: number): number {
  let nb = bitLen(m);
  if (nb < fmt.p + 2) {
    const k = fmt.p + 2 - nb;
    m <<= BigInt(k);
    e -= k;
    nb += k;
  }
  const drop = nb - fmt.p;
  let mr = shiftRound(m, drop, sticky, rm, neg);
  const inx = rInx;
  let er = e + drop;
  if (mr === 1n << BigInt(fmt.p)) {
    mr >>= 1n;
    er++;
  }
  const eu = er + fmt.p - 1;
  if (eu > fmt.emax) return overflowResult(neg, rm, fmt.max);
  if (eu >= fmt.emin) {
    if (inx) fpState.fx |= NX;
    const v = Number(mr) * pow2(er);
    return neg ? -v : v;
  }
  const lsb = fmt.emin - fmt.p + 1;
  const m2 = shiftRound(m, lsb - e, sticky, rm, neg);
  if (rInx) fpState.fx |= UF | NX;
  const v = Number(m2) * pow2(lsb);
  return neg ? -v : v;
}

/** Sign of an exact zero sum x + y (IEEE 754-2019 §6.3). */
function zeroSum(xNeg: boolean, yNeg: boolean, rm: number): number {
  if (xNeg === yNeg) return xNeg ? -0 : 0;
  return rm === RDN ? -0 : 0;
}

/** Exact sum of ±ma*2^ea and ±mb*2^eb, rounded. */
function sumRound(
  aNeg: boolean,
  ma: bigint,
  ea: number,
  bNeg: boolean,
  mb: bigint,
  eb: number,
  fmt: FpFormat,
  rm: number,
): number {
  if (ma === 0n && mb === 0n) return zeroSum(aNeg, bNeg, rm);
  const e = Math.min(ea, eb);
  const A = ma << BigInt(ea - e);
  const B = mb << BigInt(eb - e);
  const s = (aNeg ? -A : A) + (bNeg ? -B : B);
  if (s === 0n) return rm === RDN ? -0 : 0;
  return s < 0n ? roundExact(true, -s, e, false, fmt, rm) : roundExact(false, s, e, false, fmt, rm);
}

/** a + b, finite operands. */
export function exactAdd(a: number, b: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  const an = dNeg;
  const am = dM;
  const ae = dE;
  decompose(b);
  return sumRound(an, am, ae, dNeg, dM, dE, fmt, rm);
}

/** a * b, finite operands. */
export function exactMul(a: number, b: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  const an = dNeg;
  const am = dM;
  const ae = dE;
  decompose(b);
  const neg = an !== dNeg;
  if (am === 0n || dM === 0n) return neg ? -0 : 0;
  return roundExact(neg, am * dM, ae + dE, false, fmt, rm);
}

/** a * b + c in one rounding, finite operands. */
export function exactFma(a: number, b: number, c: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  const an = dNeg;
  const am = dM;
  const ae = dE;
  decompose(b);
  const pn = an !== dNeg;
  const pm = am * dM;
  const pe = ae + dE;
  decompose(c);
  return sumRound(pn, pm, pe, dNeg, dM, dE, fmt, rm);
}

/** a / b, finite operands, b nonzero. */
export function exactDiv(a: number, b: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  const an = dNeg;
  const am = dM;
  const ae = dE;
  decompose(b);
  const neg = an !== dNeg;
  if (am === 0n) return neg ? -0 : 0;
  const k = fmt.p + 2 + bitLen(dM);
  const num = am << BigInt(k);
  const q = num / dM;
  return roundExact(neg, q, ae - dE - k, q * dM !== num, fmt, rm);
}

function isqrt(n: bigint): bigint {
  let x = 1n << BigInt((bitLen(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** sqrt(a), a finite and >= 0. */
export function exactSqrt(a: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  if (dM === 0n) return a;
  let m = dM;
  let e = dE;
  let s = Math.max(0, 2 * fmt.p + 4 - bitLen(m));
  if (((e - s) & 1) !== 0) s++;
  m <<= BigInt(s);
  e -= s;
  const r = isqrt(m);
  return roundExact(false, r, e / 2, r * r !== m, fmt, rm);
}

/** Round an integer (BigInt) to `fmt` in mode rm. */
export function exactFromInt(v: bigint, fmt: FpFormat, rm: number): number {
  if (v === 0n) return 0;
  return v < 0n ? roundExact(true, -v, 0, false, fmt, rm) : roundExact(false, v, 0, false, fmt, rm);
}

/** Round a finite double to `fmt` (binary64 to binary32 narrowing). */
export function exactNarrow(a: number, fmt: FpFormat, rm: number): number {
  decompose(a);
  if (dM === 0n) return a;
  return roundExact(dNeg, dM, dE, false, fmt, rm);
}
