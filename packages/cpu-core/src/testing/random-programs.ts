// Random self-dumping programs for differential tests against QEMU: control
// flow through computed registers and memory accesses at computed addresses,
// built the way compiled code builds them (auipc/addi, lui, jump tables,
// c.jr/c.jalr), with odd jalr targets (RISC-V unpriv 20191213 §2.5: the target
// is (rs1 + imm) & ~1), and "far" jumps, loads and stores whose addresses sit
// next to the 2^31, 2^32 and 2^64 boundaries of the (lo, hi) word pair and
// fault on both machines (the trap handler logs mcause/mepc/mtval and resumes).
// With `highAlias` the same kind of program runs in S-mode under Sv39 at the
// kernel-style alias 0xffff_ffff_8000_0000 of RAM, so that code, links and
// data addresses all have a non-zero high word.
// The program ends by printing every register, the trap log and a checksum of
// the memory the stores wrote, so any divergence shows in the output.
import { PRELUDE } from "./prelude.js";
import { rng } from "./rng.js";

/** What a generated program exercises (static counts, from the generator). */
export interface RandomProgramStats {
  /** Indirect jumps (jalr, c.jr, c.jalr) whose rs1 value is odd (bit 0 cleared by the jump). */
  oddTargets: number;
  /** Indirect jumps whose rs1 + imm sum carries or borrows between the low and the high word. */
  carryTargets: number;
  /** Indirect jumps (any kind) to code. */
  indirectJumps: number;
  /** Jumps to addresses with no memory (the fetch faults; mepc/mtval hold the 64-bit target). */
  farJumps: number;
  /** Conditional branches on address-like operands. */
  branches: number;
  /** Loads, stores and AMOs in RAM at computed addresses (some misaligned). */
  memoryOps: number;
  /** Loads and stores at far addresses (access faults). */
  farMemoryOps: number;
}

export interface RandomProgram {
  source: string;
  stats: RandomProgramStats;
}

// x2 (sp), x3 (gp, the CHECK test number) and the harness registers s9 (x25, trap-log pointer),
// s10 (x26, where the trap handler resumes) and t6 (x31, handler temporary) stay out of the pool.
const POOL = [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 27, 28, 29, 30];
/** Every RV64IM register-register operation (the generators draw from it). */
export const RR_OPS = [
  "add",
  "sub",
  "xor",
  "or",
  "and",
  "sll",
  "srl",
  "sra",
  "slt",
  "sltu",
  "addw",
  "subw",
  "sllw",
  "srlw",
  "sraw",
  "mul",
  "mulh",
  "mulhsu",
  "mulhu",
  "div",
  "divu",
  "rem",
  "remu",
  "mulw",
  "divw",
  "divuw",
  "remw",
  "remuw",
];
/** Immediate ALU forms and their shift-amount range (0 = a 12-bit immediate). */
const ALU_IMM: [string, number][] = [
  ["slti", 0],
  ["sltiu", 0],
  ["xori", 0],
  ["ori", 0],
  ["andi", 0],
  ["addiw", 0],
  ["slli", 63],
  ["srli", 63],
  ["srai", 63],
  ["slliw", 31],
  ["srliw", 31],
  ["sraiw", 31],
];
/** Operands at the corners of division, multiplication and the 32-bit forms. */
const CORNERS = [
  "0",
  "-1",
  "1",
  "0x8000000000000000",
  "0x7fffffffffffffff",
  "-0x80000000",
  "0x80000000",
  "0x7fffffff",
  "0xffffffff",
  "0x100000000",
];
const LOADS: [string, number][] = [
  ["lb", 1],
  ["lbu", 1],
  ["lh", 2],
  ["lhu", 2],
  ["lw", 4],
  ["lwu", 4],
  ["ld", 8],
];
const STORES: [string, number][] = [
  ["sb", 1],
  ["sh", 2],
  ["sw", 4],
  ["sd", 8],
];
const BRANCHES = ["beq", "bne", "blt", "bge", "bltu", "bgeu"];
const SCRATCH = 4096;

const hex = (v: bigint) => `0x${BigInt.asUintN(64, v).toString(16)}`;
const off = (k: number) => (k < 0 ? `${k}` : `+${k}`);

export interface RandomProgramOptions {
  /** Basic blocks (default 24). */
  blocks?: number;
  /**
   * Run the blocks in S-mode under Sv39 at the kernel-style alias 0xffff_ffff_8000_0000 of RAM
   * (high word all ones, low word bit 31 set): every pc, link, auipc result and data address then
   * has a non-zero high word; far addresses page-fault.
   */
  highAlias?: boolean;
}

/** The Sv39 gigapage alias of RAM (0x8000_0000) at VA 0xffff_ffff_8000_0000: VA = PA + ALIAS. */
const ALIAS = 0xffff_ffff_0000_0000n;

/**
 * A random program of `blocks` basic blocks. Every transfer goes forward (to a
 * later block), so the program always ends; far accesses and jumps fault and
 * the handler resumes after them; an unexpected trap ends the program early
 * (its log entry is printed, so the dumps then differ).
 */
export function randomControlFlowProgram(seed: number, opts: RandomProgramOptions = {}): RandomProgram {
  const blocks = opts.blocks ?? 24;
  const alias = opts.highAlias === true;
  // in alias mode the gigapage at 0xffff_ffff_8000_0000 is RAM: far addresses stay out of it
  const aliased = (a: bigint) => alias && a >= -0x8000_0000n && a < -0x4000_0000n;
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const reg = () => `x${pick(POOL)}`;
  const stats: RandomProgramStats = {
    oddTargets: 0,
    carryTargets: 0,
    indirectJumps: 0,
    farJumps: 0,
    branches: 0,
    memoryOps: 0,
    farMemoryOps: 0,
  };
  const out: string[] = [];
  const table: string[] = [];
  const emit = (s: string) => out.push(`    ${s}`);
  let label = 0;

  // An address-like value in rd: a code or data address (bit 31 of the low word set: RAM is at
  // 0x8000_0000), a sign-extended lui value, a zero-extended one, or a value next to 2^32.
  const addressLike = (rd: string) => {
    const k = r();
    if (k < 0.3) emit(`la ${rd}, B${int(0, blocks)}${off(int(-64, 64))}`);
    else if (k < 0.5) emit(`lui ${rd}, ${hex(BigInt(int(0x7fff0, 0x80010)))}`);
    else if (k < 0.65) {
      emit(`lui ${rd}, ${hex(BigInt(int(0x7fff0, 0x80010)))}`);
      emit(`slli ${rd}, ${rd}, 32`);
      emit(`srli ${rd}, ${rd}, 32`);
    } else if (k < 0.8) emit(`li ${rd}, ${hex(0x1_0000_0000n + BigInt(int(-3, 3)))}`);
    else emit(`la ${rd}, rt_scratch${off(int(0, SCRATCH))}`);
    if (r() < 0.5) emit(`addi ${rd}, ${rd}, ${int(-2048, 2047)}`);
  };

  const aluOp = () => {
    const k = r();
    if (k < 0.08) {
      // both operands at corners (MIN / -1, x / 0, MULH of MIN by -1 ...)
      const a = reg();
      let b = reg();
      while (b === a) b = reg();
      emit(`li ${a}, ${r() < 0.4 ? pick(["0x8000000000000000", "-0x80000000"]) : pick(CORNERS)}`);
      emit(`li ${b}, ${r() < 0.5 ? pick(["-1", "0"]) : pick(CORNERS)}`);
      emit(`${pick(RR_OPS.slice(15))} ${reg()}, ${a}, ${b}`);
    } else if (k < 0.5) emit(`${pick(RR_OPS)} ${reg()}, ${reg()}, ${reg()}`);
    else if (k < 0.62) {
      const [op, sh] = pick(ALU_IMM);
      emit(`${op} ${reg()}, ${reg()}, ${sh ? int(0, sh) : int(-2048, 2047)}`);
    } else if (k < 0.7) emit(`li ${reg()}, ${pick(CORNERS)}`);
    else if (k < 0.85) emit(`addi ${reg()}, ${reg()}, ${int(-2048, 2047)}`);
    else addressLike(reg());
  };

  // A load, store or AMO in rt_scratch at an address built as compiled code builds it.
  const memOp = (rd: string) => {
    stats.memoryOps++;
    const base = reg();
    const k = r();
    if (k < 0.12) {
      const [w, size] = pick([
        ["w", 4],
        ["d", 8],
      ] as const);
      const a = int(0, SCRATCH / size - 1) * size;
      emit(`la ${base}, rt_scratch${off(a)}`);
      emit(`${pick(["amoadd", "amoswap", "amoxor", "amomaxu", "amomin"])}.${w} ${rd}, ${reg()}, (${base})`);
      return;
    }
    const store = k < 0.55;
    const [op, size] = store ? pick(STORES) : pick(LOADS);
    // mostly aligned; misaligned accesses complete on both machines (no page is crossed here)
    const a = r() < 0.75 ? int(0, SCRATCH / size - 1) * size : int(0, SCRATCH - 8);
    const imm = pick([0, int(-2048, 2047), int(-8, 8), 2047, -2048]);
    if (r() < 0.7) emit(`la ${base}, rt_scratch${off(a - imm)}`);
    else {
      // auipc + addi, then the displacement folded into an addi (as a compiler's address arithmetic)
      const lab = `.Lpc${label++}`;
      const k2 = int(-2048, 2047);
      out.push(`${lab}:`);
      emit(`auipc ${base}, %pcrel_hi(rt_scratch${off(a - imm - k2)})`);
      emit(`addi ${base}, ${base}, %pcrel_lo(${lab})`);
      emit(`addi ${base}, ${base}, ${k2}`);
    }
    emit(`${op} ${store ? reg() : rd}, ${imm}(${base})`);
  };

  // A far data address next to a word boundary (2^31 or 2^32 in either word, 2^64); farMem keeps
  // the negative ones (beyond every physical address: an access fault on both machines).
  const farValue = (): bigint =>
    pick([
      0xffff_ffffn,
      0x1_0000_0000n,
      0xffff_ffff_7fff_ffffn,
      0xffff_ffff_8000_0000n,
      0x1_7fff_ffffn,
      0xffff_ffff_ffff_ffffn,
      0xffff_ffff_ffff_f800n,
      0xffff_ffff_0000_0000n,
    ]) + BigInt(int(-16, 16));

  // A jump through a register to an address with no memory: the fetch faults at the target.
  const farJump = () => {
    const rs = reg();
    let v: bigint;
    let imm: number;
    for (;;) {
      // rs1 = boundary + d, target = boundary + e: mostly on opposite sides of the boundary
      const boundary = pick([
        0x1_0000_0000n,
        0x2_0000_0000n,
        0xffff_ffff_0000_0000n,
        0xffff_ffff_8000_0000n,
        0x1_8000_0000n,
      ]);
      const d = int(-1024, 1023);
      let e = int(-1024, 1023);
      if (r() < 0.7 && d < 0 === e < 0) e = -e - 1;
      v = BigInt.asUintN(64, boundary + BigInt(d));
      imm = e - d;
      const t = BigInt.asIntN(64, BigInt.asUintN(64, v + BigInt(imm)) & ~1n);
      // fault on both machines: no RAM or device there, and |target| < 2^52 (mepc holds 53 bits here)
      if (t >= -(1n << 52n) && t < 1n << 52n && (t < 0n || t >= 0x9000_0000n) && !aliased(t)) break;
    }
    stats.farJumps++;
    // the sum carries or borrows between the words: the high word of the target is not rs1's
    if (BigInt.asUintN(64, v + BigInt(imm)) >> 32n !== BigInt.asUintN(64, v) >> 32n) stats.carryTargets++;
    if (((v + BigInt(imm)) & 1n) === 1n) stats.oddTargets++;
    out.push(`    la s10, .Lr${label}`);
    emit(`li ${rs}, ${hex(v)}`);
    emit(`jalr ${reg()}, ${imm}(${rs})`);
    out.push(`.Lr${label++}:`);
    emit("la s10, rt_unexpected");
  };

  // A load or store at a far (negative: beyond every physical address) aligned address.
  const farMem = () => {
    stats.farMemoryOps++;
    const base = reg();
    const store = r() < 0.5;
    const [op, size] = store ? pick(STORES) : pick(LOADS);
    const imm = int(-256, 255) * size;
    const useLui = r() >= 0.5;
    let v: bigint;
    let lui = -1;
    for (;;) {
      v = BigInt.asUintN(64, farValue()) & ~BigInt(size - 1);
      lui = -1;
      // lui builds a sign-extended 0xffff_ffff_8xxx_x000 the way compiled code does
      const hiPart = Number((v >> 12n) & 0xfffffn);
      if (useLui && hiPart >= 0x80000 && v >> 32n === 0xffff_ffffn) {
        v &= ~0xfffn;
        lui = hiPart;
      }
      const a = BigInt.asIntN(64, v + BigInt(imm));
      if (a < 0n && !aliased(a)) break;
    }
    out.push(`    la s10, .Lr${label}`);
    emit(lui >= 0 ? `lui ${base}, ${hex(BigInt(lui))}` : `li ${base}, ${hex(v)}`);
    emit(`${op} ${reg()}, ${imm}(${base})`);
    out.push(`.Lr${label++}:`);
    emit("la s10, rt_unexpected");
  };

  // The block's exit: an indirect or direct jump to block `to`.
  const transfer = (to: number) => {
    const t = to === blocks ? "rt_end" : `B${to}`;
    const tR = reg();
    const k = r();
    if (k < 0.12) {
      emit(`jal ${reg()}, ${t}`);
      return;
    }
    stats.indirectJumps++;
    if (k < 0.3) {
      // c.jr / c.jalr through an odd address: the (rs1 + 0) & ~1 case
      stats.oddTargets++;
      emit(`la ${tR}, ${t}+1`);
      emit(`${r() < 0.5 ? "c.jr" : "c.jalr"} ${tR}`);
      return;
    }
    // jalr rd, imm(tR) with tR = target + bias - imm: bias 0 or 1 (odd target)
    const bias = r() < 0.6 ? 1 : 0;
    const imm = pick([0, 0, int(-2048, 2047), int(-4, 4), 2047, -2048]);
    if (bias) stats.oddTargets++;
    if (k < 0.6) emit(`la ${tR}, ${t}${off(bias - imm)}`);
    else if (k < 0.8) {
      // auipc t, 0 style: the base is this instruction's address plus a constant the addi adds
      const lab = `.Lpc${label++}`;
      const k2 = int(-2048, 2047);
      out.push(`${lab}:`);
      emit(`auipc ${tR}, %pcrel_hi(${t}${off(bias - imm - k2)})`);
      emit(`addi ${tR}, ${tR}, %pcrel_lo(${lab})`);
      emit(`addi ${tR}, ${tR}, ${k2}`);
    } else {
      // a jump table in .data, as a switch statement compiles
      table.push(`    .dword ${t}${off(bias - imm)}${alias ? ` + ${hex(ALIAS)}` : ""}`);
      const base = reg();
      emit(`la ${base}, rt_table+${8 * (table.length - 1)}`);
      emit(`ld ${tR}, 0(${base})`);
    }
    emit(`jalr ${reg()}, ${imm}(${tR})`);
  };

  for (let i = 0; i < blocks; i++) {
    out.push(`B${i}:`);
    for (let n = int(1, 5); n > 0; n--) aluOp();
    for (let n = int(0, 3); n > 0; n--) memOp(reg());
    if (r() < 0.3) farJump();
    if (r() < 0.2) farMem();
    if (r() < 0.5 && i + 1 < blocks) {
      // a conditional branch on address-like values (signed and unsigned orders differ at bit 63)
      stats.branches++;
      const a = reg();
      let b = reg();
      while (b === a) b = reg();
      addressLike(a);
      if (r() < 0.7) addressLike(b);
      emit(`${pick(BRANCHES)} ${a}, ${b}, B${int(i + 1, Math.min(blocks - 1, i + 3))}`);
      for (let n = int(0, 2); n > 0; n--) aluOp();
    }
    transfer(int(i + 1, Math.min(blocks, i + 3)));
  }

  const init = POOL.map(
    (x) => `    li x${x}, ${hex(BigInt(int(0, 0xffff_ffff)) * 0x1_0000_0000n + BigInt(int(0, 0xffff_ffff)))}`,
  );
  const scratchCsr = alias ? "sscratch" : "mscratch";
  // Sv39 (priv 1.12 §4.4): root[0] the devices (RW), root[2] RAM at its own address and
  // root[510] the same RAM at 0xffff_ffff_8000_0000 (RWX, A and D set); S-mode from rt_start there
  const enterAlias = String.raw`
    la a0, rt_root
    li t0, (0x80000000 >> 12) << 10
    ori t0, t0, 0xcf
    sd t0, 16(a0)
    li t1, 8 * 510
    add t1, t1, a0
    sd t0, 0(t1)
    li t0, 0xc7
    sd t0, 0(a0)
    srli t0, a0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, 1 << 11
    csrs mstatus, t0
    la t0, rt_start
    li t1, ${hex(ALIAS)}
    add t0, t0, t1
    csrw mepc, t0
    mret`;
  const source = `${PRELUDE}
    .option norelax
test_main:
    la t0, rt_trap
    csrw mtvec, t0
    la s9, rt_log
${alias ? enterAlias : ""}
rt_start:
    la s10, rt_unexpected
${init.join("\n")}
${out.join("\n")}
rt_end:
B${blocks}:
    la s10, rt_dump
rt_dump:
    csrw ${scratchCsr}, x31
    la x31, rt_regs
${Array.from({ length: 30 }, (_, i) => `    sd x${i + 1}, ${8 * (i + 1)}(x31)`).join("\n")}
    csrr t0, ${scratchCsr}
    sd t0, 248(x31)
    la s1, rt_regs
    li s2, 1
1:  slli t0, s2, 3
    add t0, t0, s1
    ld a0, 0(t0)
    call puthex
    addi s2, s2, 1
    li t0, 32
    blt s2, t0, 1b
    ld s3, 8 * 25(s1)           /* the saved s9: end of the trap log (an M-mode, physical address) */
    la s2, rt_log
${alias ? `    li t0, ${hex(ALIAS)}\n    add s3, s3, t0` : ""}
2:  bgeu s2, s3, 3f
    ld a0, 0(s2)
    call puthex
    addi s2, s2, 8
    j 2b
3:  la s2, rt_scratch           /* checksum of the scratch memory: h = h * 31 + dword */
    li s3, ${SCRATCH / 8}
    li s4, 0
    li s5, 31
4:  ld t0, 0(s2)
    mul s4, s4, s5
    add s4, s4, t0
    addi s2, s2, 8
    addi s3, s3, -1
    bnez s3, 4b
    mv a0, s4
    call puthex
    j pass
rt_unexpected:                  /* a trap nobody expected: it is in the log; end here */
    la s10, rt_dump
    j rt_dump
    .align 4
rt_trap:
    csrr t6, mcause
    sd t6, 0(s9)
    csrr t6, mepc
    sd t6, 8(s9)
    csrr t6, mtval
    sd t6, 16(s9)
    addi s9, s9, 24
    csrw mepc, s10              /* resume there, in the mode the trap came from */
    mret
    .data
    .align 3
rt_regs: .space 256
rt_log: .space ${24 * (blocks * 2 + 4)}
rt_table:
${table.join("\n") || "    .dword 0"}
    .align 12
rt_scratch: .space ${SCRATCH + 4096}
${alias ? "    .align 12\nrt_root: .space 4096" : ""}
`;
  return { source, stats };
}
