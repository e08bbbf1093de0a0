// Structural tests of the instruction table, decode/encode round trips and
// disassembly spot checks that need no external tool (objdump.test.ts holds
// the differential test against binutils).
import { describe, expect, it } from "vitest";
import { CSR_NAMES } from "./csr-names.js";
import { decode, insnLength } from "./decode.js";
import { createDisasmState, disassemble } from "./disasm.js";
import { getOperand, OPERANDS, type OperandName, putOperand } from "./operands.js";
import { encode, randomInstruction } from "./random.js";
import { INSTRUCTIONS, operandsLegal } from "./table.js";

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("instruction table", () => {
  it("covers RV64GC + Zicsr + Zifencei + privileged", () => {
    const names = new Set(INSTRUCTIONS.map((s) => s.mnemonic));
    expect(names.size).toBe(INSTRUCTIONS.length);
    for (const n of ["lui", "addiw", "sraiw", "mulhsu", "remuw", "lr.d", "amomaxu.w", "fmadd.d", "fcvt.lu.s"])
      expect(names).toContain(n);
    for (const n of ["fmv.d.x", "fence.tso", "fence.i", "csrrci", "sret", "mret", "wfi", "sfence.vma"])
      expect(names).toContain(n);
    for (const n of ["c.ld", "c.sd", "c.addiw", "c.ldsp", "c.sdsp", "c.fld", "c.fsd", "c.fldsp", "c.fsdsp", "c.subw"])
      expect(names).toContain(n);
    // RV32-only compressed forms do not exist in RV64 (§28.1).
    for (const n of ["c.jal", "c.flw", "c.fsw", "c.flwsp", "c.fswsp"]) expect(names).not.toContain(n);
    const count = (e: string) => INSTRUCTIONS.filter((s) => s.ext === e).length;
    expect([count("I"), count("M"), count("A"), count("F"), count("D"), count("C")]).toEqual([53, 13, 22, 30, 32, 39]);
  });

  it("keeps operand fields, match bits and mask disjoint", () => {
    for (const s of INSTRUCTIONS) {
      expect((s.match & ~s.mask) >>> 0, s.mnemonic).toBe(0);
      expect(s.length === 4 ? (s.mask & 0x7f) === 0x7f : (s.mask & 3) === 3, s.mnemonic).toBe(true);
      let covered = s.mask;
      for (const o of s.operands) {
        let bits = 0;
        for (const [hi, lo] of OPERANDS[o].segs) bits |= (hi - lo === 31 ? -1 : ((1 << (hi - lo + 1)) - 1) << lo) >>> 0;
        expect((bits & s.mask) >>> 0, `${s.mnemonic} ${o}`).toBe(0);
        covered |= bits;
      }
      // Every bit of the encoding is either fixed or an operand.
      expect(covered >>> 0, s.mnemonic).toBe(s.length === 4 ? 0xffffffff : 0xffff);
    }
  });

  it("is unambiguous: random encodings of every entry match that entry only", () => {
    const rand = mulberry32(1);
    for (const s of INSTRUCTIONS) {
      for (let k = 0; k < 50; k++) {
        const w = randomInstruction(s, rand);
        const matches = INSTRUCTIONS.filter((t) => (w & t.mask) >>> 0 === t.match && operandsLegal(t, w));
        expect(matches.map((t) => t.mnemonic)).toEqual([s.mnemonic]);
        expect(decode(w)).toBe(s);
        const vals: Partial<Record<OperandName, number>> = {};
        for (const o of s.operands) vals[o] = getOperand(o, w);
        expect(encode(s, vals)).toBe(w);
      }
    }
  });

  it("round-trips every operand value through its field", () => {
    for (const name of Object.keys(OPERANDS) as OperandName[]) {
      const d = OPERANDS[name] as { range: readonly number[]; shift?: number };
      const [min, max, step] = d.range;
      const n = (max - min) / step + 1;
      const stride = Math.max(1, Math.floor(n / 4096));
      for (let k = 0; k < n; k += k === n - 1 ? 1 : Math.min(stride, n - 1 - k)) {
        const v = min + k * step;
        const value = d.shift ? v * 2 ** d.shift : v;
        const back = getOperand(name, putOperand(name, value));
        if (back !== value) expect(back, `${name} ${value}`).toBe(value);
      }
    }
  });

  it("enforces reserved encodings", () => {
    const spec = (m: string) => INSTRUCTIONS.find((s) => s.mnemonic === m)!;
    expect(decode(0x0000)).toBeUndefined(); // all-zero halfword
    expect(decode(0x6101)).toBeUndefined(); // c.addi16sp nzimm=0
    expect(decode(0x6501)).toBeUndefined(); // c.lui nzimm=0
    expect(decode(0x4002)).toBeUndefined(); // c.lwsp rd=0
    expect(decode(0x8002)).toBeUndefined(); // c.jr rs1=0
    expect(decode(0x2001)).toBeUndefined(); // c.addiw rd=0
    expect(decode(0x9c41)).toBeUndefined(); // reserved CA slot
    expect(decode(0x00c5d553)).toBeUndefined(); // fadd.s rm=5
    expect(decode(0x0000100b)).toBeUndefined(); // custom-0
    expect(decode(0x0015)?.mnemonic).toBe("c.addi"); // c.nop HINT
    expect(decode(0x0100000f)?.mnemonic).toBe("fence"); // PAUSE hint: fence w,0
    expect(decode(0xd2057553)?.mnemonic).toBe("fcvt.d.w"); // rm=dyn is legal
    expect(encode(spec("addi"), { rd: 1, rs1: 2, imm12: 2048 })).toBeUndefined();
    expect(encode(spec("c.addi16sp"), { "c.addi16sp": 0 })).toBeUndefined();
    expect(encode(spec("c.addi16sp"), { "c.addi16sp": -512 })).toBe(0x7101);
    expect(encode(spec("lui"), { rd: 10, upper: -0x80000000 })).toBe(0x80000537);
    expect(() => randomInstruction(spec("c.ebreak"), Math.random)).not.toThrow();
  });

  it("computes instruction lengths", () => {
    expect(insnLength(0x0505)).toBe(2);
    expect(insnLength(0x8513)).toBe(4);
    expect(insnLength(0xffff)).toBe(4);
  });
});

describe("disassemble", () => {
  it("prints objdump's aliases and canonical forms", () => {
    const cases: [number, string, string][] = [
      [0x00558513, "add a0,a1,5", "addi a0,a1,5"],
      [0x00000013, "nop", "addi zero,zero,0"],
      [0x00008067, "ret", "jalr zero,0(ra)"],
      [0x0505, "add a0,a0,1", "c.addi a0,1"],
      [0x8082, "ret", "c.jr ra"],
      [0x30002573, "csrr a0,mstatus", "csrrs a0,mstatus,zero"],
      [0x0021d073, "fsrmi zero,3", "csrrwi zero,frm,3"],
      [0xc0001073, "unimp", "unimp"],
      [0x0000, "unimp", "c.unimp"],
      [0x0ff0000f, "fence", "fence iorw,iorw"],
      [0x1ec5b52f, "sc.d.aqrl a0,a2,(a1)", "sc.d.aqrl a0,a2,(a1)"],
      [0x68c59543, "fmadd.s fa0,fa1,fa2,fa3,rtz", "fmadd.s fa0,fa1,fa2,fa3,rtz"],
      [0x20b58553, "fmv.s fa0,fa1", "fsgnj.s fa0,fa1,fa1"],
      [0x12050073, "sfence.vma a0", "sfence.vma a0,zero"],
      [0x0015, "c.nop 5", "c.addi zero,5"],
      [0x12345677, ".4byte 0x12345677", ".4byte 0x12345677"],
      [0x8000, ".2byte 0x8000", ".2byte 0x8000"],
    ];
    for (const [w, alias, canonical] of cases) {
      expect(disassemble(w, 0n), alias).toBe(alias);
      expect(disassemble(w, 0n, { aliases: false }), canonical).toBe(canonical);
    }
  });

  it("prints branch targets as absolute addresses and annotates lui/auipc pairs", () => {
    expect(disassemble(0xf8dff06f, 0x80000074n)).toBe("j 80000000");
    expect(disassemble(0xf80500e3, 0x10n)).toBe("beqz a0,ffffffffffffff90");
    const state = createDisasmState();
    expect(disassemble(0x80000537, 0n, { state })).toBe("lui a0,0x80000");
    expect(disassemble(0x01050593, 4n, { state })).toBe("add a1,a0,16 # ffffffff80000010");
    expect(disassemble(0x01050593, 8n, { state })).toBe("add a1,a0,16"); // consumed
    expect(disassemble(0x00001697, 0x1000n, { state })).toBe("auipc a3,0x1");
    expect(disassemble(0x0106b703, 0x1004n, { state })).toBe("ld a4,16(a3) # 2010");
    expect(disassemble(0x00822603, 0n)).toBe("lw a2,8(tp) # 8");
  });

  it("names CSRs or prints numbers", () => {
    expect(CSR_NAMES.get(0x3bf)).toBe("pmpaddr15");
    expect(CSR_NAMES.get(0xb1f)).toBe("mhpmcounter31");
    expect(disassemble(0x30002573, 0n, { csrNames: false })).toBe("csrr a0,0x300");
    expect(disassemble(0x7ff02573, 0n, { csrNames: new Map([[0x7ff, "mine"]]) })).toBe("csrr a0,mine");
  });
});
