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
// Translated: RV64I (but system instructions), M, fence. F/D, A and SYSTEM end a trace; a trace
// whose first instruction is F/D goes to the JavaScript back end instead.

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
}

export interface WasmGenerated {
  len: number;
  bytes: Uint8Array | undefined;
  /** The trace stopped at (or started with) an F/D instruction: the JavaScript back end does these. */
  fp: boolean;
}

const MAX_BLOCK = 32;
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
const T_I32 = 0x7f;
const T_I64 = 0x7e;
const T_F64 = 0x7c;
const T_VOID = 0x40;

// loads by funct3 (LB LH LW LD LBU LHU LWU) and stores (SB SH SW SD)
const LOAD_OPS = [0x30, 0x32, 0x34, 0x29, 0x31, 0x33, 0x35];
const STORE_OPS = [0x3c, 0x3d, 0x3e, 0x37];

// locals: params rt 0, wt 1, room 2, pc 3 (f64); then i32 k_ 4, r_ 5, done 6, sk 7, e 8;
// i64 A 9, B 10, PC 11, then one i64 per register the trace uses
const P_RT = 0;
const P_WT = 1;
const P_ROOM = 2;
const P_PC = 3;
const L_K = 4;
const L_R = 5;
const L_DONE = 6;
const L_SK = 7;
const L_E = 8;
const L_A = 9;
const L_B = 10;
const L_PC = 11;
const L_REG0 = 12;

function uleb(out: number[], v: number): void {
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

function sleb(out: number[], value: number | bigint): void {
  let v = BigInt(value);
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** What the first pass learns and the second pass needs (both walk the same trace). */
interface Shape {
  len: number;
  loops: boolean;
  usesSkip: boolean;
  usesPc: boolean;
  usesMulh: boolean;
  skips: number[];
  used: number[];
  dirty: number[];
}

/** Generate the trace at RAM offset `start` as a WebAssembly module (len 0: not translated here). */
export function generateWasm(start: number, src: CodeSource, layout: WasmLayout): WasmGenerated {
  const first = walk(start, src, layout, undefined);
  if (first.shape.len === 0) return { len: 0, bytes: undefined, fp: first.fp };
  const second = walk(start, src, layout, first.shape);
  return { len: second.shape.len, bytes: module(second.code, first.shape, layout), fp: first.fp };
}

function walk(
  start: number,
  src: CodeSource,
  layout: WasmLayout,
  known: Shape | undefined,
): { shape: Shape; code: number[]; fp: boolean } {
  const { u16, ctab } = src;
  const c: number[] = [];
  const used = new Set<number>();
  const dirty = new Set<number>();
  const regLocal = (r: number): number => (known ? L_REG0 + known.used.indexOf(r) : 0);
  const get = (r: number): void => {
    if (r === 0) {
      c.push(I64_CONST, 0);
      return;
    }
    used.add(r);
    c.push(LGET, regLocal(r));
  };
  /** Pop the i64 on the stack into rd (dropped for x0). */
  const set = (rd: number): void => {
    if (rd === 0) {
      c.push(DROP);
      return;
    }
    used.add(rd);
    dirty.add(rd);
    c.push(LSET, regLocal(rd));
  };
  const i32c = (v: number): void => {
    c.push(I32_CONST);
    sleb(c, v | 0);
  };
  const i64c = (v: number | bigint): void => {
    c.push(I64_CONST);
    sleb(c, v);
  };
  let depth = 0; // structured blocks open inside $out
  let loops = false;
  let usesPc = false;
  let usesMulh = false;
  const skips: number[] = [];
  /** Set k_ and r_ and leave to the epilogue (k retired in this pass). */
  const exit = (kk: number, ret: number, before: boolean): void => {
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
  };
  /** `if (cond on stack) { leave before the current instruction }`. */
  const exitBeforeIf = (): void => {
    c.push(IF, T_VOID);
    depth++;
    exit(k, off, true);
    c.push(END);
    depth--;
  };
  /** The pc of block offset d, as an i64 on the stack. */
  const pcPlus = (d: number): void => {
    usesPc = true;
    c.push(LGET, L_PC);
    if (d !== 0) {
      i64c(d);
      c.push(I64_ADD);
    }
  };
  /** Loop back onto the trace's start: another pass while it fits before the next check. */
  const loopBack = (kk: number): void => {
    loops = true;
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
    c.push(I32_ADD, LGET, P_ROOM, I32_LE_S, BR_IF, depth - 1);
    exit(0, 0, false);
  };
  /** The effective address rs1 + imm into A, and the TLB entry address of its page into E. */
  const address = (rs1: number, imm: number, tlb: number, size: number): void => {
    get(rs1);
    if (imm !== 0) {
      i64c(imm);
      c.push(I64_ADD);
    }
    c.push(LTEE, L_A, I32_WRAP);
    i32c(12);
    c.push(I32_SHR_U);
    i32c(4095);
    c.push(I32_AND);
    i32c(4);
    c.push(I32_SHL, LGET, tlb, I32_ADD, LTEE, L_E);
    // tag (lo & ~0xfff, hi) as one i64 against the page of A; alignment
    c.push(I64_LOAD, 3, 0, LGET, L_A);
    i64c(-4096);
    c.push(I64_AND, I64_NE);
    if (size > 1) {
      c.push(LGET, L_A, I32_WRAP);
      i32c(size - 1);
      c.push(I32_AND, I32_OR);
    }
    exitBeforeIf();
    // host address: the entry's RAM offset + the page offset
    c.push(LGET, L_E, I32_LOAD, 2, 8, LGET, L_A, I32_WRAP);
    i32c(4095);
    c.push(I32_AND, I32_ADD);
  };
  /** i64 division with RISC-V's answers for a zero divisor and overflow (unpriv §13.2). */
  const divide = (f3: number, w: boolean): void => {
    // A = dividend, B = divisor (i64; the W forms use their low words)
    const getA = (): void => {
      c.push(LGET, L_A);
      if (w) c.push(I32_WRAP);
    };
    const getB = (): void => {
      c.push(LGET, L_B);
      if (w) c.push(I32_WRAP);
    };
    const T = w ? T_I32 : T_I64;
    getB();
    if (w) c.push(0x45 /* i32.eqz */);
    else c.push(I64_EQZ);
    c.push(IF, T);
    if (f3 === 4 || f3 === 5) {
      if (w) i32c(-1);
      else i64c(-1);
    } else getA();
    c.push(ELSE);
    if (f3 === 4) {
      // DIV: MIN / -1 = MIN (the WebAssembly instruction traps there)
      getA();
      if (w) i32c(-0x80000000);
      else i64c(-(2n ** 63n));
      c.push(w ? I32_EQ : I64_EQ);
      getB();
      if (w) i32c(-1);
      else i64c(-1);
      c.push(w ? I32_EQ : I64_EQ, I32_AND, IF, T);
      getA();
      c.push(ELSE);
      getA();
      getB();
      c.push(w ? I32_DIV_S : I64_DIV_S, END);
    } else {
      getA();
      getB();
      // REM of MIN by -1 is 0 in both (no trap for rem_s)
      c.push(w ? [I32_DIV_U, I32_REM_S, I32_REM_U][f3 - 5] : [I64_DIV_U, I64_REM_S, I64_REM_U][f3 - 5]);
    }
    c.push(END);
    if (w) c.push(I64_EXT_S);
  };

  let off = 0;
  let k = 0;
  let fp = false;
  const pageEnd = 4096 - (start & 4095);
  const pageStart = -(start & 4095);
  let ended = false;
  let next = Number.NaN;
  const visited = new Set<number>();
  const labels: { id: number; target: number; kb: number }[] = [];
  if (known?.loops) {
    c.push(LOOP, T_VOID);
    depth++;
  }
  while (k < MAX_BLOCK && off < pageEnd && off >= pageStart && !visited.has(off)) {
    visited.add(off);
    while (labels.length > 0 && labels[labels.length - 1].target === off) {
      const l = labels.pop() as { id: number; target: number; kb: number };
      skips[l.id] = k - l.kb - 1;
      c.push(END);
      depth--;
    }
    const fo = start + off;
    const p0 = u16[fo >> 1];
    let insn: number;
    let ilen: number;
    if ((p0 & 3) !== 3) {
      insn = ctab[p0];
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
        if (target === 0) {
          loopBack(k + 1);
          ended = true;
        } else if (target >= pageStart && target < pageEnd && !visited.has(target)) {
          next = target;
        } else {
          exit(k + 1, target, false);
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
        i64c(insn >> 20);
        c.push(I64_ADD);
        i64c(-2);
        c.push(I64_AND, LTEE, L_B);
        i64c(2 ** 52);
        c.push(I64_ADD);
        i64c(2 ** 53);
        c.push(I64_GE_U);
        exitBeforeIf();
        if (rd) {
          pcPlus(off + ilen);
          set(rd);
        }
        i32c(0);
        c.push(LGET, L_B, I64_STORE, 3);
        uleb(c, layout.ctlBase + 8);
        exit(k + 1, ABS, false);
        ended = true;
        break;
      }
      case 24: {
        // BRANCH
        const cmp = [I64_EQ, I64_NE, 0, 0, I64_LT_S, I64_GE_S, I64_LT_U, I64_GE_U][f3];
        if (cmp === 0) {
          ok = false;
          break;
        }
        const imm =
          ((insn >> 31) << 12) | (((insn >> 25) & 0x3f) << 5) | (((insn >> 8) & 0xf) << 1) | (((insn >> 7) & 1) << 11);
        get(rs1);
        get(rs2);
        c.push(cmp);
        if (off + imm === 0) {
          c.push(IF, T_VOID);
          depth++;
          loopBack(k + 1);
          c.push(END);
          depth--;
        } else if (
          off + imm > off &&
          off + imm < pageEnd &&
          (labels.length === 0 || off + imm <= labels[labels.length - 1].target)
        ) {
          // the taken side skips forward inside the trace: a block around the skipped instructions
          const id = skips.length;
          skips.push(0);
          labels.push({ id, target: off + imm, kb: k });
          // the condition is on the stack: keep it in E while the block opens
          c.push(LSET, L_E, BLOCK, T_VOID);
          depth++;
          c.push(LGET, L_E, IF, T_VOID);
          if (known?.usesSkip) {
            c.push(LGET, L_SK);
            i32c(known.skips[id]);
            c.push(I32_ADD, LSET, L_SK);
          }
          c.push(BR, 1, END);
        } else {
          c.push(IF, T_VOID);
          depth++;
          exit(k + 1, off + imm, false);
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
            usesMulh = true;
            c.push(LGET, L_A, LGET, L_B, CALL, 1);
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
        else c.push([I64_ADD, I64_SHL, 0, 0, I64_XOR, I64_SHR_U, I64_OR, I64_AND][f3]);
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
      case 3: // MISC-MEM: FENCE is a no-op on one in-order hart; FENCE.I is the interpreter's
        ok = f3 === 0;
        break;
      case 1:
      case 9:
      case 16:
      case 17:
      case 18:
      case 19:
      case 20:
        fp = true;
        ok = false;
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
  const shape: Shape = {
    len: k,
    loops,
    usesSkip: skips.length > 0,
    usesPc,
    usesMulh,
    skips,
    used: [...used].sort((p, q) => p - q),
    dirty: [...dirty].sort((p, q) => p - q),
  };
  if (k === 0) return { shape, code: c, fp };
  if (!ended) exit(k, off, false);
  while (labels.length > 0) {
    const l = labels.pop() as { id: number; target: number; kb: number };
    c.push(END);
    depth--;
    exit(l.kb + 1, l.target, false);
  }
  if (known?.loops) {
    c.push(END);
    depth--;
  }
  return { shape, code: c, fp };
}

/** Wrap a trace's body in its function and module. */
function module(body: number[], s: Shape, layout: WasmLayout): Uint8Array {
  const f: number[] = [];
  // locals: 5 i32 (k_, r_, done, sk, e), then i64 A, B, PC and one per used register
  f.push(2, 5, T_I32);
  uleb(f, 3 + s.used.length);
  f.push(T_I64);
  if (s.usesPc) f.push(LGET, P_PC, LSET, L_PC);
  s.used.forEach((r, i) => {
    f.push(I32_CONST, 0, I64_LOAD, 3);
    uleb(f, layout.xBase + 8 * r);
    f.push(LSET, L_REG0 + i);
  });
  f.push(BLOCK, T_VOID, ...body, END);
  for (const r of s.dirty) {
    f.push(I32_CONST, 0, LGET, L_REG0 + s.used.indexOf(r), I64_STORE, 3);
    uleb(f, layout.xBase + 8 * r);
  }
  f.push(I32_CONST, 0, LGET, L_K, I32_STORE, 2);
  uleb(f, layout.ctlBase);
  f.push(LGET, L_R, END);

  const m: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const section = (id: number, content: number[]): void => {
    m.push(id);
    uleb(m, content.length);
    for (const b of content) m.push(b);
  };
  // types: 0 = the block, 1 = mulhu
  section(1, [2, 0x60, 4, T_I32, T_I32, T_I32, T_I64, 1, T_I32, 0x60, 2, T_I64, T_I64, 1, T_I64]);
  const imp: number[] = [1, 1, 0x65 /* "e" */, 1, 0x6d /* "m" */, 0x02];
  if (layout.shared) {
    imp.push(0x03);
    uleb(imp, layout.pages);
    uleb(imp, layout.pages);
  } else {
    imp.push(0x00);
    uleb(imp, layout.pages);
  }
  section(2, imp);
  section(3, s.usesMulh ? [2, 0, 1] : [1, 0]);
  section(7, [1, 1, 0x62 /* "b" */, 0x00, 0]);
  const code: number[] = [s.usesMulh ? 2 : 1];
  uleb(code, f.length);
  for (const b of f) code.push(b);
  if (s.usesMulh) {
    const h = mulhuBody();
    uleb(code, h.length);
    for (const b of h) code.push(b);
  }
  section(10, code);
  return Uint8Array.from(m);
}

/** (a, b) -> the high 64 bits of the unsigned 128-bit product, from 32-bit partial products. */
function mulhuBody(): number[] {
  // params a 0, b 1; locals p1 2, p2 3, mid 4
  const f: number[] = [1, 3, T_I64];
  const lo = (l: number): void => {
    f.push(LGET, l, I64_CONST);
    sleb(f, 0xffffffff);
    f.push(I64_AND);
  };
  const hi = (l: number): void => {
    f.push(LGET, l, I64_CONST, 32, I64_SHR_U);
  };
  // p1 = lo(a) * hi(b); p2 = hi(a) * lo(b)
  lo(0);
  hi(1);
  f.push(I64_MUL, LSET, 2);
  hi(0);
  lo(1);
  f.push(I64_MUL, LSET, 3);
  // mid = (lo(a) * lo(b) >>> 32) + lo(p1) + lo(p2)
  lo(0);
  lo(1);
  f.push(I64_MUL, I64_CONST, 32, I64_SHR_U);
  lo(2);
  f.push(I64_ADD);
  lo(3);
  f.push(I64_ADD, LSET, 4);
  // hi(a) * hi(b) + hi(p1) + hi(p2) + hi(mid)
  hi(0);
  hi(1);
  f.push(I64_MUL);
  hi(2);
  f.push(I64_ADD);
  hi(3);
  f.push(I64_ADD);
  hi(4);
  f.push(I64_ADD, END);
  return f;
}

/** Entries of the dispatcher's direct-mapped cache (16 bytes each: key, table slot, length, 0). */
export const DISPATCH_ENTRIES = 1 << 16;

/** Why the dispatcher returned to the run loop. */
export const DispatchStatus = {
  /** The pc left the code page the run loop passed in. */
  PAGE: 1,
  /** No block for the pc in the cache. */
  MISS: 2,
  /** The next block does not fit before the next interrupt check. */
  ROOM: 3,
  /** A block left before an instruction the interpreter must execute. */
  STEP: 4,
} as const;

/**
 * The dispatcher: d(rt, wt, room, pc, fetchVa, fetchOff) -> status; instructions retired at
 * ctl+16, the next pc (i64) at ctl+24, blocks called at ctl+32. The block at pc must be in the
 * cache (the run loop puts it there), so each call retires at least one block.
 */
export function dispatcherModule(layout: WasmLayout, cacheBase: number): Uint8Array {
  // params rt 0, wt 1, room 2, pc 3 (f64), fva 4 (f64), foff 5; locals i32 n 6, e 7, k 8, r 9,
  // calls 10; i64 pc 11, fva 12, d 13
  const f: number[] = [2, 5, T_I32, 3, T_I64];
  const c = layout.ctlBase;
  const status = (v: number, depth: number): void => {
    f.push(I32_CONST);
    sleb(f, v);
    f.push(LSET, 9, BR, depth);
  };
  f.push(LGET, 3, 0xfc, 6, LSET, 11, LGET, 4, 0xfc, 6, LSET, 12); // i64.trunc_sat_f64_s
  f.push(BLOCK, T_VOID, LOOP, T_VOID);
  // d = pc - fva; off the page: PAGE
  f.push(LGET, 11, LGET, 12, I64_SUB, LTEE, 13, I64_CONST);
  sleb(f, 4096);
  f.push(I64_GE_U, IF, T_VOID);
  status(DispatchStatus.PAGE, 2);
  f.push(END);
  // e = cache + (((foff + d) >>> 1) & mask) << 4
  f.push(LGET, 5, LGET, 13, I32_WRAP, I32_ADD, I32_CONST, 1, I32_SHR_U, I32_CONST);
  sleb(f, DISPATCH_ENTRIES - 1);
  f.push(I32_AND, I32_CONST, 4, I32_SHL, I32_CONST);
  sleb(f, cacheBase);
  f.push(I32_ADD, LTEE, 7);
  // the entry's key is not this pc's: MISS
  f.push(I32_LOAD, 2, 0, LGET, 5, LGET, 13, I32_WRAP, I32_ADD, 0x47 /* i32.ne */, IF, T_VOID);
  status(DispatchStatus.MISS, 2);
  f.push(END);
  // n + len > room: ROOM
  f.push(LGET, 6, LGET, 7, I32_LOAD, 2, 8, I32_ADD, LGET, 2, 0x4a /* i32.gt_s */, IF, T_VOID);
  status(DispatchStatus.ROOM, 2);
  f.push(END);
  // r = block(rt, wt, room - n, pc)
  f.push(LGET, 0, LGET, 1, LGET, 2, LGET, 6, I32_SUB, LGET, 11, LGET, 7, I32_LOAD, 2, 4, 0x11, 0, 0, LSET, 9);
  f.push(LGET, 10, I32_CONST, 1, I32_ADD, LSET, 10);
  // k = retired (| STEP); n += k & ~STEP
  f.push(I32_CONST, 0, I32_LOAD, 2);
  uleb(f, c);
  f.push(LTEE, 8, I32_CONST);
  sleb(f, ~STEP);
  f.push(I32_AND, LGET, 6, I32_ADD, LSET, 6);
  // pc = r === ABS ? target : pc + r
  f.push(I32_CONST, 0, I64_LOAD, 3);
  uleb(f, c + 8);
  f.push(LGET, 11, LGET, 9, I64_EXT_S, I64_ADD, LGET, 9, I32_CONST);
  sleb(f, ABS);
  f.push(I32_EQ, SELECT, LSET, 11);
  // left before an instruction: STEP
  f.push(LGET, 8, I32_CONST);
  sleb(f, STEP);
  f.push(I32_AND, IF, T_VOID);
  status(DispatchStatus.STEP, 2);
  f.push(END, BR, 0, END, END);
  // results
  f.push(I32_CONST, 0, LGET, 6, I32_STORE, 2);
  uleb(f, c + 16);
  f.push(I32_CONST, 0, LGET, 11, I64_STORE, 3);
  uleb(f, c + 24);
  f.push(I32_CONST, 0, LGET, 10, I32_STORE, 2);
  uleb(f, c + 32);
  f.push(LGET, 9, END);

  const m: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const section = (id: number, content: number[]): void => {
    m.push(id);
    uleb(m, content.length);
    for (const b of content) m.push(b);
  };
  // types: 0 = a block, 1 = the dispatcher
  section(1, [
    2,
    0x60,
    4,
    T_I32,
    T_I32,
    T_I32,
    T_I64,
    1,
    T_I32,
    0x60,
    6,
    T_I32,
    T_I32,
    T_I32,
    T_F64,
    T_F64,
    T_I32,
    1,
    T_I32,
  ]);
  const imp: number[] = [2, 1, 0x65, 1, 0x6d, 0x02];
  if (layout.shared) {
    imp.push(0x03);
    uleb(imp, layout.pages);
    uleb(imp, layout.pages);
  } else {
    imp.push(0x00);
    uleb(imp, layout.pages);
  }
  imp.push(1, 0x65, 1, 0x74 /* "t" */, 0x01, 0x70, 0x00, 0x00); // table: funcref, min 0
  section(2, imp);
  section(3, [1, 1]);
  section(7, [1, 1, 0x64 /* "d" */, 0x00, 0]);
  const code: number[] = [1];
  uleb(code, f.length);
  for (const b of f) code.push(b);
  section(10, code);
  return Uint8Array.from(m);
}
