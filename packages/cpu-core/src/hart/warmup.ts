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

/** The table by mnemonic (built at the first use: the warm-up runs once per process, at its start). */
let byMnemonic: Map<string, InsnSpec> | undefined;

function must(spec: string, values: Partial<Record<OperandName, number>>): number {
  byMnemonic ??= new Map(INSTRUCTIONS.map((i) => [i.mnemonic, i]));
  const s = byMnemonic.get(spec) as InsnSpec;
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
  // shifts by 0, by 1..31 and by 32..63: the interpreter computes each on (lo, hi) halves with a
  // path per case, which random operands did not all reach (the Linux boot's first sll by 1..31
  // deoptimized the interpreter twice)
  for (const sh of [0, 5, 37]) {
    w("addi", { rd: 6, rs1: 0, imm12: sh });
    for (const op of ["sll", "srl", "sra", "sllw", "srlw", "sraw"]) w(op, { rd: 7, rs1: 9, rs2: 6 });
    for (const op of ["slli", "srli", "srai"]) w(op, { rd: 7, rs1: 9, shamt: sh });
    for (const op of ["slliw", "srliw", "sraiw"]) w(op, { rd: 7, rs1: 9, shamtw: sh & 31 });
  }
  // a loop closed by a jump to its own start (the trace generator's loop-back through jal)
  w("addi", { rd: 6, rs1: 0, imm12: 6 });
  const loop = out.length;
  w("addi", { rd: 6, rs1: 6, imm12: -1 });
  w("beq", { rs1: 6, rs2: 0, branch: 8 });
  w("jal", { rd: 0, jump: loop - out.length });
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

/** A tiny assembler over the instruction table: 32-bit instructions, labels for branches, jumps and `la`. */
class Asm {
  private readonly out: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; patch: (at: number, target: number) => number[] }[] = [];
  constructor(private readonly origin: number) {}
  get here(): number {
    return this.origin + this.out.length;
  }
  label(name: string): void {
    this.labels.set(name, this.here);
  }
  w(spec: string, values: Partial<Record<OperandName, number>> = {}): void {
    emit(this.out, must(spec, values), 4);
  }
  /** A branch or jal whose `field` operand reaches `label`. */
  to(spec: string, values: Partial<Record<OperandName, number>>, field: OperandName, label: string): void {
    this.later(label, 4, (at, target) => [must(spec, { ...values, [field]: target - at })]);
  }
  /** rd = the address of RAM offset `target` or of a label (auipc + addi, as Linux's `la`). */
  la(rd: number, target: number | string): void {
    const words = (at: number, t: number): number[] => {
      const d = t - at;
      const lo = ((d & 0xfff) ^ 0x800) - 0x800;
      return [must("auipc", { rd, upper: d - lo }), must("addi", { rd, rs1: rd, imm12: lo })];
    };
    if (typeof target === "number") for (const insn of words(this.here, target)) emit(this.out, insn, 4);
    else this.later(target, 8, words);
  }
  /** A 16-bit parcel. */
  half(parcel: number): void {
    this.out.push(parcel & 0xff, parcel >>> 8);
  }
  /** A compressed instruction. */
  c(spec: string, values: Partial<Record<OperandName, number>> = {}): void {
    this.half(must(spec, values));
  }
  /** rd = a 32-bit signed constant. */
  li(rd: number, v: number): void {
    const lo = ((v & 0xfff) ^ 0x800) - 0x800;
    const hi = (v - lo) | 0;
    if (hi !== 0) this.w("lui", { rd, upper: hi });
    this.w(hi !== 0 ? "addiw" : "addi", { rd, rs1: hi !== 0 ? rd : 0, imm12: lo });
  }
  /** Pad with nops up to RAM offset `off` (4-byte aligned). */
  padTo(off: number): void {
    if (this.here > off) throw new Error(`warm-up: code overlaps ${off.toString(16)}`);
    const nop = must("addi", { rd: 0, rs1: 0, imm12: 0 }); // encoded once: pads are ~1,400 nops
    while (this.here < off) emit(this.out, nop, 4);
  }
  bytes(): Uint8Array {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`warm-up: no label ${f.label}`);
      const words = f.patch(this.origin + f.at, target);
      words.forEach((insn, i) => {
        this.out.splice(f.at + 4 * i, 4, insn & 0xff, (insn >>> 8) & 0xff, (insn >>> 16) & 0xff, insn >>> 24);
      });
    }
    return Uint8Array.from(this.out);
  }
  private later(label: string, size: number, patch: (at: number, target: number) => number[]): void {
    this.fixups.push({ at: this.out.length, label, patch });
    for (let i = 0; i < size; i += 4) emit(this.out, 0, 4);
  }
}

// The system program's RAM layout (offsets from RAM; VA = PA for every mapped page, and a
// 2 MiB page at VA RAM + 2 MiB aliases RAM's first 2 MiB, writable, as Linux's patching alias).
const SYS_M = 0x1000; // M-mode set-up (bare)
const SYS_S = 0x2000; // S-mode code and, at SYS_S + 0x800, its trap handler
const SYS_U = 0x3000; // U-mode code; its last instruction crosses into SYS_U2
const SYS_U2 = 0x4000; // U-mode code
const SYS_URO = 0x5000; // U read-only data
const SYS_SDATA = 0x6000; // S data
const SYS_HOLE = 0x7000; // not mapped: page faults
const SYS_UDATA = 0x8000; // U read-write data (A and D clear: the walk sets them)
const SYS_SFN = SYS_S + 0xc00; // S-mode functions that get hot, called from S code that stays cold
const SYS_S2 = 0x9000; // the same functions on a page of their own
const SYS_ROOT = 0xc000; // Sv39 root, then the level-1 and level-0 tables
const SYS_ALIAS = 0x20_0000; // + RAM: the 2 MiB alias
/** A device address (MMIO exits): mapped by a 1 GiB page of physical 0..1 GiB. */
const SYS_MMIO = 0x1000_0000;

const [T0, T1, T5, T6, S0, S1, S2, S3, A0, A1, A2, A3, A4, A5, A6, A7] = [
  5, 6, 30, 31, 8, 9, 18, 19, 10, 11, 12, 13, 14, 15, 16, 17,
];

/**
 * The system program: what a kernel does that the instruction forms alone do not. M-mode sets up
 * PMP, delegation, Sstc, FP and Sv39 (4 KiB, 2 MiB and 1 GiB pages) and enters S-mode, which
 * loads and stores through the TLB and a writable alias of code (patching it, then fence.i),
 * calls hot functions from code that is not (yet) compiled, reads and writes a device (MMIO exits, an AMO there faults), uses LR/SC around a slow
 * store, FP state, satp and sfence.vma, takes a software and a timer interrupt, sleeps in WFI and
 * runs U-mode: a hot loop (traces), AMOs and LR/SC, page faults on a hole and a read-only page, a
 * misaligned AMO, an illegal CSR read, an instruction across a page boundary and ecalls to S;
 * then S makes an SBI call (an ecall exit) and starts over. Segments to load at RAM + off; enter
 * at RAM + WARM_UP_SYSTEM in M-mode. Runs forever.
 */
export function warmUpSystem(): { off: number; bytes: Uint8Array }[] {
  const m = new Asm(SYS_M);
  m.label("start");
  m.la(T0, "start"); // anything trapping to M starts over
  m.w("csrrw", { rd: 0, csr: 0x305, rs1: T0 }); // mtvec
  m.li(T0, -1);
  m.w("csrrw", { rd: 0, csr: 0x3b0, rs1: T0 }); // pmpaddr0: all of memory (priv 1.12 §3.7.1),
  m.w("csrrw", { rd: 0, csr: 0x306, rs1: T0 }); // mcounteren: S and U read the counters
  m.li(T0, 0x1f);
  m.w("csrrw", { rd: 0, csr: 0x3a0, rs1: T0 }); // pmpcfg0: NAPOT, RWX for S and U
  m.la(T0, SYS_S + 0x800); // the S trap handler
  m.w("csrrw", { rd: 0, csr: 0x105, rs1: T0 }); // stvec
  m.li(T0, 0xb1f4); // medeleg: illegal, misaligned and access faults, U ecall, page faults
  m.w("csrrw", { rd: 0, csr: 0x302, rs1: T0 });
  m.li(T0, 0x222); // mideleg: S interrupts
  m.w("csrrw", { rd: 0, csr: 0x303, rs1: T0 });
  m.li(T0, 0x22); // mie: SSIE, STIE
  m.w("csrrw", { rd: 0, csr: 0x304, rs1: T0 });
  m.w("addi", { rd: T0, rs1: 0, imm12: 1 });
  m.w("slli", { rd: T0, rs1: T0, shamt: 63 });
  m.w("csrrs", { rd: 0, csr: 0x30a, rs1: T0 }); // menvcfg.STCE: Sstc
  m.la(T0, SYS_ROOT);
  m.w("srli", { rd: T0, rs1: T0, shamt: 12 });
  m.w("addi", { rd: T1, rs1: 0, imm12: 8 });
  m.w("slli", { rd: T1, rs1: T1, shamt: 60 });
  m.w("or", { rd: T0, rs1: T0, rs2: T1 });
  m.w("csrrw", { rd: 0, csr: 0x180, rs1: T0 }); // satp: Sv39
  m.li(T0, (1 << 11) | (1 << 18) | (3 << 13)); // mstatus.MPP = S, SUM, FS = dirty
  m.w("csrrs", { rd: 0, csr: 0x300, rs1: T0 });
  m.la(T0, SYS_S);
  m.w("csrrw", { rd: 0, csr: 0x341, rs1: T0 }); // mepc
  m.w("mret");

  const s = new Asm(SYS_S);
  s.label("entry");
  s.w("sfence.vma", { rs1: 0, rs2: 0 });
  s.la(S0, SYS_SDATA);
  s.w("lh", { rd: A2, rs1: S0, imm12: 6 }); // first accesses: TLB misses (the slow path's sign extensions)
  s.la(T0, SYS_UDATA);
  s.w("lb", { rd: A2, rs1: T0, imm12: 7 });
  s.w("lh", { rd: A2, rs1: S0, imm12: 9 }); // misaligned
  s.w("lw", { rd: A2, rs1: S0, imm12: 13 });
  // the zero-extending loads' slow paths too (a device driver's first lbu of RAM deoptimized the interpreter)
  s.w("lhu", { rd: A2, rs1: S0, imm12: 17 });
  s.w("lwu", { rd: A2, rs1: S0, imm12: 21 });
  s.la(T1, SYS_URO);
  s.w("lbu", { rd: A2, rs1: T1, imm12: 3 });
  // calls from this (cold: patched every pass) code into hot functions on this page and on
  // another: jal, jalr, c.jalr, and c.jr (a tail call), each several times a pass
  for (const fn of [SYS_SFN, SYS_S2, SYS_SFN, SYS_S2]) {
    s.la(T1, fn);
    s.w("jalr", { rd: 1, rs1: T1, imm12: 0 });
    s.c("c.jalr", { "c.rd": T1 });
    s.w("jal", { rd: 1, jump: fn - s.here });
    s.w("addi", { rd: T1, rs1: T1, imm12: 16 });
    s.w("jalr", { rd: 1, rs1: T1, imm12: 0 });
  }
  s.w("ld", { rd: A0, rs1: S0, imm12: 0 });
  s.w("addi", { rd: A0, rs1: A0, imm12: 3 });
  s.w("sd", { rs2: A0, rs1: S0, store12: 8 });
  s.w("lw", { rd: A1, rs1: S0, imm12: 12 });
  s.w("sw", { rs2: A1, rs1: S0, store12: 16 });
  s.w("lbu", { rd: A1, rs1: S0, imm12: 5 });
  s.w("lb", { rd: A1, rs1: S0, imm12: 6 });
  s.w("lh", { rd: A2, rs1: S0, imm12: 6 });
  s.w("sh", { rs2: A1, rs1: S0, store12: 22 });
  s.w("ld", { rd: A2, rs1: S0, imm12: 3 }); // misaligned
  s.la(T0, SYS_UDATA);
  s.w("ld", { rd: A2, rs1: T0, imm12: 0 }); // a U page (sstatus.SUM)
  s.w("fld", { frd: 1, rs1: S0, imm12: 24 });
  s.w("fsd", { frs2: 1, rs1: S0, store12: 32 });
  s.w("csrrs", { rd: A3, csr: 0x003, rs1: 0 }); // fcsr
  s.w("csrrw", { rd: 0, csr: 0x003, rs1: A3 });
  // the alias: first accesses miss the TLB (a 2 MiB entry), LR/SC around a slow store
  s.li(T1, SYS_ALIAS + SYS_SDATA);
  s.la(T0, 0);
  s.w("add", { rd: T1, rs1: T1, rs2: T0 });
  s.w("lr.d", { rd: A3, rs1: S0, aqrl: 0 });
  s.w("lb", { rd: A4, rs1: T1, imm12: 41 });
  s.w("lh", { rd: A4, rs1: T1, imm12: 42 });
  s.w("sd", { rs2: A3, rs1: T1, store12: 48 });
  s.w("sc.d", { rd: A5, rs2: A3, rs1: S0, aqrl: 0 });
  // patch the functions on their own page through the alias (the same bytes), then fence.i:
  // their traces are dropped and made again every pass
  s.li(T1, SYS_ALIAS);
  s.la(T0, SYS_S2);
  s.w("add", { rd: T1, rs1: T1, rs2: T0 });
  s.w("lw", { rd: A4, rs1: T1, imm12: 0 });
  s.w("sw", { rs2: A4, rs1: T1, store12: 0 });
  s.w("fence.i");
  // a device: MMIO exits, and an AMO there (an access fault)
  s.w("lui", { rd: T0, upper: SYS_MMIO });
  s.w("lbu", { rd: A1, rs1: T0, imm12: 5 });
  s.w("lb", { rd: A1, rs1: T0, imm12: 5 });
  s.w("lh", { rd: A1, rs1: T0, imm12: 6 });
  s.w("sb", { rs2: A1, rs1: T0, store12: 0 });
  s.w("lw", { rd: A1, rs1: T0, imm12: 4 });
  s.w("sd", { rs2: A1, rs1: T0, store12: 8 });
  s.w("amoadd.w", { rd: A1, rs2: A1, rs1: T0, aqrl: 0 });
  // satp rewritten, sfence.vma by address and by ASID
  s.w("csrrs", { rd: A1, csr: 0x180, rs1: 0 });
  s.w("csrrw", { rd: 0, csr: 0x180, rs1: A1 });
  s.la(T0, SYS_SDATA);
  s.w("sfence.vma", { rs1: T0, rs2: 0 });
  s.w("sfence.vma", { rs1: 0, rs2: A5 });
  // a software interrupt, taken as soon as it is set
  s.w("csrrsi", { rd: 0, csr: 0x100, uimm5: 2 }); // sstatus.SIE
  s.w("csrrsi", { rd: 0, csr: 0x144, uimm5: 2 }); // sip.SSIP
  // a timer interrupt (Sstc) soon: spin with SIE set until it comes (or the count runs out)
  s.w("csrrs", { rd: A0, csr: 0xc01, rs1: 0 }); // time
  s.w("addi", { rd: A0, rs1: A0, imm12: 20 });
  s.w("csrrw", { rd: 0, csr: 0x14d, rs1: A0 }); // stimecmp
  s.w("addi", { rd: A6, rs1: 0, imm12: 200 });
  s.label("spin");
  s.w("addi", { rd: A6, rs1: A6, imm12: -1 });
  s.to("bne", { rs1: A6, rs2: 0 }, "branch", "spin");
  s.w("csrrci", { rd: 0, csr: 0x100, uimm5: 2 });
  // WFI with an interrupt pending (a no-op) and with none (an exit to the host)
  s.w("csrrsi", { rd: 0, csr: 0x144, uimm5: 2 });
  s.w("wfi");
  s.w("csrrci", { rd: 0, csr: 0x144, uimm5: 2 });
  s.w("wfi");
  s.li(T0, 1 << 8);
  s.w("csrrc", { rd: 0, csr: 0x100, rs1: T0 }); // sstatus.SPP = U
  s.la(T0, SYS_U);
  s.w("csrrw", { rd: 0, csr: 0x141, rs1: T0 }); // sepc
  s.w("addi", { rd: S1, rs1: 0, imm12: 6 }); // U passes
  s.w("sret");
  s.label("tail");
  s.w("addi", { rd: A7, rs1: 0, imm12: 1 }); // an SBI call: an ecall exit where the host has SBI
  s.w("ecall");
  s.to("jal", { rd: 0 }, "jump", "entry");
  s.padTo(SYS_S + 0x800);
  // the trap handler: interrupts clear SSIP and the timer; U ecalls count passes (the last
  // returns to S); an instruction page fault returns to ra; other faults skip their
  // instruction (every one here is 32 bits)
  s.w("csrrs", { rd: T6, csr: 0x142, rs1: 0 }); // scause
  s.to("blt", { rs1: T6, rs2: 0 }, "branch", "irq");
  s.w("addi", { rd: T5, rs1: 0, imm12: 12 });
  s.to("beq", { rs1: T6, rs2: T5 }, "branch", "fetch");
  s.w("csrrs", { rd: T5, csr: 0x141, rs1: 0 });
  s.w("addi", { rd: T5, rs1: T5, imm12: 4 });
  s.w("csrrw", { rd: 0, csr: 0x141, rs1: T5 });
  s.w("addi", { rd: T5, rs1: 0, imm12: 8 });
  s.to("bne", { rs1: T6, rs2: T5 }, "branch", "ret");
  s.w("addi", { rd: S1, rs1: S1, imm12: -1 });
  s.to("bne", { rs1: S1, rs2: 0 }, "branch", "ret");
  s.li(T5, 1 << 8);
  s.w("csrrs", { rd: 0, csr: 0x100, rs1: T5 }); // sstatus.SPP = S
  s.la(T5, "tail");
  s.w("csrrw", { rd: 0, csr: 0x141, rs1: T5 });
  s.to("jal", { rd: 0 }, "jump", "ret");
  s.label("fetch"); // an instruction page fault (a jalr into the hole): back to its ra
  s.w("csrrw", { rd: 0, csr: 0x141, rs1: 1 });
  s.to("jal", { rd: 0 }, "jump", "ret");
  s.label("irq");
  s.w("csrrci", { rd: 0, csr: 0x144, uimm5: 2 });
  s.w("addi", { rd: T5, rs1: 0, imm12: -1 });
  s.w("csrrw", { rd: 0, csr: 0x14d, rs1: T5 }); // stimecmp: no timer
  s.label("ret");
  s.w("sret");

  // the hot functions, on the S page and on their own: a leaf (ret), one that tail-calls it (c.jr)
  const functions = (at: number): Uint8Array => {
    const f = new Asm(at);
    f.w("addi", { rd: A0, rs1: A0, imm12: 1 });
    f.w("xor", { rd: A1, rs1: A1, rs2: A0 });
    f.w("jalr", { rd: 0, rs1: 1, imm12: 0 }); // ret
    f.padTo(at + 16);
    f.w("addi", { rd: A1, rs1: A1, imm12: 2 });
    f.la(T0, at);
    f.c("c.jr", { "c.rd": T0 });
    return f.bytes();
  };

  const u = new Asm(SYS_U);
  u.label("loop");
  u.la(S2, SYS_UDATA);
  u.la(S3, SYS_URO);
  u.w("ld", { rd: A0, rs1: S2, imm12: 0 });
  u.w("addi", { rd: A0, rs1: A0, imm12: 1 });
  u.w("sd", { rs2: A0, rs1: S2, store12: 0 });
  u.w("lw", { rd: A1, rs1: S2, imm12: 8 });
  u.w("sw", { rs2: A1, rs1: S2, store12: 12 });
  u.w("lhu", { rd: A2, rs1: S2, imm12: 6 });
  u.w("lb", { rd: A2, rs1: S2, imm12: 7 });
  u.w("sb", { rs2: A2, rs1: S2, store12: 3 });
  u.w("amoadd.w", { rd: A3, rs2: A0, rs1: S2, aqrl: 0 });
  u.w("amoswap.d", { rd: A3, rs2: A3, rs1: S2, aqrl: 3 });
  u.w("lr.d", { rd: A4, rs1: S2, aqrl: 2 });
  u.w("sc.d", { rd: A5, rs2: A4, rs1: S2, aqrl: 1 });
  u.w("lr.d", { rd: A4, rs1: S2, aqrl: 0 });
  u.w("amoor.d", { rd: A3, rs2: A0, rs1: S2, aqrl: 0 }); // a store to the reserved address
  u.w("addi", { rd: A6, rs1: 0, imm12: 24 }); // a hot inner loop
  u.label("inner");
  u.w("ld", { rd: A0, rs1: S2, imm12: 16 });
  u.w("add", { rd: A0, rs1: A0, rs2: A6 });
  u.w("sd", { rs2: A0, rs1: S2, store12: 16 });
  u.w("lw", { rd: A1, rs1: S3, imm12: 0 });
  u.w("addi", { rd: A6, rs1: A6, imm12: -1 });
  u.to("bne", { rs1: A6, rs2: 0 }, "branch", "inner");
  u.w("sd", { rs2: A0, rs1: S3, store12: 0 }); // read-only: store page fault
  u.la(A7, SYS_HOLE);
  u.w("ld", { rd: A0, rs1: A7, imm12: 0 }); // not mapped: load page fault
  u.w("amoadd.d", { rd: A0, rs2: A0, rs1: A7, aqrl: 0 }); // store/AMO page fault
  u.w("jalr", { rd: 1, rs1: A7, imm12: 0 }); // instruction page fault (the handler returns to ra)
  u.w("addi", { rd: A1, rs1: S2, imm12: 2 });
  u.w("amoadd.w", { rd: A0, rs2: A0, rs1: A1, aqrl: 0 }); // misaligned AMO
  u.w("csrrs", { rd: A0, csr: 0xc00, rs1: 0 }); // cycle
  u.w("csrrs", { rd: A0, csr: 0x100, rs1: 0 }); // sstatus from U: illegal
  u.w("ecall");
  u.to("jal", { rd: 0 }, "jump", "cross");
  u.padTo(SYS_U2 - 4);
  u.half(0x0001); // c.nop: the next instruction starts 2 bytes before the page end
  u.label("cross");
  u.w("addi", { rd: A0, rs1: A0, imm12: 7 }); // fetched from two pages
  u.to("jal", { rd: 0 }, "jump", "loop");

  return [
    { off: SYS_M, bytes: m.bytes() },
    { off: SYS_S, bytes: s.bytes() },
    { off: SYS_U, bytes: u.bytes() },
    { off: SYS_SFN, bytes: functions(SYS_SFN) },
    { off: SYS_S2, bytes: functions(SYS_S2) },
    { off: SYS_ROOT, bytes: warmUpTables() },
  ];
}

/** The system program's Sv39 tables (priv 1.12 §4.4.1): root, level 1, level 0, one page each. */
function warmUpTables(): Uint8Array {
  const out = new Uint8Array(3 * 4096);
  const dv = new DataView(out.buffer);
  const [V, R, W, X, U, A, D] = [1, 2, 4, 8, 16, 64, 128];
  const ppn = (off: number): number => (RAM + off) / 4096;
  const pte = (table: number, index: number, ppnValue: number, flags: number): void => {
    dv.setBigUint64(table * 4096 + index * 8, (BigInt(ppnValue) << 10n) | BigInt(flags), true);
  };
  pte(0, 0, 0, V | R | W | A | D); // 1 GiB at physical 0: the devices
  pte(0, RAM / 2 ** 30, ppn(SYS_ROOT + 4096), V);
  pte(1, 0, ppn(SYS_ROOT + 8192), V);
  pte(1, SYS_ALIAS >> 21, ppn(0), V | R | W | A | D); // 2 MiB: the alias of RAM's first 2 MiB
  pte(2, SYS_S >> 12, ppn(SYS_S), V | R | X | A);
  pte(2, SYS_U >> 12, ppn(SYS_U), V | R | X | U | A);
  pte(2, SYS_U2 >> 12, ppn(SYS_U2), V | R | X | U | A);
  pte(2, SYS_URO >> 12, ppn(SYS_URO), V | R | U | A);
  pte(2, SYS_SDATA >> 12, ppn(SYS_SDATA), V | R | W | A | D);
  pte(2, SYS_UDATA >> 12, ppn(SYS_UDATA), V | R | W | U); // A and D set by the walk
  pte(2, SYS_S2 >> 12, ppn(SYS_S2), V | R | X | A);
  return out;
}

/** The data area's first bytes (random, fixed): load into RAM at WARM_UP_BASE + WARM_UP_DATA. */
export function warmUpData(): Uint8Array {
  const rand = generator(0xda7a);
  return Uint8Array.from({ length: 512 }, () => Math.floor(rand() * 256));
}

export const WARM_UP_BASE = RAM;
export const WARM_UP_DATA = DATA;
/** Where the system program (warmUpSystem) is entered, in M-mode: RAM offset. */
export const WARM_UP_SYSTEM = SYS_M;
/** RAM of the warm-up hart's bus (code, then the data area at DATA). */
export const WARM_UP_RAM = 0x10000;
