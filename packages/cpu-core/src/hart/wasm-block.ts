// The translator's WebAssembly back end (DESIGN: README "Engines").
//
// The same traces as the JavaScript back end (translator.ts: one entry, inside one 4 KiB page,
// through not-taken branches and same-page jal, looping onto its start, forward branches as
// nested blocks), compiled to one WebAssembly module per trace. Registers are i64 locals (RV64
// arithmetic is native there: no (lo, hi) pairs, no carries), loaded from and written back to
// the hart's register file, which lives in the same WebAssembly.Memory as guest RAM (RAM at
// offset 0, so a TLB entry's RAM offset is the memory address). Loads and stores take the
// software TLB's hit path inline (the active data set's arrays, passed by byte offset) and
// leave the trace *before* the instruction on a miss, a misaligned access or a far jalr target,
// for the interpreter: the same exits as the JavaScript back end.
//
// The block function: (rt, wt, room, pc: i64) -> pc delta or ABS; the retired count (STEP set when
// it left before an instruction) at ctl+0 and an ABS target (i64) at ctl+8. Blocks sit in one
// WebAssembly.Table per hart and are called by the dispatcher (dispatcherModule below), which
// follows the chain of blocks inside WebAssembly through a direct-mapped cache in memory
// (physical key -> table slot and length) until a block is missing, does not fit before the next
// interrupt check, leaves before an instruction, or the pc leaves the current code page.
//
// Translated: RV64I (of the system instructions, Zicsr on sstatus only), M, A (LR/SC on the
// reservation at ctl+60), fence, and the common D instructions on their ordinary path: fld/fsd,
// add/sub/mul/div/sqrt and the fused forms with round-to-nearest-even, sign injection, min/max,
// compares, moves and conversions. IEEE results are the host's (binary64 is exact in
// WebAssembly); only the flags need care: an op runs here when NX is already accrued (the only
// flag an ordinary result raises) and its result is normal (or an exact zero), and leaves before
// the instruction otherwise (NaN, infinity, overflow, underflow: the interpreter's FPU computes
// those). The fused forms call the FPU's exact fma (JavaScript: WebAssembly has none). F
// (binary32) instructions, fclass and the other rounding modes end a trace; a trace that meets
// one goes to the JavaScript back end instead.

/** Bits of the FP state word (ctl+40) the run loop writes before each dispatch. */
export const FpState = {
  /** mstatus.FS is not Off. */
  ON: 1,
  /** fflags.NX is set. */
  NX: 2,
  /** frm is RNE. */
  RNE: 4,
  /** No LR reservation is held (FP stores leave otherwise, as the JavaScript back end's do). */
  NO_RES: 8,
} as const;

import { ByteWriter, ulebSize } from "./byte-writer.js";
import { compressedEntry } from "./compressed.js";
import { Csr } from "./constants.js";
import type { CodeSource } from "./translator.js";
import type { WasmMemory } from "./wasm-api.js";

/** Where the hart's state lives in the memory the blocks import. */
export interface WasmLayout {
  readonly memory: WasmMemory;
  readonly shared: boolean;
  /** Pages of the memory (its minimum and, for shared memories, maximum). */
  readonly pages: number;
  /** Byte offset of x0..x31 (i64 each, little-endian: the (lo, hi) pairs of regs.ts). */
  readonly xBase: number;
  /** Byte offset of the control words: i32 retired count, i64 ABS target at +8, dispatcher results at +16..+36. */
  readonly ctlBase: number;
  /** Byte offset of the dispatcher's cache (DISPATCH_ENTRIES x 16 bytes). */
  readonly cacheBase: number;
  /** Byte offset of f0..f31 (the raw 64-bit patterns of regs.ts). */
  readonly fBase: number;
}

export interface WasmGenerated {
  len: number;
  /** The block's function body (locals and code), for blockModule(). */
  body: number[] | undefined;
  /** The trace stopped at (or started with) an F/D instruction: the JavaScript back end does these. */
  fp: boolean;
  /**
   * Where the straight path goes on when the trace stopped at its length limit (a physical RAM
   * offset on the same page), else -1: the start of the next trace of a long straight run.
   */
  next: number;
  /** No branch leaves the trace before its end (only slow paths do): `next` is as hot as its start. */
  straight: boolean;
  /**
   * The offsets from its start (on its page, not 0) where the trace leaves to a known pc: where
   * blockModule() may chain it to a trace of the same batch.
   */
  exits: number[];
}

/** Instructions in a trace at most (a bound on the interrupt latency inside one: 64 took 4 % fewer dispatches than 32 in the Linux boot). */
export const MAX_TRACE = 64;
const MAX_BLOCK = MAX_TRACE;
const STEP = 0x40000000;
const ABS = 0x40000000;

// --- opcodes (WebAssembly core 2.0 §5.4)
const BLOCK = 0x02;
const LOOP = 0x03;
const IF = 0x04;
const ELSE = 0x05;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const CALL = 0x10;
const DROP = 0x1a;
const SELECT = 0x1b;
const LGET = 0x20;
const LSET = 0x21;
const LTEE = 0x22;
const I32_LOAD = 0x28;
const I64_LOAD = 0x29;
const I32_STORE = 0x36;
const I64_STORE = 0x37;
const I32_CONST = 0x41;
const I64_CONST = 0x42;
const I32_EQ = 0x46;
const I32_LE_S = 0x4c;
const I64_EQZ = 0x50;
const I64_EQ = 0x51;
const I64_NE = 0x52;
const I64_LT_S = 0x53;
const I64_LT_U = 0x54;
const I64_GE_S = 0x59;
const I64_GE_U = 0x5a;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_MUL = 0x6c;
const I32_DIV_S = 0x6d;
const I32_DIV_U = 0x6e;
const I32_REM_S = 0x6f;
const I32_REM_U = 0x70;
const I32_AND = 0x71;
const I32_OR = 0x72;
const I32_SHL = 0x74;
const I32_SHR_S = 0x75;
const I32_SHR_U = 0x76;
const I64_ADD = 0x7c;
const I64_SUB = 0x7d;
const I64_MUL = 0x7e;
const I64_DIV_S = 0x7f;
const I64_DIV_U = 0x80;
const I64_REM_S = 0x81;
const I64_REM_U = 0x82;
const I64_AND = 0x83;
const I64_OR = 0x84;
const I64_XOR = 0x85;
const I64_SHL = 0x86;
const I64_SHR_S = 0x87;
const I64_SHR_U = 0x88;
const I32_WRAP = 0xa7;
const I64_EXT_S = 0xac;
const I64_EXT_U = 0xad;
const F64_LOAD = 0x2b;
const F64_STORE = 0x39;
const F64_CONST = 0x44;
const F64_EQ = 0x61;
const F64_LT = 0x63;
const F64_GT = 0x64;
const F64_LE = 0x65;
const F64_ABS = 0x99;
const F64_NEG = 0x9a;
const F64_SQRT = 0x9f;
const F64_ADD = 0xa0;
const F64_SUB = 0xa1;
const F64_MUL = 0xa2;
const F64_DIV = 0xa3;
const F64_MIN = 0xa4;
const F64_MAX = 0xa5;
const I32_TRUNC_F64_S = 0xaa;
const I32_TRUNC_F64_U = 0xab;
const I64_TRUNC_F64_S = 0xb0;
const I64_TRUNC_F64_U = 0xb1;
const F64_CONVERT_I32_S = 0xb7;
const F64_CONVERT_I32_U = 0xb8;
const F64_CONVERT_I64_S = 0xb9;
const F64_CONVERT_I64_U = 0xba;
const I32_NE = 0x47;
const T_I32 = 0x7f;
const T_I64 = 0x7e;
const T_F64 = 0x7c;
const T_VOID = 0x40;

// loads by funct3 (LB LH LW LD LBU LHU LWU) and stores (SB SH SW SD)
const LOAD_OPS = [0x30, 0x32, 0x34, 0x29, 0x31, 0x33, 0x35];
const I64_LOAD32_S = 0x34;
const I64_STORE32 = 0x3e;
const I32_LT_S = 0x48;
const I32_LT_U = 0x49;
/** AMO funct5 values translated (LR 0x02 and SC 0x03 are the interpreter's). */
const AMO_OPS = [0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c];
const STORE_OPS = [0x3c, 0x3d, 0x3e, 0x37];

// locals: params rt 0, wt 1, room 2, pc 3 (f64); then i32 k_ 4, r_ 5, done 6, sk 7, e 8, s 9;
// i64 A 10, B 11, PC 12, then one i64 per register the trace uses
const P_RT = 0;
const P_WT = 1;
const P_ROOM = 2;
const P_PC = 3;
const L_K = 4;
const L_R = 5;
const L_DONE = 6;
const L_SK = 7;
const L_E = 8;
/** The state base (stateBase): the hart's registers and control words are addressed from it, with short offsets. */
const L_S = 9;
const L_A = 10;
const L_B = 11;
const L_PC = 12;
const L_REG0 = 13;

/** What the first pass learns and the second pass needs (both walk the same trace). */
interface Shape {
  len: number;
  loops: boolean;
  usesSkip: boolean;
  usesPc: boolean;
  /** The registers the trace reads or writes (bit r), and those it writes. */
  used: number;
  dirty: number;
  /** Registers in `used` (their locals follow L_REG0 in ascending order, then FA..FR). */
  nUsed: number;
}

// The generator's state. Generating a trace runs to completion without reentering itself, so its
// buffers and counters live here and are reused: a walk allocates nothing (the STYLE's hot-loop
// rule; a trace is generated each time one gets hot).
/** The code being generated (the prologue, the trace, the epilogue: the function body). */
// (small at first: it grows during the warm-up, so its growth has type feedback before Linux's
// long traces need it)
const c = new ByteWriter(256);
/** The first pass's shape while the second pass runs; undefined in the first pass. */
let known: Shape | undefined;
const firstShape: Shape = { len: 0, loops: false, usesSkip: false, usesPc: false, used: 0, dirty: 0, nUsed: 0 };
/** The local of each register the trace uses (second pass). */
const regLocals = new Int32Array(32);
/** Instructions each forward branch's taken side skips (counted in the first pass, read in the second). */
const skips = new Int32Array(MAX_BLOCK);
let nSkips = 0;
/** The open forward branches (a stack): their skip index, target offset and instruction index. */
const labelId = new Int32Array(MAX_BLOCK);
const labelTarget = new Int32Array(MAX_BLOCK);
const labelKb = new Int32Array(MAX_BLOCK);
let nLabels = 0;
/** Trace offsets (-4095..4095) visited in this walk: visited[4096 + off] === visitMark. */
const visited = new Int32Array(8192);
let visitMark = 0;
/** Structured blocks open inside $out. */
let depth = 0;
let loops = false;
let usesPc = false;
/** Registers used and written (bit r). */
let usedRegs = 0;
let dirtyRegs = 0;
/** Instructions so far and the current instruction's offset from the trace's start. */
let k = 0;
let off = 0;
/** The walk met an F/D instruction it does not translate. */
let fpSeen = false;
let fBase = 0;
let xBase = 0;
let ctlBase = 0;
/** The lowest of xBase, ctlBase and fBase: local s holds it. */
let stateBase = 0;
/** One f64's bytes (f64.const immediates). */
const f64Scratch = new Float64Array(1);
const f64Bytes = new Uint8Array(f64Scratch.buffer);

// table lookups of the walk (hoisted: an array literal in the walk is an allocation per use)
const BRANCH_CMP = [I64_EQ, I64_NE, 0, 0, I64_LT_S, I64_GE_S, I64_LT_U, I64_GE_U];
const OP_ALU = [I64_ADD, I64_SHL, 0, 0, I64_XOR, I64_SHR_U, I64_OR, I64_AND];
const DIV_W = [I32_DIV_U, I32_REM_S, I32_REM_U];
const DIV_D = [I64_DIV_U, I64_REM_S, I64_REM_U];
const F_ARITH = [F64_ADD, F64_SUB, F64_MUL, F64_DIV];
const F_CMP = [F64_LE, F64_LT, F64_EQ];
/** FCVT.{W,WU,L,LU}.D: lower and upper bound (exclusive) of values that truncate in range. */
const CVT_LO = [-2147483649, -1, -(2 ** 63), -1];
const CVT_HI = [2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64];
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** Generate the trace at RAM offset `start` as a WebAssembly module (len 0: not translated here). */
export function generateWasm(start: number, src: CodeSource, layout: WasmLayout): WasmGenerated {
  fBase = layout.fBase;
  xBase = layout.xBase;
  ctlBase = layout.ctlBase;
  stateBase = Math.min(xBase, ctlBase, fBase);
  known = undefined;
  c.reset();
  walk(start, src);
  const s = firstShape;
  const fp = fpSeen;
  if (s.len === 0) return { len: 0, body: undefined, fp, next: -1, straight: false, exits: [] };
  let n = 0;
  for (let r = 1; r < 32; r++) if ((s.used & (1 << r)) !== 0) regLocals[r] = L_REG0 + n++;
  s.nUsed = n;
  c.reset();
  prologue(s);
  known = s;
  nExits = 0;
  const len = walk(start, src);
  known = undefined;
  epilogue(s);
  const exits = Array.from(exitOffsets.subarray(0, nExits));
  return { len, body: bodyOf(c), fp, next: cont < 0 ? -1 : start + cont, straight: !sideExits, exits };
}

/** The function body's start: locals, the pc and the used registers into locals, the block $out. */
function prologue(s: Shape): void {
  // locals: 6 i32 (k_, r_, done, sk, e, s), then i64 A, B, PC and one per used register, 4 f64
  c.push(3, 6, T_I32);
  c.uleb(3 + s.nUsed);
  c.push(T_I64, 4, T_F64);
  i32c(stateBase);
  c.push(LSET, L_S);
  if (s.usesPc) c.push(LGET, P_PC, LSET, L_PC);
  for (let r = 1; r < 32; r++) {
    if ((s.used & (1 << r)) === 0) continue;
    c.push(LGET, L_S, I64_LOAD, 3);
    sOff(xBase + 8 * r);
    c.push(LSET, regLocals[r]);
  }
  c.push(BLOCK, T_VOID, BLOCK, T_VOID); // $out, $before
}

/**
 * The function body's end: $before closes into the handler of exitBeforeIf() (r_ = k | off << 7
 * into k_ and r_, as exit(k, off, true) sets them); $out closes; the written registers and k_
 * back to memory; r_.
 */
function epilogue(s: Shape): void {
  c.push(END, LGET, L_R);
  i32c(127);
  c.push(I32_AND);
  if (s.loops) c.push(LGET, L_DONE, I32_ADD);
  if (s.usesSkip) c.push(LGET, L_SK, I32_SUB);
  i32c(STEP);
  c.push(I32_OR, LSET, L_K, LGET, L_R);
  i32c(7);
  c.push(I32_SHR_S, LSET, L_R, END);
  for (let r = 1; r < 32; r++) {
    if ((s.dirty & (1 << r)) === 0) continue;
    c.push(LGET, L_S, LGET, regLocals[r], I64_STORE, 3);
    sOff(xBase + 8 * r);
  }
  c.push(LGET, L_S, LGET, L_K, I32_STORE, 2);
  sOff(ctlBase);
  c.push(LGET, L_R, END);
}

/** The finished body, as the array blockModule() takes (one exactly-sized copy). */
function bodyOf(w: ByteWriter): number[] {
  const buf = w.buf;
  const n = w.pos;
  // (sized up front: pushing one by one regrows the array a dozen times)
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = buf[i];
  return out;
}

function regLocal(r: number): number {
  return known ? regLocals[r] : 0;
}

function get(r: number): void {
  if (r === 0) {
    c.push(I64_CONST, 0);
    return;
  }
  usedRegs |= 1 << r;
  c.push(LGET, regLocal(r));
}

/** Pop the i64 on the stack into rd (dropped for x0). */
function set(rd: number): void {
  if (rd === 0) {
    c.push(DROP);
    return;
  }
  usedRegs |= 1 << rd;
  dirtyRegs |= 1 << rd;
  c.push(LSET, regLocal(rd));
}

/** A state access's offset from local s (the address operand is `local.get s`). */
function sOff(addr: number): void {
  c.uleb(addr - stateBase);
}

function i32c(v: number): void {
  c.push(I32_CONST);
  c.sleb(v | 0);
}

function i64c(v: number): void {
  c.push(I64_CONST);
  c.sleb(v);
}

/** An i64.const beyond ±2^53. */
function i64cBig(v: bigint): void {
  c.push(I64_CONST);
  c.slebBig(v);
}

/** The second pass's distinct exits to a known pc on the trace's page (WasmGenerated.exits). */
const exitOffsets = new Int32Array(MAX_BLOCK + 2);
let nExits = 0;
/** The trace's page, as offsets from its start: [exitLo, exitHi) (walk() sets them). */
let exitLo = 0;
let exitHi = 0;

/** Set k_ and r_ and leave to the epilogue (k retired in this pass). */
function exit(kk: number, ret: number, before: boolean): void {
  if (known && !before && ret !== ABS && ret !== 0 && ret >= exitLo && ret < exitHi) {
    let seen = false;
    for (let i = 0; i < nExits; i++) seen ||= exitOffsets[i] === ret;
    if (!seen && nExits < exitOffsets.length) exitOffsets[nExits++] = ret;
  }
  i32c(kk);
  if (known?.loops) c.push(LGET, L_DONE, I32_ADD);
  if (known?.usesSkip) c.push(LGET, L_SK, I32_SUB);
  if (before) {
    i32c(STEP);
    c.push(I32_OR);
  }
  c.push(LSET, L_K);
  i32c(ret);
  c.push(LSET, L_R, BR, depth);
}

/**
 * `if (cond on stack) { leave before the current instruction }`: r_ = k | off << 7 and a branch
 * to $before, whose one handler (epilogue) sets k_ and r_ as exit() would. Inline, each was
 * 20-27 bytes of every load and store (a quarter of a trace's code).
 */
function exitBeforeIf(): void {
  i32c(k | (off << 7));
  c.push(LSET, L_R, BR_IF, depth - 1);
}

/** The pc of block offset d, as an i64 on the stack. */
function pcPlus(d: number): void {
  usesPc = true;
  c.push(LGET, L_PC);
  if (d !== 0) {
    i64c(d);
    c.push(I64_ADD);
  }
}

/** Loop back onto the trace's start: another pass while it fits before the next check. */
function loopBack(kk: number): void {
  loops = true;
  sideExits = true;
  c.push(LGET, L_DONE);
  i32c(kk);
  c.push(I32_ADD);
  if (known?.usesSkip) {
    c.push(LGET, L_SK, I32_SUB);
    i32c(0);
    c.push(LSET, L_SK);
  }
  c.push(LTEE, L_DONE);
  i32c(known ? known.len : 0);
  c.push(I32_ADD, LGET, P_ROOM, I32_LE_S, BR_IF, depth - 2);
  exit(0, 0, false);
}

/**
 * The host address of rs1 + imm on the stack (the effective address in A, the TLB entry address
 * of its page in E), or leave before the instruction on a TLB miss or a misaligned access.
 */
function address(rs1: number, imm: number, tlb: number, size: number): void {
  get(rs1);
  if (imm !== 0) {
    i64c(imm);
    c.push(I64_ADD);
  }
  // E = tlb + ((A >>> 12) & 4095) * 16
  c.push(LTEE, L_A, I32_WRAP);
  i32c(8);
  c.push(I32_SHR_U);
  i32c(0xfff0);
  c.push(I32_AND, LGET, tlb, I32_ADD, LTEE, L_E);
  // the tag (lo & ~0xfff, hi: one i64) against A's page and, in the same compare, A's low bits
  // that an aligned access has clear (a tag's are all clear)
  c.push(I64_LOAD, 3, 0, LGET, L_A);
  i64c(-4096 | (size - 1));
  c.push(I64_AND, I64_NE);
  exitBeforeIf();
  // the host address: the entry's host delta (RAM offset - page address, hart.ts setEntry) + A
  c.push(LGET, L_E, I32_LOAD, 2, 12);
  c.push(LGET, L_A, I32_WRAP, I32_ADD);
}

/** Local A or B (the W forms: its low word). */
function getAB(l: number, w: boolean): void {
  c.push(LGET, l);
  if (w) c.push(I32_WRAP);
}

/** i64 division with RISC-V's answers for a zero divisor and overflow (unpriv §13.2). */
function divide(f3: number, w: boolean): void {
  // A = dividend, B = divisor (i64; the W forms use their low words)
  const T = w ? T_I32 : T_I64;
  getAB(L_B, w);
  if (w) c.push(0x45 /* i32.eqz */);
  else c.push(I64_EQZ);
  c.push(IF, T);
  if (f3 === 4 || f3 === 5) {
    if (w) i32c(-1);
    else i64c(-1);
  } else getAB(L_A, w);
  c.push(ELSE);
  if (f3 === 4) {
    // DIV: MIN / -1 = MIN (the WebAssembly instruction traps there)
    getAB(L_A, w);
    if (w) i32c(-0x80000000);
    else i64cBig(I64_MIN);
    c.push(w ? I32_EQ : I64_EQ);
    getAB(L_B, w);
    if (w) i32c(-1);
    else i64c(-1);
    c.push(w ? I32_EQ : I64_EQ, I32_AND, IF, T);
    getAB(L_A, w);
    c.push(ELSE);
    getAB(L_A, w);
    getAB(L_B, w);
    c.push(w ? I32_DIV_S : I64_DIV_S, END);
  } else {
    getAB(L_A, w);
    getAB(L_B, w);
    // REM of MIN by -1 is 0 in both (no trap for rem_s)
    c.push(w ? DIV_W[f3 - 5] : DIV_D[f3 - 5]);
  }
  c.push(END);
  if (w) c.push(I64_EXT_S);
}

// --- D extension (see the header): f registers stay in memory; FA, FB, FC, FR are f64 locals

function fLocal(i: number): number {
  return known ? L_REG0 + known.nUsed + i : 0;
}

function fget(r: number): void {
  c.push(LGET, L_S, F64_LOAD, 3);
  sOff(fBase + 8 * r);
}

/** Leave before the instruction unless every bit of `mask` is set in the FP state word. */
function fpGuard(mask: number): void {
  ctlLoad(40);
  i32c(mask);
  c.push(I32_AND);
  i32c(mask);
  c.push(I32_NE);
  exitBeforeIf();
}

/** The control word holding the LR reservation (a RAM offset, -1 for none): ctl+60. */
export const CTL_RESERVATION = 60;

/** Push the control word at ctl+`offset` (i32). */
function ctlLoad(offset: number): void {
  c.push(LGET, L_S, I32_LOAD, 2);
  sOff(ctlBase + offset);
}

/** Push whether the reservation is the host address in local E (i32: 1 or 0). */
function reservedHere(): void {
  ctlLoad(CTL_RESERVATION);
  c.push(LGET, L_E, I32_EQ);
}

/**
 * LR and SC (unpriv §8.2) on the TLB hit paths: LR through the read TLB, SC through the write
 * TLB (a hit means RAM, writable and dirty, PMP-allowed, no trigger, no code on the page), both
 * naturally aligned; anything else leaves before the instruction for the interpreter. The
 * reservation (a RAM offset, -1 for none) is the control word at ctl+60, which the run loop
 * loads from and stores back to the hart around each dispatch; LR clears NO_RES in the FP state
 * word (the guards of FP stores and AMOs then see it), SC sets it again. An SC succeeds when the
 * reservation is its address, and drops the reservation either way.
 */
function loadReservedStoreConditional(lr: boolean, size: number, rd: number, rs1: number, rs2: number): void {
  address(rs1, 0, lr ? P_RT : P_WT, size);
  c.push(LSET, L_E); // the host address
  if (lr) {
    c.push(LGET, L_S, LGET, L_E, I32_STORE, 2);
    sOff(ctlBase + CTL_RESERVATION);
    c.push(LGET, L_S);
    ctlLoad(40);
    i32c(~FpState.NO_RES);
    c.push(I32_AND, I32_STORE, 2);
    sOff(ctlBase + 40);
    c.push(LGET, L_E);
    if (size === 8) c.push(I64_LOAD, 3, 0);
    else c.push(I64_LOAD32_S, 2, 0);
    set(rd);
    return;
  }
  reservedHere();
  c.push(IF, T_I64);
  c.push(LGET, L_E);
  get(rs2);
  if (size === 8) c.push(I64_STORE, 3, 0);
  else c.push(I64_STORE32, 2, 0);
  i64c(0);
  c.push(ELSE);
  i64c(1);
  c.push(END);
  set(rd);
  dropReservation();
}

/** No reservation (ctl+60 = -1), and NO_RES set in the FP state word. */
function dropReservation(): void {
  c.push(LGET, L_S, I32_CONST);
  c.sleb(-1);
  c.push(I32_STORE, 2);
  sOff(ctlBase + CTL_RESERVATION);
  c.push(LGET, L_S);
  ctlLoad(40);
  i32c(FpState.NO_RES);
  c.push(I32_OR, I32_STORE, 2);
  sOff(ctlBase + 40);
}

/**
 * CSRs whose Zicsr instructions a trace hands to the hart (import "e"."c", the CSR call):
 * sstatus (priv 1.12 §4.1.1); sscratch, sepc, scause and stval (§4.1.6-4.1.9: Linux's trap entry
 * and return swap and read them,
 * each of which ended a trace); and time (Linux's sched_clock and clocksource read it ~5,000
 * times in the kit's boot, in functions of two instructions). The hart says when one stays the
 * interpreter's (hart.ts csrFromTrace).
 */
function traceCsr(csr: number): boolean {
  return csr === Csr.sstatus || (csr >= Csr.sscratch && csr <= Csr.stval) || csr === Csr.time;
}

/**
 * A Zicsr instruction on a traceCsr() CSR (sstatus: Linux's interrupt enable/disable, ~100
 * thousand in the kit's boot, each of which ended a trace): a call into the hart (import "e"."c",
 * CsrResult), with rs1 stored to the register file before and rd loaded from it after. The
 * trace leaves before the instruction when the hart says ILLEGAL (the interpreter raises the
 * exception, or does what the hart left it); after it when the hart says CHECK.
 */
function csrOp(insn: number, f3: number, rd: number, rs1: number): void {
  if (f3 < 4 && rs1 !== 0) {
    c.push(LGET, L_S);
    get(rs1);
    c.push(I64_STORE, 3);
    sOff(xBase + 8 * rs1);
  }
  i32c(insn);
  c.push(CALL, FN_CSR, LTEE, L_E);
  i32c(CsrResult.ILLEGAL);
  c.push(I32_EQ);
  exitBeforeIf();
  if (rd !== 0) {
    c.push(LGET, L_S, I64_LOAD, 3);
    sOff(xBase + 8 * rd);
    set(rd);
  }
  c.push(LGET, L_E);
  i32c(CsrResult.CHECK);
  c.push(I32_EQ, IF, T_VOID);
  depth++;
  exit(k + 1, off + 4, true); // the run loop checks interrupts, then steps the next instruction
  c.push(END);
  depth--;
}

/** FS becomes Dirty (the run loop applies it to mstatus after the dispatch). */
function fpDirty(): void {
  c.push(LGET, L_S, I32_CONST, 1, I32_STORE, 2);
  sOff(ctlBase + 44);
}

function f64c(v: number): void {
  f64Scratch[0] = v;
  const b = f64Bytes;
  c.push(F64_CONST, b[0], b[1], b[2], b[3], b[4], b[5], b[6]);
  c.push(b[7]);
}

/** Which exact zeros checkResult() lets through. */
const ZeroOk = {
  /** None. */
  NONE: 0,
  /** Any (a sum). */
  ANY: 1,
  /** FA or FB is zero (a product). */
  A_OR_B: 2,
  /** FA is zero (a quotient, a root). */
  A: 3,
} as const;
type ZeroOk = (typeof ZeroOk)[keyof typeof ZeroOk];

/** Leave unless local FR is normal (|r| > 2^-1022, finite: no OF, UF or NV) or `zero` allows r = 0. */
function checkResult(zero: ZeroOk): void {
  const FR = fLocal(3);
  c.push(LGET, FR, F64_ABS);
  f64c(2.2250738585072014e-308);
  c.push(F64_GT, LGET, FR, F64_ABS);
  f64c(Number.POSITIVE_INFINITY);
  c.push(F64_LT, I32_AND);
  if (zero !== ZeroOk.NONE) {
    c.push(LGET, FR);
    f64c(0);
    c.push(F64_EQ);
    if (zero === ZeroOk.ANY) i32c(1);
    else if (zero === ZeroOk.A_OR_B) {
      isZero(0);
      isZero(1);
      c.push(I32_OR);
    } else isZero(0);
    c.push(I32_AND, I32_OR);
  }
  c.push(0x45 /* i32.eqz */);
  exitBeforeIf();
}

/** Store local FR into f[rd]. */
function fsetFR(rd: number): void {
  c.push(LGET, L_S, LGET, fLocal(3), F64_STORE, 3);
  sOff(fBase + 8 * rd);
}

/** The rounding-mode requirement of an arithmetic op: undefined when not translated. */
function rmMask(rm: number): number | undefined {
  return rm === 7 ? FpState.ON | FpState.NX | FpState.RNE : rm === 0 ? FpState.ON | FpState.NX : undefined;
}

/** One of the locals FA..FC is zero (an exact zero product). */
function isZero(i: number): void {
  c.push(LGET, fLocal(i));
  f64c(0);
  c.push(F64_EQ);
}

/** The D instruction `insn` (op 1, 9, 16..20); false when not translated here. */
function fpOp(insn: number, op: number): boolean {
  const rd = (insn >> 7) & 31;
  const rs1 = (insn >> 15) & 31;
  const rs2 = (insn >> 20) & 31;
  const f3 = (insn >> 12) & 7;
  const FA = fLocal(0);
  const FB = fLocal(1);
  const FC = fLocal(2);
  const FR = fLocal(3);
  if (op === 1 || op === 9) {
    if (f3 !== 3) return false; // FLW/FSW: binary32
    fpGuard(op === 1 ? FpState.ON : FpState.ON | FpState.NO_RES);
    if (op === 1) {
      address(rs1, insn >> 20, P_RT, 8);
      c.push(I64_LOAD, 0, 0, LSET, L_A);
      c.push(LGET, L_S, LGET, L_A, I64_STORE, 3);
      sOff(fBase + 8 * rd);
      fpDirty();
    } else {
      address(rs1, ((insn >> 25) << 5) | ((insn >> 7) & 31), P_WT, 8);
      c.push(LGET, L_S, I64_LOAD, 3);
      sOff(fBase + 8 * rs2);
      c.push(I64_STORE, 0, 0);
    }
    return true;
  }
  if (((insn >> 25) & 3) !== 1) return false; // fmt D only
  if (op !== 20) {
    // FMADD, FMSUB, FNMSUB, FNMADD: fma(±a, b, ±c)
    const mask = rmMask(f3);
    if (mask === undefined) return false;
    fpGuard(mask);
    fget(rs1);
    if (op === 18 || op === 19) c.push(F64_NEG);
    c.push(LSET, FA);
    fget(rs2);
    c.push(LSET, FB);
    fget(insn >>> 27);
    if (op === 17 || op === 19) c.push(F64_NEG);
    c.push(LSET, FC, LGET, FA, LGET, FB, LGET, FC);
    c.push(CALL, FN_FMA, LSET, FR);
    checkResult(ZeroOk.A_OR_B);
    fsetFR(rd);
    fpDirty();
    return true;
  }
  const f5 = insn >>> 27;
  switch (f5) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 11: {
      // FADD, FSUB, FMUL, FDIV, FSQRT
      if (f5 === 11 && rs2 !== 0) return false;
      const mask = rmMask(f3);
      if (mask === undefined) return false;
      fpGuard(mask);
      fget(rs1);
      c.push(LSET, FA);
      if (f5 !== 11) {
        fget(rs2);
        c.push(LSET, FB);
      }
      c.push(LGET, FA);
      if (f5 !== 11) c.push(LGET, FB);
      c.push(F_ARITH[f5] ?? F64_SQRT, LSET, FR);
      // exact zeros: any sum; a product with a zero factor; a zero dividend or root
      checkResult(f5 < 2 ? ZeroOk.ANY : f5 === 2 ? ZeroOk.A_OR_B : ZeroOk.A);
      fsetFR(rd);
      fpDirty();
      return true;
    }
    case 4: {
      // FSGNJ, FSGNJN, FSGNJX: sign bits only, no flags
      if (f3 > 2) return false;
      fpGuard(FpState.ON);
      c.push(LGET, L_S, LGET, L_S, I64_LOAD, 3);
      sOff(fBase + 8 * rs1);
      if (f3 === 2) {
        c.push(LGET, L_S, I64_LOAD, 3);
        sOff(fBase + 8 * rs2);
        i64cBig(I64_MIN);
        c.push(I64_AND, I64_XOR);
      } else {
        i64cBig(I64_MAX);
        c.push(I64_AND, LGET, L_S, I64_LOAD, 3);
        sOff(fBase + 8 * rs2);
        if (f3 === 1) {
          i64c(-1);
          c.push(I64_XOR);
        }
        i64cBig(I64_MIN);
        c.push(I64_AND, I64_OR);
      }
      c.push(I64_STORE, 3);
      sOff(fBase + 8 * rd);
      fpDirty();
      return true;
    }
    case 5:
    case 20: {
      // FMIN/FMAX, FLE/FLT/FEQ: NaN operands (flags, canonical NaN) are the interpreter's
      if (f5 === 5 ? f3 > 1 : f3 > 2) return false;
      fpGuard(FpState.ON);
      fget(rs1);
      c.push(LSET, FA);
      fget(rs2);
      c.push(LSET, FB, LGET, FA, LGET, FA, F64_EQ);
      c.push(LGET, FB, LGET, FB, F64_EQ, I32_AND, 0x45);
      exitBeforeIf();
      if (f5 === 5) {
        c.push(LGET, FA, LGET, FB, f3 === 0 ? F64_MIN : F64_MAX, LSET, FR);
        fsetFR(rd);
      } else {
        c.push(LGET, FA, LGET, FB, F_CMP[f3], I64_EXT_U);
        set(rd);
      }
      fpDirty();
      return true;
    }
    case 24: {
      // FCVT.{W,WU,L,LU}.D, round toward zero (C casts) only: in range, or the interpreter
      if (f3 !== 1 || rs2 > 3) return false;
      fpGuard(FpState.ON | FpState.NX);
      fget(rs1);
      c.push(LTEE, FA);
      f64c(CVT_LO[rs2]);
      c.push(rs2 === 2 ? 0x66 /* f64.ge */ : F64_GT, LGET, FA);
      f64c(CVT_HI[rs2]);
      c.push(F64_LT, I32_AND, 0x45);
      exitBeforeIf();
      c.push(LGET, FA);
      if (rs2 < 2) c.push(rs2 === 0 ? I32_TRUNC_F64_S : I32_TRUNC_F64_U, I64_EXT_S);
      else c.push(rs2 === 2 ? I64_TRUNC_F64_S : I64_TRUNC_F64_U);
      set(rd);
      fpDirty();
      return true;
    }
    case 26: {
      // FCVT.D.{W,WU,L,LU}: 32-bit sources are exact; 64-bit ones round (NX, RNE)
      if (rs2 > 3) return false;
      // (rm 5 and 6 are reserved: illegal even where no rounding happens)
      const mask = rs2 < 2 && f3 !== 5 && f3 !== 6 ? FpState.ON | (f3 === 7 ? FpState.RNE : 0) : rmMask(f3);
      if (mask === undefined) return false;
      fpGuard(mask);
      get(rs1);
      if (rs2 < 2) c.push(I32_WRAP, rs2 === 0 ? F64_CONVERT_I32_S : F64_CONVERT_I32_U);
      else c.push(rs2 === 2 ? F64_CONVERT_I64_S : F64_CONVERT_I64_U);
      c.push(LSET, FR);
      fsetFR(rd);
      fpDirty();
      return true;
    }
    case 28: {
      // FMV.X.D (fclass: the interpreter's)
      if (f3 !== 0 || rs2 !== 0) return false;
      fpGuard(FpState.ON);
      c.push(LGET, L_S, I64_LOAD, 3);
      sOff(fBase + 8 * rs1);
      set(rd);
      fpDirty();
      return true;
    }
    case 30: {
      // FMV.D.X
      if (f3 !== 0 || rs2 !== 0) return false;
      fpGuard(FpState.ON);
      c.push(LGET, L_S);
      get(rs1);
      c.push(I64_STORE, 3);
      sOff(fBase + 8 * rd);
      fpDirty();
      return true;
    }
    default:
      return false;
  }
}

/** Close the innermost open forward branch's block; its skip index. */
function popLabel(): number {
  nLabels--;
  c.push(END);
  depth--;
  return nLabels;
}

/**
 * One pass over the trace at `start`, appending its code to `c` (the first pass: `known`
 * undefined, its shape into firstShape; the second: the code, with the first pass's shape).
 * Returns the instructions translated.
 */
/** walk(): the offset from its start where the trace's straight path went on at the length limit, or -1. */
let cont = -1;
/** walk(): a branch leaves the trace (or loops back onto its start). */
let sideExits = false;

function walk(start: number, src: CodeSource): number {
  const { u16, ctab } = src;
  depth = 1; // inside $out and $before (prologue): exit() branches to depth, exitBeforeIf() to depth - 1
  loops = false;
  usesPc = false;
  usedRegs = 0;
  dirtyRegs = 0;
  nSkips = 0;
  nLabels = 0;
  sideExits = false;
  fpSeen = false;
  k = 0;
  off = 0;
  if (visitMark === 0x7fffffff) {
    visited.fill(0);
    visitMark = 0;
  }
  const mark = ++visitMark;
  const pageEnd = 4096 - (start & 4095);
  const pageStart = -(start & 4095);
  exitLo = pageStart;
  exitHi = pageEnd;
  let ended = false;
  let next = Number.NaN;
  if (known?.loops) {
    c.push(LOOP, T_VOID);
    depth++;
  }
  while (k < MAX_BLOCK && off < pageEnd && off >= pageStart && visited[4096 + off] !== mark) {
    visited[4096 + off] = mark;
    while (nLabels > 0 && labelTarget[nLabels - 1] === off) {
      const l = popLabel();
      if (!known) skips[labelId[l]] = k - labelKb[l] - 1;
    }
    const fo = start + off;
    const p0 = u16[fo >> 1];
    let insn: number;
    let ilen: number;
    if ((p0 & 3) !== 3) {
      insn = compressedEntry(ctab, p0);
      ilen = 2;
      if (insn === 0) break;
    } else {
      if (off + 4 > pageEnd) break;
      insn = p0 | (u16[(fo >> 1) + 1] << 16);
      ilen = 4;
    }
    const rd = (insn >> 7) & 31;
    const rs1 = (insn >> 15) & 31;
    const rs2 = (insn >> 20) & 31;
    const f3 = (insn >> 12) & 7;
    const f7 = insn >>> 25;
    const op = (insn >>> 2) & 31;
    let ok = true;
    switch (op) {
      case 13: // LUI
        i64c(insn & 0xfffff000);
        set(rd);
        break;
      case 5: // AUIPC
        if (rd) {
          pcPlus(off + (insn & 0xfffff000));
          set(rd);
        }
        break;
      case 27: {
        // JAL
        const imm =
          ((insn >> 31) << 20) | (((insn >> 21) & 0x3ff) << 1) | (((insn >> 20) & 1) << 11) | (insn & 0xff000);
        if (rd) {
          pcPlus(off + ilen);
          set(rd);
        }
        const target = off + imm;
        // (k + 1 computed on every path: an addition only on a side no warm-up took had no type
        // feedback, and deoptimized the generator the first time a guest took it)
        const k1 = k + 1;
        if (target === 0) {
          loopBack(k1);
          ended = true;
        } else if (target >= pageStart && target < pageEnd && visited[4096 + target] !== mark) {
          next = target;
        } else {
          exit(k1, target, false);
          ended = true;
        }
        break;
      }
      case 25: {
        // JALR: target = (rs1 + imm) & ~1 (unpriv §2.5.1); far targets (beyond ±2^52) go to the interpreter
        if (f3 !== 0) {
          ok = false;
          break;
        }
        get(rs1);
        if (insn >> 20 !== 0) {
          i64c(insn >> 20);
          c.push(I64_ADD);
        }
        i64c(-2);
        c.push(I64_AND, LTEE, L_B);
        // far: (target >> 52) is neither 0 nor -1
        i64c(52);
        c.push(I64_SHR_S);
        i64c(1);
        c.push(I64_ADD);
        i64c(2);
        c.push(I64_GE_U);
        exitBeforeIf();
        if (rd) {
          pcPlus(off + ilen);
          set(rd);
        }
        c.push(LGET, L_S, LGET, L_B, I64_STORE, 3);
        sOff(ctlBase + 8);
        exit(k + 1, ABS, false);
        ended = true;
        break;
      }
      case 24: {
        // BRANCH
        const cmp = BRANCH_CMP[f3];
        if (cmp === 0) {
          ok = false;
          break;
        }
        const imm =
          ((insn >> 31) << 12) | (((insn >> 25) & 0x3f) << 5) | (((insn >> 8) & 0xf) << 1) | (((insn >> 7) & 1) << 11);
        get(rs1);
        get(rs2);
        c.push(cmp);
        const k1 = k + 1; // (on every path: see JAL)
        if (off + imm === 0) {
          c.push(IF, T_VOID);
          depth++;
          loopBack(k1);
          c.push(END);
          depth--;
        } else if (off + imm > off && off + imm < pageEnd && (nLabels === 0 || off + imm <= labelTarget[nLabels - 1])) {
          // the taken side skips forward inside the trace: a block around the skipped instructions
          const id = nSkips++;
          if (!known) skips[id] = 0;
          labelId[nLabels] = id;
          labelTarget[nLabels] = off + imm;
          labelKb[nLabels] = k;
          nLabels++;
          // the condition is on the stack: keep it in E while the block opens
          c.push(LSET, L_E, BLOCK, T_VOID);
          depth++;
          c.push(LGET, L_E, IF, T_VOID);
          if (known?.usesSkip) {
            c.push(LGET, L_SK);
            i32c(skips[id]);
            c.push(I32_ADD, LSET, L_SK);
          }
          c.push(BR, 1, END);
        } else {
          sideExits = true;
          c.push(IF, T_VOID);
          depth++;
          exit(k1, off + imm, false);
          c.push(END);
          depth--;
        }
        break;
      }
      case 0: {
        // LOAD
        if (f3 === 7) {
          ok = false;
          break;
        }
        address(rs1, insn >> 20, P_RT, 1 << (f3 & 3));
        c.push(LOAD_OPS[f3], 0, 0);
        set(rd);
        break;
      }
      case 8: {
        // STORE (code pages are never in the write TLB: their stores miss and invalidate)
        if (f3 > 3) {
          ok = false;
          break;
        }
        address(rs1, ((insn >> 25) << 5) | ((insn >> 7) & 31), P_WT, 1 << f3);
        get(rs2);
        c.push(STORE_OPS[f3], 0, 0);
        break;
      }
      case 4: {
        // OP-IMM
        const imm = insn >> 20;
        switch (f3) {
          case 0: // ADDI
            get(rs1);
            if (imm !== 0) {
              i64c(imm);
              c.push(I64_ADD);
            }
            set(rd);
            break;
          case 2: // SLTI (rd = x0, rs1 = x0: the magic HINT when enabled)
          case 3: // SLTIU
            if (f3 === 2 && rd === 0 && rs1 === 0 && src.magic) {
              ok = false;
              break;
            }
            get(rs1);
            i64c(imm);
            c.push(f3 === 2 ? I64_LT_S : I64_LT_U, I64_EXT_U);
            set(rd);
            break;
          case 4:
          case 6:
          case 7:
            get(rs1);
            i64c(imm);
            c.push(f3 === 4 ? I64_XOR : f3 === 6 ? I64_OR : I64_AND);
            set(rd);
            break;
          case 1: // SLLI
            if (insn >>> 26 !== 0) {
              ok = false;
              break;
            }
            get(rs1);
            i64c(imm & 63);
            c.push(I64_SHL);
            set(rd);
            break;
          default: {
            // SRLI / SRAI
            const top = insn >>> 26;
            if (top !== 0 && top !== 0x10) {
              ok = false;
              break;
            }
            get(rs1);
            i64c(imm & 63);
            c.push(top === 0 ? I64_SHR_U : I64_SHR_S);
            set(rd);
          }
        }
        break;
      }
      case 6: {
        // OP-IMM-32
        const imm = insn >> 20;
        let o = 0;
        if (f3 === 0) o = I32_ADD;
        else if (f3 === 1 && f7 === 0) o = I32_SHL;
        else if (f3 === 5 && f7 === 0) o = I32_SHR_U;
        else if (f3 === 5 && f7 === 0x20) o = I32_SHR_S;
        else {
          ok = false;
          break;
        }
        if (rd) {
          get(rs1);
          c.push(I32_WRAP);
          i32c(f3 === 0 ? imm : imm & 31);
          c.push(o, I64_EXT_S);
          set(rd);
        }
        break;
      }
      case 12: {
        // OP
        const valid = f7 === 0 || (f7 === 0x20 && (f3 === 0 || f3 === 5)) || f7 === 1;
        if (!valid) {
          ok = false;
          break;
        }
        if (!rd) break;
        if (f7 === 1 && f3 !== 0) {
          get(rs1);
          c.push(LSET, L_A);
          get(rs2);
          c.push(LSET, L_B);
          if (f3 >= 4) divide(f3, false);
          else {
            // MULH/MULHSU/MULHU: the unsigned high product, corrected for signed operands
            c.push(LGET, L_A, LGET, L_B, CALL, FN_MULHU);
            if (f3 !== 3) {
              c.push(LGET, L_B);
              i64c(0);
              c.push(LGET, L_A);
              i64c(0);
              c.push(I64_LT_S, SELECT, I64_SUB);
            }
            if (f3 === 1) {
              c.push(LGET, L_A);
              i64c(0);
              c.push(LGET, L_B);
              i64c(0);
              c.push(I64_LT_S, SELECT, I64_SUB);
            }
          }
          set(rd);
          break;
        }
        get(rs1);
        get(rs2);
        if (f7 === 1) c.push(I64_MUL);
        else if (f7 === 0x20) c.push(f3 === 0 ? I64_SUB : I64_SHR_S);
        else if (f3 === 2 || f3 === 3) c.push(f3 === 2 ? I64_LT_S : I64_LT_U, I64_EXT_U);
        else c.push(OP_ALU[f3]);
        set(rd);
        break;
      }
      case 14: {
        // OP-32
        let o = 0;
        if (f7 === 0) o = f3 === 0 ? I32_ADD : f3 === 1 ? I32_SHL : f3 === 5 ? I32_SHR_U : 0;
        else if (f7 === 0x20) o = f3 === 0 ? I32_SUB : f3 === 5 ? I32_SHR_S : 0;
        else if (f7 === 1) o = f3 === 0 ? I32_MUL : f3 >= 4 ? -1 : 0;
        if (o === 0) {
          ok = false;
          break;
        }
        if (!rd) break;
        if (o === -1) {
          get(rs1);
          c.push(LSET, L_A);
          get(rs2);
          c.push(LSET, L_B);
          divide(f3, true);
        } else {
          get(rs1);
          c.push(I32_WRAP);
          get(rs2);
          c.push(I32_WRAP, o, I64_EXT_S);
        }
        set(rd);
        break;
      }
      case 11: {
        // AMO (unpriv §8.4): a read-modify-write through the write TLB, whose hit means RAM,
        // writable and dirty, PMP-allowed, no trigger and no code on the page; naturally aligned
        // (else the interpreter raises the misaligned fault); a reservation at its address is
        // dropped, as the interpreter's AMO does. LR and SC: loadReservedStoreConditional().
        const f5 = insn >>> 27;
        const size = f3 === 2 ? 4 : f3 === 3 ? 8 : 0;
        if (size !== 0 && (f5 === 0x02 || f5 === 0x03)) {
          ok = f5 === 0x03 || rs2 === 0;
          if (ok) loadReservedStoreConditional(f5 === 0x02, size, rd, rs1, rs2);
          break;
        }
        if (size === 0 || !AMO_OPS.includes(f5)) {
          ok = false;
          break;
        }
        address(rs1, 0, P_WT, size);
        c.push(LSET, L_E); // the host address (the TLB entry is no longer needed)
        reservedHere();
        c.push(IF, T_VOID);
        dropReservation();
        c.push(END);
        // B = the old value (.w: sign-extended)
        c.push(LGET, L_E);
        if (size === 8) c.push(I64_LOAD, 3, 0);
        else c.push(I64_LOAD32_S, 2, 0);
        c.push(LSET, L_B, LGET, L_E);
        switch (f5) {
          case 0x01: // AMOSWAP
            get(rs2);
            break;
          case 0x00: // AMOADD
          case 0x04: // AMOXOR
          case 0x08: // AMOOR
          case 0x0c: // AMOAND
            c.push(LGET, L_B);
            get(rs2);
            c.push(f5 === 0 ? I64_ADD : f5 === 4 ? I64_XOR : f5 === 8 ? I64_OR : I64_AND);
            break;
          default: {
            // AMOMIN/MAX[U]: the old value where it wins (.w compares the low words)
            const signed = f5 === 0x10 || f5 === 0x14;
            const min = f5 === 0x10 || f5 === 0x18;
            c.push(LGET, L_B);
            get(rs2);
            const lt = size === 8 ? (signed ? I64_LT_S : I64_LT_U) : signed ? I32_LT_S : I32_LT_U;
            // min: old < b selects old; max: b < old does
            if (min) c.push(LGET, L_B);
            else get(rs2);
            if (size === 4) c.push(I32_WRAP);
            if (min) get(rs2);
            else c.push(LGET, L_B);
            if (size === 4) c.push(I32_WRAP);
            c.push(lt, SELECT);
          }
        }
        if (size === 8) c.push(I64_STORE, 3, 0);
        else c.push(I64_STORE32, 2, 0);
        c.push(LGET, L_B);
        set(rd);
        break;
      }
      case 3: // MISC-MEM: FENCE is a no-op on one in-order hart; FENCE.I is the interpreter's
        ok = f3 === 0;
        break;
      case 28:
        // SYSTEM: Zicsr on traceCsr() CSRs only (every other system instruction is the interpreter's)
        ok = (f3 & 3) !== 0 && ilen === 4 && traceCsr(insn >>> 20);
        if (ok) csrOp(insn, f3, rd, rs1);
        break;
      case 1:
      case 9:
      case 16:
      case 17:
      case 18:
      case 19:
      case 20:
        if (!fpOp(insn, op)) {
          fpSeen = true;
          ok = false;
        }
        break;
      default:
        ok = false;
    }
    if (!ok) break;
    k++;
    if (ended) break;
    if (!Number.isNaN(next)) {
      off = next;
      next = Number.NaN;
    } else off += ilen;
  }
  if (!known) {
    const s = firstShape;
    s.len = k;
    s.loops = loops;
    s.usesSkip = nSkips > 0;
    s.usesPc = usesPc;
    s.used = usedRegs;
    s.dirty = dirtyRegs;
  }
  if (k === 0) return 0;
  cont = !ended && k >= MAX_BLOCK && off >= pageStart && off < pageEnd ? off : -1;
  if (!ended) exit(k, off, false);
  while (nLabels > 0) {
    const l = popLabel();
    exit(labelKb[l] + 1, labelTarget[l], false);
  }
  if (known?.loops) {
    c.push(END);
    depth--;
  }
  return k;
}

/** The block function's type: (rt, wt, room, pc: i64) -> i32. */
const BLOCK_TYPE = [0x60, 4, T_I32, T_I32, T_I32, T_I64, 1, T_I32];
/**
 * A block module's types: the block, mulhu (i64, i64) -> i64, fma (f64, f64, f64) -> f64, the
 * sstatus call (i32) -> i32.
 */
/** fma's type: (f64, f64, f64) -> f64. */
const FMA_TYPE = [0x60, 3, T_F64, T_F64, T_F64, 1, T_F64];
/** The CSR call's type: (insn: i32) -> CsrResult. */
const CSR_TYPE = [0x60, 1, T_I32, 1, T_I32];
const BLOCK_MODULE_TYPES = [BLOCK_TYPE, [0x60, 2, T_I64, T_I64, 1, T_I64], FMA_TYPE, CSR_TYPE];
/**
 * A block module's imports after the memory: "e"."f", the FPU's fma; "e"."c", the CSR call.
 * Both are the dispatcher's WebAssembly forwarders of the JavaScript functions, not the functions
 * themselves: V8 (11) compiles a wrapper for each JavaScript import of each module, which was
 * 0.2 ms of every batch's compilation on the main thread.
 */
const BLOCK_MODULE_IMPORTS = [
  [1, 0x65 /* "e" */, 1, 0x66 /* "f" */, 0x00, 2],
  [1, 0x65 /* "e" */, 1, 0x63 /* "c" */, 0x00, 3],
];
/** Function indices in a block module: the imports, then mulhu, then the traces. */
const FN_FMA = 0;
const FN_CSR = 1;
const FN_MULHU = 2;
const FN_TRACES = 3;

/** What the CSR call returns to a trace. */
export const CsrResult = {
  /** Done: go on. */
  DONE: 0,
  /**
   * Done, and an interrupt check is due before the next instruction (sstatus.SIE was set, or any
   * CSR under deterministic time, as the interpreter checks after every Zicsr instruction) or
   * SUM, MXR or FS changed (the trace's TLB set and FP state are stale): leave after the
   * instruction; the run loop checks interrupts first.
   */
  CHECK: 1,
  /**
   * Not done: leave before the instruction, for the interpreter (it would trap, or it is `time`
   * under deterministic time).
   */
  ILLEGAL: 2,
} as const;

/** A trace of a batch, for chaining (blockModule). */
export interface ChainInfo {
  /** Its start (a physical RAM offset). */
  readonly key: number;
  /** Its instructions. */
  readonly len: number;
  /** WasmGenerated.exits. */
  readonly exits: readonly number[];
}

/**
 * Control words of chained traces (ctl+): their retired count + (the pc's offset << 16) since the
 * dispatcher's last call, and their calls in this dispatch.
 */
export const CTL_CHAIN = 64;
export const CTL_HOPS = 68;
const RETURN_CALL = 0x12;

/**
 * The body of a trace with its exits to traces of the same batch chained: after the epilogue's
 * writeback, an exit to the start of one (r_ its offset) that fits in what is left of the room
 * adds k_ and the offset to the chain word and tail-calls it (WebAssembly tail calls), instead
 * of returning to the dispatcher, its cache and its indirect call. An exit before an instruction
 * never chains: its k_ has STEP set, far above any room.
 */
function chained(
  body: ArrayLike<number>,
  me: ChainInfo,
  index: Map<number, number>,
  lens: readonly number[],
  sBase: number,
  ctl: number,
): ArrayLike<number> {
  const w = new ByteWriter(64);
  for (const o of me.exits) {
    const j = index.get(me.key + o);
    if (j === undefined) continue;
    w.bytes([LGET, L_R, I32_CONST]);
    w.sleb(o);
    w.bytes([I32_EQ, LGET, L_K, I32_CONST]);
    w.sleb(lens[j]);
    w.bytes([I32_ADD, LGET, P_ROOM, I32_LE_S, I32_AND, IF, T_VOID]);
    w.bytes([LGET, L_S, LGET, L_S, I32_LOAD, 2]);
    w.uleb(ctl + CTL_CHAIN - sBase);
    w.bytes([LGET, L_K, I32_ADD, I32_CONST]);
    w.sleb(o * 65536);
    w.bytes([I32_ADD, I32_STORE, 2]);
    w.uleb(ctl + CTL_CHAIN - sBase);
    w.bytes([LGET, L_S, LGET, L_S, I32_LOAD, 2]);
    w.uleb(ctl + CTL_HOPS - sBase);
    w.bytes([I32_CONST, 1, I32_ADD, I32_STORE, 2]);
    w.uleb(ctl + CTL_HOPS - sBase);
    w.bytes([LGET, P_RT, LGET, P_WT, LGET, P_ROOM, LGET, L_K, I32_SUB, LGET, P_PC, I64_CONST]);
    w.sleb(o);
    w.bytes([I64_ADD, RETURN_CALL]);
    w.uleb(FN_TRACES + j);
    w.bytes([END]);
  }
  if (w.pos === 0) return body;
  // the epilogue ends `local.get r_; end`: the chains go before it
  const n = body.length;
  const out = new Array<number>(n + w.pos);
  for (let i = 0; i < n - 3; i++) out[i] = body[i];
  for (let i = 0; i < w.pos; i++) out[n - 3 + i] = w.buf[i];
  out[n - 3 + w.pos] = LGET;
  out[n - 2 + w.pos] = L_R;
  out[n - 1 + w.pos] = END;
  return out;
}

/**
 * One module for a batch of traces (a module's fixed cost, about a millisecond here, is paid once
 * per batch): imported functions fma and the CSR call, then mulhu, then the traces, exported
 * as "0".."n-1". With `chains` (one per body), exits from one trace to another's start are tail
 * calls (chained()).
 */
export function blockModule(
  bodies: readonly ArrayLike<number>[],
  layout: WasmLayout,
  chains?: readonly ChainInfo[],
): Uint8Array {
  const funcs = [1];
  const all: ArrayLike<number>[] = [MULHU_BODY];
  const index = new Map<number, number>();
  const lens: number[] = [];
  if (chains !== undefined) {
    for (let j = 0; j < chains.length; j++) {
      index.set(chains[j].key, j);
      lens.push(chains[j].len);
    }
  }
  const sBase = Math.min(layout.xBase, layout.ctlBase, layout.fBase);
  for (let i = 0; i < bodies.length; i++) {
    funcs.push(0);
    all.push(chains === undefined ? bodies[i] : chained(bodies[i], chains[i], index, lens, sBase, layout.ctlBase));
  }
  return assemble(layout, {
    types: BLOCK_MODULE_TYPES,
    imports: BLOCK_MODULE_IMPORTS,
    funcs,
    exports: [],
    elements: { first: FN_TRACES, count: bodies.length },
    bodies: all,
  });
}

/** What assemble() puts in a module besides the memory import (always import 0, "e"."m"). */
interface ModuleParts {
  /** Encoded function types (0x60 ...). */
  types: readonly (readonly number[])[];
  /** Encoded import entries after the memory. */
  imports: readonly (readonly number[])[];
  /** Type index of each defined function. */
  funcs: readonly number[];
  /** Exported functions: name (ASCII) and function index (the table "t" follows them). */
  exports: readonly (readonly [string, number])[];
  /**
   * Functions `first`..`first + count - 1` in a table of the module's own, exported as "t", in
   * place of exporting the functions: V8 (11) compiled a JavaScript wrapper for every module
   * that exports a function, on the main thread, though traces are only called from
   * WebAssembly. (Not into an imported table: V8 copied the whole imported table into each
   * instance, and updated every importing instance at each write.)
   */
  elements?: { first: number; count: number };
  /** Each defined function's body (locals and code). */
  bodies: readonly ArrayLike<number>[];
}

/** The module being assembled (reused: the result is one exactly-sized copy). */
const mw = new ByteWriter(1024); // (grows during the warm-up: see `c`)

/**
 * A module's bytes (WebAssembly core 2.0 §5.5): types, imports, functions, exports, code. Each
 * section's size is counted first, so every byte is written once, into one buffer.
 */
function assemble(layout: WasmLayout, p: ModuleParts): Uint8Array {
  const w = mw;
  w.reset();
  w.push(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  // §5.5.4 type section
  let size = ulebSize(p.types.length);
  for (const t of p.types) size += t.length;
  w.byte(1);
  w.uleb(size);
  w.uleb(p.types.length);
  for (const t of p.types) w.bytes(t);
  // §5.5.5 import section: the memory "e"."m" (limits: min, or shared min max), then the rest
  const pagesSize = ulebSize(layout.pages);
  size = ulebSize(1 + p.imports.length) + 6 + (layout.shared ? 2 * pagesSize : pagesSize);
  for (const it of p.imports) size += it.length;
  w.byte(2);
  w.uleb(size);
  w.uleb(1 + p.imports.length);
  w.push(1, 0x65 /* "e" */, 1, 0x6d /* "m" */, 0x02);
  if (layout.shared) {
    w.byte(0x03);
    w.uleb(layout.pages);
    w.uleb(layout.pages);
  } else {
    w.byte(0x00);
    w.uleb(layout.pages);
  }
  for (const it of p.imports) w.bytes(it);
  // §5.5.6 function section
  size = ulebSize(p.funcs.length);
  for (const t of p.funcs) size += ulebSize(t);
  w.byte(3);
  w.uleb(size);
  w.uleb(p.funcs.length);
  for (const t of p.funcs) w.uleb(t);
  const el = p.elements;
  if (el !== undefined) {
    // §5.5.7 table section: one funcref table of exactly `count` entries
    size = 1 + 2 + 2 * ulebSize(el.count);
    w.byte(4);
    w.uleb(size);
    w.push(1, 0x70, 0x01);
    w.uleb(el.count);
    w.uleb(el.count);
  }
  // §5.5.10 export section: the functions (funcidx), then the table "t" (tableidx 0) if any
  const nExports = p.exports.length + (el !== undefined ? 1 : 0);
  if (nExports > 0) {
    size = ulebSize(nExports) + (el !== undefined ? 4 : 0);
    for (const [name, index] of p.exports) size += ulebSize(name.length) + name.length + 1 + ulebSize(index);
    w.byte(7);
    w.uleb(size);
    w.uleb(nExports);
    for (const [name, index] of p.exports) {
      w.uleb(name.length);
      for (let i = 0; i < name.length; i++) w.byte(name.charCodeAt(i));
      w.byte(0x00);
      w.uleb(index);
    }
    if (el !== undefined) w.push(1, 0x74 /* "t" */, 0x01, 0x00);
  }
  // §5.5.12 element section: one active segment (flags 0: table 0 at offset 0, funcidx vector)
  if (el !== undefined) {
    size = 1 + 1 + 3 + ulebSize(el.count);
    for (let i = 0; i < el.count; i++) size += ulebSize(el.first + i);
    w.byte(9);
    w.uleb(size);
    w.push(1, 0x00, 0x41 /* i32.const */, 0, 0x0b /* end */);
    w.uleb(el.count);
    for (let i = 0; i < el.count; i++) w.uleb(el.first + i);
  }
  // §5.5.13 code section: each body with its size
  size = ulebSize(p.bodies.length);
  for (const f of p.bodies) size += ulebSize(f.length) + f.length;
  w.byte(10);
  w.uleb(size);
  w.uleb(p.bodies.length);
  for (const f of p.bodies) {
    w.uleb(f.length);
    w.bytes(f);
  }
  return w.copy();
}

/** (a, b) -> the high 64 bits of the unsigned 128-bit product, from 32-bit partial products. */
function mulhuBody(): Uint8Array {
  // params a 0, b 1; locals p1 2, p2 3, mid 4
  const f = new ByteWriter(128);
  f.bytes([1, 3, T_I64]);
  const lo = (l: number): void => {
    f.bytes([LGET, l, I64_CONST]);
    f.sleb(0xffffffff);
    f.bytes([I64_AND]);
  };
  const hi = (l: number): void => {
    f.bytes([LGET, l, I64_CONST, 32, I64_SHR_U]);
  };
  // p1 = lo(a) * hi(b); p2 = hi(a) * lo(b)
  lo(0);
  hi(1);
  f.bytes([I64_MUL, LSET, 2]);
  hi(0);
  lo(1);
  f.bytes([I64_MUL, LSET, 3]);
  // mid = (lo(a) * lo(b) >>> 32) + lo(p1) + lo(p2)
  lo(0);
  lo(1);
  f.bytes([I64_MUL, I64_CONST, 32, I64_SHR_U]);
  lo(2);
  f.bytes([I64_ADD]);
  lo(3);
  f.bytes([I64_ADD, LSET, 4]);
  // hi(a) * hi(b) + hi(p1) + hi(p2) + hi(mid)
  hi(0);
  hi(1);
  f.bytes([I64_MUL]);
  hi(2);
  f.bytes([I64_ADD]);
  hi(3);
  f.bytes([I64_ADD]);
  hi(4);
  f.bytes([I64_ADD, END]);
  return f.copy();
}

/** mulhu's body, the same in every block module. */
const MULHU_BODY = mulhuBody();

/** Entries of the dispatcher's direct-mapped cache (16 bytes each: key, table slot, length, 0). */
export const DISPATCH_ENTRIES = 1 << 16;

/** Why the dispatcher returned to the run loop. */
export const DispatchStatus = {
  /** The pc left for a page the fetch TLB does not hold. */
  PAGE: 1,
  /** No block for the pc in the cache. */
  MISS: 2,
  /** The next block does not fit before the next interrupt check. */
  ROOM: 3,
  /** A block left before an instruction the interpreter must execute. */
  STEP: 4,
} as const;

/**
 * The dispatcher: d(rt, wt, room, pc, fetchVa, fetchOff, xt) -> status; instructions retired at
 * ctl+16, the next pc (i64) at ctl+24, blocks called at ctl+32, the code page at ctl+48 (its
 * virtual address, i64) and ctl+56 (its RAM offset): a pc off the page is looked up in the fetch
 * TLB `xt`. The block at pc must be in the cache (the run loop puts it there), so each call
 * retires at least one block.
 */
export function dispatcherModule(layout: WasmLayout, cacheBase: number): Uint8Array {
  // params rt, wt, room, pc (f64), fva (f64), foff, xt (the fetch TLB); then locals
  const [RT, WT, ROOM, PCF, FVAF, FOFF, XT] = [0, 1, 2, 3, 4, 5, 6];
  const [N, E, K, R, CALLS, PC, FVA, D, W] = [7, 8, 9, 10, 11, 12, 13, 14, 15];
  // (a cold path, once per hart: byte lists for readability)
  const f = new ByteWriter(512);
  f.bytes([3, 5, T_I32, 3, T_I64, 1, T_I32]);
  const c = layout.ctlBase;
  const zero = (at: number): void => {
    f.bytes([I32_CONST, 0, I32_CONST, 0, I32_STORE, 2]);
    f.uleb(at);
  };
  // no chained traces yet (chained(): the dispatcher empties the first word after each call that had some)
  zero(c + CTL_CHAIN);
  zero(c + CTL_HOPS);
  const status = (v: number, depth: number): void => {
    f.bytes([I32_CONST]);
    f.sleb(v);
    f.bytes([LSET, R, BR, depth]);
  };
  f.bytes([LGET, PCF, 0xfc, 6, LSET, PC, LGET, FVAF, 0xfc, 6, LSET, FVA]); // i64.trunc_sat_f64_s
  f.bytes([BLOCK, T_VOID, LOOP, T_VOID]);
  // d = pc - fva; off the page: the fetch TLB's entry for the pc's page, or PAGE
  f.bytes([LGET, PC, LGET, FVA, I64_SUB, LTEE, D, I64_CONST]);
  f.sleb(4096);
  f.bytes([I64_GE_U, IF, T_VOID]);
  // e = xt + ((pc >>> 12) & 4095) << 4; its tag (lo & ~0xfff, hi) against the pc's page
  f.bytes([LGET, PC, I32_WRAP, I32_CONST, 12, I32_SHR_U, I32_CONST]);
  f.sleb(4095);
  f.bytes([I32_AND, I32_CONST, 4, I32_SHL, LGET, XT, I32_ADD, LTEE, E, I64_LOAD, 3, 0, LGET, PC, I64_CONST]);
  f.sleb(-4096);
  f.bytes([I64_AND, LTEE, D, I64_NE, IF, T_VOID]);
  status(DispatchStatus.PAGE, 3);
  f.bytes([END, LGET, E, I32_LOAD, 2, 8, LSET, FOFF, LGET, D, LSET, FVA, LGET, PC, LGET, FVA, I64_SUB, LSET, D, END]);
  // e = cache + (((foff + d) >>> 1) & mask) << 4
  f.bytes([LGET, FOFF, LGET, D, I32_WRAP, I32_ADD, I32_CONST, 1, I32_SHR_U, I32_CONST]);
  f.sleb(DISPATCH_ENTRIES - 1);
  f.bytes([I32_AND, I32_CONST, 4, I32_SHL, I32_CONST]);
  f.sleb(cacheBase);
  f.bytes([I32_ADD, LTEE, E]);
  // the entry's key is not this pc's: MISS
  f.bytes([I32_LOAD, 2, 0, LGET, FOFF, LGET, D, I32_WRAP, I32_ADD, I32_NE, IF, T_VOID]);
  status(DispatchStatus.MISS, 2);
  f.bytes([END]);
  // n + len > room: ROOM
  f.bytes([LGET, N, LGET, E, I32_LOAD, 2, 8, I32_ADD, LGET, ROOM, 0x4a /* i32.gt_s */, IF, T_VOID]);
  status(DispatchStatus.ROOM, 2);
  f.bytes([END]);
  // r = block(rt, wt, room - n, pc)
  f.bytes([LGET, RT, LGET, WT, LGET, ROOM, LGET, N, I32_SUB, LGET, PC, LGET, E, I32_LOAD, 2, 4, 0x11, 0, 0, LSET, R]);
  f.bytes([LGET, CALLS, I32_CONST, 1, I32_ADD, LSET, CALLS]);
  // traces it chained (chained()): w = their retired count + (the pc's offset << 16), nonzero
  // when there were some (their calls add up at CTL_HOPS for the whole dispatch)
  f.bytes([I32_CONST, 0, I32_LOAD, 2]);
  f.uleb(c + CTL_CHAIN);
  f.bytes([LTEE, W, IF, T_VOID]);
  zero(c + CTL_CHAIN);
  f.bytes([END]);
  // k = the last one's retired (| STEP); n += k & ~STEP, + the chained ones'
  f.bytes([I32_CONST, 0, I32_LOAD, 2]);
  f.uleb(c);
  f.bytes([LTEE, K, I32_CONST]);
  f.sleb(~STEP);
  f.bytes([I32_AND, LGET, N, I32_ADD, LGET, W, I32_CONST]);
  f.sleb(0xffff);
  f.bytes([I32_AND, I32_ADD, LSET, N]);
  // pc = r === ABS ? target : pc + r + the chained ones' offset
  f.bytes([I32_CONST, 0, I64_LOAD, 3]);
  f.uleb(c + 8);
  f.bytes([LGET, PC, LGET, R, LGET, W, I32_CONST, 16, I32_SHR_S, I32_ADD, I64_EXT_S, I64_ADD, LGET, R, I32_CONST]);
  f.sleb(ABS);
  f.bytes([I32_EQ, SELECT, LSET, PC]);
  // left before an instruction: STEP
  f.bytes([LGET, K, I32_CONST]);
  f.sleb(STEP);
  f.bytes([I32_AND, IF, T_VOID]);
  status(DispatchStatus.STEP, 2);
  f.bytes([END, BR, 0, END, END]);
  // results: retired, next pc, calls, and the code page the pc is on (fetchVa, fetchOff)
  f.bytes([I32_CONST, 0, LGET, N, I32_STORE, 2]);
  f.uleb(c + 16);
  f.bytes([I32_CONST, 0, LGET, PC, I64_STORE, 3]);
  f.uleb(c + 24);
  f.bytes([I32_CONST, 0, LGET, CALLS, I32_STORE, 2]);
  f.uleb(c + 32);
  f.bytes([I32_CONST, 0, LGET, FVA, I64_STORE, 3]);
  f.uleb(c + 48);
  f.bytes([I32_CONST, 0, LGET, FOFF, I32_STORE, 2]);
  f.uleb(c + 56);
  f.bytes([LGET, R, END]);
  // the forwarders: call the imported JavaScript function with the same arguments
  const forward = (params: number, fn: number): number[] => {
    const b = [0];
    for (let i = 0; i < params; i++) b.push(LGET, i);
    b.push(CALL, fn, END);
    return b;
  };
  return assemble(layout, {
    types: [BLOCK_TYPE, [0x60, 7, T_I32, T_I32, T_I32, T_F64, T_F64, T_I32, T_I32, 1, T_I32], FMA_TYPE, CSR_TYPE],
    imports: [
      [1, 0x65 /* "e" */, 1, 0x74 /* "t" */, 0x01, 0x70, 0x00, 0x00], // table: funcref, min 0
      [1, 0x65 /* "e" */, 1, 0x66 /* "f" */, 0x00, 2], // fma (JavaScript)
      [1, 0x65 /* "e" */, 1, 0x63 /* "c" */, 0x00, 3], // the CSR call (JavaScript)
    ],
    funcs: [1, 2, 3],
    exports: [
      ["d", 2],
      ["f", 3],
      ["c", 4],
    ],
    bodies: [f.copy(), forward(3, 0), forward(1, 1)],
  });
}
