// A warm-up program for the interpreter (DESIGN: README "Engines").
//
// The interpreter is one large function; the JavaScript engine optimizes it with the type
// feedback its paths have gathered so far, and a path that never ran before optimization
// ("insufficient type feedback") throws the optimized code away the first time it runs. A guest
// meets its instruction kinds one after the other (Linux's boot: dozens of such deoptimizations,
// each followed by a slow stretch in unoptimized code and a recompilation), so before the first
// hart runs guest code, a private hart runs a program made from the instruction table that
// executes every non-privileged instruction form: loads and stores of every size through the
// TLB, taken and fallthrough branches, jumps, M, A, F, D, CSR accesses, compressed forms, a
// trapping instruction and its handler, under both engines' loops.

import { OPERANDS, type OperandName } from "../isa/operands.js";
import { encode } from "../isa/random.js";
import { INSTRUCTIONS, type InsnSpec } from "../isa/table.js";

const RAM = 0x8000_0000;
const DATA = 0x8000; // s0 = RAM + DATA; sp = s0 + 1024
const SKIP = new Set([
  "ecall",
  "ebreak",
  "c.ebreak",
  "sret",
  "mret",
  "wfi",
  "sfence.vma",
  "jalr",
  "c.jr",
  "c.jalr",
  "c.addi16sp",
  "auipc",
]);
/** Memory instructions whose base register operand must be s0 (x8). */
const BASE_OPERANDS = new Set<OperandName>(["rs1", "c.rs1p"]);
/** CSRs the program reads (machine and user counters, FP state) and writes (mscratch, fflags). */
const CSR_READ = [0x300, 0x301, 0x340, 0x341, 0x342, 0xc00, 0xc01, 0xc02, 0xf14, 0x001, 0x002, 0x003];
const CSR_WRITE = [0x340, 0x001];
/** CSR instructions that only read here (their rs1 / uimm5 is 0: nothing is set or cleared). */
const READS = new Set(["csrrs", "csrrc", "csrrsi", "csrrci"]);

/** A small deterministic generator (xorshift32). */
function generator(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function isMemory(spec: InsnSpec): boolean {
  const opc = spec.match & 0x7f;
  if (spec.length === 4) return opc === 0x03 || opc === 0x07 || opc === 0x23 || opc === 0x27 || opc === 0x2f;
  return /^c\.(f?l[wd]|f?s[wd])$/.test(spec.mnemonic);
}

function operand(spec: InsnSpec, name: OperandName, rand: () => number): number {
  const def = OPERANDS[name];
  const [min, max, step] = def.range;
  const any = (): number => min + step * Math.floor(rand() * ((max - min) / step + 1));
  const mem = isMemory(spec);
  switch (def.kind) {
    case "xreg": {
      if (mem && BASE_OPERANDS.has(name)) return 8;
      if (name === "rs1" && READS.has(spec.mnemonic)) return 0;
      // never x2 (sp) or x8 (s0): the bases of every access
      for (;;) {
        const r = any();
        if (r !== 2 && r !== 8) return r;
      }
    }
    case "pcrel":
      return spec.length === 4 ? 4 : 2; // to the next instruction: taken and fallthrough agree
    case "uimm5":
      return READS.has(spec.mnemonic) ? 0 : any();
    case "csr": {
      const list = READS.has(spec.mnemonic) ? CSR_READ : CSR_WRITE;
      return list[Math.floor(rand() * list.length)];
    }
    case "imm":
      // memory offsets: 8-byte aligned, inside the data area
      if (mem || name.endsWith("sp")) return Math.min(max, Math.max(min, 8 * Math.floor(rand() * 32)));
      return any();
    case "rm": {
      const r = any();
      return r === 5 || r === 6 ? 7 : r;
    }
    default:
      return any() * 2 ** ((def as { shift?: number }).shift ?? 0); // upper, c.lui: the shifted value
  }
}

function emit(out: number[], insn: number, length: number): void {
  out.push(insn & 0xff, (insn >>> 8) & 0xff);
  if (length === 4) out.push((insn >>> 16) & 0xff, insn >>> 24);
}

function must(spec: string, values: Partial<Record<OperandName, number>>): number {
  const s = INSTRUCTIONS.find((i) => i.mnemonic === spec) as InsnSpec;
  const insn = encode(s, values);
  if (insn === undefined) throw new Error(`warm-up: cannot encode ${spec}`);
  return insn;
}

/**
 * The warm-up program's bytes, loaded at RAM (0x8000_0000) and entered there in M-mode: it sets
 * up s0, sp, mtvec and mstatus.FS, then loops over its body forever (run it with a budget).
 */
export function warmUpProgram(): Uint8Array {
  const rand = generator(0x5eed);
  const out: number[] = [];
  const w = (spec: string, values: Partial<Record<OperandName, number>>): void => emit(out, must(spec, values), 4);
  w("auipc", { rd: 8, upper: DATA }); // s0 = RAM + DATA (the program starts at RAM)
  w("addi", { rd: 2, rs1: 8, imm12: 1024 }); // sp
  w("lui", { rd: 5, upper: 0x6000 });
  w("csrrs", { rd: 0, csr: 0x300, rs1: 5 }); // mstatus.FS = Dirty
  const handlerAt = out.length; // patched below: auipc t0, 0; addi t0, t0, handler - here
  w("auipc", { rd: 5, upper: 0 });
  w("addi", { rd: 5, rs1: 5, imm12: 0 });
  w("csrrw", { rd: 0, csr: 0x305, rs1: 5 }); // mtvec
  const body = out.length;
  // every register from the data area (random at first, then what the body stored): the
  // operations see operands of every size and sign, not only zeros
  for (let r = 1; r < 32; r++) {
    if (r !== 2 && r !== 8) w("ld", { rd: r, rs1: 8, imm12: 8 * r });
    w("fld", { frd: r, rs1: 8, imm12: 8 * r });
  }
  for (let round = 0; round < 2; round++) {
    for (const spec of INSTRUCTIONS) {
      if (SKIP.has(spec.mnemonic)) continue;
      for (let attempt = 0; attempt < 100; attempt++) {
        const values: Partial<Record<OperandName, number>> = {};
        for (const name of spec.operands) values[name] = operand(spec, name, rand);
        const insn = encode(spec, values);
        if (insn !== undefined) {
          emit(out, insn, spec.length);
          break;
        }
      }
    }
    // an indirect jump to the next instruction, and one instruction that traps (illegal)
    w("auipc", { rd: 31, upper: 0 });
    w("jalr", { rd: 1, rs1: 31, imm12: 8 });
    emit(out, 0, 4);
    if (out.length % 4 !== 0) emit(out, must("c.addi", { "c.rd": 5, "c.imm6": 1 }), 2);
  }
  w("jal", { rd: 0, jump: body - out.length });
  // the handler: mepc += 4 (every instruction that can trap here is 32 bits), mret
  const handler = out.length;
  w("csrrs", { rd: 31, csr: 0x341, rs1: 0 });
  w("addi", { rd: 31, rs1: 31, imm12: 4 });
  w("csrrw", { rd: 0, csr: 0x341, rs1: 31 });
  w("mret", {});
  const fix = must("addi", { rd: 5, rs1: 5, imm12: handler - handlerAt });
  out.splice(handlerAt + 4, 4, fix & 0xff, (fix >>> 8) & 0xff, (fix >>> 16) & 0xff, fix >>> 24);
  return Uint8Array.from(out);
}

/** The data area's first bytes (random, fixed): load into RAM at WARM_UP_BASE + WARM_UP_DATA. */
export function warmUpData(): Uint8Array {
  const rand = generator(0xda7a);
  return Uint8Array.from({ length: 512 }, () => Math.floor(rand() * 256));
}

export const WARM_UP_BASE = RAM;
export const WARM_UP_DATA = DATA;
/** RAM of the warm-up hart's bus (code, then the data area at DATA). */
export const WARM_UP_RAM = 0x10000;
