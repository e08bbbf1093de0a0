// Hand-written corner cases of the RISC-V F and D chapters (unpriv 20240411 ch. 20, 21).
import { describe, expect, it } from "vitest";
import { execFp, FFLAG, fpToInt, RM, takeFpFlags } from "./index.js";
import { getD, getX, newCtx, opfp, r4, setD, setS, setX } from "./testdata/gen.js";

const { NV, DZ, OF, UF, NX } = FFLAG;
const S = 0;
const D = 1;
// funct5 values
const FADD = 0x00;
const FMUL = 0x02;
const FDIV = 0x03;
const FSQRT = 0x0b;
const FSGNJ = 0x04;
const FMINMAX = 0x05;
const FCVT_FF = 0x08;
const FCMP = 0x14;
const FCVT_XF = 0x18;
const FCVT_FX = 0x1a;
const FMV_XF = 0x1c;
const FMV_FX = 0x1e;

const QNAN_S = 0x7fc00000;
const SNAN_S = 0x7f800001;
const QNAN_D = 0x7ff8000000000000n;
const SNAN_D = 0x7ff0000000000001n;
const ONE_S = 0x3f800000;
const ONE_D = 0x3ff0000000000000n;
const PZ_D = 0n;
const NZ_D = 0x8000000000000000n;

/** Run one instruction on f1..f3 / x1 operands; returns ctx. */
function exec(insn: number, setup: (c: ReturnType<typeof newCtx>) => void, frm = 0) {
  const c = newCtx();
  c.frm = frm;
  setup(c);
  const ok = execFp(c, insn);
  return { c, ok, flags: c.fflags };
}
const sOut = (c: ReturnType<typeof newCtx>, r = 4) => {
  expect(c.fw[2 * r + 1]).toBe(-1); // NaN-boxed result
  return c.fw[2 * r] >>> 0;
};

describe("FMIN/FMAX (F 2.2: minimumNumber/maximumNumber)", () => {
  const cases: [number, number, number, number, number][] = [
    // [funct3 (0 min, 1 max), a, b, result, flags]
    [0, 0x80000000, 0, 0x80000000, 0],
    [0, 0, 0x80000000, 0x80000000, 0],
    [1, 0x80000000, 0, 0, 0],
    [1, 0, 0x80000000, 0, 0],
    [0, QNAN_S, ONE_S, ONE_S, 0],
    [1, ONE_S, QNAN_S, ONE_S, 0],
    [0, SNAN_S, ONE_S, ONE_S, NV],
    [1, ONE_S, SNAN_S, ONE_S, NV],
    [0, QNAN_S, 0xffc00001, QNAN_S, 0],
    [1, SNAN_S, QNAN_S, QNAN_S, NV],
    [0, 0xbf800000, ONE_S, 0xbf800000, 0],
  ];
  it.each(cases)("S funct3=%i %x,%x → %x flags %i", (f3, a, b, want, fl) => {
    const { c, flags } = exec(opfp(FMINMAX, S, f3, 4, 1, 2), (c) => {
      setS(c, 1, a);
      setS(c, 2, b);
    });
    expect(sOut(c)).toBe(want);
    expect(flags).toBe(fl);
  });
  it("D: -0/+0 ordering, sNaN signals, two NaNs give the canonical NaN", () => {
    const run = (f3: number, a: bigint, b: bigint) => {
      const { c, flags } = exec(opfp(FMINMAX, D, f3, 4, 1, 2), (c) => {
        setD(c, 1, a);
        setD(c, 2, b);
      });
      return [getD(c, 4), flags];
    };
    expect(run(0, PZ_D, NZ_D)).toEqual([NZ_D, 0]);
    expect(run(1, NZ_D, PZ_D)).toEqual([PZ_D, 0]);
    expect(run(0, SNAN_D, ONE_D)).toEqual([ONE_D, NV]);
    expect(run(1, 0xfff8000000000123n, 0x7ff8000000000456n)).toEqual([QNAN_D, 0]);
    expect(run(0, SNAN_D, SNAN_D)).toEqual([QNAN_D, NV]);
  });
});

describe("FCVT float→integer saturation (§20.7) and rounding", () => {
  const MAXU = 0xffffffffffffffffn;
  const rows: [string, number, number, number, bigint, number][] = [
    // [name, kind, value, rm, x result, flags]
    ["w NaN", 0, Number.NaN, 0, 0x7fffffffn, NV],
    ["w +inf", 0, Infinity, 0, 0x7fffffffn, NV],
    ["w -inf", 0, -Infinity, 0, 0xffffffff80000000n, NV],
    ["w 2^31", 0, 2 ** 31, 0, 0x7fffffffn, NV],
    ["w 2^31-0.5 RNE rounds out", 0, 2 ** 31 - 0.5, 0, 0x7fffffffn, NV],
    ["w 2^31-0.5 RTZ fits", 0, 2 ** 31 - 0.5, 1, 0x7fffffffn, NX],
    ["w -2^31", 0, -(2 ** 31), 0, 0xffffffff80000000n, 0],
    ["w -2^31-1", 0, -(2 ** 31) - 1, 0, 0xffffffff80000000n, NV],
    ["w -1.5 RNE", 0, -1.5, 0, 0xfffffffffffffffen, NX],
    ["w 2.5 RNE", 0, 2.5, 0, 2n, NX],
    ["w 2.5 RMM", 0, 2.5, 4, 3n, NX],
    ["w -2.5 RMM", 0, -2.5, 4, 0xfffffffffffffffdn, NX],
    ["w 0.5 RMM", 0, 0.5, 4, 1n, NX],
    ["w 0.4999 RMM", 0, 0.49999999999999994, 4, 0n, NX],
    ["w -0.5 RUP", 0, -0.5, 3, 0n, NX],
    ["w 1.2 RDN", 0, 1.2, 2, 1n, NX],
    ["w -1.2 RDN", 0, -1.2, 2, 0xfffffffffffffffen, NX],
    ["wu NaN", 1, Number.NaN, 0, MAXU, NV],
    ["wu +inf", 1, Infinity, 0, MAXU, NV],
    ["wu -inf", 1, -Infinity, 0, 0n, NV],
    ["wu -1", 1, -1, 0, 0n, NV],
    ["wu -0.3 RTZ", 1, -0.3, 1, 0n, NX],
    ["wu -0.3 RDN", 1, -0.3, 2, 0n, NV],
    ["wu 3e9 sign-extended", 1, 3e9, 0, 0xffffffffb2d05e00n, 0],
    ["wu 2^32", 1, 2 ** 32, 0, MAXU, NV],
    ["l NaN", 2, Number.NaN, 0, 0x7fffffffffffffffn, NV],
    ["l 2^63", 2, 2 ** 63, 0, 0x7fffffffffffffffn, NV],
    ["l -2^63", 2, -(2 ** 63), 0, 0x8000000000000000n, 0],
    ["l -inf", 2, -Infinity, 0, 0x8000000000000000n, NV],
    ["l -2^51-0.5 RNE", 2, -(2 ** 51) - 0.5, 0, BigInt.asUintN(64, -(2n ** 51n)), NX],
    ["l -2^51-0.5 RMM", 2, -(2 ** 51) - 0.5, 4, BigInt.asUintN(64, -(2n ** 51n) - 1n), NX],
    ["lu NaN", 3, Number.NaN, 0, MAXU, NV],
    ["lu 2^64", 3, 2 ** 64, 0, MAXU, NV],
    ["lu 2^64-2048", 3, 2 ** 64 - 2048, 0, 0xfffffffffffff800n, 0],
    ["lu -inf", 3, -Infinity, 0, 0n, NV],
    ["lu -0.0", 3, -0, 0, 0n, 0],
  ];
  it.each(rows)("%s", (_n, kind, v, rm, want, fl) => {
    const c = newCtx();
    takeFpFlags();
    fpToInt(v, rm, kind, c.x, 5);
    expect(getX(c, 5)).toBe(want);
    expect(takeFpFlags()).toBe(fl);
  });
  it("through execFp from S and D registers, with sNaN", () => {
    let r = exec(opfp(FCVT_XF, S, 1, 5, 1, 0), (c) => setS(c, 1, 0xcf000001)); // fcvt.w.s -2^31-256
    expect([getX(r.c, 5), r.flags]).toEqual([0xffffffff80000000n, NV]);
    r = exec(opfp(FCVT_XF, D, 0, 5, 1, 3), (c) => setD(c, 1, SNAN_D)); // fcvt.lu.d sNaN
    expect([getX(r.c, 5), r.flags]).toEqual([0xffffffffffffffffn, NV]);
    r = exec(opfp(FCVT_XF, S, 0, 5, 1, 1), (c) => setS(c, 1, 0x4f400000)); // fcvt.wu.s 3*2^30
    expect([getX(r.c, 5), r.flags]).toEqual([0xffffffffc0000000n, 0]);
  });
});

describe("FCLASS (§20.9)", () => {
  const s: [number, number][] = [
    [0xff800000, 1 << 0],
    [0xbf800000, 1 << 1],
    [0x807fffff, 1 << 2],
    [0x80000000, 1 << 3],
    [0x00000000, 1 << 4],
    [0x00000001, 1 << 5],
    [0x7f7fffff, 1 << 6],
    [0x7f800000, 1 << 7],
    [0x7f800001, 1 << 8],
    [0xffbfffff, 1 << 8],
    [0x7fc00000, 1 << 9],
    [0xffffffff, 1 << 9],
  ];
  it.each(s)("S %x → %i", (bits, mask) => {
    const { c, flags } = exec(opfp(FMV_XF, S, 1, 5, 1, 0), (c) => setS(c, 1, bits));
    expect(getX(c, 5)).toBe(BigInt(mask));
    expect(flags).toBe(0);
  });
  const d: [bigint, number][] = [
    [0xfff0000000000000n, 1 << 0],
    [0xc000000000000000n, 1 << 1],
    [0x800fffffffffffffn, 1 << 2],
    [NZ_D, 1 << 3],
    [PZ_D, 1 << 4],
    [0x0000000000000001n, 1 << 5],
    [0x0010000000000000n, 1 << 6],
    [0x7ff0000000000000n, 1 << 7],
    [SNAN_D, 1 << 8],
    [0x7ff4000000000000n, 1 << 8],
    [QNAN_D, 1 << 9],
  ];
  it.each(d)("D %x → %i", (bits, mask) => {
    const { c } = exec(opfp(FMV_XF, D, 1, 5, 1, 0), (c) => setD(c, 1, bits));
    expect(getX(c, 5)).toBe(BigInt(mask));
  });
  it("an improperly NaN-boxed S operand classifies as quiet NaN", () => {
    const { c } = exec(opfp(FMV_XF, S, 1, 5, 1, 0), (c) => setD(c, 1, 0x000000003f800000n));
    expect(getX(c, 5)).toBe(512n);
  });
});

describe("NaN boxing (§21.2)", () => {
  it("improperly boxed operands read as the canonical NaN, without NV even if the low bits are an sNaN", () => {
    const { c, flags } = exec(opfp(FADD, S, 0, 4, 1, 2), (c) => {
      setD(c, 1, 0x000000007f800001n);
      setS(c, 2, ONE_S);
    });
    expect(sOut(c)).toBe(QNAN_S);
    expect(flags).toBe(0);
  });
  it("FSGNJ.S uses the canonical NaN for an unboxed rs1 and boxes its result", () => {
    const { c } = exec(opfp(FSGNJ, S, 1, 4, 1, 2), (c) => {
      setD(c, 1, 0x1234567800000000n);
      setS(c, 2, 0);
    });
    expect(sOut(c)).toBe(0xffc00000); // FSGNJN with +0: sign set
  });
  it("FSGNJ/FSGNJN/FSGNJX.D work on raw bits (no canonicalisation)", () => {
    const run = (f3: number, a: bigint, b: bigint) =>
      getD(
        exec(opfp(FSGNJ, D, f3, 4, 1, 2), (c) => {
          setD(c, 1, a);
          setD(c, 2, b);
        }).c,
        4,
      );
    expect(run(0, SNAN_D, NZ_D)).toBe(0xfff0000000000001n);
    expect(run(1, 0xbff0000000000000n, NZ_D)).toBe(ONE_D);
    expect(run(2, 0xbff0000000000000n, NZ_D)).toBe(ONE_D);
  });
  it("FCVT.D.S of an unboxed value gives the canonical NaN without flags", () => {
    const { c, flags } = exec(opfp(FCVT_FF, D, 0, 4, 1, 0), (c) => setD(c, 1, 0x3ff0000000000000n));
    expect(getD(c, 4)).toBe(QNAN_D);
    expect(flags).toBe(0);
  });
  it("FCVT.D.S of a boxed sNaN raises NV and gives the canonical NaN", () => {
    const { c, flags } = exec(opfp(FCVT_FF, D, 0, 4, 1, 0), (c) => setS(c, 1, 0xff800123));
    expect(getD(c, 4)).toBe(QNAN_D);
    expect(flags).toBe(NV);
  });
  it("FMV.X.W ignores boxing and sign-extends; FMV.W.X boxes; FMV.X.D/FMV.D.X copy 64 bits", () => {
    let r = exec(opfp(FMV_XF, S, 0, 5, 1, 0), (c) => setD(c, 1, 0x0000000080000001n));
    expect(getX(r.c, 5)).toBe(0xffffffff80000001n);
    r = exec(opfp(FMV_FX, S, 0, 4, 1, 0), (c) => setX(c, 1, 0xdeadbeef7f800001n));
    expect(getD(r.c, 4)).toBe(0xffffffff7f800001n);
    r = exec(opfp(FMV_XF, D, 0, 5, 1, 0), (c) => setD(c, 1, SNAN_D));
    expect(getX(r.c, 5)).toBe(SNAN_D);
    r = exec(opfp(FMV_FX, D, 0, 4, 1, 0), (c) => setX(c, 1, 0xfff0000000000001n));
    expect(getD(r.c, 4)).toBe(0xfff0000000000001n);
    expect(r.flags).toBe(0);
  });
  it("arithmetic NaN results are canonical; S results are boxed", () => {
    const { c, flags } = exec(opfp(FMUL, S, 0, 4, 1, 2), (c) => {
      setS(c, 1, 0xffc12345);
      setS(c, 2, ONE_S);
    });
    expect(sOut(c)).toBe(QNAN_S);
    expect(flags).toBe(0);
  });
});

describe("comparisons: FEQ quiet, FLT/FLE signalling (§20.8)", () => {
  const run = (f3: number, a: number, b: number) => {
    const { c, flags } = exec(opfp(FCMP, S, f3, 5, 1, 2), (c) => {
      setS(c, 1, a);
      setS(c, 2, b);
    });
    return [getX(c, 5), flags];
  };
  it("FEQ", () => {
    expect(run(2, QNAN_S, ONE_S)).toEqual([0n, 0]);
    expect(run(2, SNAN_S, ONE_S)).toEqual([0n, NV]);
    expect(run(2, 0x80000000, 0)).toEqual([1n, 0]);
  });
  it("FLT / FLE", () => {
    expect(run(1, QNAN_S, ONE_S)).toEqual([0n, NV]);
    expect(run(0, ONE_S, QNAN_S)).toEqual([0n, NV]);
    expect(run(1, 0x80000000, 0)).toEqual([0n, 0]);
    expect(run(0, 0x80000000, 0)).toEqual([1n, 0]);
    expect(run(1, 0xbf800000, ONE_S)).toEqual([1n, 0]);
  });
  it("D FEQ sNaN signals", () => {
    const { c, flags } = exec(opfp(FCMP, D, 2, 5, 1, 2), (c) => {
      setD(c, 1, ONE_D);
      setD(c, 2, SNAN_D);
    });
    expect([getX(c, 5), flags]).toEqual([0n, NV]);
  });
});

describe("illegal encodings → false", () => {
  const cases: [string, number, number][] = [
    ["fadd.d rm=5", opfp(FADD, D, 5, 4, 1, 2), 0],
    ["fadd.s rm=6", opfp(FADD, S, 6, 4, 1, 2), 0],
    ["fadd.d DYN with frm=5", opfp(FADD, D, 7, 4, 1, 2), 5],
    ["fadd.d DYN with frm=7", opfp(FADD, D, 7, 4, 1, 2), 7],
    ["fadd.h (fmt=2)", opfp(FADD, 2, 0, 4, 1, 2), 0],
    ["fadd.q (fmt=3)", opfp(FADD, 3, 0, 4, 1, 2), 0],
    ["fsqrt.d rs2=1", opfp(FSQRT, D, 0, 4, 1, 1), 0],
    ["fsgnj funct3=3", opfp(FSGNJ, D, 3, 4, 1, 2), 0],
    ["fmin funct3=2 (Zfa fminm)", opfp(FMINMAX, S, 2, 4, 1, 2), 0],
    ["fcvt.s.d rs2=0", opfp(FCVT_FF, S, 0, 4, 1, 0), 0],
    ["fcvt.d.s rs2=1", opfp(FCVT_FF, D, 0, 4, 1, 1), 0],
    ["fcvt.d.s rm=5 (rm still decoded)", opfp(FCVT_FF, D, 5, 4, 1, 0), 0],
    ["fcvt.d.w DYN frm=6", opfp(FCVT_FX, D, 7, 4, 1, 0), 6],
    ["fcvt.w.d rs2=4", opfp(FCVT_XF, D, 0, 5, 1, 4), 0],
    ["fcvt.d.w rs2=8", opfp(FCVT_FX, D, 0, 4, 1, 8), 0],
    ["fcmp funct3=3", opfp(FCMP, D, 3, 5, 1, 2), 0],
    ["fmv.x.d rs2=1", opfp(FMV_XF, D, 0, 5, 1, 1), 0],
    ["fclass funct3=2", opfp(FMV_XF, D, 2, 5, 1, 0), 0],
    ["fmv.d.x funct3=1", opfp(FMV_FX, D, 1, 4, 1, 0), 0],
    ["unknown funct5 0x06", opfp(0x06, D, 0, 4, 1, 2), 0],
    ["fmadd.d rm=5", r4(0x43, D, 5, 4, 1, 2, 3), 0],
    ["fnmadd.s DYN frm=5", r4(0x4f, S, 7, 4, 1, 2, 3), 5],
    ["fmadd.q", r4(0x43, 3, 0, 4, 1, 2, 3), 0],
    ["not an FP opcode", 0x00000013, 0],
  ];
  it.each(cases)("%s", (_n, insn, frm) => {
    const { ok, c } = exec(insn, (c) => setD(c, 4, 0x1234n), frm);
    expect(ok).toBe(false);
    expect(getD(c, 4)).toBe(0x1234n);
  });
});

describe("x0 and integer results", () => {
  it("writes to x0 are dropped (FEQ, FCVT.W.D, FMV.X.D, FCLASS)", () => {
    for (const insn of [
      opfp(FCMP, D, 2, 0, 1, 1),
      opfp(FCVT_XF, D, 0, 0, 1, 0),
      opfp(FMV_XF, D, 0, 0, 1, 0),
      opfp(FMV_XF, D, 1, 0, 1, 0),
    ]) {
      const { c, ok } = exec(insn, (c) => setD(c, 1, ONE_D));
      expect(ok).toBe(true);
      expect(getX(c, 0)).toBe(0n);
    }
  });
  it("FCVT.W.D sign-extends; FCVT.S.L and FCVT.D.LU round the 64-bit source", () => {
    let r = exec(opfp(FCVT_XF, D, 0, 5, 1, 0), (c) => setD(c, 1, 0xbff0000000000000n));
    expect(getX(r.c, 5)).toBe(0xffffffffffffffffn);
    r = exec(opfp(FCVT_FX, S, 3, 4, 1, 2), (c) => setX(c, 1, 0x0000000001000001n)); // 2^24+1 RUP
    expect(sOut(r.c)).toBe(0x4b800001);
    expect(r.flags).toBe(NX);
    r = exec(opfp(FCVT_FX, D, 0, 4, 1, 3), (c) => setX(c, 1, 0xffffffffffffffffn));
    expect(getD(r.c, 4)).toBe(0x43f0000000000000n);
    r = exec(opfp(FCVT_FX, S, 0, 4, 1, 0), (c) => setX(c, 1, 0xffffffff00000000n)); // W ignores upper half
    expect(sOut(r.c)).toBe(0);
  });
});

describe("rounding modes, flags, tininess after rounding", () => {
  const addD = (rm: number, a: bigint, b: bigint, frm = 0) => {
    const { c, flags } = exec(
      opfp(FADD, D, rm, 4, 1, 2),
      (c) => {
        setD(c, 1, a);
        setD(c, 2, b);
      },
      frm,
    );
    return [getD(c, 4), flags];
  };
  const TWO_M53 = 0x3ca0000000000000n;
  it("RMM breaks exact ties away from zero; RNE to even", () => {
    expect(addD(RM.RNE, ONE_D, TWO_M53)).toEqual([ONE_D, NX]);
    expect(addD(RM.RMM, ONE_D, TWO_M53)).toEqual([ONE_D + 1n, NX]);
    expect(addD(RM.RMM, 0xbff0000000000000n, 0xbca0000000000000n)).toEqual([0xbff0000000000001n, NX]);
    const { c } = exec(opfp(FADD, S, RM.RMM, 4, 1, 2), (c) => {
      setS(c, 1, ONE_S);
      setS(c, 2, 0x33800000); // 2^-24
    });
    expect(sOut(c)).toBe(ONE_S + 1);
  });
  it("dynamic rounding reads frm", () => {
    expect(addD(RM.DYN, ONE_D, 0x3c30000000000000n, RM.RUP)).toEqual([ONE_D + 1n, NX]);
    expect(addD(RM.DYN, ONE_D, 0x3c30000000000000n, RM.RDN)).toEqual([ONE_D, NX]);
  });
  it("exact zero sums: +0 except -0 in RDN", () => {
    expect(addD(RM.RNE, ONE_D, 0xbff0000000000000n)).toEqual([PZ_D, 0]);
    expect(addD(RM.RDN, ONE_D, 0xbff0000000000000n)).toEqual([NZ_D, 0]);
    expect(addD(RM.RDN, PZ_D, PZ_D)).toEqual([PZ_D, 0]);
    expect(addD(RM.RUP, NZ_D, NZ_D)).toEqual([NZ_D, 0]);
  });
  it("overflow: ±inf or ±max by mode", () => {
    const MAX = 0x7fefffffffffffffn;
    expect(addD(RM.RNE, MAX, MAX)).toEqual([0x7ff0000000000000n, OF | NX]);
    expect(addD(RM.RTZ, MAX, MAX)).toEqual([MAX, OF | NX]);
    expect(addD(RM.RDN, MAX, MAX)).toEqual([MAX, OF | NX]);
    expect(addD(RM.RUP, MAX | (1n << 63n), MAX | (1n << 63n))).toEqual([MAX | (1n << 63n), OF | NX]);
    // MAX + half an ulp: RNE rounds to inf (tie to even), RTZ stays at MAX without overflow
    expect(addD(RM.RNE, MAX, 0x7c90000000000000n)).toEqual([0x7ff0000000000000n, OF | NX]);
    expect(addD(RM.RTZ, MAX, 0x7c90000000000000n)).toEqual([MAX, NX]);
    expect(addD(RM.RUP, MAX, 0x7c90000000000000n)).toEqual([0x7ff0000000000000n, OF | NX]);
    // MAX + a whole ulp = 2^1024: overflow in every mode
    expect(addD(RM.RTZ, MAX, 0x7ca0000000000000n)).toEqual([MAX, OF | NX]);
  });
  it("division by zero and invalid", () => {
    const run = (a: bigint, b: bigint) => {
      const { c, flags } = exec(opfp(FDIV, D, 0, 4, 1, 2), (c) => {
        setD(c, 1, a);
        setD(c, 2, b);
      });
      return [getD(c, 4), flags];
    };
    expect(run(0xbff0000000000000n, PZ_D)).toEqual([0xfff0000000000000n, DZ]);
    expect(run(PZ_D, NZ_D)).toEqual([QNAN_D, NV]);
    expect(run(0x7ff0000000000000n, PZ_D)).toEqual([0x7ff0000000000000n, 0]);
    const s = exec(opfp(FSQRT, D, 0, 4, 1, 0), (c) => setD(c, 1, 0xbff0000000000000n));
    expect([getD(s.c, 4), s.flags]).toEqual([QNAN_D, NV]);
    const z = exec(opfp(FSQRT, D, 0, 4, 1, 0), (c) => setD(c, 1, NZ_D));
    expect([getD(z.c, 4), z.flags]).toEqual([NZ_D, 0]);
  });
  it("tininess is detected after rounding (binary32 fma lands just below 2^-126)", () => {
    // 2^-75 * -2^-76 + 2^-126 = 2^-126 - 2^-151: rounds (unbounded exponent) to 2^-126 → not tiny in RNE
    const run = (rm: number) => {
      const { c, flags } = exec(r4(0x43, S, rm, 4, 1, 2, 3), (c) => {
        setS(c, 1, 0x1a000000);
        setS(c, 2, 0x99800000);
        setS(c, 3, 0x00800000);
      });
      return [sOut(c), flags];
    };
    expect(run(RM.RNE)).toEqual([0x00800000, NX]);
    expect(run(RM.RTZ)).toEqual([0x007fffff, UF | NX]);
    expect(run(RM.RUP)).toEqual([0x00800000, NX]);
  });
  it("exact subnormal results raise no UF; inexact ones raise UF|NX", () => {
    const mul = (rm: number, a: number, b: number) => {
      const { c, flags } = exec(opfp(FMUL, S, rm, 4, 1, 2), (c) => {
        setS(c, 1, a);
        setS(c, 2, b);
      });
      return [sOut(c), flags];
    };
    expect(mul(RM.RNE, 0x00000002, 0x3f000000)).toEqual([0x00000001, 0]);
    expect(mul(RM.RNE, 0x00000001, 0x3f000000)).toEqual([0, UF | NX]);
    expect(mul(RM.RMM, 0x00000001, 0x3f000000)).toEqual([1, UF | NX]);
    expect(mul(RM.RUP, 0x00000001, 0x3e800000)).toEqual([1, UF | NX]);
    expect(mul(RM.RDN, 0x80000001, 0x3e800000)).toEqual([0x80000001, UF | NX]);
  });
  it("FCVT.S.D narrows with overflow and underflow", () => {
    const run = (rm: number, d: bigint) => {
      const { c, flags } = exec(opfp(FCVT_FF, S, rm, 4, 1, 1), (c) => setD(c, 1, d));
      return [sOut(c), flags];
    };
    expect(run(RM.RNE, 0x7fefffffffffffffn)).toEqual([0x7f800000, OF | NX]);
    expect(run(RM.RTZ, 0x7fefffffffffffffn)).toEqual([0x7f7fffff, OF | NX]);
    expect(run(RM.RNE, 0x0000000000000001n)).toEqual([0, UF | NX]);
    expect(run(RM.RUP, 0x0000000000000001n)).toEqual([1, UF | NX]);
    expect(run(RM.RNE, SNAN_D)).toEqual([QNAN_S, NV]);
  });
});

describe("fused multiply-add", () => {
  const fmaD = (op: number, rm: number, a: bigint, b: bigint, c3: bigint) => {
    const { c, flags } = exec(r4(op, D, rm, 4, 1, 2, 3), (c) => {
      setD(c, 1, a);
      setD(c, 2, b);
      setD(c, 3, c3);
    });
    return [getD(c, 4), flags];
  };
  it("inf * 0 + qNaN raises NV (§20.6)", () => {
    expect(fmaD(0x43, 0, 0x7ff0000000000000n, PZ_D, QNAN_D)).toEqual([QNAN_D, NV]);
    const { c, flags } = exec(r4(0x43, S, 0, 4, 1, 2, 3), (c) => {
      setS(c, 1, 0);
      setS(c, 2, 0xff800000);
      setS(c, 3, QNAN_S);
    });
    expect([sOut(c), flags]).toEqual([QNAN_S, NV]);
  });
  it("keeps the low product bits: (1+2^-52)(1-2^-53) - 1 = 2^-53 - 2^-105 exactly", () => {
    expect(fmaD(0x47, 0, 0x3ff0000000000001n, 0x3fefffffffffffffn, ONE_D)).toEqual([0x3c9ffffffffffffen, 0]);
  });
  it("rounds once where rounding a*b first would give a false tie", () => {
    // (1+2^-52)^2 - 3*2^-53 = 1 + 2^-53 + 2^-104: above the midpoint, so 1 + 2^-52 (double rounding gives 1)
    expect(fmaD(0x43, 0, 0x3ff0000000000001n, 0x3ff0000000000001n, 0xbcb8000000000000n)).toEqual([
      0x3ff0000000000001n,
      NX,
    ]);
  });
  it("negated forms and zero signs", () => {
    expect(fmaD(0x4f, 0, ONE_D, ONE_D, PZ_D)).toEqual([0xbff0000000000000n, 0]); // FNMADD: -(1*1) - 0
    expect(fmaD(0x4b, 0, ONE_D, 0x4000000000000000n, ONE_D)).toEqual([0xbff0000000000000n, 0]); // FNMSUB: -(1*2) + 1
    expect(fmaD(0x4f, 0, PZ_D, ONE_D, PZ_D)).toEqual([NZ_D, 0]); // -0 - 0
    expect(fmaD(0x47, 0, PZ_D, ONE_D, PZ_D)).toEqual([PZ_D, 0]); // 0 - 0
    expect(fmaD(0x47, RM.RDN, PZ_D, ONE_D, PZ_D)).toEqual([NZ_D, 0]);
    expect(fmaD(0x47, RM.RDN, ONE_D, ONE_D, ONE_D)).toEqual([NZ_D, 0]);
  });
});
