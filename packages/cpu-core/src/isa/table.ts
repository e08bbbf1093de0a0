// The RV64GC instruction table (STYLE.md 6): one entry per instruction,
// driving decode, disassembly, random encodings for differential tests, and
// the interpreter's and translator's tests.
//
// Encodings: RISC-V unprivileged spec 20240411, ch. 37 "RV32/64G Instruction
// Set Listings" and §28.7 "RVC Instruction Set Listings" (RV64 column);
// privileged spec 20211203 §9 table 9.x for mret/sret/wfi/sfence.vma.
import { getOperand, type OperandName } from "./operands.js";

export type Ext = "I" | "M" | "A" | "F" | "D" | "C" | "Zicsr" | "Zifencei" | "Priv";

/** Encoding format (§2.3, §28.2). Descriptive; operand positions come from `operands`. */
export type Format =
  | "R"
  | "R4"
  | "I"
  | "S"
  | "B"
  | "U"
  | "J"
  | "CR"
  | "CI"
  | "CSS"
  | "CIW"
  | "CL"
  | "CS"
  | "CA"
  | "CB"
  | "CJ";

/** A reserved-encoding rule beyond mask/match: operand `operand` must not equal `not`. */
export interface Constraint {
  readonly operand: OperandName;
  readonly not: number;
}

export interface InsnSpec {
  /** Canonical mnemonic as objdump prints it with `-M no-aliases` (aq/rl suffixes excluded). */
  readonly mnemonic: string;
  readonly mask: number;
  readonly match: number;
  readonly length: 2 | 4;
  readonly ext: Ext;
  readonly format: Format;
  /** Every variable field of the encoding. */
  readonly operands: readonly OperandName[];
  /**
   * Operand layout as objdump prints it with `-M no-aliases`, written with
   * operand names (`rd,imm12(rs1)`). `rm` and `aqrl` are never in it: `rm` is
   * appended as `,<mode>` when not `rmDefault`, `aqrl` is a mnemonic suffix.
   */
  readonly syntax: string;
  /** Reserved encodings inside mask/match (e.g. c.addi16sp with imm 0). */
  readonly constraints: readonly Constraint[];
  /** The rounding mode that is not printed: 7 (dyn), or 0 (rne) for exact widening conversions. */
  readonly rmDefault?: 0 | 7;
}

const specs: InsnSpec[] = [];

function add(
  mnemonic: string,
  mask: number,
  match: number,
  ext: Ext,
  format: Format,
  operands: readonly OperandName[],
  syntax: string,
  extra: { constraints?: readonly Constraint[]; rmDefault?: 0 | 7 } = {},
): void {
  const length = (match & 3) === 3 ? 4 : 2;
  specs.push({
    mnemonic,
    mask: mask >>> 0,
    match: match >>> 0,
    length,
    ext,
    format,
    operands,
    syntax,
    constraints: extra.constraints ?? [],
    ...(extra.rmDefault !== undefined ? { rmDefault: extra.rmDefault } : {}),
  });
}

const ne = (operand: OperandName, not: number): Constraint => ({ operand, not });

// Major opcodes (§37 table "RISC-V base opcode map").
const LOAD = 0x03;
const LOAD_FP = 0x07;
const MISC_MEM = 0x0f;
const OP_IMM = 0x13;
const AUIPC = 0x17;
const OP_IMM_32 = 0x1b;
const STORE = 0x23;
const STORE_FP = 0x27;
const AMO = 0x2f;
const OP = 0x33;
const LUI = 0x37;
const OP_32 = 0x3b;
const OP_FP = 0x53;
const BRANCH = 0x63;
const JALR = 0x67;
const JAL = 0x6f;
const SYSTEM = 0x73;

const M_OPC = 0x7f;
const M_F3 = 0x707f;
const M_F7F3 = 0xfe00707f;

const f3 = (v: number) => v << 12;
const f7 = (v: number) => v << 25;

// --- RV64I (§2, §4) ---
add("lui", M_OPC, LUI, "I", "U", ["rd", "upper"], "rd,upper");
add("auipc", M_OPC, AUIPC, "I", "U", ["rd", "upper"], "rd,upper");
add("jal", M_OPC, JAL, "I", "J", ["rd", "jump"], "rd,jump");
add("jalr", M_F3, JALR, "I", "I", ["rd", "rs1", "imm12"], "rd,imm12(rs1)");
for (const [mn, fn] of [
  ["beq", 0],
  ["bne", 1],
  ["blt", 4],
  ["bge", 5],
  ["bltu", 6],
  ["bgeu", 7],
] as const) {
  add(mn, M_F3, BRANCH | f3(fn), "I", "B", ["rs1", "rs2", "branch"], "rs1,rs2,branch");
}
for (const [mn, fn] of [
  ["lb", 0],
  ["lh", 1],
  ["lw", 2],
  ["ld", 3],
  ["lbu", 4],
  ["lhu", 5],
  ["lwu", 6],
] as const) {
  add(mn, M_F3, LOAD | f3(fn), "I", "I", ["rd", "rs1", "imm12"], "rd,imm12(rs1)");
}
for (const [mn, fn] of [
  ["sb", 0],
  ["sh", 1],
  ["sw", 2],
  ["sd", 3],
] as const) {
  add(mn, M_F3, STORE | f3(fn), "I", "S", ["rs2", "rs1", "store12"], "rs2,store12(rs1)");
}
for (const [mn, fn] of [
  ["addi", 0],
  ["slti", 2],
  ["sltiu", 3],
  ["xori", 4],
  ["ori", 6],
  ["andi", 7],
] as const) {
  add(mn, M_F3, OP_IMM | f3(fn), "I", "I", ["rd", "rs1", "imm12"], "rd,rs1,imm12");
}
// RV64 shifts take a 6-bit shamt (§4.2.1).
add("slli", 0xfc00707f, OP_IMM | f3(1), "I", "I", ["rd", "rs1", "shamt"], "rd,rs1,shamt");
add("srli", 0xfc00707f, OP_IMM | f3(5), "I", "I", ["rd", "rs1", "shamt"], "rd,rs1,shamt");
add("srai", 0xfc00707f, OP_IMM | f3(5) | (0x10 << 26), "I", "I", ["rd", "rs1", "shamt"], "rd,rs1,shamt");
for (const [mn, fn, hi] of [
  ["add", 0, 0],
  ["sub", 0, 0x20],
  ["sll", 1, 0],
  ["slt", 2, 0],
  ["sltu", 3, 0],
  ["xor", 4, 0],
  ["srl", 5, 0],
  ["sra", 5, 0x20],
  ["or", 6, 0],
  ["and", 7, 0],
] as const) {
  add(mn, M_F7F3, OP | f3(fn) | f7(hi), "I", "R", ["rd", "rs1", "rs2"], "rd,rs1,rs2");
}
add("addiw", M_F3, OP_IMM_32, "I", "I", ["rd", "rs1", "imm12"], "rd,rs1,imm12");
add("slliw", M_F7F3, OP_IMM_32 | f3(1), "I", "I", ["rd", "rs1", "shamtw"], "rd,rs1,shamtw");
add("srliw", M_F7F3, OP_IMM_32 | f3(5), "I", "I", ["rd", "rs1", "shamtw"], "rd,rs1,shamtw");
add("sraiw", M_F7F3, OP_IMM_32 | f3(5) | f7(0x20), "I", "I", ["rd", "rs1", "shamtw"], "rd,rs1,shamtw");
for (const [mn, fn, hi] of [
  ["addw", 0, 0],
  ["subw", 0, 0x20],
  ["sllw", 1, 0],
  ["srlw", 5, 0],
  ["sraw", 5, 0x20],
] as const) {
  add(mn, M_F7F3, OP_32 | f3(fn) | f7(hi), "I", "R", ["rd", "rs1", "rs2"], "rd,rs1,rs2");
}
// FENCE (§2.7): fm=0000, rd=rs1=0; pred/succ of 0 are HINTs (e.g. PAUSE) and legal.
add("fence", 0xf00fffff, MISC_MEM, "I", "I", ["pred", "succ"], "pred,succ");
add("fence.tso", 0xffffffff, 0x8330000f, "I", "I", [], "");
add("ecall", 0xffffffff, 0x00000073, "I", "I", [], "");
add("ebreak", 0xffffffff, 0x00100073, "I", "I", [], "");

// --- Zifencei (§6): funct12, rs1 and rd must be zero in this table. ---
add("fence.i", 0xffffffff, 0x0000100f, "Zifencei", "I", [], "");

// --- Zicsr (§7) ---
for (const [mn, fn] of [
  ["csrrw", 1],
  ["csrrs", 2],
  ["csrrc", 3],
] as const) {
  add(mn, M_F3, SYSTEM | f3(fn), "Zicsr", "I", ["rd", "csr", "rs1"], "rd,csr,rs1");
}
for (const [mn, fn] of [
  ["csrrwi", 5],
  ["csrrsi", 6],
  ["csrrci", 7],
] as const) {
  add(mn, M_F3, SYSTEM | f3(fn), "Zicsr", "I", ["rd", "csr", "uimm5"], "rd,csr,uimm5");
}

// --- M (§13) ---
for (const [mn, fn] of [
  ["mul", 0],
  ["mulh", 1],
  ["mulhsu", 2],
  ["mulhu", 3],
  ["div", 4],
  ["divu", 5],
  ["rem", 6],
  ["remu", 7],
] as const) {
  add(mn, M_F7F3, OP | f3(fn) | f7(1), "M", "R", ["rd", "rs1", "rs2"], "rd,rs1,rs2");
}
for (const [mn, fn] of [
  ["mulw", 0],
  ["divw", 4],
  ["divuw", 5],
  ["remw", 6],
  ["remuw", 7],
] as const) {
  add(mn, M_F7F3, OP_32 | f3(fn) | f7(1), "M", "R", ["rd", "rs1", "rs2"], "rd,rs1,rs2");
}

// --- A (§14): aq/rl are the `aqrl` operand, printed as .aq/.rl/.aqrl. ---
for (const [w, fn] of [
  ["w", 2],
  ["d", 3],
] as const) {
  add(`lr.${w}`, 0xf9f0707f, AMO | f3(fn) | (0x02 << 27), "A", "R", ["rd", "rs1", "aqrl"], "rd,(rs1)");
  add(`sc.${w}`, 0xf800707f, AMO | f3(fn) | (0x03 << 27), "A", "R", ["rd", "rs2", "rs1", "aqrl"], "rd,rs2,(rs1)");
  for (const [op, f5] of [
    ["amoswap", 0x01],
    ["amoadd", 0x00],
    ["amoxor", 0x04],
    ["amoand", 0x0c],
    ["amoor", 0x08],
    ["amomin", 0x10],
    ["amomax", 0x14],
    ["amominu", 0x18],
    ["amomaxu", 0x1c],
  ] as const) {
    add(`${op}.${w}`, 0xf800707f, AMO | f3(fn) | (f5 << 27), "A", "R", ["rd", "rs2", "rs1", "aqrl"], "rd,rs2,(rs1)");
  }
}

// --- F and D (§20, §21) ---
for (const [p, fmt, width, ext] of [
  ["s", 0, 2, "F"],
  ["d", 1, 3, "D"],
] as const) {
  const w = p === "s" ? "w" : "d";
  add(`fl${w}`, M_F3, LOAD_FP | f3(width), ext, "I", ["frd", "rs1", "imm12"], "frd,imm12(rs1)");
  add(`fs${w}`, M_F3, STORE_FP | f3(width), ext, "S", ["frs2", "rs1", "store12"], "frs2,store12(rs1)");
  for (const [mn, opc] of [
    ["fmadd", 0x43],
    ["fmsub", 0x47],
    ["fnmsub", 0x4b],
    ["fnmadd", 0x4f],
  ] as const) {
    add(
      `${mn}.${p}`,
      0x0600007f,
      opc | (fmt << 25),
      ext,
      "R4",
      ["frd", "frs1", "frs2", "frs3", "rm"],
      "frd,frs1,frs2,frs3",
      {
        rmDefault: 7,
      },
    );
  }
  for (const [mn, hi] of [
    ["fadd", 0x00],
    ["fsub", 0x04],
    ["fmul", 0x08],
    ["fdiv", 0x0c],
  ] as const) {
    add(`${mn}.${p}`, 0xfe00007f, OP_FP | f7(hi | fmt), ext, "R", ["frd", "frs1", "frs2", "rm"], "frd,frs1,frs2", {
      rmDefault: 7,
    });
  }
  add(`fsqrt.${p}`, 0xfff0007f, OP_FP | f7(0x2c | fmt), ext, "R", ["frd", "frs1", "rm"], "frd,frs1", { rmDefault: 7 });
  for (const [mn, hi, fn] of [
    ["fsgnj", 0x10, 0],
    ["fsgnjn", 0x10, 1],
    ["fsgnjx", 0x10, 2],
    ["fmin", 0x14, 0],
    ["fmax", 0x14, 1],
  ] as const) {
    add(`${mn}.${p}`, M_F7F3, OP_FP | f7(hi | fmt) | f3(fn), ext, "R", ["frd", "frs1", "frs2"], "frd,frs1,frs2");
  }
  for (const [mn, fn] of [
    ["feq", 2],
    ["flt", 1],
    ["fle", 0],
  ] as const) {
    add(`${mn}.${p}`, M_F7F3, OP_FP | f7(0x50 | fmt) | f3(fn), ext, "R", ["rd", "frs1", "frs2"], "rd,frs1,frs2");
  }
  add(`fclass.${p}`, 0xfff0707f, OP_FP | f7(0x70 | fmt) | f3(1), ext, "R", ["rd", "frs1"], "rd,frs1");
  // Integer <-> FP conversions: rs2 selects w / wu / l / lu.
  for (const [it, sel] of [
    ["w", 0],
    ["wu", 1],
    ["l", 2],
    ["lu", 3],
  ] as const) {
    add(
      `fcvt.${it}.${p}`,
      0xfff0007f,
      OP_FP | f7(0x60 | fmt) | (sel << 20),
      ext,
      "R",
      ["rd", "frs1", "rm"],
      "rd,frs1",
      {
        rmDefault: 7,
      },
    );
    // int -> double for w/wu is exact: rm is still a field (§21.3), but rne is the default.
    const exact = p === "d" && sel < 2;
    add(
      `fcvt.${p}.${it}`,
      0xfff0007f,
      OP_FP | f7(0x68 | fmt) | (sel << 20),
      ext,
      "R",
      ["frd", "rs1", "rm"],
      "frd,rs1",
      {
        rmDefault: exact ? 0 : 7,
      },
    );
  }
  const xn = p === "s" ? "w" : "d";
  add(`fmv.x.${xn}`, 0xfff0707f, OP_FP | f7(0x70 | fmt), ext, "R", ["rd", "frs1"], "rd,frs1");
  add(`fmv.${xn}.x`, 0xfff0707f, OP_FP | f7(0x78 | fmt), ext, "R", ["frd", "rs1"], "frd,rs1");
}
add("fcvt.s.d", 0xfff0007f, OP_FP | f7(0x20) | (1 << 20), "D", "R", ["frd", "frs1", "rm"], "frd,frs1", {
  rmDefault: 7,
});
add("fcvt.d.s", 0xfff0007f, OP_FP | f7(0x21), "D", "R", ["frd", "frs1", "rm"], "frd,frs1", { rmDefault: 0 });

// --- Privileged (priv spec §3.3, §10.2) ---
add("sret", 0xffffffff, 0x10200073, "Priv", "R", [], "");
add("mret", 0xffffffff, 0x30200073, "Priv", "R", [], "");
add("wfi", 0xffffffff, 0x10500073, "Priv", "R", [], "");
add("sfence.vma", 0xfe007fff, 0x12000073, "Priv", "R", ["rs1", "rs2"], "rs1,rs2");

// --- C, RV64 (§28). Quadrant 0 ---
const CQ = 0xe003;
add("c.addi4spn", CQ, 0x0000, "C", "CIW", ["c.rdp", "c.addi4spn"], "c.rdp,sp,c.addi4spn", {
  constraints: [ne("c.addi4spn", 0)],
});
add("c.fld", CQ, 0x2000, "C", "CL", ["c.frdp", "c.rs1p", "c.ld"], "c.frdp,c.ld(c.rs1p)");
add("c.lw", CQ, 0x4000, "C", "CL", ["c.rdp", "c.rs1p", "c.lw"], "c.rdp,c.lw(c.rs1p)");
add("c.ld", CQ, 0x6000, "C", "CL", ["c.rdp", "c.rs1p", "c.ld"], "c.rdp,c.ld(c.rs1p)");
add("c.fsd", CQ, 0xa000, "C", "CS", ["c.frs2p", "c.rs1p", "c.ld"], "c.frs2p,c.ld(c.rs1p)");
add("c.sw", CQ, 0xc000, "C", "CS", ["c.rs2p", "c.rs1p", "c.lw"], "c.rs2p,c.lw(c.rs1p)");
add("c.sd", CQ, 0xe000, "C", "CS", ["c.rs2p", "c.rs1p", "c.ld"], "c.rs2p,c.ld(c.rs1p)");
// Quadrant 1. c.addi with rd=0 is C.NOP (imm=0) or a HINT (imm!=0): same semantics.
add("c.addi", CQ, 0x0001, "C", "CI", ["c.rd", "c.imm6"], "c.rd,c.imm6");
add("c.addiw", CQ, 0x2001, "C", "CI", ["c.rd", "c.imm6"], "c.rd,c.imm6", { constraints: [ne("c.rd", 0)] });
add("c.li", CQ, 0x4001, "C", "CI", ["c.rd", "c.imm6"], "c.rd,c.imm6");
add("c.addi16sp", 0xef83, 0x6101, "C", "CI", ["c.addi16sp"], "sp,c.addi16sp", { constraints: [ne("c.addi16sp", 0)] });
add("c.lui", CQ, 0x6001, "C", "CI", ["c.rd", "c.lui"], "c.rd,c.lui", {
  constraints: [ne("c.rd", 2), ne("c.lui", 0)],
});
add("c.srli", 0xec03, 0x8001, "C", "CB", ["c.rs1p", "c.shamt"], "c.rs1p,c.shamt", { constraints: [ne("c.shamt", 0)] });
add("c.srli64", 0xfc7f, 0x8001, "C", "CB", ["c.rs1p"], "c.rs1p");
add("c.srai", 0xec03, 0x8401, "C", "CB", ["c.rs1p", "c.shamt"], "c.rs1p,c.shamt", { constraints: [ne("c.shamt", 0)] });
add("c.srai64", 0xfc7f, 0x8401, "C", "CB", ["c.rs1p"], "c.rs1p");
add("c.andi", 0xec03, 0x8801, "C", "CB", ["c.rs1p", "c.imm6"], "c.rs1p,c.imm6");
for (const [mn, m] of [
  ["c.sub", 0x8c01],
  ["c.xor", 0x8c21],
  ["c.or", 0x8c41],
  ["c.and", 0x8c61],
  ["c.subw", 0x9c01],
  ["c.addw", 0x9c21],
] as const) {
  add(mn, 0xfc63, m, "C", "CA", ["c.rs1p", "c.rs2p"], "c.rs1p,c.rs2p");
}
add("c.j", CQ, 0xa001, "C", "CJ", ["c.jump"], "c.jump");
add("c.beqz", CQ, 0xc001, "C", "CB", ["c.rs1p", "c.branch"], "c.rs1p,c.branch");
add("c.bnez", CQ, 0xe001, "C", "CB", ["c.rs1p", "c.branch"], "c.rs1p,c.branch");
// Quadrant 2. Shift amount 0 is the c.slli64/c.srli64/c.srai64 HINT.
add("c.slli", CQ, 0x0002, "C", "CI", ["c.rd", "c.shamt"], "c.rd,c.shamt", { constraints: [ne("c.shamt", 0)] });
add("c.slli64", 0xf07f, 0x0002, "C", "CI", ["c.rd"], "c.rd");
add("c.fldsp", CQ, 0x2002, "C", "CI", ["c.frd", "c.ldsp"], "c.frd,c.ldsp(sp)");
add("c.lwsp", CQ, 0x4002, "C", "CI", ["c.rd", "c.lwsp"], "c.rd,c.lwsp(sp)", { constraints: [ne("c.rd", 0)] });
add("c.ldsp", CQ, 0x6002, "C", "CI", ["c.rd", "c.ldsp"], "c.rd,c.ldsp(sp)", { constraints: [ne("c.rd", 0)] });
add("c.jr", 0xf07f, 0x8002, "C", "CR", ["c.rd"], "c.rd", { constraints: [ne("c.rd", 0)] });
add("c.mv", 0xf003, 0x8002, "C", "CR", ["c.rd", "c.rs2"], "c.rd,c.rs2", { constraints: [ne("c.rs2", 0)] });
add("c.ebreak", 0xffff, 0x9002, "C", "CR", [], "");
add("c.jalr", 0xf07f, 0x9002, "C", "CR", ["c.rd"], "c.rd", { constraints: [ne("c.rd", 0)] });
add("c.add", 0xf003, 0x9002, "C", "CR", ["c.rd", "c.rs2"], "c.rd,c.rs2", { constraints: [ne("c.rs2", 0)] });
add("c.fsdsp", CQ, 0xa002, "C", "CSS", ["c.frs2", "c.sdsp"], "c.frs2,c.sdsp(sp)");
add("c.swsp", CQ, 0xc002, "C", "CSS", ["c.rs2", "c.swsp"], "c.rs2,c.swsp(sp)");
add("c.sdsp", CQ, 0xe002, "C", "CSS", ["c.rs2", "c.sdsp"], "c.rs2,c.sdsp(sp)");

/** Every RV64GC + Zicsr + Zifencei + privileged instruction. */
export const INSTRUCTIONS: readonly InsnSpec[] = Object.freeze(specs.map((s) => Object.freeze(s)));

/** Whether `insn` satisfies the operand rules of `spec` (mask/match already checked). */
export function operandsLegal(spec: InsnSpec, insn: number): boolean {
  for (const c of spec.constraints) if (getOperand(c.operand, insn) === c.not) return false;
  if (spec.rmDefault !== undefined) {
    const rm = getOperand("rm", insn);
    if (rm === 5 || rm === 6) return false; // §13.2: reserved rounding modes
  }
  return true;
}
