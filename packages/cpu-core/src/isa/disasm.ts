// Disassembler whose text equals GNU objdump 2.40's (`objdump -d`, and
// `-M no-aliases` with `aliases: false`), driven by the instruction table:
// an entry's `syntax` is the no-aliases layout; ALIASES below lists, per
// mnemonic and in objdump's order of preference, the pseudo-instructions
// objdump prints instead (RISC-V unprivileged spec ch. 40 "Assembly
// Programmer's Handbook" names most of them).
import { FREG_ABI, XREG_ABI } from "../regs.js";
import { CSR_NAMES } from "./csr-names.js";
import { decode, insnLength } from "./decode.js";
import { getOperand, OPERANDS, type OperandName } from "./operands.js";
import type { InsnSpec } from "./table.js";

/** Per-stream state objdump keeps between instructions: the value a preceding lui/auipc/c.lui left in each register. */
export interface DisasmState {
  readonly hiAddr: (bigint | undefined)[];
}

export function createDisasmState(): DisasmState {
  return { hiAddr: new Array<bigint | undefined>(32).fill(undefined) };
}

export interface DisasmOptions {
  /** Print pseudo-instructions (`li`, `ret`, `csrr`…) as objdump does by default. Default true. */
  readonly aliases?: boolean;
  /** true (default): CSR names as objdump prints them; false: numbers; or a custom number->name map. */
  readonly csrNames?: boolean | ReadonlyMap<number, string>;
  /**
   * Carries lui/auipc results between calls so that a following addi/load/store
   * gets objdump's `# <address>` comment. Without it only x0- and tp-relative
   * addresses are annotated, as objdump does for an isolated instruction.
   */
  readonly state?: DisasmState;
}

type Values = Readonly<Record<string, number>>;
type AliasForm = readonly [name: string, syntax: string, when?: (v: Values) => boolean];

const ROUNDING = ["rne", "rtz", "rdn", "rup", "rmm", "unknown", "unknown", "dyn"] as const;
const FENCE_SET = [
  "unknown",
  "w",
  "r",
  "rw",
  "o",
  "ow",
  "or",
  "orw",
  "i",
  "iw",
  "ir",
  "irw",
  "io",
  "iow",
  "ior",
  "iorw",
];
const AQRL_SUFFIX = ["", ".rl", ".aq", ".aqrl"] as const;

const shifts = (name: string, amount: "shamt" | "shamtw"): readonly AliasForm[] => [[name, `rd,rs1,${amount}`]];
const sgnj = (alias: string): readonly AliasForm[] => [[alias, "frd,frs1", (v) => v.frs1 === v.frs2]];
const cArith = (name: string): readonly AliasForm[] => [[name, "c.rs1p,c.rs1p,c.rs2p"]];

/** objdump's pseudo-instructions, first applicable wins; otherwise the entry's own syntax. */
const ALIASES: Readonly<Record<string, readonly AliasForm[]>> = {
  addi: [
    ["nop", "", (v) => v.rd === 0 && v.rs1 === 0 && v.imm12 === 0],
    ["li", "rd,imm12", (v) => v.rs1 === 0],
    ["mv", "rd,rs1", (v) => v.imm12 === 0],
    ["add", "rd,rs1,imm12"],
  ],
  andi: [
    ["zext.b", "rd,rs1", (v) => v.imm12 === 255],
    ["and", "rd,rs1,imm12"],
  ],
  xori: [
    ["not", "rd,rs1", (v) => v.imm12 === -1],
    ["xor", "rd,rs1,imm12"],
  ],
  ori: [["or", "rd,rs1,imm12"]],
  sltiu: [["seqz", "rd,rs1", (v) => v.imm12 === 1]],
  sltu: [["snez", "rd,rs2", (v) => v.rs1 === 0]],
  slt: [
    ["sltz", "rd,rs1", (v) => v.rs2 === 0],
    ["sgtz", "rd,rs2", (v) => v.rs1 === 0],
  ],
  sub: [["neg", "rd,rs2", (v) => v.rs1 === 0]],
  subw: [["negw", "rd,rs2", (v) => v.rs1 === 0]],
  addiw: [
    ["sext.w", "rd,rs1", (v) => v.imm12 === 0],
    ["addw", "rd,rs1,imm12"],
  ],
  slli: shifts("sll", "shamt"),
  srli: shifts("srl", "shamt"),
  srai: shifts("sra", "shamt"),
  slliw: shifts("sllw", "shamtw"),
  srliw: shifts("srlw", "shamtw"),
  sraiw: shifts("sraw", "shamtw"),
  jalr: [
    ["ret", "", (v) => v.rd === 0 && v.rs1 === 1 && v.imm12 === 0],
    ["jr", "rs1", (v) => v.rd === 0 && v.imm12 === 0],
    ["jr", "imm12(rs1)", (v) => v.rd === 0],
    ["jalr", "rs1", (v) => v.rd === 1 && v.imm12 === 0],
    ["jalr", "imm12(rs1)", (v) => v.rd === 1],
    ["jalr", "rd,rs1", (v) => v.imm12 === 0],
  ],
  jal: [
    ["j", "jump", (v) => v.rd === 0],
    ["jal", "jump", (v) => v.rd === 1],
  ],
  beq: [["beqz", "rs1,branch", (v) => v.rs2 === 0]],
  bne: [["bnez", "rs1,branch", (v) => v.rs2 === 0]],
  bge: [
    ["blez", "rs2,branch", (v) => v.rs1 === 0],
    ["bgez", "rs1,branch", (v) => v.rs2 === 0],
  ],
  blt: [
    ["bltz", "rs1,branch", (v) => v.rs2 === 0],
    ["bgtz", "rs2,branch", (v) => v.rs1 === 0],
  ],
  fence: [["fence", "", (v) => v.pred === 15 && v.succ === 15]],
  csrrs: [
    ["rdcycle", "rd", (v) => v.csr === 0xc00 && v.rs1 === 0],
    ["rdinstret", "rd", (v) => v.csr === 0xc02 && v.rs1 === 0],
    ["rdtime", "rd", (v) => v.csr === 0xc01 && v.rs1 === 0],
    ["frcsr", "rd", (v) => v.csr === 3 && v.rs1 === 0],
    ["frrm", "rd", (v) => v.csr === 2 && v.rs1 === 0],
    ["frflags", "rd", (v) => v.csr === 1 && v.rs1 === 0],
    ["csrr", "rd,csr", (v) => v.rs1 === 0],
    ["csrs", "csr,rs1", (v) => v.rd === 0],
  ],
  csrrw: [
    ["fscsr", "rs1", (v) => v.csr === 3 && v.rd === 0],
    ["fscsr", "rd,rs1", (v) => v.csr === 3],
    ["fsrm", "rs1", (v) => v.csr === 2 && v.rd === 0],
    ["fsrm", "rd,rs1", (v) => v.csr === 2],
    ["fsflags", "rs1", (v) => v.csr === 1 && v.rd === 0],
    ["fsflags", "rd,rs1", (v) => v.csr === 1],
    ["csrw", "csr,rs1", (v) => v.rd === 0],
  ],
  csrrc: [["csrc", "csr,rs1", (v) => v.rd === 0]],
  csrrwi: [
    ["fsrmi", "rd,uimm5", (v) => v.csr === 2],
    ["fsflagsi", "rd,uimm5", (v) => v.csr === 1],
    ["csrw", "csr,uimm5", (v) => v.rd === 0],
    ["csrrw", "rd,csr,uimm5"],
  ],
  csrrsi: [
    ["csrs", "csr,uimm5", (v) => v.rd === 0],
    ["csrrs", "rd,csr,uimm5"],
  ],
  csrrci: [
    ["csrc", "csr,uimm5", (v) => v.rd === 0],
    ["csrrc", "rd,csr,uimm5"],
  ],
  "fsgnj.s": sgnj("fmv.s"),
  "fsgnjn.s": sgnj("fneg.s"),
  "fsgnjx.s": sgnj("fabs.s"),
  "fsgnj.d": sgnj("fmv.d"),
  "fsgnjn.d": sgnj("fneg.d"),
  "fsgnjx.d": sgnj("fabs.d"),
  "sfence.vma": [
    ["sfence.vma", "", (v) => v.rs1 === 0 && v.rs2 === 0],
    ["sfence.vma", "rs1", (v) => v.rs2 === 0],
  ],
  // Compressed instructions print as their 32-bit equivalents (objdump's
  // choice of name, e.g. `add a0,a0,1` for c.addi); HINTs keep the c. name.
  "c.addi4spn": [["add", "c.rdp,sp,c.addi4spn"]],
  "c.fld": [["fld", "c.frdp,c.ld(c.rs1p)"]],
  "c.lw": [["lw", "c.rdp,c.lw(c.rs1p)"]],
  "c.ld": [["ld", "c.rdp,c.ld(c.rs1p)"]],
  "c.fsd": [["fsd", "c.frs2p,c.ld(c.rs1p)"]],
  "c.sw": [["sw", "c.rs2p,c.lw(c.rs1p)"]],
  "c.sd": [["sd", "c.rs2p,c.ld(c.rs1p)"]],
  "c.addi": [
    ["nop", "", (v) => v["c.rd"] === 0 && v["c.imm6"] === 0],
    ["c.nop", "c.imm6", (v) => v["c.rd"] === 0],
    ["add", "c.rd,c.rd,c.imm6"],
  ],
  "c.addiw": [
    ["sext.w", "c.rd,c.rd", (v) => v["c.imm6"] === 0],
    ["addw", "c.rd,c.rd,c.imm6"],
  ],
  "c.li": [["li", "c.rd,c.imm6", (v) => v["c.rd"] !== 0]],
  "c.addi16sp": [["add", "sp,sp,c.addi16sp"]],
  "c.lui": [["lui", "c.rd,c.lui", (v) => v["c.rd"] !== 0]],
  "c.srli": [["srl", "c.rs1p,c.rs1p,c.shamt"]],
  "c.srai": [["sra", "c.rs1p,c.rs1p,c.shamt"]],
  "c.andi": [["and", "c.rs1p,c.rs1p,c.imm6"]],
  "c.sub": cArith("sub"),
  "c.xor": cArith("xor"),
  "c.or": cArith("or"),
  "c.and": cArith("and"),
  "c.subw": cArith("subw"),
  "c.addw": cArith("addw"),
  "c.j": [["j", "c.jump"]],
  "c.beqz": [["beqz", "c.rs1p,c.branch"]],
  "c.bnez": [["bnez", "c.rs1p,c.branch"]],
  "c.slli": [["sll", "c.rd,c.rd,c.shamt", (v) => v["c.rd"] !== 0]],
  "c.fldsp": [["fld", "c.frd,c.ldsp(sp)"]],
  "c.lwsp": [["lw", "c.rd,c.lwsp(sp)"]],
  "c.ldsp": [["ld", "c.rd,c.ldsp(sp)"]],
  "c.jr": [
    ["ret", "", (v) => v["c.rd"] === 1],
    ["jr", "c.rd"],
  ],
  "c.mv": [["mv", "c.rd,c.rs2", (v) => v["c.rd"] !== 0]],
  "c.ebreak": [["ebreak", ""]],
  "c.jalr": [["jalr", "c.rd"]],
  "c.add": [["add", "c.rd,c.rd,c.rs2", (v) => v["c.rd"] !== 0]],
  "c.fsdsp": [["fsd", "c.frs2,c.sdsp(sp)"]],
  "c.swsp": [["sw", "c.rs2,c.swsp(sp)"]],
  "c.sdsp": [["sd", "c.rs2,c.sdsp(sp)"]],
};

const LOADS = new Set(["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu", "flw", "fld", "jalr"]);
const X_TP = 4;
const hex = (v: bigint): string => BigInt.asUintN(64, v).toString(16);

/** The values of all of `spec`'s operands in `insn`, by operand name. */
export function operandValues(spec: InsnSpec, insn: number): Record<string, number> {
  const v: Record<string, number> = {};
  for (const name of spec.operands) v[name] = getOperand(name, insn);
  return v;
}

/**
 * objdump's text for the instruction `insn` at address `pc` (a 16-bit
 * instruction is taken from the low halfword). Encodings `decode` rejects
 * print as objdump prints unknown data: `.2byte 0x…` / `.4byte 0x…`.
 */
export function disassemble(insn: number, pc: bigint, options: DisasmOptions = {}): string {
  const aliases = options.aliases ?? true;
  const len = insnLength(insn);
  const word = len === 2 ? insn & 0xffff : insn >>> 0;
  // The all-zero halfword is defined to be illegal (§28.7); objdump names it.
  if (word === 0 && len === 2) return aliases ? "unimp" : "c.unimp";
  const spec = decode(word);
  if (spec === undefined) return `.${len}byte 0x${word.toString(16)}`;
  // `csrrw zero,cycle,zero` is the canonical 32-bit UNIMP (§40 table 40.3).
  if (word === 0xc0001073) return "unimp";

  const v = operandValues(spec, word);
  let name = spec.mnemonic;
  let syntax = spec.syntax;
  let suffix = "";
  const forms = aliases ? ALIASES[spec.mnemonic] : undefined;
  const form = forms?.find((f) => f[2] === undefined || f[2](v));
  if (form) {
    [name, syntax] = form;
  } else {
    if (v.aqrl !== undefined) name += AQRL_SUFFIX[v.aqrl];
    if (spec.rmDefault !== undefined && v.rm !== spec.rmDefault) suffix = `,${ROUNDING[v.rm]}`;
  }

  const hi = (options.state ?? createDisasmState()).hiAddr;
  let comment: bigint | undefined;
  // objdump's maybe_print_address: annotate an address formed from a base
  // register whose lui/auipc value is known, or from x0/tp.
  const note = (base: number, offset: number, wide = false): void => {
    let addr: bigint;
    const known = hi[base];
    if (known !== undefined) {
      addr = (base !== 0 ? known : 0n) + BigInt(offset);
      hi[base] = undefined;
    } else if (base === X_TP || base === 0) {
      addr = BigInt(offset);
    } else {
      return;
    }
    comment = wide ? BigInt.asIntN(32, addr) : addr;
  };
  const csrNames = options.csrNames ?? true;
  const mn = spec.mnemonic;

  const render = (tok: string, memContext: boolean): string => {
    if (!(tok in OPERANDS)) return tok;
    const op = tok as OperandName;
    const val = getOperand(op, word);
    switch (op) {
      case "rd":
        if (mn === "lui") hi[val] = BigInt(v.upper);
        else if (mn === "auipc") hi[val] = pc + BigInt(v.upper);
        break;
      case "c.rd":
        if (mn === "c.lui") hi[val] = BigInt(v["c.lui"]);
        break;
      case "rs1":
        if (mn === "jalr") note(val, v.imm12);
        break;
      case "imm12":
        if (memContext) {
          if (LOADS.has(mn)) note(v.rs1, val);
          if (mn === "jalr") note(v.rs1, val);
        } else if (mn === "addi" && v.rs1 !== 0) note(v.rs1, val);
        else if (mn === "addiw" && v.rs1 !== 0) note(v.rs1, val, true);
        break;
      case "store12":
        note(v.rs1, val);
        break;
      case "c.imm6":
        if (mn === "c.addi" && v["c.rd"] !== 0) note(v["c.rd"], val);
        else if (mn === "c.addiw") note(v["c.rd"], val, true);
        break;
    }
    const def = OPERANDS[op];
    switch (def.kind) {
      case "xreg":
        return XREG_ABI[val];
      case "freg":
        return FREG_ABI[val];
      case "imm":
      case "uimm5":
        return String(val);
      case "shamt":
        return `0x${val.toString(16)}`;
      case "upper":
        return `0x${((val >>> 12) & 0xfffff).toString(16)}`;
      case "pcrel":
        return hex(pc + BigInt(val));
      case "csr": {
        const map = csrNames === true ? CSR_NAMES : csrNames === false ? undefined : csrNames;
        return map?.get(val) ?? `0x${val.toString(16)}`;
      }
      case "fence":
        return FENCE_SET[val];
      case "rm":
        return ROUNDING[val];
      case "aqrl":
        return AQRL_SUFFIX[val];
    }
  };

  const text = syntax.replace(/[a-z][a-z0-9.]*/g, (tok, at: number) => render(tok, syntax[at + tok.length] === "("));
  let out = text === "" ? name : `${name} ${text}${suffix}`;
  if (text === "" && suffix) out = `${name} ${suffix.slice(1)}`;
  if (comment !== undefined) out += ` # ${hex(comment)}`;
  return out;
}
