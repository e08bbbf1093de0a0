// The binary translator's compiler and cache (DESIGN: README "Engines").
//
// A block is a run of guest instructions inside one 4 KiB physical page,
// entered at one physical address and translated to one JavaScript function
// (new Function): x registers live in int32 locals (lo, hi) for the block;
// loads and stores take the same software-TLB hit path as the interpreter and
// leave the block *before* the instruction on a miss (the interpreter then
// executes it: slow paths, MMIO, faults), so every exit leaves exactly the
// architectural state the interpreter would. A block ends after a branch,
// jal or jalr, before an instruction it does not translate, at the page end
// or after MAX_BLOCK instructions.
//
// Translated code depends on nothing but the instruction bytes: the privilege,
// MPRV/SUM/MXR, satp and PMP enter through the TLB set passed at run time, and
// the pc is a parameter (blocks are position-independent). So the cache key is
// the physical address alone (RAM byte offset) and the translation context is
// empty; a page that holds translations is kept out of every write TLB, so each
// store to it takes the slow path, which drops the page's translations.

import { execFp } from "../fpu/index.js";
import { f64FmaCore } from "../fpu/ops.js";
import { RNE, takeFpFlags } from "../fpu/round.js";
import { compressedEntry } from "./compressed.js";
import { MSTATUS_FS } from "./constants.js";
import { mulHiU32 } from "./mul.js";
import { type WasmTable, wasmApi, wasmTailCalls } from "./wasm-api.js";
import {
  blockModule,
  CsrResult,
  DISPATCH_ENTRIES,
  dispatcherModule,
  generateWasm,
  type WasmLayout,
} from "./wasm-block.js";

/** Which engine executes guest code behind `hart.run()`. */
export type Engine = "interpreter" | "translator";

export const ENGINES: readonly Engine[] = ["interpreter", "translator"];

/** The engine a hart runs when its options name none: the faster one (README "Engines"). */
export const DEFAULT_ENGINE: Engine = "translator";

/**
 * A block function, entered with `h.pc` at its first instruction: stores the number of retired
 * instructions in `t.ret` and returns the next pc relative to the block's (a small integer: no
 * double is boxed per block), or ABS with the next pc in `t.npc` (jalr). A block that branches
 * back to its own start loops inside while `room` (instructions before the next interrupt
 * check) allows another pass.
 */
export type BlockFn = (
  x: Int32Array,
  u8: Uint8Array,
  u16: Uint16Array,
  i32: Int32Array,
  rt: Int32Array,
  wt: Int32Array,
  t: Translator,
  h: unknown,
  room: number,
) => number;

/** Set in `t.ret` when the block left before an instruction the interpreter must execute next. */
export const STEP = 0x40000000;

/** Return value of a block whose next pc is absolute (in `t.npc`). */
export const ABS = 0x40000000;

/** One cache entry: a compiled block, a counter for code not yet hot, or an untranslatable start (len 0). */
export interface Block {
  readonly key: number;
  fn: BlockFn | undefined;
  /** Instructions in the block (0: the first instruction is left to the interpreter). */
  len: number;
  /** Visits before compilation. */
  count: number;
  valid: boolean;
  /** Last two successors (chaining without a map lookup): physical key and entry. */
  k0: number;
  b0: Block | undefined;
  k1: number;
  b1: Block | undefined;
  /** WebAssembly blocks: the slot in the hart's table (-1: a JavaScript block or none). */
  slot: number;
  /** Generated and waiting in the batch for its module (runs in the interpreter meanwhile). */
  pending: boolean;
}

/** WebAssembly traces compiled in one module. */
const BATCH = 32;
/** Visits a queued trace waits (at most the threshold) for its batch to fill before the batch is compiled as it is. */
const BATCH_WAIT = 1024;

/** Stands in the `fn` of WebAssembly blocks: the run loop enters them through the dispatcher. */
const VIA_DISPATCHER: BlockFn = () => {
  throw new Error("a WebAssembly block is entered through the dispatcher");
};

/** Counters of the translator (all since construction or resetStats). */
export interface TranslatorStats {
  blocksTranslated: number;
  /** Of blocksTranslated, those compiled to WebAssembly (the rest are JavaScript). */
  wasmBlocks: number;
  instructionsTranslated: number;
  /** Characters of generated JavaScript plus bytes of WebAssembly. */
  hostCodeBytes: number;
  compileMs: number;
  /** Block entries looked up (by physical address). */
  lookups: number;
  /** Lookups that found a compiled block. */
  hits: number;
  /** Instructions retired inside translated blocks. */
  blockInstructions: number;
  /** Calls of translated blocks (from the run loop, the dispatcher, or chained from another block). */
  blockCalls: number;
  /** Of blockCalls, WebAssembly blocks a block of the same batch tail-called (wasm-block.ts chained()). */
  chainedCalls: number;
  /** Instructions (or traps) the interpreter stepped. */
  interpreted: number;
  /** Pages whose translations were dropped (a store to the page, or changed under a fence.i). */
  pageInvalidations: number;
  /** Whole-cache flushes (`invalidateTranslations()`, a full cache). */
  flushes: number;
  /** fence.i executed (each compares the translated pages with their snapshots). */
  fences: number;
}

const MAX_BLOCK = 32;
/** Entries of the heat table (2 MiB of code without collisions). */
export const HEAT_ENTRIES = 1 << 20;
export const HEAT_MASK = HEAT_ENTRIES - 1;
/** Heat of a start that has a trace (the interpreter's cold chunks run it from a jump). */
export const TRACE_MARK = 0xffff;
/** Heat of a start whose trace is queued for compilation (the interpreter goes on meanwhile). */
export const PENDING_MARK = 0xfffe;
/** Heat of a start with no trace (its first instruction is not translated). */
export const NO_TRACE = 0xfffd;
/** Cache entries (counters, markers and traces) before the whole cache is dropped. */
const MAX_ENTRIES = 1 << 18;
/**
 * Table slots at most before the cache is flushed: each batch takes the next run of slots (its
 * module's element segment writes them), and a released trace's slot is emptied, not reused.
 */
const MAX_SLOTS = 1 << 16;
/** Entries of the lookup's direct-mapped front cache. */
const RECENT_ENTRIES = 1 << 14;
const RECENT_MASK = RECENT_ENTRIES - 1;
/** Visits of a block start before it is compiled (cold code stays in the interpreter). */
export const HOT_THRESHOLD = 200;
/** Visits (misses into it) that compile the start following a length-limited trace with side exits. */
const CHAIN_VISITS = 8;
/** Dispatcher cache entries clearDispatch() empties one by one (more: the whole cache). */
const ENTER_LOG = 4096;
const ENTER_OVERFLOW = ENTER_LOG + 1;
/** queueWasm(): the trace is not translatable to WebAssembly. */
const NOT_WASM = -2;
const TWO32 = 4294967296;

/** Decoding input: RAM views and the RVC expansion table. */
export interface CodeSource {
  readonly u16: Uint16Array;
  readonly ctab: Int32Array;
  readonly magic: boolean;
}

export class Translator {
  /** Retired-instruction count of the last block run (written by block code). */
  ret = 0;
  /** Absolute next pc when a block returns ABS. */
  npc = 0;
  readonly stats: TranslatorStats = newStats();
  private readonly map = new Map<number, Block>();
  /** The entries last looked up, by key: a direct-mapped cache in front of `map`. */
  private readonly recentKeys = new Int32Array(RECENT_ENTRIES).fill(-1);
  private readonly recent: (Block | undefined)[] = new Array<Block | undefined>(RECENT_ENTRIES).fill(undefined);
  /** Per physical page (RAM-relative page number): 1 when translations (or decode markers) exist. */
  readonly codePages: Uint8Array;
  private readonly pageBlocks = new Map<number, Block[]>();
  /**
   * Per code page, its words when its first translation was made. The hart's own stores to a code
   * page drop its translations at once; writes that bypass the hart (device DMA) are found at the
   * next fence.i by comparing RAM with this copy (Zifencei: code written by anything but this
   * hart's stores needs a fence.i before it runs).
   */
  private readonly snaps = new Map<number, Int32Array>();
  private ram32: Int32Array | undefined;
  /** fence.i epochs (see fenceI): a code page's translations may run when its entry is `epoch`. */
  private epoch = 1;
  private readonly pageEpoch: Uint32Array;
  /** Called when a page becomes a code page (the hart drops it from every write TLB). */
  onNewCodePage: (page: number) => void = () => {};
  /** A trace's Zicsr instruction (wasm-block.ts csrOp): set by the hart. */
  onCsr: (insn: number) => number = () => CsrResult.ILLEGAL;

  /** Visits of a block start before it is compiled. */
  readonly threshold: number;
  /**
   * Heat of jump targets (RAM offset / 2, hashed to HEAT_ENTRIES): the interpreter's cold chunks
   * count each taken jump at its target, end at a target that reached the threshold (the run
   * loop then compiles a trace there) and run the trace at one that has it (TRACE_MARK; also
   * PENDING_MARK and NO_TRACE). A collision only ends a chunk early or compiles a trace sooner.
   */
  readonly heat = new Uint16Array(HEAT_ENTRIES);
  /** The WebAssembly back end's memory layout, or undefined (JavaScript only). */
  readonly wasm: WasmLayout | undefined;
  /** The control words (wasm-block.ts): block results at 0..3, dispatcher results at 4..8. */
  readonly ctl: Int32Array | undefined;
  private readonly imports: object | undefined;
  private readonly table: WasmTable | undefined;
  /** The dispatcher's direct-mapped cache: key, slot, length, 0 per entry. */
  private readonly cache: Int32Array | undefined;
  /** Cache entries written since the dispatcher's cache was last emptied (clearDispatch); ENTER_LOG + 1: more. */
  private readonly entered = new Int32Array(ENTER_LOG);
  private nEntered = 0;
  /** Traces generated for the WebAssembly back end, waiting for their module. */
  private batch: { b: Block; body: number[]; len: number; exits: number[] }[] = [];
  private nextSlot = 0;
  /** Runs cached WebAssembly blocks from pc on (DispatchStatus; results in ctl[4..8]). */
  readonly dispatch:
    | ((rt: number, wt: number, room: number, pc: number, fetchVa: number, fetchOff: number, xt: number) => number)
    | undefined;

  /**
   * Compile WebAssembly batches in the background (WebAssembly.compile): the traces run in the
   * interpreter until the host's event loop delivers the module. For hosts whose run loop yields
   * to the event loop (the hypervisors); a loop that never yields would never see the modules.
   */
  readonly background: boolean;
  /**
   * Jumps the interpreter made to queued traces since the last batch: at batchWait, the batch is
   * compiled as it is (a hot trace waits for at most min(BATCH_WAIT, threshold) visits).
   */
  queuedVisits = 0;
  readonly batchWait: number;
  /** Whole-cache flushes so far (a background batch from an older generation is dropped). */
  private generation = 0;

  constructor(ramSize: number, threshold = HOT_THRESHOLD, wasm?: WasmLayout, background = false) {
    this.background = background;
    this.threshold = Math.min(NO_TRACE - 1, Math.max(1, Math.floor(threshold)));
    this.batchWait = Math.min(BATCH_WAIT, this.threshold);
    this.codePages = new Uint8Array(Math.ceil(ramSize / 4096));
    this.pageEpoch = new Uint32Array(this.codePages.length);
    this.wasm = wasm;
    if (wasm !== undefined && wasmApi !== undefined) {
      this.ctl = new Int32Array(wasm.memory.buffer, wasm.ctlBase, 32);
      // the fused multiply-adds: the FPU's exact fma (round to nearest even; flags are the
      // interpreter's, which re-executes every case that raises more than NX)
      const fma = (a: number, b: number, c: number): number => {
        const r = f64FmaCore(a, b, c, RNE, false);
        takeFpFlags();
        return r;
      };
      this.cache = new Int32Array(wasm.memory.buffer, wasm.cacheBase, DISPATCH_ENTRIES * 4).fill(-1);
      this.table = new wasmApi.Table({ initial: 256, element: "anyfunc" });
      const d = new wasmApi.Instance(new wasmApi.Module(dispatcherModule(wasm, wasm.cacheBase)), {
        e: { m: wasm.memory, t: this.table, f: fma, c: (insn: number) => this.onCsr(insn) },
      });
      this.dispatch = d.exports.d as Translator["dispatch"];
      // the blocks import the dispatcher's WebAssembly forwarders of fma and the CSR call
      this.imports = { e: { m: wasm.memory, f: d.exports.f, c: d.exports.c } };
    }
  }

  /** Make sure the dispatcher's cache holds WebAssembly block `b` (it may have been evicted). */
  enter(b: Block): void {
    const c = this.cache as Int32Array;
    const e = ((b.key >>> 1) & (DISPATCH_ENTRIES - 1)) << 2;
    if (c[e] === b.key && c[e + 1] === b.slot && c[e + 2] === b.len) return;
    c[e] = b.key;
    c[e + 1] = b.slot;
    c[e + 2] = b.len;
    // (one store either way: a store or an addition only on the overflow side had no type
    // feedback when the run loop was optimized, and deoptimized it at the first overflow)
    const k = this.nEntered;
    if (k < ENTER_LOG) this.entered[k] = e;
    this.nEntered = k < ENTER_LOG ? k + 1 : ENTER_OVERFLOW;
  }

  /**
   * Empty the dispatcher's cache (fence.i: every page is compared with its snapshot before its
   * traces run again). Only the entries written since the last time, while they are few: the
   * whole cache is 2 MiB, and the Linux boot runs 700 fence.i.
   */
  private clearDispatch(): void {
    const c = this.cache;
    if (c === undefined) return;
    if (this.nEntered === ENTER_OVERFLOW) c.fill(-1);
    else for (let i = 0; i < this.nEntered; i++) c[this.entered[i]] = -1;
    this.nEntered = 0;
  }

  /** The length of the WebAssembly trace at `key` in the dispatcher's cache, or -1 (none there). */
  cachedLength(key: number): number {
    const c = this.cache;
    if (c === undefined) return -1;
    const e = ((key >>> 1) & (DISPATCH_ENTRIES - 1)) << 2;
    return c[e] === key ? c[e + 2] : -1;
  }

  /** Drop WebAssembly block `b` from the cache and empty its slot (its module goes with its last trace). */
  private release(b: Block): void {
    if (b.slot < 0) return;
    const c = this.cache as Int32Array;
    const e = ((b.key >>> 1) & (DISPATCH_ENTRIES - 1)) << 2;
    if (c[e] === b.key && c[e + 1] === b.slot) c[e] = -1;
    (this.table as WasmTable).set(b.slot, null);
    b.slot = -1;
  }

  /**
   * Queue `b` for the WebAssembly back end: NOT_WASM when it is not translatable there (F, or no
   * memory); else the start of the next trace of a straight run to queue with it, or -1.
   */
  private queueWasm(b: Block, src: CodeSource): number {
    const wasm = this.wasm;
    if (wasm === undefined || this.dispatch === undefined) return NOT_WASM;
    const gen = generateWasm(b.key, src, wasm);
    if (gen.len === 0 || gen.fp || gen.body === undefined) return NOT_WASM;
    b.pending = true;
    b.count = 0; // visits while queued
    this.setHeat(b.key, PENDING_MARK);
    this.batch.push({ b, body: gen.body, len: gen.len, exits: gen.exits });
    // (translateAfter 1, for tests: every trace at once)
    if (this.batch.length >= BATCH || this.threshold <= 1) this.compileBatch();
    if (gen.next < 0) return -1;
    // A long straight run (an unrolled loop body, a hash's rounds) is a chain of length-limited
    // traces whose later starts are no jump's target: their heat would be counted only where the
    // trace before them misses (hart.ts atTarget), one start at a time. When no branch leaves
    // this trace, the next start is as hot as this one: queue it too. Else start it nearly hot.
    const h = (gen.next >>> 1) & HEAT_MASK;
    const v = this.heat[h];
    if (v >= NO_TRACE) return -1; // translated, queued or untranslatable
    if (gen.straight) return gen.next;
    if (v < this.threshold - CHAIN_VISITS) this.heat[h] = Math.max(0, this.threshold - CHAIN_VISITS);
    return -1;
  }

  /** Compile the queued traces (those still valid) in one module and put them in the cache. */
  private compileBatch(): void {
    this.queuedVisits = 0;
    const items = this.batch.filter((it) => it.b.valid && it.b.pending);
    this.batch = [];
    const wasm = this.wasm;
    const table = this.table;
    if (items.length === 0 || wasm === undefined || table === undefined || wasmApi === undefined) return;
    const bytes = blockModule(
      items.map((it) => it.body),
      wasm,
      wasmTailCalls ? items.map((it) => ({ key: it.b.key, len: it.len, exits: it.exits })) : undefined,
    );
    this.stats.hostCodeBytes += bytes.length;
    if (this.background) {
      const api = wasmApi;
      const generation = this.generation;
      api.compile(bytes).then(
        (mod) => {
          // a whole-cache flush meanwhile dropped these traces
          if (this.generation === generation) this.install(items, mod);
        },
        () => {
          // (a generator bug: the traces stay pending, run by the interpreter)
        },
      );
      return;
    }
    this.install(items, new wasmApi.Module(bytes));
  }

  /**
   * Instantiate a compiled batch and put its traces (those still valid) in the next run of table
   * slots and in the cache. (The module's own table holds them: wasm-block.ts ModuleParts.elements.)
   */
  private install(items: { b: Block; body: number[]; len: number }[], mod: object): void {
    const table = this.table as WasmTable;
    const own = new (wasmApi as NonNullable<typeof wasmApi>).Instance(mod, this.imports as object).exports
      .t as WasmTable;
    const base = this.nextSlot;
    this.nextSlot += items.length;
    if (this.nextSlot > table.length) table.grow(Math.max(table.length, this.nextSlot - table.length));
    items.forEach((it, i) => {
      const b = it.b;
      // (a fence.i since it was queued: its page is checked before it enters the cache)
      if (!b.pending || !this.current(b)) return;
      const slot = base + i;
      table.set(slot, own.get(i));
      b.slot = slot;
      b.len = it.len;
      b.pending = false;
      b.fn = VIA_DISPATCHER;
      this.enter(b);
      this.setHeat(b.key, TRACE_MARK);
      this.stats.blocksTranslated++;
      this.stats.wasmBlocks++;
      this.stats.instructionsTranslated += it.len;
    });
  }

  /** The cache entry for a physical RAM offset (created as a counter on first sight). */
  lookup(key: number): Block {
    // a direct-mapped front for the map (its hashing was ~2 % of the Linux boot's main thread)
    const r = (key >>> 1) & RECENT_MASK;
    if (this.recentKeys[r] === key) return this.recent[r] as Block;
    let b = this.map.get(key);
    if (b === undefined) {
      // every block start seen gets an entry (a visit counter while cold): bound the cache
      if (this.map.size >= MAX_ENTRIES || this.nextSlot >= MAX_SLOTS) this.flush();
      b = {
        key,
        fn: undefined,
        len: -1,
        count: 0,
        valid: true,
        k0: -1,
        b0: undefined,
        k1: -1,
        b1: undefined,
        slot: -1,
        pending: false,
      };
      this.map.set(key, b);
    }
    this.recentKeys[r] = key;
    this.recent[r] = b;
    return b;
  }

  /** Translate the block at physical offset `key` (decoded from `src`). */
  compile(b: Block, src: CodeSource): void {
    if (b.pending) {
      // queued for WebAssembly (every visit comes here): a hot trace waits for at most
      // min(BATCH_WAIT, threshold) visits before its batch is compiled as it is
      if (++b.count >= this.batchWait || this.queuedVisits >= this.batchWait) {
        const t0 = performance.now();
        this.compileBatch();
        this.stats.compileMs += performance.now() - t0;
      }
      return;
    }
    const t0 = performance.now();
    let next = this.queueWasm(b, src);
    if (next !== NOT_WASM) {
      this.addToPage(b, src);
      // the rest of a straight run (queueWasm), up to its page's end; compiled now, as its head
      // is hot (a batch of 32 left waiting to fill kept the rest interpreted for hundreds of passes)
      let chained = 0;
      while (next >= 0) {
        const nb = this.lookup(next);
        if (nb.len >= 0 || nb.pending) break;
        next = this.queueWasm(nb, src);
        if (next === NOT_WASM) break;
        this.addToPage(nb, src);
        chained++;
      }
      if (chained > 0 && this.batch.length > 0) this.compileBatch();
      this.stats.compileMs += performance.now() - t0;
      return;
    }
    const gen = generate(b.key, src);
    b.len = gen.len;
    this.setHeat(b.key, gen.len > 0 ? TRACE_MARK : NO_TRACE);
    if (gen.len > 0) {
      const factory = new Function("mulHiU32", "execFp", gen.source) as (
        m: typeof mulHiU32,
        e: typeof execFp,
      ) => BlockFn;
      b.fn = factory(mulHiU32, execFp);
      this.stats.blocksTranslated++;
      this.stats.instructionsTranslated += gen.len;
      this.stats.hostCodeBytes += gen.source.length;
    }
    this.addToPage(b, src);
    this.stats.compileMs += performance.now() - t0;
  }

  private setHeat(key: number, v: number): void {
    this.heat[(key >>> 1) & HEAT_MASK] = v;
  }

  /**
   * At the end of run(), in background mode: compile the queued traces, however few, on V8's
   * threads while the host yields. Compiling synchronously waits for a full batch (or a queued
   * trace that got hot): a synchronous flush at every run() end (each MMIO exit) cut the Linux
   * kit's boot into ~330 small modules, about 15 % of its main-thread time, and put a compile
   * inside the guest's I/O round trips.
   */
  flushQueue(): void {
    if (this.batch.length === 0 || !this.background) return;
    const t0 = performance.now();
    this.compileBatch();
    this.stats.compileMs += performance.now() - t0;
  }

  /** Count a visit of a cold start the run loop looked up (one that no taken jump reached). */
  warm(key: number): number {
    const h = (key >>> 1) & HEAT_MASK;
    const v = this.heat[h];
    if (v < TRACE_MARK) this.heat[h] = v + 1;
    return v + 1;
  }

  /** Record `b` among its page's translations (the page becomes a code page on its first). */
  private addToPage(b: Block, src: CodeSource): void {
    const page = b.key >>> 12;
    let list = this.pageBlocks.get(page);
    if (list === undefined) {
      list = [];
      this.pageBlocks.set(page, list);
    }
    list.push(b);
    if (!this.codePages[page]) {
      this.codePages[page] = 1;
      const ram = this.ramWords(src);
      this.snaps.set(page, ram.slice(page << 10, (page + 1) << 10));
      this.pageEpoch[page] = this.epoch;
      this.onNewCodePage(page);
    }
  }

  private ramWords(src: CodeSource): Int32Array {
    if (this.ram32 === undefined || this.ram32.buffer !== src.u16.buffer)
      this.ram32 = new Int32Array(src.u16.buffer, src.u16.byteOffset, src.u16.length >> 1);
    return this.ram32;
  }

  /**
   * fence.i (Zifencei §5.1): the translations of every code page whose bytes changed since it was
   * translated without a store of this hart seeing it (DMA) must go. Checked lazily (Linux runs
   * fence.i for every executable page it maps): a new epoch begins and the dispatcher's cache is
   * emptied; a page's translations are compared with its bytes (`current`) before the first of
   * them runs again, and dropped if they changed. Visit counters survive.
   */
  fenceI(src: CodeSource): void {
    this.stats.fences++;
    this.ramWords(src);
    if (this.snaps.size === 0) return;
    this.epoch++;
    this.clearDispatch();
  }

  /**
   * Whether block `b` may run: its page was checked in this epoch (since the last fence.i), or is
   * checked now. A page whose bytes differ from its snapshot loses its translations (b.valid false).
   */
  current(b: Block): boolean {
    const page = b.key >>> 12;
    if (this.pageEpoch[page] === this.epoch) return b.valid;
    const snap = this.snaps.get(page);
    if (snap !== undefined) {
      const ram = this.ram32 as Int32Array;
      const base = page << 10;
      for (let i = 0; i < 1024; i++) {
        if (ram[base + i] !== snap[i]) {
          this.invalidatePage(page);
          return false;
        }
      }
    }
    this.pageEpoch[page] = this.epoch;
    return b.valid;
  }

  /** A store reached a code page: drop its translations (self-modifying code). */
  invalidatePage(page: number): void {
    const list = this.pageBlocks.get(page);
    if (list !== undefined) {
      for (const b of list) {
        b.valid = false;
        this.setHeat(b.key, 0); // counted again from cold
        this.release(b);
        if (this.map.get(b.key) === b) this.map.delete(b.key);
        const r = (b.key >>> 1) & RECENT_MASK;
        if (this.recent[r] === b) this.recentKeys[r] = -1;
      }
      this.pageBlocks.delete(page);
    }
    this.snaps.delete(page);
    this.codePages[page] = 0;
    this.stats.pageInvalidations++;
  }

  /** fence.i (or a host write to RAM): drop every translation. */
  flush(): void {
    for (const b of this.map.values()) {
      b.valid = false;
      b.slot = -1;
    }
    this.cache?.fill(-1);
    this.nEntered = 0;
    this.batch = [];
    this.generation++;
    this.heat.fill(0);
    // the slots are taken again from 0: empty them now, so no module outlives its traces
    const table = this.table;
    if (table !== undefined) for (let i = 0; i < this.nextSlot; i++) table.set(i, null);
    this.nextSlot = 0;
    this.map.clear();
    this.recentKeys.fill(-1);
    this.recent.fill(undefined);
    this.pageBlocks.clear();
    this.snaps.clear();
    this.codePages.fill(0);
    this.stats.flushes++;
  }

  resetStats(): void {
    Object.assign(this.stats, newStats());
  }
}

function newStats(): TranslatorStats {
  return {
    blocksTranslated: 0,
    wasmBlocks: 0,
    instructionsTranslated: 0,
    hostCodeBytes: 0,
    compileMs: 0,
    lookups: 0,
    hits: 0,
    blockInstructions: 0,
    blockCalls: 0,
    chainedCalls: 0,
    interpreted: 0,
    pageInvalidations: 0,
    flushes: 0,
    fences: 0,
  };
}

// ------------------------------------------------------------------ code generation

interface Generated {
  len: number;
  source: string;
}

/** Generate the block at RAM offset `start`; len 0 when its first instruction is not translated. */
export function generate(start: number, src: CodeSource): Generated {
  const { u16, ctab } = src;
  const used = new Set<number>();
  const dirty = new Set<number>();
  const body: string[] = [];
  const L = (r: number): string => {
    if (r === 0) return "0";
    used.add(r);
    return `l${r}`;
  };
  const H = (r: number): string => {
    if (r === 0) return "0";
    used.add(r);
    return `h${r}`;
  };
  /** Assign rd from two expressions evaluated before either is written (rd may be a source). */
  const set = (rd: number, lo: string, hi: string): void => {
    if (rd === 0) return;
    used.add(rd);
    dirty.add(rd);
    body.push(`{ const lo_ = ${lo}, hi_ = ${hi}; l${rd} = lo_; h${rd} = hi_; }`);
  };
  /**
   * Leave: `k` instructions retired (plus earlier passes of a loop), return `ret` (pc delta or
   * ABS). Resolved once the block is complete.
   */
  // Every exit sets the retired count (k_) and the return value (r_) and breaks to one shared
  // epilogue that writes back every register the block writes: exits cost two constants each,
  // and the cold ones hold no operation that needs V8 type feedback (no deopt when first taken).
  const exits: { k: number; before: boolean }[] = [];
  const exit = (k: number, ret: number): string => {
    exits.push({ k, before: false });
    return `@X${exits.length - 1}@ r_ = ${ret}; break out;`;
  };
  /** Leave before the instruction at `off`, for the interpreter to execute it (t.ret has STEP set). */
  const exitBefore = (): string => {
    exits.push({ k, before: true });
    return `@X${exits.length - 1}@ r_ = ${off}; break out;`;
  };
  let usesPc = false;
  /** The absolute address of block offset d (link values, auipc). */
  const pcPlus = (d: number): string => {
    usesPc = true;
    return d === 0 ? "pc" : `pc + ${d}`;
  };
  let loops = false;
  let usesFp = false;
  /** F/D need mstatus.FS != Off (priv 1.12 §3.1.6.6): otherwise the interpreter raises illegal. */
  const fsCheck = (): void => {
    usesFp = true;
    body.push(`if ((h.mstatus & ${MSTATUS_FS}) === 0) { ${exitBefore()} }`);
  };

  let off = 0; // byte offset of the current instruction from the block start
  let k = 0; // instructions translated so far
  const pageEnd = 4096 - (start & 4095);
  const pageStart = -(start & 4095);
  let ended = false;
  let next = Number.NaN; // where a followed jal continues the trace
  const visited = new Set<number>();
  // Forward branches whose target the trace reaches: a labelled block around the skipped
  // instructions (break = taken), `sk` counting what the break skipped; properly nested only.
  const labels: { id: number; target: number; kb: number }[] = [];
  const skips: number[] = [];
  while (k < MAX_BLOCK && off < pageEnd && off >= pageStart && !visited.has(off)) {
    visited.add(off);
    while (labels.length > 0 && labels[labels.length - 1].target === off) {
      const l = labels.pop() as { id: number; target: number; kb: number };
      skips[l.id] = k - l.kb - 1;
      body.push("}");
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
        set(rd, `${insn & 0xfffff000}`, `${insn >> 31}`);
        break;
      case 5: // AUIPC
        if (rd) {
          body.push(`{ const v = ${pcPlus(off + (insn & 0xfffff000))};`);
          set(rd, "v | 0", `Math.floor(v / ${TWO32}) | 0`);
          body.push("}");
        }
        break;
      case 27: {
        // JAL
        const imm =
          ((insn >> 31) << 20) | (((insn >> 21) & 0x3ff) << 1) | (((insn >> 20) & 1) << 11) | (insn & 0xff000);
        if (rd) {
          body.push(`{ const v = ${pcPlus(off + ilen)};`);
          set(rd, "v | 0", `Math.floor(v / ${TWO32}) | 0`);
          body.push("}");
        }
        const target = off + imm;
        if (target === 0) {
          // a loop onto the block's start: another pass while it fits before the next check
          loops = true;
          body.push(`done += ${k + 1}@SKD@; if (done + @LEN@ <= room) continue; ${exit(0, 0)}`);
          ended = true;
        } else if (target >= pageStart && target < pageEnd && !visited.has(target)) {
          next = target; // the trace goes on at the target (same page)
        } else {
          body.push(exit(k + 1, target));
          ended = true;
        }
        break;
      }
      case 25: {
        // JALR: target = (rs1 + imm) & ~1 with the carry from the full sum; far targets go to the interpreter
        if (f3 !== 0) {
          ok = false;
          break;
        }
        const imm = insn >> 20;
        body.push(`{ const b = ${L(rs1)}; const s = (b + ${imm}) | 0;`);
        body.push(`const th = (${H(rs1)} + ${imm >> 31} + (s >>> 0 < b >>> 0 ? 1 : 0)) | 0; const tl = s & -2;`);
        body.push(`if (th >= 0x100000 || th < -0x100000) { ${exitBefore()} }`);
        if (rd) {
          body.push(`{ const v = ${pcPlus(off + ilen)};`);
          set(rd, "v | 0", `Math.floor(v / ${TWO32}) | 0`);
          body.push("}");
        }
        body.push(`t.npc = th * ${TWO32} + (tl >>> 0); ${exit(k + 1, ABS)}`);
        body.push("}");
        ended = true;
        break;
      }
      case 24: {
        // BRANCH
        const a = L(rs1);
        const ah = H(rs1);
        const b = L(rs2);
        const bh = H(rs2);
        let cond: string;
        switch (f3) {
          case 0:
            cond = `${a} === ${b} && ${ah} === ${bh}`;
            break;
          case 1:
            cond = `${a} !== ${b} || ${ah} !== ${bh}`;
            break;
          case 4:
            cond = `${ah} < ${bh} || (${ah} === ${bh} && ${a} >>> 0 < ${b} >>> 0)`;
            break;
          case 5:
            cond = `${ah} > ${bh} || (${ah} === ${bh} && ${a} >>> 0 >= ${b} >>> 0)`;
            break;
          case 6:
            cond = `${ah} >>> 0 < ${bh} >>> 0 || (${ah} === ${bh} && ${a} >>> 0 < ${b} >>> 0)`;
            break;
          case 7:
            cond = `${ah} >>> 0 > ${bh} >>> 0 || (${ah} === ${bh} && ${a} >>> 0 >= ${b} >>> 0)`;
            break;
          default:
            cond = "";
        }
        if (cond === "") {
          ok = false;
          break;
        }
        const imm =
          ((insn >> 31) << 12) | (((insn >> 25) & 0x3f) << 5) | (((insn >> 8) & 0xf) << 1) | (((insn >> 7) & 1) << 11);
        // the taken side leaves (or loops); the trace goes on through the fall-through side
        if (off + imm === 0) {
          loops = true;
          body.push(`if (${cond}) { done += ${k + 1}@SKD@; if (done + @LEN@ <= room) continue; ${exit(0, 0)} }`);
        } else if (
          off + imm > off &&
          off + imm < pageEnd &&
          (labels.length === 0 || off + imm <= labels[labels.length - 1].target)
        ) {
          const id = skips.length;
          skips.push(0);
          labels.push({ id, target: off + imm, kb: k });
          body.push(`L${id}: {`);
          body.push(`if (${cond}) { sk += @SK${id}@; break L${id}; }`);
        } else body.push(`if (${cond}) { ${exit(k + 1, off + imm)} }`);
        break;
      }
      case 0: {
        // LOAD: the interpreter's TLB hit path; a miss leaves before the instruction
        if (f3 === 7) {
          ok = false;
          break;
        }
        const imm = insn >> 20;
        const size = 1 << (f3 & 3);
        body.push(`{ const b = ${L(rs1)}; const lo = (b + ${imm}) | 0;`);
        body.push(`const hi = (${H(rs1)} + ${imm >> 31} + (lo >>> 0 < b >>> 0 ? 1 : 0)) | 0;`);
        body.push("const e = ((lo >>> 12) & 4095) << 2;");
        const align = size > 1 ? ` || (lo & ${size - 1}) !== 0` : "";
        body.push(`if (rt[e] !== (lo & -4096) || rt[e + 1] !== hi${align}) { ${exitBefore()} }`);
        body.push("const o = rt[e + 2] + (lo & 4095);");
        switch (f3) {
          case 0: // LB
            set(rd, "(u8[o] << 24) >> 24", "(u8[o] << 24) >> 31");
            break;
          case 1: // LH
            set(rd, "(u16[o >> 1] << 16) >> 16", "(u16[o >> 1] << 16) >> 31");
            break;
          case 2: // LW
            set(rd, "i32[o >> 2]", "i32[o >> 2] >> 31");
            break;
          case 3: // LD
            set(rd, "i32[o >> 2]", "i32[(o >> 2) + 1]");
            break;
          case 4: // LBU
            set(rd, "u8[o]", "0");
            break;
          case 5: // LHU
            set(rd, "u16[o >> 1]", "0");
            break;
          default: // LWU
            set(rd, "i32[o >> 2]", "0");
        }
        body.push("}");
        break;
      }
      case 8: {
        // STORE (code pages are never in the write TLB: their stores miss and invalidate)
        if (f3 > 3) {
          ok = false;
          break;
        }
        const imm = ((insn >> 25) << 5) | ((insn >> 7) & 31);
        const size = 1 << f3;
        body.push(`{ const b = ${L(rs1)}; const lo = (b + ${imm}) | 0;`);
        body.push(`const hi = (${H(rs1)} + ${imm >> 31} + (lo >>> 0 < b >>> 0 ? 1 : 0)) | 0;`);
        body.push("const e = ((lo >>> 12) & 4095) << 2;");
        const align = size > 1 ? ` || (lo & ${size - 1}) !== 0` : "";
        body.push(`if (wt[e] !== (lo & -4096) || wt[e + 1] !== hi${align}) { ${exitBefore()} }`);
        body.push("const o = wt[e + 2] + (lo & 4095);");
        const v = L(rs2);
        switch (f3) {
          case 0:
            body.push(`u8[o] = ${v};`);
            break;
          case 1:
            body.push(`u16[o >> 1] = ${v};`);
            break;
          case 2:
            body.push(`i32[o >> 2] = ${v};`);
            break;
          default:
            body.push(`i32[o >> 2] = ${v}; i32[(o >> 2) + 1] = ${H(rs2)};`);
        }
        body.push("}");
        break;
      }
      case 4: {
        // OP-IMM
        const imm = insn >> 20;
        const ih = imm >> 31;
        const a = L(rs1);
        const ah = H(rs1);
        switch (f3) {
          case 0: // ADDI
            if (rs1 === 0) set(rd, `${imm}`, `${ih}`);
            else if (imm === 0) set(rd, a, ah);
            else
              set(
                rd,
                `(${a} + ${imm}) | 0`,
                `(${ah} + ${ih} + (((${a} + ${imm}) | 0) >>> 0 < ${a} >>> 0 ? 1 : 0)) | 0`,
              );
            break;
          case 2: // SLTI (rd = x0, rs1 = x0: the magic HINT when enabled)
            if (rd === 0 && rs1 === 0 && src.magic) {
              ok = false;
              break;
            }
            set(rd, `${ah} < ${ih} || (${ah} === ${ih} && ${a} >>> 0 < ${imm >>> 0}) ? 1 : 0`, "0");
            break;
          case 3: // SLTIU
            set(rd, `${ah} >>> 0 < ${ih >>> 0} || (${ah} === ${ih} && ${a} >>> 0 < ${imm >>> 0}) ? 1 : 0`, "0");
            break;
          case 4: // XORI
            set(rd, `${a} ^ ${imm}`, `${ah} ^ ${ih}`);
            break;
          case 6: // ORI
            set(rd, `${a} | ${imm}`, `${ah} | ${ih}`);
            break;
          case 7: // ANDI
            set(rd, `${a} & ${imm}`, `${ah} & ${ih}`);
            break;
          case 1: {
            // SLLI
            if (insn >>> 26 !== 0) {
              ok = false;
              break;
            }
            const sh = imm & 63;
            if (sh === 0) set(rd, a, ah);
            else if (sh < 32) set(rd, `${a} << ${sh}`, `(${ah} << ${sh}) | (${a} >>> ${32 - sh})`);
            else set(rd, "0", `${a} << ${sh - 32}`);
            break;
          }
          default: {
            // SRLI / SRAI
            const top = insn >>> 26;
            const sh = imm & 63;
            if (top !== 0 && top !== 0x10) {
              ok = false;
              break;
            }
            if (sh === 0) set(rd, a, ah);
            else if (sh < 32)
              set(
                rd,
                `(${a} >>> ${sh}) | (${ah} << ${32 - sh})`,
                top === 0 ? `(${ah} >>> ${sh}) | 0` : `${ah} >> ${sh}`,
              );
            else if (top === 0) set(rd, `(${ah} >>> ${sh - 32}) | 0`, "0");
            else set(rd, `${ah} >> ${sh - 32}`, `${ah} >> 31`);
          }
        }
        break;
      }
      case 6: {
        // OP-IMM-32
        const imm = insn >> 20;
        const a = L(rs1);
        let v: string;
        if (f3 === 0) v = `(${a} + ${imm}) | 0`;
        else if (f3 === 1 && f7 === 0) v = `${a} << ${imm & 31}`;
        else if (f3 === 5 && f7 === 0) v = `(${a} >>> ${imm & 31}) | 0`;
        else if (f3 === 5 && f7 === 0x20) v = `${a} >> ${imm & 31}`;
        else {
          ok = false;
          break;
        }
        if (rd) {
          body.push(`{ const v = ${v};`);
          set(rd, "v", "v >> 31");
          body.push("}");
        }
        break;
      }
      case 12: {
        // OP
        const a = L(rs1);
        const ah = H(rs1);
        const b = L(rs2);
        const bh = H(rs2);
        if (!rd) {
          ok = f7 === 0 || (f7 === 0x20 && (f3 === 0 || f3 === 5)) || f7 === 1;
          break;
        }
        body.push(`{ const a = ${a}, ah = ${ah}, b = ${b}, bh = ${bh}; let lo, hi;`);
        if (f7 === 0) {
          switch (f3) {
            case 0:
              body.push("lo = (a + b) | 0; hi = (ah + bh + (lo >>> 0 < a >>> 0 ? 1 : 0)) | 0;");
              break;
            case 1:
              body.push(
                "{ const sh = b & 63; if (sh === 0) { lo = a; hi = ah; } else if (sh < 32) { hi = (ah << sh) | (a >>> (32 - sh)); lo = a << sh; } else { hi = a << (sh - 32); lo = 0; } }",
              );
              break;
            case 2:
              body.push("lo = ah < bh || (ah === bh && a >>> 0 < b >>> 0) ? 1 : 0; hi = 0;");
              break;
            case 3:
              body.push("lo = ah >>> 0 < bh >>> 0 || (ah === bh && a >>> 0 < b >>> 0) ? 1 : 0; hi = 0;");
              break;
            case 4:
              body.push("lo = a ^ b; hi = ah ^ bh;");
              break;
            case 5:
              body.push(
                "{ const sh = b & 63; if (sh === 0) { lo = a; hi = ah; } else if (sh < 32) { lo = (a >>> sh) | (ah << (32 - sh)); hi = (ah >>> sh) | 0; } else { lo = (ah >>> (sh - 32)) | 0; hi = 0; } }",
              );
              break;
            case 6:
              body.push("lo = a | b; hi = ah | bh;");
              break;
            default:
              body.push("lo = a & b; hi = ah & bh;");
          }
        } else if (f7 === 0x20 && f3 === 0) {
          body.push("lo = (a - b) | 0; hi = (ah - bh - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0;");
        } else if (f7 === 0x20 && f3 === 5) {
          body.push(
            "{ const sh = b & 63; if (sh === 0) { lo = a; hi = ah; } else if (sh < 32) { lo = (a >>> sh) | (ah << (32 - sh)); hi = ah >> sh; } else { lo = ah >> (sh - 32); hi = ah >> 31; } }",
          );
        } else if (f7 === 1) {
          if (f3 === 0)
            body.push("lo = Math.imul(a, b); hi = (mulHiU32(a, b) + Math.imul(a, bh) + Math.imul(ah, b)) | 0;");
          else body.push(`h.mulDiv(${f3}, a, ah, b, bh); lo = h.mdLo; hi = h.mdHi;`);
        } else {
          body.push("}");
          ok = false;
          break;
        }
        set(rd, "lo", "hi");
        body.push("}");
        break;
      }
      case 14: {
        // OP-32
        const a = L(rs1);
        const b = L(rs2);
        let v: string | undefined;
        if (f7 === 0) {
          if (f3 === 0) v = `(${a} + ${b}) | 0`;
          else if (f3 === 1) v = `${a} << (${b} & 31)`;
          else if (f3 === 5) v = `(${a} >>> (${b} & 31)) | 0`;
        } else if (f7 === 0x20) {
          if (f3 === 0) v = `(${a} - ${b}) | 0`;
          else if (f3 === 5) v = `${a} >> (${b} & 31)`;
        } else if (f7 === 1) {
          switch (f3) {
            case 0:
              v = `Math.imul(${a}, ${b})`;
              break;
            case 4:
              v = `(${b}) === 0 ? -1 : (${a}) === -0x80000000 && (${b}) === -1 ? (${a}) : ((${a}) / (${b})) | 0`;
              break;
            case 5:
              v = `(${b}) === 0 ? -1 : ((${a} >>> 0) / (${b} >>> 0)) | 0`;
              break;
            case 6:
              v = `(${b}) === 0 ? (${a}) : (${a}) === -0x80000000 && (${b}) === -1 ? 0 : ((${a}) % (${b})) | 0`;
              break;
            case 7:
              v = `(${b}) === 0 ? (${a}) : ((${a} >>> 0) % (${b} >>> 0)) | 0`;
              break;
          }
        }
        if (v === undefined) {
          ok = false;
          break;
        }
        if (rd) {
          body.push(`{ const v = ${v};`);
          set(rd, "v", "v >> 31");
          body.push("}");
        }
        break;
      }
      case 3: // MISC-MEM: FENCE is a no-op on one in-order hart; FENCE.I drops translations (interpreter)
        ok = f3 === 0;
        break;
      case 1: {
        // LOAD-FP: FLW (NaN-boxed), FLD; aligned TLB hits only
        if (f3 !== 2 && f3 !== 3) {
          ok = false;
          break;
        }
        fsCheck();
        const imm = insn >> 20;
        const size = f3 === 2 ? 4 : 8;
        body.push(`{ const b = ${L(rs1)}; const lo = (b + ${imm}) | 0;`);
        body.push(`const hi = (${H(rs1)} + ${imm >> 31} + (lo >>> 0 < b >>> 0 ? 1 : 0)) | 0;`);
        body.push("const e = ((lo >>> 12) & 4095) << 2;");
        body.push(`if (rt[e] !== (lo & -4096) || rt[e + 1] !== hi || (lo & ${size - 1}) !== 0) { ${exitBefore()} }`);
        body.push("const o = (rt[e + 2] + (lo & 4095)) >> 2;");
        body.push(`fw[${rd << 1}] = i32[o]; fw[${(rd << 1) + 1}] = ${size === 4 ? "-1" : "i32[o + 1]"};`);
        body.push(`h.mstatus |= ${MSTATUS_FS}; }`);
        break;
      }
      case 9: {
        // STORE-FP: FSW, FSD; aligned TLB hits only, and not while a reservation is held (the
        // interpreter's store path clears a reservation it overlaps)
        if (f3 !== 2 && f3 !== 3) {
          ok = false;
          break;
        }
        fsCheck();
        const imm = ((insn >> 25) << 5) | ((insn >> 7) & 31);
        const size = f3 === 2 ? 4 : 8;
        body.push(`{ const b = ${L(rs1)}; const lo = (b + ${imm}) | 0;`);
        body.push(`const hi = (${H(rs1)} + ${imm >> 31} + (lo >>> 0 < b >>> 0 ? 1 : 0)) | 0;`);
        body.push("const e = ((lo >>> 12) & 4095) << 2;");
        body.push(
          `if (wt[e] !== (lo & -4096) || wt[e + 1] !== hi || (lo & ${size - 1}) !== 0 || h.reservation >= 0) { ${exitBefore()} }`,
        );
        body.push("const o = (wt[e + 2] + (lo & 4095)) >> 2;");
        body.push(`i32[o] = fw[${rs2 << 1}];${size === 8 ? ` i32[o + 1] = fw[${(rs2 << 1) + 1}];` : ""} }`);
        break;
      }
      case 16: // FMADD
      case 17: // FMSUB
      case 18: // FNMSUB
      case 19: // FNMADD
      case 20: {
        // OP-FP: executed by the FPU module on the hart's register file; integer sources are
        // written back first, integer results reloaded after
        fsCheck();
        const f5 = insn >>> 27;
        const intSrc = op === 20 && (f5 === 0x1a || f5 === 0x1e);
        const intDst = op === 20 && (f5 === 0x14 || f5 === 0x18 || f5 === 0x1c);
        // always (not only when written so far: a looping block writes it later in the pass)
        if (intSrc && rs1 !== 0) body.push(`x[${rs1 << 1}] = ${L(rs1)}; x[${(rs1 << 1) + 1}] = ${H(rs1)};`);
        body.push(`if (!execFp(h, ${insn | 0})) { ${exitBefore()} }`);
        body.push(`h.mstatus |= ${MSTATUS_FS};`);
        if (intDst && rd !== 0) {
          used.add(rd);
          body.push(`l${rd} = x[${rd << 1}]; h${rd} = x[${(rd << 1) + 1}];`);
        }
        break;
      }
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
  if (k === 0) return { len: 0, source: "" };
  if (!ended) body.push(exit(k, off));
  // labels the trace did not reach: their break leaves to the branch target
  while (labels.length > 0) {
    const l = labels.pop() as { id: number; target: number; kb: number };
    body.push("}");
    body.push(exit(l.kb + 1, l.target));
  }
  const usesSkip = skips.length > 0;
  const decl: string[] = usesFp ? ["const fw = h.fw;"] : [];
  if (usesSkip) decl.push("let sk = 0;");
  if (usesPc) decl.push("const pc = h.pc;");
  const all = [...dirty];
  const text = body
    .join("\n")
    .replaceAll("@LEN@", `${k}`)
    .replaceAll("@SKD@", usesSkip ? " - sk; sk = 0" : "")
    .replace(/@SK(\d+)@/g, (_, i: string) => `${skips[Number(i)]}`)
    .replace(/@X(\d+)@/g, (_, i: string) => {
      const e = exits[Number(i)];
      const n = `${loops ? "done + " : ""}${e.k}${usesSkip ? " - sk" : ""}`;
      return `k_ = ${e.before ? `(${n}) | ${STEP}` : n};`;
    });
  for (const r of [...used].sort((p, q) => p - q)) decl.push(`let l${r} = x[${r << 1}], h${r} = x[${(r << 1) + 1}];`);
  decl.push("let k_ = 0, r_ = 0;");
  const code = loops ? `let done = 0;\nout: for (;;) {\n${text}\n}` : `out: {\n${text}\n}`;
  const wb = all
    .sort((p, q) => p - q)
    .map((r) => `x[${r << 1}] = l${r}; x[${(r << 1) + 1}] = h${r};`)
    .join("\n");
  const source = `"use strict";\nreturn function block_${start.toString(16)}(x, u8, u16, i32, rt, wt, t, h, room) {\n${decl.join("\n")}\n${code}\n${wb}${wb ? "\n" : ""}t.ret = k_;\nreturn r_;\n};`;
  return { len: k, source };
}
