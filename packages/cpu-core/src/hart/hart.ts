// The RV64GC hart: interpreter, CSRs, traps, Sv39/Sv48 MMU with a software
// TLB, PMP. run(budget) executes until something needs the hypervisor and
// returns a HartExit, as KVM_RUN does (ARCHITECTURE.md §3).
//
// Representation (regs.ts): x registers are (lo, hi) Int32 pairs; the pc and
// other address-like state are JS numbers holding the signed 64-bit value
// (every valid Sv39/Sv48 virtual address and every physical address of the
// board is exact in a double).

import { CpuError, CpuErrorCode } from "../errors.js";
import { execFp } from "../fpu/index.js";
import { createRegisterFile, type RegisterFile } from "../regs.js";
import { Bus } from "./bus.js";
import { compressedEntry, compressedTable } from "./compressed.js";
import {
  Cause,
  Csr,
  M_INTERRUPTS,
  MEDELEG_WRITABLE,
  MIP_MEIP,
  MIP_MSIP,
  MIP_MTIP,
  MIP_SEIP,
  MIP_SSIP,
  MIP_STIP,
  MISA_EXTENSIONS,
  MSTATUS_FS,
  MSTATUS_MIE,
  MSTATUS_MPIE,
  MSTATUS_MPP,
  MSTATUS_MPP_SHIFT,
  MSTATUS_MPRV,
  MSTATUS_MXR,
  MSTATUS_SIE,
  MSTATUS_SPIE,
  MSTATUS_SPP,
  MSTATUS_SUM,
  MSTATUS_TSR,
  MSTATUS_TVM,
  MSTATUS_TW,
  MSTATUS_WRITABLE,
  PRV_M,
  PRV_S,
  PRV_U,
  S_INTERRUPTS,
  SSTATUS_MASK,
} from "./constants.js";
import { mulHiU32 } from "./mul.js";
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, PAGE_ALLOW, PAGE_DENY, Pmp } from "./pmp.js";
import {
  ABS,
  type Block,
  type CodeSource,
  DEFAULT_ENGINE,
  ENGINES,
  type Engine,
  HEAT_MASK,
  HOT_THRESHOLD,
  NO_TRACE,
  PENDING_MARK,
  STEP,
  TRACE_MARK,
  Translator,
  type TranslatorStats,
} from "./translator.js";
import { TINFO, TRIG_LOAD, TRIG_STORE, Triggers } from "./triggers.js";
import {
  WARM_UP_BASE,
  WARM_UP_DATA,
  WARM_UP_RAM,
  WARM_UP_SYSTEM,
  warmUpData,
  warmUpProgram,
  warmUpSystem,
} from "./warmup.js";
import {
  CsrResult,
  CTL_HOPS,
  CTL_RESERVATION,
  DispatchStatus,
  FpState,
  MAX_TRACE,
  type WasmLayout,
} from "./wasm-block.js";

/** Why run() returned. MMIO exits must be completed (completeMmio/failMmio) before the next run(). */
export type HartExit =
  | { readonly kind: "mmio"; readonly op: "read"; readonly address: number; readonly size: 1 | 2 | 4 | 8 }
  | {
      readonly kind: "mmio";
      readonly op: "write";
      readonly address: number;
      readonly size: 1 | 2 | 4 | 8;
      readonly value: bigint;
    }
  /** An S-mode ecall (SBI call) when `sbiEcallExit` is set; the pc is already past the ecall. */
  | { readonly kind: "ecall" }
  /** WFI with no interrupt pending: the hypervisor may sleep until one is. */
  | { readonly kind: "wfi" }
  | { readonly kind: "budget" }
  /** EBREAK when `ebreakExit` is set; pc points at the ebreak. */
  | { readonly kind: "breakpoint"; readonly pc: bigint }
  /** The magic HINT `slti x0, x0, op` (RISC-V custom-use HINT space) when `magic` is set. */
  | { readonly kind: "magic"; readonly op: number }
  /** HTIF tohost exit: code 0 = pass. */
  | { readonly kind: "halt"; readonly code: number };

export interface HartOptions {
  readonly hartId?: number;
  /** S-mode ecalls leave run() as `ecall` exits (the hypervisor implements the SBI). */
  readonly sbiEcallExit?: boolean;
  /** EBREAK leaves run() as a `breakpoint` exit instead of trapping. */
  readonly ebreakExit?: boolean;
  /** `slti x0, x0, imm` leaves run() as a `magic` exit. */
  readonly magic?: boolean;
  /** The `time` CSR source in ticks; default: instret / 10 (deterministic). */
  readonly timeSource?: () => number;
  /** HTIF tohost physical address (from the ELF symbol). */
  readonly tohost?: number;
  /** HTIF fromhost physical address. */
  readonly fromhost?: number;
  /**
   * What executes guest code behind run(): the binary translator (default: traces compiled to
   * WebAssembly or JavaScript, the interpreter for cold code and everything they leave out) or the
   * interpreter alone. Same exits, traps, instret and TLB/PMP rules either way.
   */
  readonly engine?: Engine;
  /**
   * Translator: jumps to a trace start before it is compiled (default 200: code run a few times
   * stays in the interpreter). 1 compiles everything the translator reaches (tests).
   */
  readonly translateAfter?: number;
  /**
   * Translator: the code its blocks become. "wasm" (default: WebAssembly, when the bus allocated
   * its own RAM in a WebAssembly.Memory; F/D blocks stay JavaScript) or "js" (JavaScript only).
   */
  readonly translatorBackend?: "wasm" | "js";
  /**
   * Translator: compile WebAssembly in the background (WebAssembly.compile) while the interpreter
   * runs the code meanwhile. Only for hosts whose run loop yields to the event loop between
   * run() calls; default false (compiled at once, which booted the Linux kit sooner).
   */
  readonly translateInBackground?: boolean;
}

/**
 * Give every number field of `o` the representation it will need before any code is optimized
 * for it (written twice: a double for the `doubles`, another small integer for the others). The
 * JavaScript engine otherwise tracks a field
 * as constant until its first reassignment and as a small integer until it first holds an
 * address above 2^31 (pc, sepc, satp's root...), and each such change during a guest's run (its
 * first S-mode trap, its first page table) throws away the optimized interpreter.
 */
function generalizeFields(o: object, doubles: ReadonlySet<string>): void {
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    const v = r[k];
    if (typeof v !== "number") continue;
    r[k] = doubles.has(k) ? 0.5 : v === 0 ? 1 : 0;
    r[k] = v;
  }
}

/** Hart fields that hold guest addresses (or counts that outgrow 2^31): doubles from the start. */
const DOUBLE_FIELDS: ReadonlySet<string> = new Set([
  "pc",
  "fetchVa",
  "mtvec",
  "stvec",
  "mepc",
  "sepc",
  "satpRoot",
  "reservation",
  "mmioAddr",
  "instret",
  "nRun",
  "instretOffset",
  "cycleOffset",
  "stimecmpNum",
]);

let warmed = false;

/**
 * Once per process (per thread), before the first hart runs guest code: the warm-up program
 * (warmup.ts) on a private hart under both engines' loops, so the interpreter is optimized with
 * feedback from every path it has (no deoptimization each time a guest first uses an instruction
 * kind). The first `new Hart` runs it; a host that has time before it knows its hart (a thread
 * started ahead) may call it then. A failure only costs speed, so it is not reported. (Both
 * engines' loops even for a translator hart: the translator's alone took ~45 ms less, but the
 * interpreter it runs cold code with then met paths without feedback in the Linux boot, whose
 * main-thread CPU stayed the same.)
 */
export function warmUp(): void {
  if (warmed) return;
  warmed = true;
  try {
    const code = warmUpProgram();
    const data = warmUpData();
    const system = warmUpSystem();
    const harts: Hart[] = [];
    for (const engine of ENGINES) {
      // the instruction forms (M-mode, bare); the translator compiles them at their third visit
      // (the trace generator sees every form: WebAssembly, and JavaScript for F and D)
      const bus = new Bus({ ramBase: WARM_UP_BASE, ramSize: WARM_UP_RAM });
      bus.write(WARM_UP_BASE, code);
      bus.write(WARM_UP_BASE + WARM_UP_DATA, data);
      const translateAfter = engine === "translator" ? 3 : undefined;
      const h = new Hart(bus, { engine, translateAfter });
      h.pc = WARM_UP_BASE;
      harts.push(h);
      // the system program (Sv39, S and U, traps, interrupts, MMIO and ecall exits) with a hart
      // shaped like a hypervisor's: its own WebAssembly memory, SBI ecall exits, a clock (cold
      // chunks run before and between its traces)
      const sysBus = new Bus({ ramBase: WARM_UP_BASE, ramSize: WARM_UP_RAM });
      for (const seg of system) sysBus.write(WARM_UP_BASE + seg.off, seg.bytes);
      const t0 = performance.now();
      // two clock functions (not two closures of one): the call site that reads the clock goes
      // megamorphic here, so a hypervisor's own clock does not deoptimize the run loop
      const s = new Hart(sysBus, {
        engine,
        translateAfter,
        sbiEcallExit: true,
        timeSource:
          engine === "translator"
            ? () => Math.floor((performance.now() - t0) * 10_000)
            : () => Math.round((performance.now() - t0) * 10_000),
      });
      s.pc = WARM_UP_BASE + WARM_UP_SYSTEM;
      harts.push(s);
    }
    // every path gets feedback before the first optimization: the programs take turns (a turn
    // ends at the budget or an exit; running each through its exits to a full budget made the
    // warm-up ~60 ms longer and the Linux boot no faster)
    for (let i = 0; i < WARM_UP_RUNS; i++) {
      for (const h of harts) {
        const ex = h.run(WARM_UP_BUDGET);
        if (ex.kind === "mmio") h.completeMmio(0);
      }
    }
  } catch {
    // (the warm-up is an optimization)
  }
}

/** Runs and instructions per run of the warm-up. */
const WARM_UP_RUNS = 8;
const WARM_UP_BUDGET = 2000;

const TLB_BITS = 12;
const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;
// A TLB entry is 4 words at (idx << 2): tag low word (page-aligned), tag high word, RAM byte offset,
// host delta (setEntry); one cache line per lookup. An empty entry's low tag is -1, which no page-aligned
// address matches (so no address, valid or not, can hit an empty entry).
const NO_TAG = -1;
const EXC_NONE = -1;
const EXC_MMIO = -2;
const EXC_HALT = -3;
const TIMER_POLL = 4096;
/**
 * The one budget exit (run() and exec() return it): the run loop tests exits by identity, not by
 * their kind, whose load deoptimized it at the first exit of another shape (MMIO, ecall).
 */
const BUDGET_EXIT: HartExit = Object.freeze({ kind: "budget" });
/** 2^(9i): 4 KiB pages in a level-i page (Sv39/Sv48 superpages, priv 1.12 §4.3.2 step 6). */
const PPN_SPAN = [1, 2 ** 9, 2 ** 18, 2 ** 27, 2 ** 36];
/** Instructions the translator's run loop steps after a check inside a trace, looking for a trace start. */
const MAX_SEEK = MAX_TRACE;
const TWO32 = 4294967296;
const SATP_BARE = 0;
const SATP_SV39 = 8;
const SATP_SV48 = 9;

/** Sign-extend an unsigned bigint < 2^64 to a JS number when exact; otherwise NaN. */
function toAddrNumber(lo: number, hi: number): number {
  return hi * TWO32 + (lo >>> 0);
}

export class Hart {
  readonly regs: RegisterFile;
  readonly x: Int32Array;
  /** f registers as doubles and as raw (lo, hi) words: the same memory (regs.ts). */
  readonly f: Float64Array;
  readonly fw: Int32Array;
  readonly bus: Bus;
  readonly options: HartOptions;
  readonly hartId: number;
  readonly pmp = new Pmp();
  /** Sdtrig debug triggers (tselect, tdata1-3, tinfo; debug spec 1.0 §5.7). */
  readonly triggers = new Triggers();

  pc = 0;
  priv = PRV_M;
  /** Instructions retired before the current run() (plus the current run's count at exits). */
  instret = 0;

  // --- CSR state ---
  mstatus = 0; // low word; UXL/SXL/SD synthesised
  fflags = 0;
  frm = 0;
  medeleg = 0;
  mideleg = 0;
  mie = 0;
  /** Software-writable and externally driven pending bits (STIP from Sstc is added when read). */
  mip = 0;
  mtvec = 0;
  stvec = 0;
  mepc = 0;
  sepc = 0;
  mcause = 0n;
  scause = 0n;
  mtval = 0n;
  stval = 0n;
  mscratch = 0n;
  sscratch = 0n;
  mcounteren = 0;
  scounteren = 0;
  menvcfg = 0n;
  senvcfg = 0n;
  satp = 0n;
  private stimecmpValue = 0xffffffffffffffffn;
  private stimecmpNum = Number.POSITIVE_INFINITY;
  private satpMode = SATP_BARE;
  private satpRoot = 0;
  private instretOffset = 0;
  private cycleOffset = 0;
  /** @internal LR reservation (physical address) or -1; translated FP stores leave while one is held. */
  reservation = -1;

  // --- exits / faults ---
  private exc = EXC_NONE;
  private excTval = 0n;
  private mmioAddr = 0;
  private mmioSize: 1 | 2 | 4 | 8 = 4;
  private mmioValue = 0n;
  private mmioPending: { rd: number; kind: number; npc: number } | undefined;
  private haltCode = 0;
  private rhi = 0;
  private nRun = 0;

  // --- software TLBs (read / write / fetch): tag = page-aligned (lo, hi), value = RAM byte offset ---
  // What a fill may cache depends on the translation context: the effective data privilege
  // (MPRV/MPP), SUM and MXR for loads and stores, the privilege for fetches, plus satp and PMP.
  // Each context has its own set (dataSets: dataKey(), fetchSets: priv), so privilege changes
  // and SUM/MXR toggles only switch sets; satp, PMP and sfence.vma invalidate every set
  // (lazily: a set whose epoch is old is cleared when it next becomes active).
  private readonly dataSets: (TlbSet | undefined)[] = [];
  private readonly fetchSets: (TlbSet | undefined)[] = [];
  private tlbEpoch = 0;
  private dSet: TlbSet;
  private xSet: TlbSet;
  private rTlb: Int32Array;
  private wTlb: Int32Array;
  private xTlb: Int32Array;
  /** Level of the leaf PTE of the last successful walk (0 = 4 KiB page). */
  private walkLevel = 0;
  /** Per (priv, access): does PMP allow all of RAM? -1 = not computed since the last PMP change. */
  private readonly ramPmp = new Int8Array(12).fill(-1);
  private fetchVa = Number.NaN;
  private fetchOff = 0;

  private readonly ctab: Int32Array;
  /** options.timeSource, or undefined: time from instructions (time()). */
  private readonly hostTime: (() => number) | undefined;
  /** The binary translator (engine "translator"), or undefined. */
  private readonly tr: Translator | undefined;
  /** Byte offset of this hart's state in the bus memory (translator with the WebAssembly back end). */
  private readonly state: number | undefined;
  private readonly codeSource: CodeSource;

  constructor(bus: Bus, options: HartOptions = {}) {
    warmUp();
    this.bus = bus;
    this.options = options;
    this.hartId = options.hartId ?? 0;
    const translated = (options.engine ?? DEFAULT_ENGINE) === "translator";
    // with a WebAssembly memory: x, the block control words and the data TLBs in it (wasm-block.ts)
    const state = translated && options.translatorBackend !== "js" ? bus.allocHartState() : undefined;
    this.state = state;
    this.regs = state === undefined ? createRegisterFile() : createRegisterFile(bus.buffer, state, state + 512);
    this.x = this.regs.x;
    this.f = this.regs.f;
    this.fw = this.regs.fw;
    this.ctab = compressedTable();
    this.dSet = this.dataSet(this.dataKey());
    this.xSet = this.fetchSet(this.priv);
    this.rTlb = this.dSet.r;
    this.wTlb = this.dSet.w;
    this.xTlb = this.xSet.r;
    this.hostTime = options.timeSource;
    if (options.tohost !== undefined) bus.watch(options.tohost);
    this.codeSource = { u16: bus.u16, ctab: this.ctab, magic: options.magic === true };
    if (translated) {
      const memory = bus.memory;
      const wasm: WasmLayout | undefined =
        state === undefined || memory === undefined
          ? undefined
          : {
              memory,
              shared: typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer,
              pages: bus.memoryPages,
              xBase: state,
              ctlBase: state + 256,
              cacheBase: state + 4096 + 16 * 131072,
              fBase: state + 512,
            };
      this.tr = new Translator(
        bus.ramSize,
        options.translateAfter ?? HOT_THRESHOLD,
        wasm,
        options.translateInBackground === true,
      );
      this.tr.onNewCodePage = (page) => this.dropWriteTlbPage(page);
      this.tr.onCsr = (insn) => this.csrFromTrace(insn);
    }
    generalizeFields(this, DOUBLE_FIELDS);
  }

  /**
   * The time CSR's ticks: the host's timeSource, or instret / 10. (No closure per hart for the
   * default: a call site that met one hart's closure was deoptimized by the next hart's.)
   */
  private time(): number {
    const host = this.hostTime;
    return host === undefined ? Math.floor((this.instret + this.nRun) / 10) : host();
  }

  /** The engine executing guest code. */
  get engine(): Engine {
    return this.tr === undefined ? "interpreter" : "translator";
  }

  /** Translator counters (blocks, compile time, cache hits), or undefined under the interpreter. */
  translatorStats(): Readonly<TranslatorStats> | undefined {
    return this.tr?.stats;
  }

  /**
   * Drop every translated block, as fence.i does: call it after writing guest code into RAM from
   * the host (loaders, DMA of code the guest will not fence.i itself). A no-op for the interpreter.
   */
  /** Sstc's stimecmp (the same as writing the CSR: the timer deadline follows). */
  get stimecmp(): bigint {
    return this.stimecmpValue;
  }

  set stimecmp(v: bigint) {
    this.stimecmpValue = BigInt.asUintN(64, v);
    this.stimecmpNum = this.stimecmpValue >= 1n << 53n ? Number.POSITIVE_INFINITY : Number(this.stimecmpValue);
  }

  invalidateTranslations(): void {
    this.tr?.flush();
  }

  /**
   * What the hart's own fence.i does (Zifencei): translations of code pages whose bytes changed
   * since they were translated are dropped. For an SBI remote fence.i (SBI v2.0 §8.1) aimed at
   * this hart. A no-op for the interpreter.
   */
  fenceI(): void {
    this.tr?.fenceI(this.codeSource);
  }

  // ------------------------------------------------------------------ public API

  /** Set or clear an interrupt-pending line (MIP_* bits: MEIP, SEIP, MTIP, MSIP, STIP, SSIP). */
  setInterrupt(mask: number, level: boolean): void {
    this.mip = level ? this.mip | mask : this.mip & ~mask;
  }

  /** The pc as an unsigned 64-bit value. */
  get pc64(): bigint {
    return BigInt.asUintN(64, BigInt(this.pc));
  }

  set pc64(v: bigint) {
    this.pc = Number(BigInt.asIntN(53, BigInt.asIntN(64, v)));
  }

  /**
   * Complete a pending MMIO exit: for a read, the value the device returned (a number or a
   * bigint, as platform's `MmioMap.read` gives it; undefined, a hole, reads as 0).
   */
  completeMmio(value: bigint | number | undefined = 0n): void {
    const p = this.mmioPending;
    if (!p) throw new CpuError(CpuErrorCode.MMIO_PENDING, {}, "no MMIO access is pending");
    this.mmioPending = undefined;
    if (p.kind !== 0) this.writeLoadResult(p.rd, p.kind, typeof value === "bigint" ? value : BigInt(value ?? 0));
    this.pc = p.npc;
    this.instret++;
  }

  /** Fail a pending MMIO exit: the instruction takes an access fault. */
  failMmio(): void {
    const p = this.mmioPending;
    if (!p) throw new CpuError(CpuErrorCode.MMIO_PENDING, {}, "no MMIO access is pending");
    this.mmioPending = undefined;
    this.trap(p.kind === 0 ? Cause.STORE_ACCESS : Cause.LOAD_ACCESS, BigInt(this.mmioAddr), false);
  }

  /** The time at which the Sstc timer fires (ticks), or Infinity: for hypervisors sleeping in WFI. */
  nextTimerDeadline(): number {
    return this.menvcfg >> 63n ? this.stimecmpNum : Number.POSITIVE_INFINITY;
  }

  /** True when an interrupt is pending and enabled in mie (what ends a WFI). */
  interruptPending(): boolean {
    return (this.effectiveMip() & this.mie) !== 0;
  }

  /**
   * Write a CSR as M-mode software would (all WARL rules and side effects apply):
   * how a hypervisor playing firmware sets PMP, delegation, menvcfg, counters.
   * Returns false when the CSR does not exist.
   */
  writeCsr(csr: number, value: bigint): boolean {
    const saved = this.priv;
    this.priv = PRV_M;
    const ok = this.csrRead(csr, true) !== undefined && this.csrWrite(csr, BigInt.asUintN(64, value));
    this.priv = saved;
    this.tlbContext();
    return ok;
  }

  /** Change the privilege level from outside (a hypervisor entering its guest). */
  setPrivilege(p: 0 | 1 | 3): void {
    this.setPriv(p);
  }

  /** Full mstatus as the guest reads it. */
  readMstatus(): bigint {
    const fsDirty = (this.mstatus & MSTATUS_FS) === MSTATUS_FS;
    return (BigInt(this.mstatus >>> 0) | (0xan << 32n) | (fsDirty ? 1n << 63n : 0n)) & 0xffffffffffffffffn;
  }

  /** Read a CSR as the debugger sees it (no privilege checks, no side effects). */
  debugReadCsr(csr: number): bigint | undefined {
    const saved = this.priv;
    this.priv = PRV_M;
    const v = this.csrRead(csr, true);
    this.priv = saved;
    return v;
  }

  // ------------------------------------------------------------------ run loop

  run(budget: number): HartExit {
    if (this.mmioPending) throw new CpuError(CpuErrorCode.MMIO_PENDING, { address: this.mmioAddr });
    const tr = this.tr;
    if (tr === undefined) return this.exec(budget, 0);
    const ex = this.runTranslated(budget, tr);
    tr.flushQueue(); // (background mode) traces queued in this run are compiled while the host goes on
    return ex;
  }

  /**
   * The interpreter: up to `budget` instructions or exceptions. Interrupts are checked first when
   * `first` is 0; the translator steps single instructions with exec(1, 1) (no check: it has its own).
   * Its cold chunks pass the heat table `heat`: each taken jump counts a visit at its target, and
   * the chunk ends at a target whose heat reached `hot` (a trace there, or one to compile).
   */
  private exec(budget: number, first: number, hot = 0, heat: Uint16Array | undefined = undefined): HartExit {
    const x = this.x;
    const bus = this.bus;
    const u8 = bus.u8;
    const u16 = bus.u16;
    const i32 = bus.i32;
    const ctab = this.ctab;
    // the active TLB set: reloaded with fetchVa whenever the context may have changed
    let rTlb = this.rTlb;
    let wTlb = this.wTlb;
    let pc = this.pc;
    let fetchVa = this.fetchVa; // the current code page (reloaded whenever translation may have changed)
    let fetchOff = this.fetchOff;
    let n = 0; // instructions retired in this run
    let t = 0; // exceptions taken in this run (a trap storm must still end the run)
    // limit: the next check of interrupts and the budget (0: before the first instruction; -1: a
    // check forced by a trap, a CSR write or xRET, before the next instruction)
    let limit = first;
    let end = budget;
    this.execCheckAt = -1;

    for (;;) {
      if (n >= limit) {
        this.nRun = n;
        if (n + t >= end) {
          this.pc = pc;
          this.instret += n;
          this.nRun = 0;
          this.execTraps = t;
          this.execDue = limit < 0;
          return BUDGET_EXIT;
        }
        this.execCheckAt = n;
        const irq = this.pendingInterrupt();
        if (irq >= 0) {
          this.pc = pc;
          this.trap(irq, 0n, true);
          pc = this.pc;
        }
        limit = Math.min(end - t, n + TIMER_POLL);
        if (this.triggers.exec) {
          // Sdtrig execute triggers (debug spec 1.0 §5.7.13): while one is armed, every instruction
          // comes through here first; the breakpoint precedes any fetch fault (priv 1.12 §3.1.15)
          limit = -1;
          if (this.triggers.execAt(pc, this.priv) && this.execTriggerFires(pc)) {
            this.pc = pc;
            this.trap(Cause.BREAKPOINT, 0n, false);
            pc = this.pc;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
        }
        fetchVa = this.fetchVa;
        fetchOff = this.fetchOff;
        rTlb = this.rTlb;
        wTlb = this.wTlb;
      }

      // ---- fetch (RISC-V unpriv §1.5: 16-bit parcels, little-endian) ----
      let insn: number;
      let ilen = 4;
      let d = pc - fetchVa;
      let newPage = false;
      if (!(d >= 0 && d < 4096)) {
        this.pc = pc;
        if (!this.fillFetch()) {
          pc = this.trapFromExc();
          limit = -1;
          t++; // exceptions retire nothing but count against the budget
          continue;
        }
        fetchVa = this.fetchVa;
        fetchOff = this.fetchOff;
        d = pc - fetchVa;
        newPage = true;
      }
      const fo = fetchOff + d;
      // translator cold chunks: a start on another page (its traces run from here, or the chunk
      // ends for the run loop to compile one), or one with a trace reached by falling through (the
      // rest of a straight run, a branch's fall-through: a chunk in a 2,300-instruction straight
      // function went on to its end past its traces); jumps count at their targets
      if (heat !== undefined && n > 0 && (newPage || heat[(fo >>> 1) & HEAT_MASK] === TRACE_MARK)) {
        const j = this.atTarget(heat, pc, fetchVa, fetchOff, hot, limit - n, rTlb, wTlb);
        // where the traces stopped (atTarget's inputs when none ran: j is 0, and so is fo's change),
        // loaded and added on every path: a side first taken after V8 optimized exec had no type
        // feedback, and deoptimized it
        n += this.traced;
        pc = this.pc;
        fetchVa = this.fetchVa;
        fetchOff = this.fetchOff;
        const stopEnd = n + t;
        end = j >= 2 ? stopEnd : end;
        limit = j >= 2 ? n : limit; // the chunk ends here (not a forced check)
        if (j !== 0) continue;
      }
      const p0 = u16[fo >> 1];
      if ((p0 & 3) !== 3) {
        insn = compressedEntry(ctab, p0);
        ilen = 2;
        if (insn === 0) {
          this.pc = pc;
          pc = this.illegal(p0, n);
          limit = -1;
          t++; // exceptions retire nothing but count against the budget
          continue;
        }
      } else if (d <= 4092) {
        insn = p0 | (u16[(fo >> 1) + 1] << 16);
      } else {
        this.nRun = n;
        this.pc = pc;
        const hiPart = this.fetchCrossPage();
        if (hiPart < 0) {
          pc = this.trapFromExc();
          limit = -1;
          t++; // exceptions retire nothing but count against the budget
          continue;
        }
        insn = p0 | (hiPart << 16);
      }

      const rd = (insn >> 7) & 31;
      const rs1 = (insn >> 15) & 31;
      const rs2 = (insn >> 20) & 31;
      const f3 = (insn >> 12) & 7;
      switch ((insn >>> 2) & 31) {
        case 13: // opcode 0x37 // LUI
          if (rd) {
            x[rd << 1] = insn & 0xfffff000;
            x[(rd << 1) + 1] = insn >> 31;
          }
          break;
        case 5: {
          // opcode 0x17
          // AUIPC
          if (rd) {
            const v = pc + (insn & 0xfffff000);
            x[rd << 1] = v | 0;
            x[(rd << 1) + 1] = Math.floor(v / TWO32) | 0;
          }
          break;
        }
        case 27: {
          // opcode 0x6f
          // JAL: imm[20|10:1|11|19:12]
          const imm =
            ((insn >> 31) << 20) | (((insn >> 21) & 0x3ff) << 1) | (((insn >> 20) & 1) << 11) | (insn & 0xff000);
          if (rd) {
            const v = pc + ilen;
            x[rd << 1] = v | 0;
            x[(rd << 1) + 1] = Math.floor(v / TWO32) | 0;
          }
          pc += imm;
          n++;
          if (heat !== undefined) {
            const j = this.atTarget(heat, pc, fetchVa, fetchOff, hot, limit - n, rTlb, wTlb);
            // where the traces stopped (atTarget's inputs when none ran), loaded and added on every
            // path: a side first taken after V8 optimized exec had no type feedback, and deoptimized it
            n += this.traced;
            pc = this.pc;
            fetchVa = this.fetchVa;
            fetchOff = this.fetchOff;
            const stopEnd = n + t;
            end = j >= 2 ? stopEnd : end;
            limit = j >= 2 ? n : limit; // the chunk ends here (not a forced check)
          }
          continue;
        }
        case 25: {
          // opcode 0x67
          // JALR
          if (f3 !== 0) {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          // target = (rs1 + imm) & ~1 (RISC-V unpriv 20191213 §2.5): the carry into the high word
          // comes from the full 64-bit sum; clearing bit 0 afterwards cannot change it.
          const imm = insn >> 20;
          const blo = x[rs1 << 1];
          const sum = (blo + imm) | 0;
          const hi = (x[(rs1 << 1) + 1] + (imm >> 31) + (sum >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          const lo = sum & ~1;
          if (rd) {
            const v = pc + ilen;
            x[rd << 1] = v | 0;
            x[(rd << 1) + 1] = Math.floor(v / TWO32) | 0;
          }
          if (hi >= 0x100000 || hi < -0x100000) {
            // beyond every valid address: the fetch faults (priv 1.12 §4.3.1 / no memory there)
            n++;
            this.nRun = n;
            this.pc = pc;
            pc = this.fetchFaultFar(lo, hi);
            continue;
          }
          pc = hi * TWO32 + (lo >>> 0);
          n++;
          if (heat !== undefined) {
            const j = this.atTarget(heat, pc, fetchVa, fetchOff, hot, limit - n, rTlb, wTlb);
            // where the traces stopped (atTarget's inputs when none ran), loaded and added on every
            // path: a side first taken after V8 optimized exec had no type feedback, and deoptimized it
            n += this.traced;
            pc = this.pc;
            fetchVa = this.fetchVa;
            fetchOff = this.fetchOff;
            const stopEnd = n + t;
            end = j >= 2 ? stopEnd : end;
            limit = j >= 2 ? n : limit; // the chunk ends here (not a forced check)
          }
          continue;
        }
        case 24: {
          // opcode 0x63
          // BRANCH: imm[12|10:5|4:1|11]
          const alo = x[rs1 << 1];
          const ahi = x[(rs1 << 1) + 1];
          const blo = x[rs2 << 1];
          const bhi = x[(rs2 << 1) + 1];
          // the low words' unsigned order, for every branch: inside `ahi === bhi && ...` this
          // compare had no type feedback when the warm-up's random operands never had equal
          // high words, and deoptimized the interpreter at the guest's first small-number BLT
          const ltLo = alo >>> 0 < blo >>> 0;
          let taken: boolean;
          switch (f3) {
            case 0: // BEQ
              taken = alo === blo && ahi === bhi;
              break;
            case 1: // BNE
              taken = alo !== blo || ahi !== bhi;
              break;
            case 4: // BLT
              taken = ahi < bhi || (ahi === bhi && ltLo);
              break;
            case 5: // BGE
              taken = ahi > bhi || (ahi === bhi && !ltLo);
              break;
            case 6: // BLTU
              taken = ahi >>> 0 < bhi >>> 0 || (ahi === bhi && ltLo);
              break;
            case 7: // BGEU
              taken = ahi >>> 0 > bhi >>> 0 || (ahi === bhi && !ltLo);
              break;
            default:
              this.pc = pc;
              pc = this.illegal(insn, n);
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
          }
          n++;
          if (taken) {
            pc +=
              ((insn >> 31) << 12) |
              (((insn >> 25) & 0x3f) << 5) |
              (((insn >> 8) & 0xf) << 1) |
              (((insn >> 7) & 1) << 11);
            if (heat !== undefined) {
              const j = this.atTarget(heat, pc, fetchVa, fetchOff, hot, limit - n, rTlb, wTlb);
              // where the traces stopped (atTarget's inputs when none ran), loaded and added on every
              // path: a side first taken after V8 optimized exec had no type feedback, and deoptimized it
              n += this.traced;
              pc = this.pc;
              fetchVa = this.fetchVa;
              fetchOff = this.fetchOff;
              const stopEnd = n + t;
              end = j >= 2 ? stopEnd : end;
              limit = j >= 2 ? n : limit; // the chunk ends here (not a forced check)
            }
          } else {
            pc += ilen;
          }
          continue;
        }
        case 0: {
          // opcode 0x03
          // LOAD
          const imm = insn >> 20;
          const blo = x[rs1 << 1];
          const lo = (blo + imm) | 0;
          const hi = (x[(rs1 << 1) + 1] + (imm >> 31) + (lo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          const e = ((lo >>> 12) & TLB_MASK) << 2;
          let vlo: number;
          let vhi: number;
          if (rTlb[e] === (lo & ~0xfff) && rTlb[e + 1] === hi && (f3 & 3) !== 3 && (lo & ((1 << (f3 & 3)) - 1)) === 0) {
            const off = rTlb[e + 2] + (lo & 0xfff);
            switch (f3) {
              case 0: // LB
                vlo = (u8[off] << 24) >> 24;
                vhi = vlo >> 31;
                break;
              case 1: // LH
                vlo = (u16[off >> 1] << 16) >> 16;
                vhi = vlo >> 31;
                break;
              case 2: // LW
                vlo = i32[off >> 2];
                vhi = vlo >> 31;
                break;
              case 4: // LBU
                vlo = u8[off];
                vhi = 0;
                break;
              case 5: // LHU
                vlo = u16[off >> 1];
                vhi = 0;
                break;
              case 6: // LWU
                vlo = i32[off >> 2];
                vhi = 0;
                break;
              default:
                this.pc = pc;
                pc = this.illegal(insn, n);
                limit = -1;
                t++; // exceptions retire nothing but count against the budget
                continue;
            }
          } else if (f3 === 3 && rTlb[e] === (lo & ~0xfff) && rTlb[e + 1] === hi && (lo & 7) === 0) {
            // LD
            const off = (rTlb[e + 2] + (lo & 0xfff)) >> 2;
            vlo = i32[off];
            vhi = i32[off + 1];
          } else {
            if (f3 === 7) {
              this.pc = pc;
              pc = this.illegal(insn, n);
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
            }
            this.nRun = n;
            const size = 1 << (f3 & 3);
            const raw = this.readSlow(lo, hi, size, ACCESS_READ);
            if (this.exc !== EXC_NONE) {
              this.pc = pc;
              if (this.exc === EXC_MMIO) return this.mmioReadExit(n, rd, 1 + f3, ilen);
              pc = this.trapFromExc();
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
            }
            switch (f3) {
              case 0:
                vlo = (raw << 24) >> 24;
                vhi = vlo >> 31;
                break;
              case 1:
                vlo = (raw << 16) >> 16;
                vhi = vlo >> 31;
                break;
              case 2:
                vlo = raw | 0;
                vhi = vlo >> 31;
                break;
              case 3:
                vlo = raw | 0;
                vhi = this.rhi;
                break;
              default:
                vlo = raw | 0;
                vhi = 0;
            }
          }
          if (rd) {
            x[rd << 1] = vlo;
            x[(rd << 1) + 1] = vhi;
          }
          break;
        }
        case 8: {
          // opcode 0x23
          // STORE: imm[11:5|4:0]
          const imm = ((insn >> 25) << 5) | ((insn >> 7) & 31);
          const blo = x[rs1 << 1];
          const lo = (blo + imm) | 0;
          const hi = (x[(rs1 << 1) + 1] + (imm >> 31) + (lo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          const e = ((lo >>> 12) & TLB_MASK) << 2;
          const vlo = x[rs2 << 1];
          if (f3 > 3) {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          if (wTlb[e] === (lo & ~0xfff) && wTlb[e + 1] === hi && (lo & ((1 << f3) - 1)) === 0) {
            const off = wTlb[e + 2] + (lo & 0xfff);
            switch (f3) {
              case 0: // SB
                u8[off] = vlo;
                break;
              case 1: // SH
                u16[off >> 1] = vlo;
                break;
              case 2: // SW
                i32[off >> 2] = vlo;
                break;
              default: // SD
                i32[off >> 2] = vlo;
                i32[(off >> 2) + 1] = x[(rs2 << 1) + 1];
            }
          } else {
            this.nRun = n;
            this.writeSlow(lo, hi, 1 << f3, vlo, x[(rs2 << 1) + 1]);
            if (this.exc !== EXC_NONE) {
              this.pc = pc;
              if (this.exc === EXC_MMIO) return this.mmioWriteExit(n, ilen);
              if (this.exc === EXC_HALT) return this.haltExit(n, ilen);
              pc = this.trapFromExc();
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
            }
          }
          break;
        }
        case 4: {
          // opcode 0x13
          // OP-IMM
          const imm = insn >> 20;
          const alo = x[rs1 << 1];
          const ahi = x[(rs1 << 1) + 1];
          let lo: number;
          let hi: number;
          switch (f3) {
            case 0: // ADDI
              lo = (alo + imm) | 0;
              hi = (ahi + (imm >> 31) + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
              break;
            case 2: // SLTI (rd=x0: custom-use HINT → magic)
              if (rd === 0 && this.options.magic && rs1 === 0) {
                this.pc = pc + ilen;
                this.instret += n + 1;
                this.nRun = 0;
                return { kind: "magic", op: imm };
              }
              {
                const ltLo = alo >>> 0 < imm >>> 0; // (on every path: see BRANCH)
                lo = ahi < imm >> 31 || (ahi === imm >> 31 && ltLo) ? 1 : 0;
              }
              hi = 0;
              break;
            case 3: {
              // SLTIU (imm sign-extended, compared unsigned)
              const ltLo = alo >>> 0 < imm >>> 0;
              lo = ahi >>> 0 < (imm >> 31) >>> 0 || (ahi === imm >> 31 && ltLo) ? 1 : 0;
              hi = 0;
              break;
            }
            case 4: // XORI
              lo = alo ^ imm;
              hi = ahi ^ (imm >> 31);
              break;
            case 6: // ORI
              lo = alo | imm;
              hi = ahi | (imm >> 31);
              break;
            case 7: // ANDI
              lo = alo & imm;
              hi = ahi & (imm >> 31);
              break;
            case 1: {
              // SLLI
              if (insn >>> 26 !== 0) {
                this.pc = pc;
                pc = this.illegal(insn, n);
                limit = -1;
                t++; // exceptions retire nothing but count against the budget
                continue;
              }
              const sh = imm & 63;
              if (sh === 0) {
                lo = alo;
                hi = ahi;
              } else if (sh < 32) {
                hi = (ahi << sh) | (alo >>> (32 - sh));
                lo = alo << sh;
              } else {
                hi = alo << (sh - 32);
                lo = 0;
              }
              break;
            }
            default: {
              // SRLI / SRAI
              const top = insn >>> 26;
              const sh = imm & 63;
              if (top === 0) {
                if (sh === 0) {
                  lo = alo;
                  hi = ahi;
                } else if (sh < 32) {
                  lo = (alo >>> sh) | (ahi << (32 - sh));
                  hi = ahi >>> sh;
                } else {
                  lo = ahi >>> (sh - 32);
                  hi = 0;
                }
              } else if (top === 0x10) {
                if (sh === 0) {
                  lo = alo;
                  hi = ahi;
                } else if (sh < 32) {
                  lo = (alo >>> sh) | (ahi << (32 - sh));
                  hi = ahi >> sh;
                } else {
                  lo = ahi >> (sh - 32);
                  hi = ahi >> 31;
                }
              } else {
                this.pc = pc;
                pc = this.illegal(insn, n);
                limit = -1;
                t++; // exceptions retire nothing but count against the budget
                continue;
              }
            }
          }
          if (rd) {
            x[rd << 1] = lo;
            x[(rd << 1) + 1] = hi;
          }
          break;
        }
        case 6: {
          // opcode 0x1b
          // OP-IMM-32
          const imm = insn >> 20;
          const a = x[rs1 << 1];
          let v: number;
          if (f3 === 0) {
            v = (a + imm) | 0; // ADDIW
          } else if (f3 === 1 && insn >>> 25 === 0) {
            v = a << (imm & 31); // SLLIW
          } else if (f3 === 5 && insn >>> 25 === 0) {
            v = a >>> (imm & 31); // SRLIW
            v |= 0;
          } else if (f3 === 5 && insn >>> 25 === 0x20) {
            v = a >> (imm & 31); // SRAIW
          } else {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          if (rd) {
            x[rd << 1] = v;
            x[(rd << 1) + 1] = v >> 31;
          }
          break;
        }
        case 12: {
          // opcode 0x33
          // OP
          const f7 = insn >>> 25;
          const alo = x[rs1 << 1];
          const ahi = x[(rs1 << 1) + 1];
          const blo = x[rs2 << 1];
          const bhi = x[(rs2 << 1) + 1];
          let lo: number;
          let hi: number;
          if (f7 === 0) {
            switch (f3) {
              case 0: // ADD
                lo = (alo + blo) | 0;
                hi = (ahi + bhi + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
                break;
              case 1: {
                // SLL
                const sh = blo & 63;
                if (sh === 0) {
                  lo = alo;
                  hi = ahi;
                } else if (sh < 32) {
                  hi = (ahi << sh) | (alo >>> (32 - sh));
                  lo = alo << sh;
                } else {
                  hi = alo << (sh - 32);
                  lo = 0;
                }
                break;
              }
              case 2: {
                // SLT (the low words' compare on every path: see BRANCH)
                const ltLo = alo >>> 0 < blo >>> 0;
                lo = ahi < bhi || (ahi === bhi && ltLo) ? 1 : 0;
                hi = 0;
                break;
              }
              case 3: {
                // SLTU
                const ltLo = alo >>> 0 < blo >>> 0;
                lo = ahi >>> 0 < bhi >>> 0 || (ahi === bhi && ltLo) ? 1 : 0;
                hi = 0;
                break;
              }
              case 4: // XOR
                lo = alo ^ blo;
                hi = ahi ^ bhi;
                break;
              case 5: {
                // SRL
                const sh = blo & 63;
                if (sh === 0) {
                  lo = alo;
                  hi = ahi;
                } else if (sh < 32) {
                  lo = (alo >>> sh) | (ahi << (32 - sh));
                  hi = ahi >>> sh;
                } else {
                  lo = ahi >>> (sh - 32);
                  hi = 0;
                }
                break;
              }
              case 6: // OR
                lo = alo | blo;
                hi = ahi | bhi;
                break;
              default: // AND
                lo = alo & blo;
                hi = ahi & bhi;
            }
          } else if (f7 === 0x20 && f3 === 0) {
            // SUB
            lo = (alo - blo) | 0;
            hi = (ahi - bhi - (alo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          } else if (f7 === 0x20 && f3 === 5) {
            // SRA
            const sh = blo & 63;
            if (sh === 0) {
              lo = alo;
              hi = ahi;
            } else if (sh < 32) {
              lo = (alo >>> sh) | (ahi << (32 - sh));
              hi = ahi >> sh;
            } else {
              lo = ahi >> (sh - 32);
              hi = ahi >> 31;
            }
          } else if (f7 === 1) {
            this.mulDiv(f3, alo, ahi, blo, bhi);
            lo = this.mdLo;
            hi = this.mdHi;
          } else {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          if (rd) {
            x[rd << 1] = lo;
            x[(rd << 1) + 1] = hi;
          }
          break;
        }
        case 14: {
          // opcode 0x3b
          // OP-32
          const f7 = insn >>> 25;
          const a = x[rs1 << 1];
          const b = x[rs2 << 1];
          let v: number;
          if (f7 === 0) {
            if (f3 === 0)
              v = (a + b) | 0; // ADDW
            else if (f3 === 1)
              v = a << (b & 31); // SLLW
            else if (f3 === 5)
              v = (a >>> (b & 31)) | 0; // SRLW
            else {
              this.pc = pc;
              pc = this.illegal(insn, n);
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
            }
          } else if (f7 === 0x20) {
            if (f3 === 0)
              v = (a - b) | 0; // SUBW
            else if (f3 === 5)
              v = a >> (b & 31); // SRAW
            else {
              this.pc = pc;
              pc = this.illegal(insn, n);
              limit = -1;
              t++; // exceptions retire nothing but count against the budget
              continue;
            }
          } else if (f7 === 1) {
            // RV64M word ops, unpriv §13.2/13.3
            switch (f3) {
              case 0: // MULW
                v = Math.imul(a, b);
                break;
              case 4: // DIVW
                v = b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : (a / b) | 0;
                break;
              case 5: // DIVUW
                v = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0;
                break;
              case 6: // REMW
                v = b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : (a % b) | 0;
                break;
              case 7: // REMUW
                v = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0;
                break;
              default:
                this.pc = pc;
                pc = this.illegal(insn, n);
                limit = -1;
                t++; // exceptions retire nothing but count against the budget
                continue;
            }
          } else {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          if (rd) {
            x[rd << 1] = v;
            x[(rd << 1) + 1] = v >> 31;
          }
          break;
        }
        case 3: // opcode 0x0f // MISC-MEM: FENCE (f3=0), FENCE.I (f3=1): a single in-order hart needs no action
          if (f3 > 1) {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          if (f3 === 1 && this.tr !== undefined) this.tr.fenceI(this.codeSource); // FENCE.I: translated code is an i-cache
          break;
        case 28: {
          // opcode 0x73
          // SYSTEM
          this.nRun = n;
          this.pc = pc;
          const r = this.system(insn, ilen);
          if (r === SYS_NEXT) {
            limit = -1; // CSR writes may have enabled an interrupt: check before the next instruction
            break;
          }
          if (r === SYS_JUMPED) {
            pc = this.pc;
            n++;
            limit = -1; // privilege/interrupt state may have changed
            continue;
          }
          if (r === SYS_TRAPPED) {
            pc = this.pc;
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          // exits: pc and instret already updated by system()
          return this.sysExit;
        }
        case 11: {
          // opcode 0x2f
          // AMO (A extension, unpriv §8)
          this.nRun = n;
          const r = this.amo(insn);
          if (r !== EXC_NONE) {
            this.pc = pc;
            pc = this.trapFromExc();
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          break;
        }
        case 1: // opcode 0x07 // LOAD-FP
        case 9: {
          // opcode 0x27
          // STORE-FP
          if ((this.mstatus & MSTATUS_FS) === 0 || (f3 !== 2 && f3 !== 3)) {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          this.nRun = n;
          const r = (insn & 0x7f) === 0x07 ? this.fpLoad(insn, f3, rd, rs1) : this.fpStore(insn, f3, rs1, rs2);
          if (r !== EXC_NONE) {
            this.pc = pc;
            if (r === EXC_MMIO) {
              if ((insn & 0x7f) === 0x07) return this.mmioReadExit(n, rd, f3 === 2 ? 8 : 9, ilen);
              return this.mmioWriteExit(n, ilen);
            }
            if (r === EXC_HALT) return this.haltExit(n, ilen);
            this.pc = pc;
            pc = this.trapFromExc();
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          break;
        }
        case 16: // opcode 0x43
        case 17: // opcode 0x47
        case 18: // opcode 0x4b
        case 19: // opcode 0x4f
        case 20: {
          // opcode 0x53
          // FP arithmetic: unpriv §11–12, executed by the FPU module
          if ((this.mstatus & MSTATUS_FS) === 0 || !execFp(this, insn)) {
            this.pc = pc;
            pc = this.illegal(insn, n);
            limit = -1;
            t++; // exceptions retire nothing but count against the budget
            continue;
          }
          this.mstatus |= MSTATUS_FS; // FS=Dirty, priv 1.12 §3.1.6.6
          break;
        }
        default:
          this.pc = pc;
          pc = this.illegal((insn & 3) === 3 ? insn : insn & 0xffff, n);
          limit = -1;
          t++; // exceptions retire nothing but count against the budget
          continue;
      }
      pc += ilen;
      n++;
    }
  }

  // ------------------------------------------------------------------ translator engine

  /**
   * The translator's run loop: the interpreter's budget and interrupt checks (at the same
   * instruction counts: a block runs only when it fits before the next check), translated blocks
   * where they exist, and exec(1, 1) for one instruction or trap everywhere else (cold code,
   * untranslated instructions, the instruction a block left before: TLB miss, MMIO, fault).
   * this.pc and this.instret are current between blocks (nRun stays 0).
   */
  private runTranslated(budget: number, tr: Translator): HartExit {
    const st = tr.stats;
    const x = this.x;
    const bus = this.bus;
    const u8 = bus.u8;
    const u16 = bus.u16;
    const i32 = bus.i32;
    const src = this.codeSource;
    const dispatch = tr.dispatch;
    let n = 0; // instructions retired in this run
    let t = 0; // exceptions taken in this run
    let limit = 0;
    const end = budget;
    let prev: Block | undefined; // the block that just ran (its successor cache chains blocks)
    let step = false; // the next instruction is the interpreter's (a block left before it)
    // Instructions to step one at a time, looking for a trace start: an interrupt check fell inside
    // a trace, and the interpreter's chunks count heat only at jumps, so in straight code (a long
    // unrolled run) a chunk would otherwise go on past every following trace start.
    let seek = 0;
    // The rest of a trace an interrupt check fell inside (it did not fit before the check, so the
    // interpreter ran its first part): interpreted right after the check, so the pc arrives at the
    // trace's end, where the next one starts. (Seeking there one step and one lookup at a time
    // made a trace start of every offset the check fell on: 760 traces instead of 40 for a
    // 2,300-instruction straight function, Linux's blake2s_compress.)
    let resume = 0;
    this.checkNow = false; // (left over from a run that ended in an exit: this one checks first)
    for (;;) {
      // An interrupt due at a check is taken by the interpreter's own check, exec(1, 0) below,
      // which then runs the handler's first instruction: a trap here was a path the warm-up's
      // programs never took (they take theirs inside cold chunks), and deoptimized this loop.
      let irqDue = false;
      if (n >= limit) {
        if (n + t >= end) return BUDGET_EXIT;
        irqDue = this.pendingInterrupt() >= 0;
        limit = Math.min(end - t, n + TIMER_POLL);
      }
      const pc = this.pc;
      let chunk = 1;
      let plain = false; // a chunk without heat (no jump targets counted, no traces run)
      if (resume > 0) {
        if (!step && !irqDue && !this.triggers.exec) {
          chunk = Math.min(resume, limit - n);
          plain = true;
          seek = MAX_SEEK; // (a trace with side exits: the path may end off a start)
        }
        resume = 0;
      }
      if (!plain && !step && !irqDue && !this.triggers.exec) {
        let d = pc - this.fetchVa;
        if (!(d >= 0 && d < 4096)) {
          // (the loads and stores here run on both sides: one only on the side a warm-up never
          // took had no type feedback, and deoptimized this loop when the guest first took it)
          const filled = this.fillFetch();
          d = filled ? pc - this.fetchVa : -1;
          this.exc = filled ? this.exc : EXC_NONE; // the interpreter takes the fetch fault
        }
        const key = this.fetchOff + d;
        // seeking: only a translated start stops it (no cache entry, no heat, so no new start,
        // at the offsets it steps through)
        if (d >= 0 && seek > 0 && tr.heat[(key >>> 1) & HEAT_MASK] !== TRACE_MARK) seek--;
        else if (d >= 0) {
          let b: Block;
          if (prev !== undefined && prev.k0 === key && (prev.b0 as Block).valid) b = prev.b0 as Block;
          else if (prev !== undefined && prev.k1 === key && (prev.b1 as Block).valid) b = prev.b1 as Block;
          else {
            b = tr.lookup(key);
            if (prev !== undefined) {
              prev.k1 = prev.k0;
              prev.b1 = prev.b0;
              prev.k0 = key;
              prev.b0 = b;
            }
          }
          st.lookups++;
          // a fence.i since its page was last checked: compare it first (translator.ts fenceI)
          if (b.fn !== undefined && !tr.current(b)) b = tr.lookup(key);
          // a cold start is compiled once its heat (jumps counted by the interpreter, and lookups)
          // reaches the threshold; a queued one counts visits until its batch is compiled
          if (b.len < 0 && (b.pending || tr.warm(key) >= tr.threshold)) tr.compile(b, src);
          const fn = b.fn;
          if (fn !== undefined) {
            st.hits++;
            seek = 0;
            if (n + b.len <= limit) {
              if (b.slot >= 0 && dispatch !== undefined) {
                // WebAssembly: this block and its successors, chained inside the dispatcher
                tr.enter(b);
                const status = this.runTraces(tr, pc, limit - n, this.rTlb, this.wTlb);
                const k = this.traced;
                n += k;
                this.instret += k;
                step = status === DispatchStatus.STEP;
                prev = undefined;
                const now = this.checkNow;
                this.checkNow = false;
                if (now) limit = n; // a trace set sstatus.SIE: check before the next instruction
                continue;
              }
              const r = fn(x, u8, u16, i32, this.rTlb, this.wTlb, tr, this, limit - n);
              const rk = tr.ret;
              const k = rk & ~STEP;
              n += k;
              this.instret += k;
              st.blockInstructions += k;
              st.blockCalls++;
              this.pc = r === ABS ? tr.npc : pc + r;
              step = rk !== k;
              prev = b;
              continue;
            }
            // the interpreter runs up to the check the block would overrun, and the rest after it
            chunk = limit - n;
            plain = true;
            resume = b.len - chunk;
          } else if (b.len < 0) {
            // cold code: the interpreter runs it at its own speed up to the next check, counting
            // visits at jump targets (where traces start) and ending at a hot one. (A seek steps
            // only past starts without a trace, above: here the heat table's mark was another
            // start's.)
            chunk = limit - n;
          }
        }
      }
      // the interpreter: one instruction or one trap (or an exit); or `chunk` of them
      step = false;
      prev = undefined;
      const before = this.instret;
      if (chunk > 1) {
        const traced = st.blockInstructions;
        this.execStep = false;
        this.execResume = 0;
        // (chunk <= TIMER_POLL: an int; a hypervisor's budget computed from instret, a double, made
        // it one here, and exec's budget, a small integer in the warm-up, deoptimized exec)
        const ex = plain ? this.exec(chunk | 0, chunk | 0) : this.exec(chunk | 0, chunk | 0, tr.threshold, tr.heat);
        step = this.execStep;
        const rest = this.execResume;
        const dn = this.instret - before;
        const di = dn - (st.blockInstructions - traced); // traces ran inside the chunk too
        if (ex !== BUDGET_EXIT) {
          st.interpreted += di;
          return ex;
        }
        const dt = this.execTraps;
        st.interpreted += di + dt;
        const n0 = n;
        n += dn;
        t += dt;
        const due = this.execDue || this.checkNow;
        this.checkNow = false;
        // the rest of the trace the check falls inside, once the chunk ran up to the check (a trap,
        // an exit or an earlier stop leaves the pc elsewhere): plain after the check; or seek
        const atCheck = !due && dn + dt === chunk;
        if (!atCheck) resume = 0;
        else if (rest > 0) resume = rest;
        if (rest > 0 && !atCheck) seek = MAX_SEEK;
        if (due)
          limit = n; // a trap, CSR write or xRET at its end (or in a trace it ran): check now
        else if (this.execCheckAt >= 0) limit = Math.min(end - t, n0 + this.execCheckAt + TIMER_POLL);
        continue;
      }
      st.interpreted++;
      const ex = this.exec(1, irqDue || this.triggers.exec ? 0 : 1);
      if (ex !== BUDGET_EXIT) return ex;
      const n0 = n;
      if (this.instret !== before) n++;
      else {
        t++;
        resume = 0; // a trap: the pc is the handler's
      }
      if (this.execDue)
        limit = n; // a trap, CSR write or xRET: check before the next instruction
      else if (this.execCheckAt >= 0) limit = Math.min(end - t, n0 + this.execCheckAt + TIMER_POLL);
    }
  }

  /** A store (or A/D update) wrote RAM offset `off`: drop the translations of its page. */
  private codeWritten(off: number): void {
    const tr = this.tr;
    if (tr !== undefined && tr.codePages[off >>> 12] === 1) tr.invalidatePage(off >>> 12);
  }

  /** A page now holds translations: remove it from every write TLB so its stores take writeSlow. */
  private dropWriteTlbPage(page: number): void {
    const off = page * 4096;
    for (const set of this.dataSets) {
      if (set === undefined) continue;
      const w = set.w;
      for (let e = 0; e < w.length; e += 4) if (w[e + 2] === off && w[e] !== NO_TAG) w[e] = NO_TAG;
    }
  }

  // ------------------------------------------------------------------ FP glue

  private fpLoad(insn: number, f3: number, rd: number, rs1: number): number {
    const imm = insn >> 20;
    const blo = this.x[rs1 << 1];
    const lo = (blo + imm) | 0;
    const hi = (this.x[(rs1 << 1) + 1] + (imm >> 31) + (lo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
    const size = f3 === 2 ? 4 : 8;
    const v = this.readSlow(lo, hi, size, ACCESS_READ);
    if (this.exc !== EXC_NONE) return this.exc;
    const fw = this.regs.fw;
    fw[rd << 1] = v;
    fw[(rd << 1) + 1] = size === 4 ? -1 : this.rhi; // FLW NaN-boxes, unpriv §12.2
    this.mstatus |= MSTATUS_FS;
    return EXC_NONE;
  }

  private fpStore(insn: number, f3: number, rs1: number, rs2: number): number {
    const imm = ((insn >> 25) << 5) | ((insn >> 7) & 31);
    const blo = this.x[rs1 << 1];
    const lo = (blo + imm) | 0;
    const hi = (this.x[(rs1 << 1) + 1] + (imm >> 31) + (lo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
    const fw = this.regs.fw;
    this.writeSlow(lo, hi, f3 === 2 ? 4 : 8, fw[rs2 << 1], fw[(rs2 << 1) + 1]);
    return this.exc;
  }

  // ------------------------------------------------------------------ M extension

  /** Instructions retired by the traces the last atTarget() ran. */
  private traced = 0;
  /** A trace's sstatus write asked for an interrupt check before the next instruction (sstatusFromTrace). */
  private checkNow = false;
  /** The chunk ended after traces that left before an instruction (atTarget 3). */
  private execStep = false;
  /**
   * A trace did not fit before the chunk's check (atTarget), which falls inside it: its
   * instructions past the check (its length less the room it met); 0 for none.
   */
  private execResume = 0;

  /**
   * Translator cold chunks: a jump reached `pc` (targets off the code page are counted where
   * they are fetched). Below `hot` its heat counts one more visit: 0 (go on; also for a queued or
   * untranslatable start). A start whose WebAssembly trace is in the dispatcher's cache runs it
   * and its successors here, when the first fits in `room` (instructions before the next check):
   * 1; 3 when the last trace left before
   * an instruction (the chunk ends and the run loop steps it: its successor is a start to count).
   * Any other hot start ends the chunk for the run loop (a trace to compile, a JavaScript block): 2.
   * Whatever it returns, this.pc, this.fetchVa/fetchOff and this.traced say where exec goes on
   * (its inputs and 0 when no trace ran).
   */
  private atTarget(
    heat: Uint16Array,
    pc: number,
    fetchVa: number,
    fetchOff: number,
    hot: number,
    room: number,
    rt: Int32Array,
    wt: Int32Array,
  ): number {
    // what exec reloads after every call: the inputs, unless traces run below
    this.traced = 0;
    this.pc = pc;
    this.fetchVa = fetchVa;
    this.fetchOff = fetchOff;
    const d = pc - fetchVa;
    if (!(d >= 0 && d < 4096)) return 0;
    const key = fetchOff + d;
    const h = (key >>> 1) & HEAT_MASK;
    const v = heat[h];
    if (v < hot) {
      heat[h] = v + 1;
      return 0;
    }
    const tr = this.tr as Translator;
    if (v !== TRACE_MARK) {
      if (v === PENDING_MARK) return ++tr.queuedVisits >= tr.batchWait ? 2 : 0; // queued: go on a while
      return v === NO_TRACE ? 0 : 2; // untranslatable: go on; else compile
    }
    const len = tr.cachedLength(key);
    if (len < 0 || this.triggers.exec) return 2; // a JavaScript block, or one the cache lost
    if (len > room) {
      this.execResume = len - room; // the chunk ends at the check inside this trace (run loop: resume)
      return 0;
    }
    const status = this.runTraces(tr, pc, room, rt, wt);
    if (status === DispatchStatus.MISS) {
      // The traces left for a start without one in the dispatcher's cache. A branch's fall-through,
      // a return address or the rest of a loop longer than a trace is no jump's target here, so
      // count its visit now; while it is cold, go on interpreting. Anything else is the run
      // loop's: a start hot now (compiled), one whose batch is due, one whose first instruction is
      // untranslatable (stepped, so the code after it gets a trace), a trace the cache lost.
      const e = this.pc - this.fetchVa;
      if (e >= 0 && e < 4096) {
        const eh = ((this.fetchOff + e) >>> 1) & HEAT_MASK;
        const ev = heat[eh];
        // (the count and the compares on every path, before the branch: a start that was hot
        // here had no type feedback after the warm-up and deoptimized this; see BRANCH in exec)
        const pending = ev === PENDING_MARK;
        const visits = tr.queuedVisits + (pending ? 1 : 0);
        const waiting = visits < tr.batchWait;
        if (ev < hot - 1) {
          heat[eh] = ev + 1;
          return 1;
        }
        tr.queuedVisits = visits;
        if (pending && waiting) return 1;
      }
      return 3;
    }
    if (status !== DispatchStatus.STEP) return 1;
    this.execStep = true; // the run loop steps the instruction the trace left before, and looks up the next
    return 3;
  }

  /**
   * Run WebAssembly traces from `pc` (its trace is in the dispatcher's cache and fits in `room`)
   * through the dispatcher: this.traced retired, this.pc and the code page (this.fetchVa and
   * fetchOff) where it stopped; returns the DispatchStatus.
   */
  private runTraces(tr: Translator, pc: number, room: number, rt: Int32Array, wt: Int32Array): number {
    const ctl = tr.ctl as Int32Array;
    const st = tr.stats;
    ctl[10] =
      (this.mstatus & MSTATUS_FS ? FpState.ON : 0) |
      (this.fflags & 1 ? FpState.NX : 0) |
      (this.frm === 0 ? FpState.RNE : 0) |
      (this.reservation < 0 ? FpState.NO_RES : 0);
    // the LR reservation as a RAM offset (traces run LR/SC on it: wasm-block.ts)
    const ramBase = this.bus.ramBase;
    // (both operands loaded whatever the branch: a load only on the rarer side had no type
    // feedback when this was optimized, and deoptimized it at the first LR)
    const res0 = this.reservation;
    const rel = res0 - ramBase;
    ctl[CTL_RESERVATION >> 2] = res0 < 0 ? -1 : rel;
    const status = (tr.dispatch as NonNullable<Translator["dispatch"]>)(
      rt.byteOffset,
      wt.byteOffset,
      room,
      pc,
      this.fetchVa,
      this.fetchOff,
      this.xTlb.byteOffset,
    );
    // the code page the dispatcher ended on (it follows the fetch TLB across pages)
    this.fetchVa = ctl[13] * TWO32 + (ctl[12] >>> 0);
    this.fetchOff = ctl[14];
    const k = ctl[4];
    const calls = ctl[8];
    const hops = ctl[CTL_HOPS >> 2]; // (chained calls: not the dispatcher's)
    this.traced = k;
    st.blockInstructions += k;
    st.blockCalls += calls + hops;
    st.chainedCalls += hops;
    st.lookups += calls - 1 + (status === DispatchStatus.MISS ? 1 : 0);
    st.hits += calls - 1;
    this.pc = ctl[7] * TWO32 + (ctl[6] >>> 0);
    const res = ctl[CTL_RESERVATION >> 2];
    const abs = (res >>> 0) + ramBase; // (on both sides: see the reservation's store above)
    this.reservation = res === -1 ? -1 : abs;
    if (ctl[11] !== 0) {
      this.mstatus |= MSTATUS_FS; // an FP instruction ran: FS is Dirty (priv 1.12 §3.1.6.6)
      ctl[11] = 0;
    }
    return status;
  }

  /** Exceptions taken by the last exec() that ended on its budget. */
  private execTraps = 0;
  /**
   * Where the last exec() checked interrupts (instructions retired before it; -1: nowhere), and
   * whether it ended owing a check: the translator's run loop keeps the interpreter's schedule
   * of checks (a check 4096 instructions after the last one, and right after traps, CSR writes
   * and xRET), so that both engines take interrupts at the same instructions.
   */
  private execCheckAt = -1;
  private execDue = false;

  /** @internal results of mulDiv (read by translated blocks too) */
  mdLo = 0;
  /** @internal */
  mdHi = 0;

  /** @internal M-extension 64-bit op f3 (MUL..REMU) into mdLo/mdHi; translated blocks call it. */
  mulDiv(f3: number, alo: number, ahi: number, blo: number, bhi: number): void {
    switch (f3) {
      case 0: // MUL: low 64 bits of the product
        this.mdLo = Math.imul(alo, blo);
        this.mdHi = (mulHiU32(alo, blo) + Math.imul(alo, bhi) + Math.imul(ahi, blo)) | 0;
        return;
      case 1: // MULH = MULHU - (a<0 ? b : 0) - (b<0 ? a : 0)  (mod 2^64)
        this.mulhu(alo, ahi, blo, bhi);
        if (ahi < 0) this.sub64(blo, bhi);
        if (bhi < 0) this.sub64(alo, ahi);
        return;
      case 2: // MULHSU = MULHU - (a<0 ? b : 0)
        this.mulhu(alo, ahi, blo, bhi);
        if (ahi < 0) this.sub64(blo, bhi);
        return;
      case 3:
        this.mulhu(alo, ahi, blo, bhi);
        return;
    }
    // DIV/DIVU/REM/REMU: exact in doubles when both operands lie within ±2^53:
    // r = a % b is exact (fmod), and (a - r) / b is an exact integer quotient.
    const signed = f3 === 4 || f3 === 6;
    const aFits = signed ? ahi >= -0x200000 && ahi < 0x200000 : ahi >>> 0 < 0x200000;
    const bFits = signed ? bhi >= -0x200000 && bhi < 0x200000 : bhi >>> 0 < 0x200000;
    if (aFits && bFits && (blo | bhi) !== 0) {
      const a = signed ? ahi * TWO32 + (alo >>> 0) : (ahi >>> 0) * TWO32 + (alo >>> 0);
      const b = signed ? bhi * TWO32 + (blo >>> 0) : (bhi >>> 0) * TWO32 + (blo >>> 0);
      const r = a % b;
      const v = f3 >= 6 ? r : (a - r) / b;
      this.mdLo = v | 0;
      this.mdHi = Math.floor(v / TWO32) | 0;
      return;
    }
    // Full 64-bit operands: unpriv §13.2 (x/0 = all ones, x%0 = x, overflow = dividend / 0).
    if ((blo | bhi) === 0) {
      if (f3 >= 6) {
        this.mdLo = alo;
        this.mdHi = ahi;
      } else {
        this.mdLo = -1;
        this.mdHi = -1;
      }
      return;
    }
    const negA = signed && ahi < 0;
    const negB = signed && bhi < 0;
    let ulo = alo;
    let uhi = ahi;
    let vlo = blo;
    let vhi = bhi;
    if (negA) {
      ulo = -alo | 0;
      uhi = (~ahi + (alo === 0 ? 1 : 0)) | 0;
    }
    if (negB) {
      vlo = -blo | 0;
      vhi = (~bhi + (blo === 0 ? 1 : 0)) | 0;
    }
    this.udiv64(ulo, uhi, vlo, vhi);
    let rlo: number;
    let rhi: number;
    let neg: boolean;
    if (f3 >= 6) {
      rlo = this.remLo;
      rhi = this.remHi;
      neg = negA; // the remainder has the dividend's sign
    } else {
      rlo = this.mdLo;
      rhi = this.mdHi;
      neg = negA !== negB;
    }
    if (neg) {
      this.mdLo = -rlo | 0;
      this.mdHi = (~rhi + (rlo === 0 ? 1 : 0)) | 0;
    } else {
      this.mdLo = rlo;
      this.mdHi = rhi;
    }
  }

  private remLo = 0;
  private remHi = 0;

  /** Unsigned 64/64 division without BigInt (b != 0): quotient → md, remainder → rem. */
  private udiv64(alo: number, ahi: number, blo: number, bhi: number): void {
    const a1 = ahi >>> 0;
    const a0 = alo >>> 0;
    const b1 = bhi >>> 0;
    const b0 = blo >>> 0;
    if (b1 === 0) {
      // Long division by 32-then-16-bit digits: every dividend stays below 2^53, so floor(x / b) is exact.
      const q2 = Math.floor(a1 / b0);
      let r = a1 - q2 * b0;
      let cur = r * 65536 + (a0 >>> 16);
      const q1 = Math.floor(cur / b0);
      r = cur - q1 * b0;
      cur = r * 65536 + (a0 & 0xffff);
      const q0 = Math.floor(cur / b0);
      r = cur - q0 * b0;
      this.mdLo = (q1 << 16) | q0 | 0;
      this.mdHi = q2 | 0;
      this.remLo = r | 0;
      this.remHi = 0;
      return;
    }
    // b >= 2^32, so q < 2^32: a double estimate is within one of q; correct it exactly.
    let q = Math.floor((a1 * TWO32 + a0) / (b1 * TWO32 + b0));
    if (q > 0xffffffff) q = 0xffffffff;
    for (;;) {
      // P = q * b as three 32-bit words
      const w0 = Math.imul(q, b0) >>> 0;
      const s = (mulHiU32(q, b0) >>> 0) + (Math.imul(q, b1) >>> 0);
      const w1 = s >>> 0;
      const w2 = (mulHiU32(q, b1) >>> 0) + Math.floor(s / TWO32);
      if (w2 > 0 || w1 > a1 || (w1 === a1 && w0 > a0)) {
        q--;
        continue;
      }
      // r = a - P (< 2^64)
      let rlo = (a0 - w0) >>> 0;
      let rhi = (a1 - w1 - (a0 < w0 ? 1 : 0)) >>> 0;
      if (rhi > b1 || (rhi === b1 && rlo >= b0)) {
        q++;
        const nlo = (rlo - b0) >>> 0;
        rhi = (rhi - b1 - (rlo < b0 ? 1 : 0)) >>> 0;
        rlo = nlo;
      }
      this.mdLo = q | 0;
      this.mdHi = 0;
      this.remLo = rlo | 0;
      this.remHi = rhi | 0;
      return;
    }
  }

  /** High 64 bits of the unsigned 128-bit product (schoolbook on 32-bit halves). */
  private mulhu(alo: number, ahi: number, blo: number, bhi: number): void {
    const a0 = alo >>> 0;
    const a1 = ahi >>> 0;
    const b0 = blo >>> 0;
    const b1 = bhi >>> 0;
    const p00hi = mulHiU32(a0, b0) >>> 0;
    const p01lo = Math.imul(a0, b1) >>> 0;
    const p01hi = mulHiU32(a0, b1) >>> 0;
    const p10lo = Math.imul(a1, b0) >>> 0;
    const p10hi = mulHiU32(a1, b0) >>> 0;
    const p11lo = Math.imul(a1, b1) >>> 0;
    const p11hi = mulHiU32(a1, b1);
    const mid = p00hi + p01lo + p10lo; // < 2^34: exact
    const s = p11lo + p01hi + p10hi + Math.floor(mid / TWO32); // < 2^35: exact
    this.mdLo = s | 0;
    this.mdHi = (p11hi + Math.floor(s / TWO32)) | 0;
  }

  /** md -= (lo, hi), modulo 2^64. */
  private sub64(lo: number, hi: number): void {
    const l = this.mdLo;
    const nl = (l - lo) | 0;
    this.mdHi = (this.mdHi - hi - (l >>> 0 < lo >>> 0 ? 1 : 0)) | 0;
    this.mdLo = nl;
  }

  // ------------------------------------------------------------------ memory slow paths

  /** Effective privilege for loads and stores (MPRV, priv 1.12 §3.1.6.3). */
  private dataPriv(): number {
    return this.mstatus & MSTATUS_MPRV && this.priv === PRV_M
      ? (this.mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
      : this.priv;
  }

  /** Translate one virtual address; returns the physical address or -1 with exc set. Fills the TLB when the page is plain RAM. */
  private translate(lo: number, hi: number, access: number, fill: boolean): number {
    // TLB hit (misaligned and MMIO-adjacent accesses come here without a walk)
    const tag = lo & ~0xfff;
    const idx = (lo >>> 12) & TLB_MASK;
    if (access === ACCESS_READ) {
      const t = this.rTlb;
      if (t[idx << 2] === tag && t[(idx << 2) + 1] === hi) return this.bus.ramBase + t[(idx << 2) + 2] + (lo & 0xfff);
    } else if (access === ACCESS_WRITE) {
      const t = this.wTlb;
      if (t[idx << 2] === tag && t[(idx << 2) + 1] === hi) return this.bus.ramBase + t[(idx << 2) + 2] + (lo & 0xfff);
    }
    const priv = access === ACCESS_EXEC ? this.priv : this.dataPriv();
    let pa: number;
    let level = 0;
    if (priv === PRV_M || this.satpMode === SATP_BARE) {
      if (hi < 0 || hi >= 0x200000) {
        this.setFault(access, lo, hi, false);
        return -1;
      }
      pa = toAddrNumber(lo, hi);
    } else {
      pa = this.walk(lo, hi, access, priv);
      if (pa < 0) return -1;
      level = this.walkLevel;
    }
    const page = pa - (pa % 4096);
    const pmp =
      this.bus.inRam(page, 4096) && this.ramAllowed(access, priv) ? PAGE_ALLOW : this.pmp.checkPage(page, access, priv);
    if (pmp === PAGE_DENY) {
      this.setFault(access, lo, hi, false);
      return -1;
    }
    // (a page a load/store trigger watches is never cached: its accesses take the slow paths, which check)
    if (
      fill &&
      pmp === PAGE_ALLOW &&
      this.bus.inRam(page, 4096) &&
      !(this.triggers.data && this.triggers.pageWatched(lo, hi))
    ) {
      const off = page - this.bus.ramBase;
      const idx = (lo >>> 12) & TLB_MASK;
      if (access === ACCESS_READ) {
        if (level) this.dSet.addSuper(lo, hi, level);
        setEntry(this.rTlb, idx, lo, hi, off);
      } else if (
        access === ACCESS_WRITE &&
        !this.bus.watchedPages.has(off / 4096) &&
        !(this.tr !== undefined && this.tr.codePages[off / 4096] === 1)
      ) {
        // (pages holding translations stay out of the write TLB: their stores invalidate, below)
        if (level) this.dSet.addSuper(lo, hi, level);
        setEntry(this.wTlb, idx, lo, hi, off);
      }
    }
    this.walkLevel = level;
    return pa;
  }

  /** Whether PMP allows `access` from `priv` on every byte of RAM (cached until PMP changes). */
  private ramAllowed(access: number, priv: number): boolean {
    const k = priv * 3 + access;
    let v = this.ramPmp[k];
    if (v < 0) {
      const bus = this.bus;
      v = this.pmp.rangeAllowed(bus.ramBase, bus.ramBase + bus.ramSize, access, priv) ? 1 : 0;
      this.ramPmp[k] = v;
    }
    return v === 1;
  }

  /** Whether the access at a physical address is allowed by PMP (for page-partial regions). */
  private pmpOk(pa: number, size: number, access: number): boolean {
    const priv = access === ACCESS_EXEC ? this.priv : this.dataPriv();
    if (priv === PRV_M && !this.pmp.anyLocked) return true;
    if (this.bus.inRam(pa, size) && this.ramAllowed(access, priv)) return true;
    return this.pmp.check(pa, size, access, priv);
  }

  /** Sv39 / Sv48 page walk, priv 1.12 §4.3.2 / §4.5. A and D are set by the hart (as QEMU does). */
  private walk(lo: number, hi: number, access: number, priv: number): number {
    const levels = this.satpMode === SATP_SV39 ? 3 : 4;
    const vaBits = 12 + 9 * levels;
    // The address must be sign-extended from bit vaBits-1 (§4.4.1 / §4.5.1).
    const topShift = vaBits - 32 - 1; // bit of hi holding the sign
    const signPart = hi >> topShift;
    if (signPart !== 0 && signPart !== -1) {
      this.setFault(access, lo, hi, true);
      return -1;
    }
    const u8 = this.bus.u8;
    let a = this.satpRoot;
    for (let i = levels - 1; i >= 0; i--) {
      const shift = 12 + 9 * i;
      const vpn =
        shift >= 32 ? (hi >>> (shift - 32)) & 511 : ((lo >>> shift) | (shift > 23 ? hi << (32 - shift) : 0)) & 511;
      const pteAddr = a + vpn * 8;
      // Implicit page-table accesses are S-mode accesses for PMP (§3.7.1).
      if (
        !this.bus.inRam(pteAddr, 8) ||
        !(this.ramAllowed(ACCESS_READ, PRV_S) || this.pmp.check(pteAddr, 8, ACCESS_READ, PRV_S))
      ) {
        this.setFault(access, lo, hi, false);
        return -1;
      }
      const off = pteAddr - this.bus.ramBase;
      const plo = this.bus.i32[off >> 2];
      const phi = this.bus.i32[(off >> 2) + 1];
      const v = plo & 1;
      const r = (plo >> 1) & 1;
      const w = (plo >> 2) & 1;
      const xbit = (plo >> 3) & 1;
      // V=0, W without R, or reserved bits 63:54 set (no Svnapot/Svpbmt): page fault
      if (!v || (!r && w) || phi >>> 22 !== 0) {
        this.setFault(access, lo, hi, true);
        return -1;
      }
      const ppnHi = phi & 0x3fffff; // PTE bits 53:32 = PPN[43:22]
      const ppn = ppnHi * 0x400000 + (plo >>> 10);
      if (!r && !xbit) {
        if (i === 0) break;
        a = ppn * 4096;
        continue;
      }
      // Leaf PTE: permission checks (§4.3.2 step 5)
      const ubit = (plo >> 4) & 1;
      if (access === ACCESS_EXEC) {
        if (!xbit || (priv === PRV_U ? !ubit : ubit)) break;
      } else {
        if (priv === PRV_U ? !ubit : ubit && !(this.mstatus & MSTATUS_SUM)) break;
        if (access === ACCESS_READ ? !(r || (xbit && this.mstatus & MSTATUS_MXR)) : !w) break;
      }
      // Misaligned superpage (§4.3.2 step 6)
      const lowPpn = ppn % PPN_SPAN[i];
      if (lowPpn !== 0) break;
      // A/D update (§4.3.2 step 7)
      const need = 0x40 | (access === ACCESS_WRITE ? 0x80 : 0);
      if ((plo & need) !== need) {
        if (!this.ramAllowed(ACCESS_WRITE, PRV_S) && !this.pmp.check(pteAddr, 8, ACCESS_WRITE, PRV_S)) {
          this.setFault(access, lo, hi, false);
          return -1;
        }
        u8[off] = (plo | need) & 0xff;
        this.codeWritten(off);
      }
      if (ppn >= 2 ** 41) {
        this.setFault(access, lo, hi, false); // beyond this board's physical space
        return -1;
      }
      this.walkLevel = i;
      const pageMask = PPN_SPAN[i] * 4096; // (2 ** shift: a call to pow, ~1 % of the Linux boot)
      const vaLow =
        i === 0 ? lo & 0xfff : toAddrNumber(lo, hi) - Math.floor(toAddrNumber(lo, hi) / pageMask) * pageMask;
      return ppn * 4096 + vaLow;
    }
    this.setFault(access, lo, hi, true);
    return -1;
  }

  private setFault(access: number, lo: number, hi: number, page: boolean): void {
    this.exc = page
      ? access === ACCESS_READ
        ? Cause.LOAD_PAGE_FAULT
        : access === ACCESS_WRITE
          ? Cause.STORE_PAGE_FAULT
          : Cause.INSN_PAGE_FAULT
      : access === ACCESS_READ
        ? Cause.LOAD_ACCESS
        : access === ACCESS_WRITE
          ? Cause.STORE_ACCESS
          : Cause.INSN_ACCESS;
    this.excTval = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }

  /** General read: misaligned, page-crossing, MMIO. Returns the low word; high word in rhi (size 8). */
  private readSlow(lo: number, hi: number, size: number, access: number): number {
    this.exc = EXC_NONE;
    if (this.triggers.data && this.dataTrigger(lo, hi, size, TRIG_LOAD)) return 0;
    const pageOff = lo & 0xfff;
    if (pageOff + size > 4096) {
      // Misaligned across a page: byte by byte (QEMU completes misaligned accesses).
      let vlo = 0;
      let vhi = 0;
      for (let i = 0; i < size; i++) {
        const blo = (lo + i) | 0;
        const bhi = (hi + (blo >>> 0 < lo >>> 0 ? 1 : 0)) | 0;
        const pa = this.translate(blo, bhi, access, false);
        if (pa < 0) return 0;
        if (!this.bus.inRam(pa) || !this.pmpOk(pa, 1, access)) {
          this.setFault(access, blo, bhi, false);
          return 0;
        }
        const b = this.bus.u8[pa - this.bus.ramBase];
        if (i < 4) vlo |= b << (8 * i);
        else vhi |= b << (8 * (i - 4));
      }
      this.rhi = vhi;
      return vlo;
    }
    const pa = this.translate(lo, hi, access, true);
    if (pa < 0) return 0;
    if (!this.pmpOk(pa, size, access)) {
      this.setFault(access, lo, hi, false);
      return 0;
    }
    if (!this.bus.inRam(pa, size)) {
      if (pa % size !== 0 || this.bus.inRam(pa)) {
        this.setFault(access, lo, hi, false);
        return 0;
      }
      this.exc = EXC_MMIO;
      this.mmioAddr = pa;
      this.mmioSize = size as 1 | 2 | 4 | 8;
      return 0;
    }
    const off = pa - this.bus.ramBase;
    const u8 = this.bus.u8;
    let vlo = 0;
    for (let i = 0; i < Math.min(size, 4); i++) vlo |= u8[off + i] << (8 * i);
    if (size === 8) {
      let vhi = 0;
      for (let i = 0; i < 4; i++) vhi |= u8[off + 4 + i] << (8 * i);
      this.rhi = vhi;
    }
    return vlo;
  }

  /** General write: misaligned, page-crossing, MMIO, HTIF tohost. */
  private writeSlow(lo: number, hi: number, size: number, vlo: number, vhi: number): void {
    this.exc = EXC_NONE;
    if (this.triggers.data && this.dataTrigger(lo, hi, size, TRIG_STORE)) return;
    const pageOff = lo & 0xfff;
    if (pageOff + size > 4096) {
      // Check every byte's translation before writing any (a store is all-or-nothing).
      const pas: number[] = [];
      for (let i = 0; i < size; i++) {
        const blo = (lo + i) | 0;
        const bhi = (hi + (blo >>> 0 < lo >>> 0 ? 1 : 0)) | 0;
        const pa = this.translate(blo, bhi, ACCESS_WRITE, false);
        if (pa < 0) return;
        if (!this.bus.inRam(pa) || !this.pmpOk(pa, 1, ACCESS_WRITE)) {
          this.setFault(ACCESS_WRITE, blo, bhi, false);
          return;
        }
        pas.push(pa);
      }
      for (let i = 0; i < size; i++) {
        this.bus.u8[pas[i] - this.bus.ramBase] = (i < 4 ? vlo >>> (8 * i) : vhi >>> (8 * (i - 4))) & 0xff;
        this.codeWritten(pas[i] - this.bus.ramBase);
      }
      this.reservation = -1;
      return;
    }
    const pa = this.translate(lo, hi, ACCESS_WRITE, true);
    if (pa < 0) return;
    if (!this.pmpOk(pa, size, ACCESS_WRITE)) {
      this.setFault(ACCESS_WRITE, lo, hi, false);
      return;
    }
    if (!this.bus.inRam(pa, size)) {
      if (pa % size !== 0 || this.bus.inRam(pa)) {
        this.setFault(ACCESS_WRITE, lo, hi, false);
        return;
      }
      this.exc = EXC_MMIO;
      this.mmioAddr = pa;
      this.mmioSize = size as 1 | 2 | 4 | 8;
      this.mmioValue =
        size === 8
          ? (BigInt(vhi >>> 0) << 32n) | BigInt(vlo >>> 0)
          : BigInt((size === 4 ? vlo : vlo & ((1 << (8 * size)) - 1)) >>> 0);
      return;
    }
    const off = pa - this.bus.ramBase;
    const u8 = this.bus.u8;
    for (let i = 0; i < size; i++) u8[off + i] = (i < 4 ? vlo >>> (8 * i) : vhi >>> (8 * (i - 4))) & 0xff;
    this.codeWritten(off);
    if (this.reservation >= 0 && Math.abs(this.reservation - pa) < 8) this.reservation = -1;
    // HTIF (riscv-tests / Spike): a write of (code << 1) | 1 to tohost ends the run.
    const tohost = this.options.tohost;
    if (tohost !== undefined && pa <= tohost && pa + size > tohost && (vlo & 1) === 1) {
      this.exc = EXC_HALT;
      this.haltCode = (vlo >>> 1) | ((vhi & 1) << 31);
    }
  }

  /**
   * A load/store trigger on bytes [addr, addr+size) sets exc to a breakpoint (tval 0, as QEMU):
   * before translation, since a load/store/AMO address breakpoint outranks the access's page and
   * access faults and address-misaligned (priv 1.12 §3.1.15, Table 3.7).
   */
  private dataTrigger(lo: number, hi: number, size: number, ops: number): boolean {
    if (!this.triggers.matchData(lo, hi, size, ops, this.priv)) return false;
    this.exc = Cause.BREAKPOINT;
    this.excTval = 0n;
    return true;
  }

  /** Does an execute trigger armed at pc fire? Size-specific ones need the instruction's length. */
  private execTriggerFires(pc: number): boolean {
    const t = this.triggers;
    if (t.matchExec(pc, this.priv, 0)) return true;
    const pa = this.translate(pc | 0, Math.floor(pc / TWO32) | 0, ACCESS_EXEC, false);
    this.exc = EXC_NONE;
    if (pa < 0 || !this.bus.inRam(pa, 2)) return false; // unfetchable: only size=any matches
    const p0 = this.bus.u16[(pa - this.bus.ramBase) >> 1];
    return t.matchExec(pc, this.priv, (p0 & 3) === 3 ? 4 : 2);
  }

  /** Make this.pc's page the fetch page (fetchVa/fetchOff); false with exc set on a fault. */
  private fillFetch(): boolean {
    const pc = this.pc;
    this.exc = EXC_NONE;
    const lo = pc | 0;
    const hi = Math.floor(pc / TWO32) | 0;
    const idx = (lo >>> 12) & TLB_MASK;
    const xt = this.xTlb;
    if (xt[idx << 2] === (lo & ~0xfff) && xt[(idx << 2) + 1] === hi) {
      this.fetchOff = xt[(idx << 2) + 2];
    } else {
      const pa = this.translate(lo, hi, ACCESS_EXEC, false);
      if (pa < 0) return false;
      const page = pa - (pa % 4096);
      // Fetches come only from RAM pages that PMP allows whole (a page PMP only partly allows faults).
      if (!this.bus.inRam(page, 4096) || this.pmp.checkPage(page, ACCESS_EXEC, this.priv) !== PAGE_ALLOW) {
        this.setFault(ACCESS_EXEC, lo, hi, false);
        return false;
      }
      this.fetchOff = page - this.bus.ramBase;
      if (this.walkLevel) this.xSet.addSuper(lo, hi, this.walkLevel);
      setEntry(xt, idx, lo, hi, this.fetchOff);
    }
    this.fetchVa = pc - (pc - Math.floor(pc / 4096) * 4096);
    return true;
  }

  /** Upper parcel of a 32-bit instruction that crosses into the next page; -1 with exc set on fault. */
  private fetchCrossPage(): number {
    this.exc = EXC_NONE;
    const next = this.pc + 2;
    const lo = next | 0;
    const hi = Math.floor(next / TWO32) | 0;
    const pa = this.translate(lo, hi, ACCESS_EXEC, false);
    if (pa < 0) return -1;
    if (!this.bus.inRam(pa, 2) || !this.pmpOk(pa, 2, ACCESS_EXEC)) {
      this.setFault(ACCESS_EXEC, lo, hi, false);
      return -1;
    }
    return this.bus.u16[(pa - this.bus.ramBase) >> 1];
  }

  private fetchFaultFar(lo: number, hi: number): number {
    const paged = this.priv !== PRV_M && this.satpMode !== SATP_BARE;
    this.exc = paged ? Cause.INSN_PAGE_FAULT : Cause.INSN_ACCESS;
    this.excTval = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    // epc cannot hold this address exactly (53 significant bits): it is legalised like mepc writes.
    const target = Number(BigInt.asIntN(53, this.excTval));
    this.trap(this.exc, this.excTval, false, target);
    this.exc = EXC_NONE;
    return this.pc;
  }

  // ------------------------------------------------------------------ atomics

  private amo(insn: number): number {
    this.exc = EXC_NONE;
    const f3 = (insn >> 12) & 7;
    const f5 = insn >>> 27;
    const rd = (insn >> 7) & 31;
    const rs1 = (insn >> 15) & 31;
    const rs2 = (insn >> 20) & 31;
    const x = this.x;
    if (f3 !== 2 && f3 !== 3) return this.illegalExc(insn);
    const size = f3 === 2 ? 4 : 8;
    const lo = x[rs1 << 1];
    const hi = x[(rs1 << 1) + 1];
    const isLr = f5 === 0x02;
    if (isLr && rs2 !== 0) return this.illegalExc(insn);
    const valid = [0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c].includes(f5);
    if (!valid) return this.illegalExc(insn);
    // Load/store triggers: LR loads, an AMO loads and stores (either kind of trigger fires on it);
    // SC stores only when it succeeds (checked below, once the reservation is known)
    if (this.triggers.data && f5 !== 0x03 && this.dataTrigger(lo, hi, size, isLr ? TRIG_LOAD : TRIG_LOAD | TRIG_STORE))
      return this.exc;
    // LR/SC/AMOs must be naturally aligned (unpriv §8.2/§8.4)
    if (lo & (size - 1)) {
      this.exc = isLr ? Cause.LOAD_MISALIGNED : Cause.STORE_MISALIGNED;
      this.excTval = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
      return this.exc;
    }
    // (fills the TLB as loads and stores do: an AMO, LR or SC on a page nothing else touched
    // would otherwise leave every trace that meets it, for the interpreter)
    const pa = this.translate(lo, hi, isLr ? ACCESS_READ : ACCESS_WRITE, true);
    if (pa < 0) return this.exc;
    if (!this.bus.inRam(pa, size) || !this.pmpOk(pa, size, isLr ? ACCESS_READ : ACCESS_WRITE)) {
      // AMOs to device memory are not supported: access fault (PMA, priv 1.12 §3.6.3)
      this.setFault(isLr ? ACCESS_READ : ACCESS_WRITE, lo, hi, false);
      return this.exc;
    }
    const w = (pa - this.bus.ramBase) >> 2;
    const i32 = this.bus.i32;
    const olo = i32[w];
    const ohi = size === 8 ? i32[w + 1] : olo >> 31;
    if (f5 === 0x03) {
      // SC
      const ok = this.reservation === pa;
      if (ok && this.triggers.data && this.dataTrigger(lo, hi, size, TRIG_STORE)) return this.exc; // (the trap drops the reservation)
      this.reservation = -1;
      if (ok) {
        i32[w] = x[rs2 << 1];
        if (size === 8) i32[w + 1] = x[(rs2 << 1) + 1];
        this.codeWritten(w << 2);
      }
      if (rd) {
        x[rd << 1] = ok ? 0 : 1;
        x[(rd << 1) + 1] = 0;
      }
      return EXC_NONE;
    }
    if (isLr) {
      this.reservation = pa;
    } else {
      const blo = x[rs2 << 1];
      const bhi = size === 8 ? x[(rs2 << 1) + 1] : blo >> 31;
      let nlo: number;
      let nhi: number;
      switch (f5) {
        case 0x01: // AMOSWAP
          nlo = blo;
          nhi = bhi;
          break;
        case 0x00: // AMOADD
          nlo = (olo + blo) | 0;
          nhi = (ohi + bhi + (nlo >>> 0 < olo >>> 0 ? 1 : 0)) | 0;
          break;
        case 0x04: // AMOXOR
          nlo = olo ^ blo;
          nhi = ohi ^ bhi;
          break;
        case 0x0c: // AMOAND
          nlo = olo & blo;
          nhi = ohi & bhi;
          break;
        case 0x08: // AMOOR
          nlo = olo | blo;
          nhi = ohi | bhi;
          break;
        default: {
          // AMOMIN / AMOMAX / AMOMINU / AMOMAXU
          const signed = f5 === 0x10 || f5 === 0x14;
          const oh = signed ? ohi : ohi >>> 0;
          const bh = signed ? bhi : bhi >>> 0;
          const less = oh < bh || (ohi === bhi && olo >>> 0 < blo >>> 0);
          const pickOld = f5 === 0x10 || f5 === 0x18 ? less : !less;
          nlo = pickOld ? olo : blo;
          nhi = pickOld ? ohi : bhi;
        }
      }
      i32[w] = nlo;
      if (size === 8) i32[w + 1] = nhi;
      this.codeWritten(w << 2);
      if (this.reservation === pa) this.reservation = -1;
    }
    if (rd) {
      x[rd << 1] = olo;
      x[(rd << 1) + 1] = ohi;
    }
    return EXC_NONE;
  }

  // ------------------------------------------------------------------ SYSTEM

  private sysExit: HartExit = BUDGET_EXIT;

  /** Returns SYS_NEXT (fall through, pc += ilen), SYS_JUMPED (this.pc set, retired), SYS_TRAPPED (this.pc = handler), SYS_EXIT (sysExit set). */
  private system(insn: number, ilen: number): number {
    const f3 = (insn >> 12) & 7;
    const rd = (insn >> 7) & 31;
    const rs1 = (insn >> 15) & 31;
    const pc = this.pc;
    if (f3 === 0) {
      const f12 = insn >>> 20;
      if (rd !== 0) return this.sysIllegal(insn);
      if (f12 === 0 && rs1 === 0) {
        // ECALL
        if (this.priv === PRV_S && this.options.sbiEcallExit) {
          this.pc = pc + ilen;
          this.instret += this.nRun + 1;
          this.nRun = 0;
          this.sysExit = { kind: "ecall" };
          return SYS_EXIT;
        }
        this.trap(this.priv === PRV_U ? Cause.ECALL_U : this.priv === PRV_S ? Cause.ECALL_S : Cause.ECALL_M, 0n, false);
        return SYS_TRAPPED;
      }
      if (f12 === 1 && rs1 === 0) {
        // EBREAK: tval 0 like QEMU 7.2
        if (this.options.ebreakExit) {
          this.instret += this.nRun;
          this.nRun = 0;
          this.sysExit = { kind: "breakpoint", pc: this.pc64 };
          return SYS_EXIT;
        }
        this.trap(Cause.BREAKPOINT, 0n, false);
        return SYS_TRAPPED;
      }
      if (f12 === 0x302 && rs1 === 0) {
        // MRET, priv 1.12 §3.3.2
        if (this.priv !== PRV_M) return this.sysIllegal(insn);
        const mpp = (this.mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
        let s = this.mstatus;
        s = s & MSTATUS_MPIE ? s | MSTATUS_MIE : s & ~MSTATUS_MIE;
        s |= MSTATUS_MPIE;
        s &= ~MSTATUS_MPP; // MPP := U
        if (mpp !== PRV_M) s &= ~MSTATUS_MPRV;
        this.mstatus = s;
        this.setPriv(mpp);
        this.pc = this.mepc;
        return SYS_JUMPED;
      }
      if (f12 === 0x102 && rs1 === 0) {
        // SRET
        if (this.priv === PRV_U || (this.priv === PRV_S && this.mstatus & MSTATUS_TSR)) return this.sysIllegal(insn);
        const spp = this.mstatus & MSTATUS_SPP ? PRV_S : PRV_U;
        let s = this.mstatus;
        s = s & MSTATUS_SPIE ? s | MSTATUS_SIE : s & ~MSTATUS_SIE;
        s |= MSTATUS_SPIE;
        s &= ~MSTATUS_SPP;
        s &= ~MSTATUS_MPRV; // new priv < M
        this.mstatus = s;
        this.setPriv(spp);
        this.pc = this.sepc;
        return SYS_JUMPED;
      }
      if (f12 === 0x105 && rs1 === 0) {
        // WFI, priv 1.12 §3.3.3
        if (this.priv === PRV_U || (this.priv === PRV_S && this.mstatus & MSTATUS_TW)) return this.sysIllegal(insn);
        if (this.interruptPending()) return SYS_NEXT; // a pending interrupt makes WFI a no-op
        this.pc = pc + ilen;
        this.instret += this.nRun + 1;
        this.nRun = 0;
        this.sysExit = { kind: "wfi" };
        return SYS_EXIT;
      }
      if (insn >>> 25 === 0x09) {
        // SFENCE.VMA, priv 1.12 §4.2.1
        if (this.priv === PRV_U || (this.priv === PRV_S && this.mstatus & MSTATUS_TVM)) return this.sysIllegal(insn);
        const rs2 = (insn >> 20) & 31;
        // Every cached translation was made under the current satp (satp writes flush): a fence
        // for another ASID has nothing to invalidate (global entries need not be, §4.2.1).
        if (rs2 !== 0 && (this.x[rs2 << 1] & 0xffff) !== Number((this.satp >> 44n) & 0xffffn)) return SYS_NEXT;
        if (rs1 === 0) this.flushTlb();
        else this.flushTlbPage(this.x[rs1 << 1], this.x[(rs1 << 1) + 1]);
        return SYS_NEXT;
      }
      return this.sysIllegal(insn);
    }
    if (f3 === 4) return this.sysIllegal(insn);
    return this.zicsr(insn) ? SYS_NEXT : this.sysIllegal(insn);
  }

  /**
   * A Zicsr instruction (unpriv §9.1), or false, with nothing changed, when it raises an
   * illegal-instruction exception: the interpreter's (system) and a trace's (csrFromTrace).
   */
  private zicsr(insn: number): boolean {
    const f3 = (insn >> 12) & 7;
    const rd = (insn >> 7) & 31;
    const rs1 = (insn >> 15) & 31;
    const csr = insn >>> 20;
    const x = this.x;
    const isImm = f3 >= 5;
    const op = f3 & 3; // 1 = RW, 2 = RS, 3 = RC
    const writes = op === 1 || rs1 !== 0;
    if (csr === Csr.sstatus && this.priv !== PRV_U) {
      this.sstatusAccess(f3, rd, rs1);
      return true;
    }
    const src = isImm ? BigInt(rs1) : (BigInt(x[(rs1 << 1) + 1] >>> 0) << 32n) | BigInt(x[rs1 << 1] >>> 0);
    if (writes && csr >>> 10 === 3) return false; // read-only CSR, priv 1.12 §2.1
    let old = 0n;
    if (op !== 1 || rd !== 0) {
      const r = this.csrRead(csr, false);
      if (r === undefined) return false;
      old = r;
    } else if (!this.csrAccessible(csr)) {
      return false;
    }
    if (writes) {
      const nv = op === 1 ? src : op === 2 ? old | src : old & ~src;
      if (!this.csrWrite(csr, BigInt.asUintN(64, nv))) return false;
    }
    if (rd) {
      x[rd << 1] = Number(old & 0xffffffffn) | 0;
      x[(rd << 1) + 1] = Number((old >> 32n) & 0xffffffffn) | 0;
    }
    return true;
  }

  /**
   * A Zicsr instruction on sstatus from S or M, without BigInts: Linux's local_irq_save/restore
   * (280 thousand accesses in the kit's boot). The writable bits are all in the low word; the
   * high word reads UXL = 2 and SD (priv 1.12 §4.1.1), as readMstatus() gives them.
   */
  private sstatusAccess(f3: number, rd: number, rs1: number): void {
    const x = this.x;
    const op = f3 & 3; // 1 = RW, 2 = RS, 3 = RC
    const old = this.mstatus & SSTATUS_MASK;
    const oldHi = (this.mstatus & MSTATUS_FS) === MSTATUS_FS ? 0x80000002 | 0 : 2;
    if (op === 1 || rs1 !== 0) {
      const v = f3 >= 5 ? rs1 : x[rs1 << 1];
      const nv = op === 1 ? v : op === 2 ? old | v : old & ~v;
      this.writeMstatus((this.mstatus & ~SSTATUS_MASK) | (nv & SSTATUS_MASK));
    }
    if (rd) {
      x[rd << 1] = old;
      x[(rd << 1) + 1] = oldHi;
    }
  }

  /**
   * A trace's Zicsr instruction on sstatus (wasm-block.ts csrOp; its rs1 is in the register
   * file, its rd is read back from it). The trace leaves after it when the write set SIE (the
   * interpreter checks interrupts before the next instruction after a CSR write) or changed SUM,
   * MXR or FS (the trace's TLB set and FP state were fixed at its entry); before it from U-mode.
   */
  private sstatusFromTrace(insn: number): number {
    if (this.priv === PRV_U) return CsrResult.ILLEGAL;
    const before = this.mstatus;
    this.sstatusAccess((insn >> 12) & 7, (insn >> 7) & 31, (insn >> 15) & 31);
    const changed = before ^ this.mstatus;
    // SIE set: with deterministic time (no timeSource: time counts instructions, which the trace
    // has not yet reported) always check; with the host's clock only when one is pending now
    const enabled =
      (changed & this.mstatus & MSTATUS_SIE) !== 0 &&
      (this.options.timeSource === undefined || this.pendingInterrupt() >= 0);
    if (enabled || (changed & (MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS)) !== 0) {
      this.checkNow = true;
      return CsrResult.CHECK;
    }
    return CsrResult.DONE;
  }

  /**
   * A trace's Zicsr instruction (wasm-block.ts traceCsr: sstatus, sscratch..stval, time; its rs1
   * is in the register file, its rd is read back from it). One that traps (U-mode, a counter
   * mcounteren hides, a write to time) and time under deterministic time (it counts instructions
   * the trace has not yet reported) leave before the instruction for the interpreter. Under
   * deterministic time the trace also leaves after it, for the interrupt check the interpreter
   * makes after every Zicsr instruction (the same instret at every interrupt).
   */
  private csrFromTrace(insn: number): number {
    const csr = insn >>> 20;
    if (csr === Csr.sstatus) return this.sstatusFromTrace(insn);
    const deterministic = this.options.timeSource === undefined;
    if ((csr === Csr.time && deterministic) || !this.zicsr(insn)) return CsrResult.ILLEGAL;
    if (!deterministic) return CsrResult.DONE;
    this.checkNow = true;
    return CsrResult.CHECK;
  }

  private sysIllegal(insn: number): number {
    this.trap(Cause.ILLEGAL_INSN, BigInt(insn >>> 0), false);
    return SYS_TRAPPED;
  }

  // ------------------------------------------------------------------ CSRs

  private csrAccessible(csr: number): boolean {
    return this.csrRead(csr, false) !== undefined;
  }

  private counterAllowed(bitIndex: number): boolean {
    if (this.priv === PRV_M) return true;
    if (!((this.mcounteren >> bitIndex) & 1)) return false;
    if (this.priv === PRV_U && !((this.scounteren >> bitIndex) & 1)) return false;
    return true;
  }

  /** Read a CSR with privilege checks (priv 1.12 §2.1); undefined = illegal instruction. */
  private csrRead(csr: number, debug: boolean): bigint | undefined {
    if (((csr >> 8) & 3) > this.priv) return undefined;
    const instret = this.instret + this.nRun;
    switch (csr) {
      case Csr.fflags:
        return this.mstatus & MSTATUS_FS || debug ? BigInt(this.fflags) : undefined;
      case Csr.frm:
        return this.mstatus & MSTATUS_FS || debug ? BigInt(this.frm) : undefined;
      case Csr.fcsr:
        return this.mstatus & MSTATUS_FS || debug ? BigInt((this.frm << 5) | this.fflags) : undefined;
      case Csr.cycle:
        return this.counterAllowed(0) ? BigInt.asUintN(64, BigInt(instret + this.cycleOffset)) : undefined;
      case Csr.time:
        return this.counterAllowed(1) ? BigInt.asUintN(64, BigInt(this.time())) : undefined;
      case Csr.instret:
        return this.counterAllowed(2) ? BigInt.asUintN(64, BigInt(instret + this.instretOffset)) : undefined;
      case Csr.mcycle:
        return BigInt.asUintN(64, BigInt(instret + this.cycleOffset));
      case Csr.minstret:
        return BigInt.asUintN(64, BigInt(instret + this.instretOffset));
      case Csr.sstatus:
        return this.readMstatus() & (BigInt(SSTATUS_MASK) | (3n << 32n) | (1n << 63n));
      case Csr.sie:
        return BigInt(this.mie & this.mideleg);
      case Csr.sip:
        return BigInt(this.effectiveMip() & this.mideleg);
      case Csr.stvec:
        return BigInt.asUintN(64, BigInt(this.stvec));
      case Csr.scounteren:
        return BigInt(this.scounteren);
      case Csr.senvcfg:
        return this.senvcfg;
      case Csr.sscratch:
        return this.sscratch;
      case Csr.sepc:
        return BigInt.asUintN(64, BigInt(this.sepc));
      case Csr.scause:
        return this.scause;
      case Csr.stval:
        return this.stval;
      case Csr.stimecmp:
        // Sstc: accessible from S only with menvcfg.STCE and mcounteren.TM
        if (this.priv === PRV_S && (!(this.menvcfg >> 63n) || !(this.mcounteren & 2))) return undefined;
        return this.stimecmp;
      case Csr.satp:
        if (this.priv === PRV_S && this.mstatus & MSTATUS_TVM) return undefined;
        return this.satp;
      case Csr.mvendorid:
      case Csr.marchid:
      case Csr.mimpid:
      case Csr.mconfigptr:
        return 0n;
      case Csr.mhartid:
        return BigInt(this.hartId);
      case Csr.mstatus:
        return this.readMstatus();
      case Csr.misa:
        return (2n << 62n) | BigInt(MISA_EXTENSIONS);
      case Csr.medeleg:
        return BigInt(this.medeleg);
      case Csr.mideleg:
        return BigInt(this.mideleg);
      case Csr.mie:
        return BigInt(this.mie);
      case Csr.mip:
        return BigInt(this.effectiveMip());
      case Csr.mtvec:
        return BigInt.asUintN(64, BigInt(this.mtvec));
      case Csr.mcounteren:
        return BigInt(this.mcounteren);
      case Csr.menvcfg:
        return this.menvcfg;
      case Csr.mcountinhibit:
        return 0n;
      case Csr.mscratch:
        return this.mscratch;
      case Csr.mepc:
        return BigInt.asUintN(64, BigInt(this.mepc));
      case Csr.mcause:
        return this.mcause;
      case Csr.mtval:
        return this.mtval;
      case Csr.mseccfg:
        return 0n;
      // Sdtrig (debug spec 1.0 §5.7.1-5): M-mode CSRs; tdata3 (textra) is not implemented: 0
      case Csr.tselect:
        return BigInt(this.triggers.tselect);
      case Csr.tdata1:
        return this.triggers.tdata1[this.triggers.tselect];
      case Csr.tdata2:
        return this.triggers.tdata2[this.triggers.tselect];
      case Csr.tdata3:
        return 0n;
      case Csr.tinfo:
        return TINFO;
    }
    if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg0 + 15) {
      if (csr & 1) return undefined; // odd pmpcfg do not exist on RV64
      return this.pmp.readCfg(csr - Csr.pmpcfg0);
    }
    if (csr >= Csr.pmpaddr0 && csr < Csr.pmpaddr0 + 64) return this.pmp.readAddr(csr - Csr.pmpaddr0);
    // hpmcounter3..31 (read-only zero, gated by counteren), mhpmcounter/mhpmevent (zero)
    if (csr >= 0xc03 && csr <= 0xc1f) return this.counterAllowed(csr - 0xc00) ? 0n : undefined;
    if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) return 0n;
    return undefined;
  }

  /** Write a CSR (already privilege-checked by the read); false = illegal. */
  private csrWrite(csr: number, v: bigint): boolean {
    const lo = Number(v & 0xffffffffn) | 0;
    switch (csr) {
      case Csr.fflags:
        this.fflags = lo & 31;
        this.mstatus |= MSTATUS_FS;
        return true;
      case Csr.frm:
        this.frm = lo & 7;
        this.mstatus |= MSTATUS_FS;
        return true;
      case Csr.fcsr:
        this.fflags = lo & 31;
        this.frm = (lo >> 5) & 7;
        this.mstatus |= MSTATUS_FS;
        return true;
      case Csr.sstatus:
        this.writeMstatus((this.mstatus & ~SSTATUS_MASK) | (lo & SSTATUS_MASK));
        return true;
      case Csr.sie:
        this.mie = (this.mie & ~this.mideleg) | (lo & this.mideleg);
        return true;
      case Csr.sip:
        // only SSIP is writable through sip (priv 1.12 §4.1.3)
        this.mip = (this.mip & ~(this.mideleg & MIP_SSIP)) | (lo & this.mideleg & MIP_SSIP);
        return true;
      case Csr.stvec:
        this.stvec = legalTvec(v);
        return true;
      case Csr.scounteren:
        this.scounteren = lo & 7;
        return true;
      case Csr.senvcfg:
        this.senvcfg = v & 1n; // FIOM
        return true;
      case Csr.sscratch:
        this.sscratch = v;
        return true;
      case Csr.sepc:
        this.sepc = legalEpc(v);
        return true;
      case Csr.scause:
        this.scause = v & ((1n << 63n) | 0x3fn);
        return true;
      case Csr.stval:
        this.stval = v;
        return true;
      case Csr.stimecmp:
        this.stimecmp = v;
        return true;
      case Csr.satp: {
        // WARL: an unsupported MODE leaves satp unchanged (priv 1.12 §4.1.11)
        const mode = Number(v >> 60n);
        if (mode !== SATP_BARE && mode !== SATP_SV39 && mode !== SATP_SV48) return true;
        const nv = mode === SATP_BARE ? 0n : v & ((0xfn << 60n) | (0xffffn << 44n) | ((1n << 44n) - 1n));
        this.satp = nv;
        this.satpMode = mode;
        const ppn = Number(nv & ((1n << 44n) - 1n));
        this.satpRoot = ppn * 4096;
        this.flushTlb();
        this.tlbContext();
        return true;
      }
      case Csr.mstatus:
        this.writeMstatus(lo);
        return true;
      case Csr.misa:
        return true; // WARL, fixed extensions
      case Csr.medeleg:
        this.medeleg = lo & MEDELEG_WRITABLE;
        return true;
      case Csr.mideleg:
        this.mideleg = lo & S_INTERRUPTS;
        return true;
      case Csr.mie:
        this.mie = lo & (S_INTERRUPTS | M_INTERRUPTS);
        return true;
      case Csr.mip: {
        // SSIP, STIP (unless Sstc drives it) and SEIP are writable (priv 1.12 §3.1.9)
        let mask = MIP_SSIP | MIP_SEIP;
        if (!(this.menvcfg >> 63n)) mask |= MIP_STIP;
        this.mip = (this.mip & ~mask) | (lo & mask);
        return true;
      }
      case Csr.mtvec:
        this.mtvec = legalTvec(v);
        return true;
      case Csr.mcounteren:
        this.mcounteren = lo & 7;
        return true;
      case Csr.menvcfg:
        this.menvcfg = v & ((1n << 63n) | 1n); // STCE, FIOM
        return true;
      case Csr.mcountinhibit:
        return true;
      case Csr.mscratch:
        this.mscratch = v;
        return true;
      case Csr.mepc:
        this.mepc = legalEpc(v);
        return true;
      case Csr.mcause:
        this.mcause = v & ((1n << 63n) | 0x3fn);
        return true;
      case Csr.mtval:
        this.mtval = v;
        return true;
      case Csr.mcycle:
        // the written value is what the next instruction reads (priv 1.12 §3.1.11)
        this.cycleOffset = Number(BigInt.asIntN(53, v)) - (this.instret + this.nRun + 1);
        return true;
      case Csr.minstret:
        this.instretOffset = Number(BigInt.asIntN(53, v)) - (this.instret + this.nRun + 1);
        return true;
      case Csr.mseccfg:
        return true;
      case Csr.tselect:
        this.triggers.writeSelect(v);
        return true;
      case Csr.tdata1:
      case Csr.tdata2:
        if (csr === Csr.tdata1) this.triggers.writeData1(v);
        else this.triggers.writeData2(v);
        this.flushTlb(); // pages a load/store trigger now watches must leave the data TLBs
        return true;
      case Csr.tdata3: // textra: WARL 0
      case Csr.tinfo: // read-only fields: writes are ignored (§5.7.5)
        return true;
    }
    if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg0 + 15) {
      this.pmp.writeCfg(csr - Csr.pmpcfg0, v);
      this.ramPmp.fill(-1);
      this.flushTlb();
      return true;
    }
    if (csr >= Csr.pmpaddr0 && csr < Csr.pmpaddr0 + 64) {
      this.pmp.writeAddr(csr - Csr.pmpaddr0, v);
      this.ramPmp.fill(-1);
      this.flushTlb();
      return true;
    }
    if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) return true; // WARL zero
    return false;
  }

  private writeMstatus(v: number): void {
    let s = (this.mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
    const mpp = (s & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
    if (mpp === 2) s = (s & ~MSTATUS_MPP) | (this.mstatus & MSTATUS_MPP); // WARL: MPP=2 is reserved
    const changed = this.mstatus ^ s;
    this.mstatus = s;
    if (changed & (MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR)) this.tlbContext();
  }

  private effectiveMip(): number {
    let mip = this.mip;
    if (this.menvcfg >> 63n) {
      // Sstc: STIP reflects time >= stimecmp (Sstc spec §2)
      mip &= ~MIP_STIP;
      if (this.stimecmpNum !== Number.POSITIVE_INFINITY && this.time() >= this.stimecmpNum) mip |= MIP_STIP;
    }
    return mip;
  }

  // ------------------------------------------------------------------ traps

  /** The interrupt to take now, or -1 (priv 1.12 §3.1.9: priority MEI, MSI, MTI, SEI, SSI, STI). */
  private pendingInterrupt(): number {
    const pending = this.effectiveMip() & this.mie;
    if (pending === 0) return -1;
    const m = pending & ~this.mideleg;
    const mEnabled = this.priv < PRV_M || (this.mstatus & MSTATUS_MIE) !== 0;
    if (m && mEnabled) return pickIrq(m);
    const s = pending & this.mideleg;
    const sEnabled = this.priv < PRV_S || (this.priv === PRV_S && (this.mstatus & MSTATUS_SIE) !== 0);
    if (s && sEnabled) return pickIrq(s);
    return -1;
  }

  /** Take a trap at this.pc (or epcOverride), priv 1.12 §3.1.6.1 / §4.1.1. */
  private trap(cause: number, tval: bigint, isInterrupt: boolean, epcOverride?: number): void {
    const epc = epcOverride ?? this.pc;
    const deleg = isInterrupt ? this.mideleg : this.medeleg;
    const causeVal = (isInterrupt ? 1n << 63n : 0n) | BigInt(cause);
    if (this.priv <= PRV_S && (deleg >>> cause) & 1) {
      this.scause = causeVal;
      this.sepc = epc;
      this.stval = tval;
      let s = this.mstatus;
      s = s & MSTATUS_SIE ? s | MSTATUS_SPIE : s & ~MSTATUS_SPIE;
      s &= ~MSTATUS_SIE;
      s = this.priv === PRV_S ? s | MSTATUS_SPP : s & ~MSTATUS_SPP;
      this.mstatus = s;
      this.setPriv(PRV_S);
      this.pc = vectorTarget(this.stvec, cause, isInterrupt);
    } else {
      this.mcause = causeVal;
      this.mepc = epc;
      this.mtval = tval;
      let s = this.mstatus;
      s = s & MSTATUS_MIE ? s | MSTATUS_MPIE : s & ~MSTATUS_MPIE;
      s &= ~MSTATUS_MIE;
      s = (s & ~MSTATUS_MPP) | (this.priv << MSTATUS_MPP_SHIFT);
      this.mstatus = s;
      this.setPriv(PRV_M);
      this.pc = vectorTarget(this.mtvec, cause, isInterrupt);
    }
    this.reservation = -1;
  }

  /** Trap on the pending exception (exc/excTval) at this.pc; returns the new pc. */
  private trapFromExc(): number {
    const cause = this.exc;
    this.exc = EXC_NONE;
    this.trap(cause, this.excTval, false);
    return this.pc;
  }

  /** Illegal-instruction trap at this.pc; returns the new pc. */
  private illegal(insnBits: number, n: number): number {
    this.nRun = n;
    const pc = this.pc;
    // tval holds the instruction as fetched: the 16-bit parcel for a compressed one
    const d = pc - this.fetchVa;
    if (d >= 0 && d < 4096) {
      const p0 = this.bus.u16[(this.fetchOff + d) >> 1];
      if ((p0 & 3) !== 3) insnBits = p0;
    }
    this.trap(Cause.ILLEGAL_INSN, BigInt(insnBits >>> 0), false); // tval = the instruction bits (as QEMU)
    return this.pc;
  }

  private illegalExc(insn: number): number {
    this.exc = Cause.ILLEGAL_INSN;
    this.excTval = BigInt(insn >>> 0);
    return this.exc;
  }

  /** Enter privilege p; mstatus (MPRV/MPP/SUM/MXR) may have changed too (traps, xRET). */
  private setPriv(p: number): void {
    this.priv = p;
    this.tlbContext();
  }

  /** The data TLB set for the current context: effective privilege, and SUM/MXR where they matter (§4.3.1). */
  private dataKey(): number {
    const s = this.mstatus;
    const p = this.dataPriv();
    if (p === PRV_M || this.satpMode === SATP_BARE) return p << 2;
    return (p << 2) | (p === PRV_S && s & MSTATUS_SUM ? 2 : 0) | (s & MSTATUS_MXR ? 1 : 0);
  }

  private dataSet(key: number): TlbSet {
    let set = this.dataSets[key];
    if (!set) {
      set = new TlbSet(
        true,
        this.tlbEpoch,
        this.state === undefined ? undefined : this.bus.buffer,
        (this.state ?? 0) + 4096 + key * 131072,
      );
      this.dataSets[key] = set;
    } else if (set.epoch !== this.tlbEpoch) set.clear(this.tlbEpoch);
    return set;
  }

  private fetchSet(key: number): TlbSet {
    let set = this.fetchSets[key];
    if (!set) {
      // in the bus memory after the dispatcher's cache: the dispatcher looks pages up in it
      set = new TlbSet(
        false,
        this.tlbEpoch,
        this.state === undefined ? undefined : this.bus.buffer,
        (this.state ?? 0) + 4096 + 16 * 131072 + 1048576 + key * 65536,
      );
      this.fetchSets[key] = set;
    } else if (set.epoch !== this.tlbEpoch) set.clear(this.tlbEpoch);
    return set;
  }

  /** Make the TLB sets of the current context active (after privilege, mstatus or satp changes). */
  private tlbContext(): void {
    const d = this.dataSet(this.dataKey());
    if (d !== this.dSet) {
      this.dSet = d;
      this.rTlb = d.r;
      this.wTlb = d.w;
    }
    const xs = this.fetchSet(this.priv);
    if (xs !== this.xSet) {
      this.xSet = xs;
      this.xTlb = xs.r;
    }
    this.fetchVa = Number.NaN;
  }

  /** Drop every cached translation (satp/sfence.vma/PMP changes): every set, the active ones now. */
  flushTlb(): void {
    this.tlbEpoch++;
    this.dSet.clear(this.tlbEpoch);
    this.xSet.clear(this.tlbEpoch);
    this.fetchVa = Number.NaN;
  }

  /** SFENCE.VMA with an address (§4.2.1): drop the translations of that page in every live set. */
  private flushTlbPage(lo: number, hi: number): void {
    const epoch = this.tlbEpoch;
    for (const sets of [this.dataSets, this.fetchSets]) {
      for (const set of sets) if (set && set.epoch === epoch) set.flushPage(lo, hi);
    }
    this.fetchVa = Number.NaN;
  }

  // ------------------------------------------------------------------ exits

  // The exits take the pc from this.pc: run() passes no pc to calls (it stays an unboxed double there).
  private mmioReadExit(n: number, rd: number, kind: number, ilen: number): HartExit {
    const pc = this.pc;
    this.exc = EXC_NONE;
    this.instret += n;
    this.nRun = 0;
    this.mmioPending = { rd, kind, npc: pc + ilen };
    return { kind: "mmio", op: "read", address: this.mmioAddr, size: this.mmioSize };
  }

  private mmioWriteExit(n: number, ilen: number): HartExit {
    const pc = this.pc;
    this.exc = EXC_NONE;
    this.instret += n;
    this.nRun = 0;
    this.mmioPending = { rd: 0, kind: 0, npc: pc + ilen };
    return { kind: "mmio", op: "write", address: this.mmioAddr, size: this.mmioSize, value: this.mmioValue };
  }

  private haltExit(n: number, ilen: number): HartExit {
    this.exc = EXC_NONE;
    this.pc += ilen;
    this.instret += n + 1;
    this.nRun = 0;
    return { kind: "halt", code: this.haltCode };
  }

  /** Write an MMIO load result into rd. kind = 1 + funct3 for integer loads; 8 = FLW, 9 = FLD. */
  private writeLoadResult(rd: number, kind: number, value: bigint): void {
    const lo = Number(value & 0xffffffffn) | 0;
    const hiRaw = Number((value >> 32n) & 0xffffffffn) | 0;
    if (kind >= 8) {
      const fw = this.regs.fw;
      fw[rd << 1] = lo;
      fw[(rd << 1) + 1] = kind === 8 ? -1 : hiRaw;
      this.mstatus |= MSTATUS_FS;
      return;
    }
    if (rd === 0) return;
    const f3 = kind - 1;
    let vlo: number;
    let vhi: number;
    switch (f3) {
      case 0:
        vlo = (lo << 24) >> 24;
        vhi = vlo >> 31;
        break;
      case 1:
        vlo = (lo << 16) >> 16;
        vhi = vlo >> 31;
        break;
      case 2:
        vlo = lo;
        vhi = lo >> 31;
        break;
      case 3:
        vlo = lo;
        vhi = hiRaw;
        break;
      case 4:
        vlo = lo & 0xff;
        vhi = 0;
        break;
      case 5:
        vlo = lo & 0xffff;
        vhi = 0;
        break;
      default:
        vlo = lo;
        vhi = 0;
    }
    this.x[rd << 1] = vlo;
    this.x[(rd << 1) + 1] = vhi;
  }
}

const SYS_NEXT = 0;
const SYS_JUMPED = 1;
const SYS_TRAPPED = 2;
const SYS_EXIT = 3;

function pickIrq(bits: number): number {
  if (bits & MIP_MEIP) return 11;
  if (bits & MIP_MSIP) return 3;
  if (bits & MIP_MTIP) return 7;
  if (bits & MIP_SEIP) return 9;
  if (bits & MIP_SSIP) return 1;
  return 5;
}

function vectorTarget(tvec: number, cause: number, isInterrupt: boolean): number {
  const base = tvec - (((tvec % 4) + 4) % 4);
  return isInterrupt && (tvec & 3) === 1 ? base + 4 * cause : base; // priv 1.12 §3.1.7
}

/** mtvec/stvec: MODE 0 or 1 (2, 3 reserved → direct); 53 significant bits. */
function legalTvec(v: bigint): number {
  let mode = v & 3n;
  if (mode > 1n) mode = 0n;
  return Number(BigInt.asIntN(53, (v & ~3n) | mode));
}

/** mepc/sepc: bit 0 is zero (IALIGN=16); 53 significant bits, sign-extended. */
function legalEpc(v: bigint): number {
  return Number(BigInt.asIntN(53, v & ~1n));
}

/**
 * Fill TLB entry idx: the page of (lo, hi) is at RAM byte offset off. The fourth word is the host
 * delta, off minus the page's low address word (mod 2^32): a translated access adds it to the
 * address's low word (wasm-block.ts address()).
 */
function setEntry(t: Int32Array, idx: number, lo: number, hi: number, off: number): void {
  const e = idx << 2;
  const page = lo & ~0xfff;
  t[e] = page;
  t[e + 1] = hi;
  t[e + 2] = off;
  t[e + 3] = (off - page) | 0;
}

/**
 * One TLB context: direct-mapped entries for reads (r) and writes (w) of a data set, or
 * fetches (r) of a fetch set, plus a filter of the superpages entries were filled from (a bit
 * per hashed superpage number and level; a false hit only costs a wider flush), so that an
 * address-specific sfence.vma invalidates a whole superpage (§4.2.1) without scanning.
 */
class TlbSet {
  readonly r: Int32Array;
  readonly w: Int32Array;
  private readonly supers = new Uint8Array(3 * 1024);
  private anySuper = false;
  epoch: number;

  /** A data set's arrays may live in `buffer` at `at` (r, then w: 128 KiB), for translated blocks. */
  constructor(data: boolean, epoch: number, buffer?: ArrayBuffer | SharedArrayBuffer, at = 0) {
    this.epoch = epoch;
    this.r = (buffer ? new Int32Array(buffer, at, TLB_SIZE * 4) : new Int32Array(TLB_SIZE * 4)).fill(NO_TAG);
    const wn = data ? TLB_SIZE * 4 : 0;
    this.w = (buffer ? new Int32Array(buffer, at + TLB_SIZE * 16, wn) : new Int32Array(wn)).fill(NO_TAG);
  }

  clear(epoch: number): void {
    this.epoch = epoch;
    this.r.fill(NO_TAG);
    this.w.fill(NO_TAG);
    if (this.anySuper) {
      this.supers.fill(0);
      this.anySuper = false;
    }
  }

  /** Record that an entry for (lo, hi) came from a leaf at `level` (1 = 2 MiB, 2 = 1 GiB, 3 = 512 GiB). */
  addSuper(lo: number, hi: number, level: number): void {
    this.supers[superSlot(lo, hi, level)] = 1;
    this.anySuper = true;
  }

  flushPage(lo: number, hi: number): void {
    if (this.anySuper) {
      const sup = this.supers;
      if (sup[superSlot(lo, hi, 1)] || sup[superSlot(lo, hi, 2)] || sup[superSlot(lo, hi, 3)]) {
        this.clear(this.epoch);
        return;
      }
    }
    const e = ((lo >>> 12) & TLB_MASK) << 2;
    const tag = lo & ~0xfff;
    if (this.r[e] === tag && this.r[e + 1] === hi) this.r[e] = NO_TAG;
    if (this.w.length && this.w[e] === tag && this.w[e + 1] === hi) this.w[e] = NO_TAG;
  }
}

/** Filter slot of the superpage at `level` holding the virtual address (lo, hi): its page number, hashed. */
function superSlot(lo: number, hi: number, level: number): number {
  const vpn = level === 1 ? (lo >>> 21) | (hi << 11) : level === 2 ? (lo >>> 30) | (hi << 2) : hi >> 7;
  return (level - 1) * 1024 + ((vpn ^ (vpn >>> 10) ^ (vpn >>> 20)) & 1023);
}
