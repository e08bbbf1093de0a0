// The F and D extension execution unit (RISC-V unpriv 20240411 ch. 20 "F", ch. 21 "D"):
// OP-FP (0x53) and the four fused multiply-add opcodes (0x43/0x47/0x4b/0x4f), RV64.
// Loads/stores, mstatus.FS checks and FS=Dirty are the hart's.
import {
  classifyF32,
  classifyF64,
  f32Add,
  f32Div,
  f32Fma,
  f32FromF64,
  f32Mul,
  f32Sqrt,
  f64Add,
  f64Div,
  f64FmaCore,
  f64Mul,
  f64Sqrt,
  fpEq,
  fpLe,
  fpLt,
  fpMax,
  fpMin,
  fpToInt,
  intToF32,
  intToF64,
} from "./ops.js";
import { fpState, MAX_F32, MIN_NORMAL_F32, MIN_NORMAL_F64, NV, S32F, S32I } from "./round.js";

export {
  exactAdd,
  exactDiv,
  exactFma,
  exactFromInt,
  exactMul,
  exactNarrow,
  exactSqrt,
  FMT_F32,
  FMT_F64,
  type FpFormat,
  roundExact,
} from "./exact.js";
export {
  CVT,
  classifyF32,
  classifyF64,
  f32Add,
  f32Div,
  f32Fma,
  f32FromF64,
  f32Mul,
  f32Sqrt,
  f32Sub,
  f64Add,
  f64Div,
  f64Fma,
  f64Mul,
  f64Sqrt,
  f64Sub,
  fpEq,
  fpLe,
  fpLt,
  fpMax,
  fpMin,
  fpToInt,
  intToF32,
  intToF64,
  isSNaN32,
  isSNaN64,
} from "./ops.js";
export { FFLAG, f32FromBits, f32ToBits, RM, roundF32, takeFpFlags } from "./round.js";

/** What execFp needs from the hart: the register file (regs.ts layout) and fcsr fields. */
export interface FpContext {
  readonly x: Int32Array;
  readonly f: Float64Array;
  readonly fw: Int32Array;
  /** Accrued flags: NV=16 DZ=8 OF=4 UF=2 NX=1. */
  fflags: number;
  /** Dynamic rounding mode (frm CSR). */
  frm: number;
}

const CANON_NAN_S = 0x7fc00000;
const CANON_NAN_D_HI = 0x7ff80000;

/** Unboxed binary32 bits of f[r]: an improperly NaN-boxed value reads as the canonical NaN (§21.2). */
function sBits(fw: Int32Array, r: number): number {
  return fw[2 * r + 1] === -1 ? fw[2 * r] : CANON_NAN_S;
}
function sVal(fw: Int32Array, r: number): number {
  S32I[0] = fw[2 * r + 1] === -1 ? fw[2 * r] : CANON_NAN_S;
  return S32F[0];
}
/** NV if f[r], read as binary32, is a signalling NaN (from the raw bits, never a JS NaN). */
function sNaNS(fw: Int32Array, r: number): number {
  if (fw[2 * r + 1] !== -1) return 0;
  const b = fw[2 * r];
  return (b & 0x7fc00000) === 0x7f800000 && (b & 0x3fffff) !== 0 ? NV : 0;
}
function sNaND(fw: Int32Array, r: number): number {
  const hi = fw[2 * r + 1];
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) | fw[2 * r]) !== 0 ? NV : 0;
}
/** Write a binary32 result NaN-boxed; NaN → canonical NaN. */
function wrS(fw: Int32Array, rd: number, v: number): void {
  if (Number.isNaN(v)) fw[2 * rd] = CANON_NAN_S;
  else {
    S32F[0] = v;
    fw[2 * rd] = S32I[0];
  }
  fw[2 * rd + 1] = -1;
}
/** Write a binary64 result; NaN → canonical NaN. */
function wrD(f: Float64Array, fw: Int32Array, rd: number, v: number): void {
  if (Number.isNaN(v)) {
    fw[2 * rd] = 0;
    fw[2 * rd + 1] = CANON_NAN_D_HI;
  } else f[rd] = v;
}
function wrX(x: Int32Array, rd: number, v: number): void {
  if (rd !== 0) {
    x[2 * rd] = v;
    x[2 * rd + 1] = 0;
  }
}

/**
 * Execute one OP-FP (major opcode 0x53) or FMADD/FMSUB/FNMSUB/FNMADD (0x43/0x47/0x4b/0x4f)
 * instruction, RV64. Returns true when executed, false for an illegal encoding (reserved rm
 * 5/6, rm=7 with frm >= 5, unknown funct/fmt, nonzero reserved rs2 fields).
 */
export function execFp(ctx: FpContext, insn: number): boolean {
  const fw = ctx.fw;
  const f = ctx.f;
  const op = insn & 0x7f;
  const rd = (insn >>> 7) & 31;
  const funct3 = (insn >>> 12) & 7;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const fmt = (insn >>> 25) & 3;
  if (fmt > 1) return false; // H and Q are not implemented
  // §20.2: rm 5, 6 reserved; DYN with an invalid frm is illegal. Instructions that have an rm
  // field check it even when the result does not depend on it.
  const rm = funct3 === 7 ? ctx.frm : funct3;
  fpState.fx = 0;
  if (op !== 0x53) {
    if ((op & 0x73) !== 0x43 || rm > 4) return false;
    const rs3 = insn >>> 27;
    const negP = op === 0x4b || op === 0x4f; // FNMSUB, FNMADD: -(a*b)
    const negC = op === 0x47 || op === 0x4f; // FMSUB, FNMADD: -c
    if (fmt === 1) {
      const a = f[rs1];
      const b = f[rs2];
      const c = f[rs3];
      if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c))
        fpState.fx |= sNaND(fw, rs1) | sNaND(fw, rs2) | sNaND(fw, rs3);
      const r = f64FmaCore(negP ? -a : a, b, negC ? -c : c, rm, rm !== 0 || (ctx.fflags & 1) === 0);
      wrD(f, fw, rd, r);
    } else {
      const a = sVal(fw, rs1);
      const b = sVal(fw, rs2);
      const c = sVal(fw, rs3);
      if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c))
        fpState.fx |= sNaNS(fw, rs1) | sNaNS(fw, rs2) | sNaNS(fw, rs3);
      wrS(fw, rd, f32Fma(negP ? -a : a, b, negC ? -c : c, rm));
    }
    if (fpState.fx !== 0) ctx.fflags |= fpState.fx;
    return true;
  }
  // With RNE and NX already accrued, a result that is finite and not tiny needs no flag work.
  const quick = rm === 0 && (ctx.fflags & 1) !== 0;
  const x = ctx.x;
  switch (insn >>> 27) {
    case 0x00: // FADD
    case 0x01: // FSUB
    case 0x02: // FMUL
    case 0x03: {
      // FDIV
      if (rm > 4) return false;
      const k = insn >>> 27;
      if (fmt === 1) {
        const a = f[rs1];
        const b = f[rs2];
        let r = k === 0 ? a + b : k === 1 ? a - b : k === 2 ? a * b : a / b;
        const ar = Math.abs(r);
        if (
          !(quick && (k < 2 ? ar < Number.POSITIVE_INFINITY : ar > MIN_NORMAL_F64 && ar < Number.POSITIVE_INFINITY))
        ) {
          if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaND(fw, rs1) | sNaND(fw, rs2);
          r = k === 0 ? f64Add(a, b, rm) : k === 1 ? f64Add(a, -b, rm) : k === 2 ? f64Mul(a, b, rm) : f64Div(a, b, rm);
        }
        wrD(f, fw, rd, r);
      } else {
        const a = sVal(fw, rs1);
        const b = sVal(fw, rs2);
        let r = Math.fround(k === 0 ? a + b : k === 1 ? a - b : k === 2 ? a * b : a / b);
        const ar = Math.abs(r);
        if (!(quick && ar > MIN_NORMAL_F32 && ar <= MAX_F32)) {
          if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaNS(fw, rs1) | sNaNS(fw, rs2);
          r = k === 0 ? f32Add(a, b, rm) : k === 1 ? f32Add(a, -b, rm) : k === 2 ? f32Mul(a, b, rm) : f32Div(a, b, rm);
        }
        wrS(fw, rd, r);
      }
      break;
    }
    case 0x0b: {
      // FSQRT
      if (rm > 4 || rs2 !== 0) return false;
      if (fmt === 1) {
        const a = f[rs1];
        let r: number;
        if (quick && a > 0 && a < Number.POSITIVE_INFINITY) r = Math.sqrt(a);
        else {
          if (Number.isNaN(a)) fpState.fx |= sNaND(fw, rs1);
          r = f64Sqrt(a, rm);
        }
        wrD(f, fw, rd, r);
      } else {
        const a = sVal(fw, rs1);
        let r: number;
        if (quick && a > 0 && a < Number.POSITIVE_INFINITY) r = Math.fround(Math.sqrt(a));
        else {
          if (Number.isNaN(a)) fpState.fx |= sNaNS(fw, rs1);
          r = f32Sqrt(a, rm);
        }
        wrS(fw, rd, r);
      }
      break;
    }
    case 0x04: {
      // FSGNJ / FSGNJN / FSGNJX: bit operations, no flags, no canonicalisation.
      if (funct3 > 2) return false;
      if (fmt === 1) {
        const ahi = fw[2 * rs1 + 1];
        const bhi = fw[2 * rs2 + 1];
        const s = funct3 === 0 ? bhi : funct3 === 1 ? ~bhi : ahi ^ bhi;
        fw[2 * rd] = fw[2 * rs1];
        fw[2 * rd + 1] = (ahi & 0x7fffffff) | (s & 0x80000000);
      } else {
        const a = sBits(fw, rs1);
        const b = sBits(fw, rs2);
        const s = funct3 === 0 ? b : funct3 === 1 ? ~b : a ^ b;
        fw[2 * rd] = (a & 0x7fffffff) | (s & 0x80000000);
        fw[2 * rd + 1] = -1;
      }
      break;
    }
    case 0x05: {
      // FMIN / FMAX
      if (funct3 > 1) return false;
      if (fmt === 1) {
        const a = f[rs1];
        const b = f[rs2];
        if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaND(fw, rs1) | sNaND(fw, rs2);
        wrD(f, fw, rd, funct3 === 0 ? fpMin(a, b) : fpMax(a, b));
      } else {
        const a = sVal(fw, rs1);
        const b = sVal(fw, rs2);
        if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaNS(fw, rs1) | sNaNS(fw, rs2);
        wrS(fw, rd, funct3 === 0 ? fpMin(a, b) : fpMax(a, b));
      }
      break;
    }
    case 0x08: {
      // FCVT.S.D (fmt S, rs2 = 1) / FCVT.D.S (fmt D, rs2 = 0)
      if (rm > 4 || rs2 !== (fmt === 0 ? 1 : 0)) return false;
      if (fmt === 0) {
        const a = f[rs1];
        if (Number.isNaN(a)) fpState.fx |= sNaND(fw, rs1);
        wrS(fw, rd, f32FromF64(a, rm));
      } else {
        const a = sVal(fw, rs1);
        if (Number.isNaN(a)) fpState.fx |= sNaNS(fw, rs1);
        wrD(f, fw, rd, a);
      }
      break;
    }
    case 0x14: {
      // FLE (0) / FLT (1) / FEQ (2): FEQ is quiet, FLT/FLE signal on any NaN (§20.8).
      if (funct3 > 2) return false;
      let a: number;
      let b: number;
      if (fmt === 1) {
        a = f[rs1];
        b = f[rs2];
        if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaND(fw, rs1) | sNaND(fw, rs2);
      } else {
        a = sVal(fw, rs1);
        b = sVal(fw, rs2);
        if (Number.isNaN(a) || Number.isNaN(b)) fpState.fx |= sNaNS(fw, rs1) | sNaNS(fw, rs2);
      }
      wrX(x, rd, funct3 === 2 ? fpEq(a, b) : funct3 === 1 ? fpLt(a, b) : fpLe(a, b));
      break;
    }
    case 0x18: {
      // FCVT.{W,WU,L,LU}.{S,D}
      if (rm > 4 || rs2 > 3) return false;
      let a: number;
      if (fmt === 1) a = f[rs1];
      else a = sVal(fw, rs1);
      fpToInt(a, rm, rs2, x, rd);
      break;
    }
    case 0x1a: {
      // FCVT.{S,D}.{W,WU,L,LU}
      if (rm > 4 || rs2 > 3) return false;
      const lo = x[2 * rs1];
      const hi = x[2 * rs1 + 1];
      if (fmt === 1) wrD(f, fw, rd, intToF64(lo, hi, rs2, rm));
      else wrS(fw, rd, intToF32(lo, hi, rs2, rm));
      break;
    }
    case 0x1c: {
      // FMV.X.W / FMV.X.D (funct3 0), FCLASS (funct3 1)
      if (rs2 !== 0 || funct3 > 1) return false;
      if (funct3 === 0) {
        if (rd !== 0) {
          const lo = fw[2 * rs1];
          x[2 * rd] = lo;
          x[2 * rd + 1] = fmt === 1 ? fw[2 * rs1 + 1] : lo >> 31;
        }
      } else {
        wrX(x, rd, fmt === 1 ? classifyF64(fw[2 * rs1 + 1], fw[2 * rs1]) : classifyF32(sBits(fw, rs1)));
      }
      break;
    }
    case 0x1e: {
      // FMV.W.X / FMV.D.X
      if (rs2 !== 0 || funct3 !== 0) return false;
      fw[2 * rd] = x[2 * rs1];
      fw[2 * rd + 1] = fmt === 1 ? x[2 * rs1 + 1] : -1;
      break;
    }
    default:
      return false;
  }
  if (fpState.fx !== 0) ctx.fflags |= fpState.fx;
  return true;
}
