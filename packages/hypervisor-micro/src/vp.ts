// One virtual processor of a child partition, in its own worker thread
// (ARCHITECTURE.md §4): the hart, the interrupt controllers and the SBI calls
// the microkernel owns (TIME, IPI, RFENCE, HSM, BASE) are handled here
// inline; MMIO the partition's paravisor registered goes to the paravisor in
// this thread; installed intercept ranges, the SBI console and SRST go to the
// parent as intercept messages. WFI blocks in Atomics.wait on the VP's
// doorbell until an interrupt, a message or the next timer deadline.
import { Bus, Csr, Hart, type HartExit, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP } from "@ringzero/cpu-core";
import {
  Clint,
  enterKernel,
  hostTickClock,
  type IrqLine,
  type MmioDevice,
  MmioMap,
  Plic,
  type ResetType,
  SbiServer,
  scheduleMacrotask,
  VIRT,
  yieldToHost,
} from "@ringzero/platform";
import { HvClient } from "./client.js";
import { type CpuClock, WallCpuClock } from "./cpu-clock.js";
import { encodeIntercept, type HaltIntercept, INTERCEPT_SINT, type Intercept } from "./intercept.js";
import type { VpThreadInit } from "./kernel.js";
import type { RegionInfo } from "./memory.js";
import { HvStatus } from "./status.js";
import {
  IRQ_LINE_COUNT,
  type MessageQueue,
  ringDoorbell,
  sintQueue,
  Vp,
  VpCounter,
  VpState,
  waitAsync,
} from "./synic.js";

const SLICE = 200_000;
const YIELD_MS = 20;
const INTERCEPT_TIMEOUT_MS = 10_000;
/** CPU time is sampled (and credit spent) at the first slice boundary this long after the last sample. */
const SAMPLE_METERED_MS = 1;
const SAMPLE_UNMETERED_MS = 10;
/** A parked VP re-checks STOP and its credit at least this often, in case a notify was missed. */
const PARK_RECHECK_MS = 250;

/** What a paravisor gets from the VP it runs on. */
export interface ParavisorContext {
  readonly partitionId: number;
  readonly vpIndex: number;
  /** This thread's kernel client (slow and fast hypercalls, own SINT queues and event flags). */
  readonly hv: HvClient;
  /**
   * The partition's own memory regions (the guest's RAM and paravisor-private memory). A region's
   * bytes are `buffer` from offset 0 for `size` bytes; the buffer may be longer (the VPs' hart
   * state follows RAM): view it as `new Uint8Array(buffer, 0, size)`.
   */
  readonly regions: readonly (RegionInfo & { buffer: SharedArrayBuffer })[];
  /** The interrupt line of a PLIC source (1..95). */
  irq(source: number): IrqLine;
  /** Claims [base, base+size): the guest's accesses there are the paravisor's (before the guest runs). */
  addMmio(name: string, base: number, size: number, device: MmioDevice): void;
  /** `paravisorData` of CreateVp, as the parent passed it. */
  readonly data: unknown;
  /**
   * Wall-clock time in ns for the paravisor's clocks (the RTC): the host's, or
   * under `boot.deterministic` the VP's instruction-derived time, as the CLINT.
   */
  wallClockNs(): bigint;
}

export interface Paravisor {
  /** The VP woke or finished a slice: take messages and events, finish work. */
  poll(): void;
  /** Milliseconds until the paravisor needs poll() without an event (timers); Infinity if never. */
  nextDeadlineMs?(): number;
  /** The VP is stopping. */
  stop?(): void | Promise<void>;
}

export type ParavisorFactory = (ctx: ParavisorContext) => Paravisor | Promise<Paravisor>;

class ParentLink {
  readonly area: Int32Array;
  readonly queue: MessageQueue;
  constructor(p: VpThreadInit["parent"]) {
    this.area = new Int32Array(p.area);
    this.queue = sintQueue(p.queues, INTERCEPT_SINT);
  }
}

export class VpHost {
  readonly hart: Hart;
  readonly bus: Bus;
  readonly plic: Plic;
  readonly clint: Clint;
  readonly mmio = new MmioMap();
  readonly hv: HvClient;
  private readonly sbi: SbiServer;
  private readonly area: Int32Array;
  private readonly parent: ParentLink;
  private readonly clock: () => number;
  private readonly owners = new Map<string, "microkernel" | "paravisor" | "intercept">();
  private paravisor: Paravisor | undefined;
  private seq = 0;
  private stopped = false;
  private lastDoorbell = -1;
  private readonly lineLevels = new Int8Array(IRQ_LINE_COUNT);
  private readonly lines: IrqLine[] = [];
  private readonly cpuClock: CpuClock;
  private cpuLast = 0;
  private stealLast = 0;
  private lastSample = 0;

  constructor(
    private readonly init: VpThreadInit,
    cpuClock?: CpuClock,
  ) {
    this.cpuClock = cpuClock ?? new WallCpuClock();
    this.hv = new HvClient(init);
    this.area = new Int32Array(init.area);
    this.parent = new ParentLink(init.parent);
    // deterministic: the hart's own time (its default timeSource, instret / 10) for the CLINT too
    const deterministic = init.boot.deterministic === true;
    this.clock = deterministic ? () => Number(this.hart.debugReadCsr(Csr.time) ?? 0n) : hostTickClock();
    const ram = init.regions.find((r) => r.kind === "ram");
    if (!ram) throw new Error("a VP needs a RAM region");
    // RAM in a shared WebAssembly.Memory with this VP's hart-state window: the translator's
    // WebAssembly back end; a plain SharedArrayBuffer: its JavaScript back end.
    const config = { ramBase: ram.gpa, ramSize: ram.size };
    this.bus =
      ram.memory && init.hartState
        ? new Bus(config, { memory: ram.memory, stateOffset: init.hartState.offset, stateBytes: init.hartState.bytes })
        : new Bus(config, ram.buffer);
    const supervisor = init.boot.mode === "supervisor";
    const hart = new Hart(this.bus, {
      sbiEcallExit: supervisor,
      timeSource: deterministic ? undefined : () => this.clock(),
      engine: init.engine,
    });
    this.hart = hart;
    const line = (mask: number): IrqLine => ({ set: (level: boolean) => hart.setInterrupt(mask, level) });
    this.plic = new Plic([line(MIP_MEIP), line(MIP_SEIP)], { ndev: VIRT.plic.ndev });
    this.clint = new Clint([{ msip: line(MIP_MSIP), mtip: line(MIP_MTIP) }], this.clock);
    this.clint.reset(); // the hart exists: its lines take QEMU's reset levels (MTIP high)
    this.claim("plic", VIRT.plic.base, VIRT.plic.size, this.plic, "microkernel");
    this.claim("clint", VIRT.clint.base, VIRT.clint.size, this.clint, "microkernel");
    init.intercepts.forEach((r, i) => {
      this.claim(`intercept${i}`, r.base, r.size, this.interceptDevice(r.base), "intercept");
    });
    // PLIC sources 1..ndev (source 0 means "none", priv spec PLIC §"Interrupt Identifiers").
    this.lines.push({ set: () => {} });
    for (let s = 1; s <= VIRT.plic.ndev; s++) this.lines.push(this.plic.irq(s));
    this.sbi = new SbiServer({
      hartCount: 1,
      // SBI 2.0 §6.1 through Sstc, as OpenSBI does on harts that have it.
      setTimer: (_h, t) => {
        hart.writeCsr(Csr.stimecmp, t);
      },
      consoleWrite: (b) => {
        for (let o = 0; o < b.length; o += 200)
          this.sendIntercept({
            kind: "sbi",
            vp: 0,
            seq: 0,
            posted: true,
            op: "write",
            bytes: b.subarray(o, o + 200),
            max: 0,
          });
      },
      consoleRead: (max) => this.consoleRead(max),
      sendIpi: () => hart.setInterrupt(MIP_SSIP, true),
      clearIpi: () => hart.setInterrupt(MIP_SSIP, false),
      // SBI RFENCE (v2.0 §8): fence.i also drops stale translations under the translator
      remoteFence: (_h, kind) => (kind === "fence.i" ? hart.fenceI() : hart.flushTlb()),
      reset: (type, reason) => this.reset(type, reason),
      readGuest: (pa, len) => (this.bus.inRam(Number(pa), len) ? this.bus.read(Number(pa), len).slice() : undefined),
      writeGuest: (pa, data) => {
        if (!this.bus.inRam(Number(pa), data.length)) return false;
        this.bus.write(Number(pa), data);
        return true;
      },
    });
    // What OpenSBI leaves a kernel (S-mode, PMP open, delegation, counters, Sstc), as under mono.
    if (supervisor) enterKernel(this.hart, { entry: init.boot.pc, hartId: init.boot.a0 ?? 0, dtb: init.boot.a1 ?? 0 });
    else hart.pc = init.boot.pc;
  }

  /** Loads the paravisor module named at CreateVp, if any. */
  async loadParavisor(factory?: ParavisorFactory): Promise<void> {
    if (!factory) return;
    this.paravisor = await factory({
      partitionId: this.init.partitionId,
      vpIndex: this.init.vpIndex,
      hv: this.hv,
      // the regions' bytes, not the memory object around the hart's state
      regions: this.init.regions.map(({ gpa, size, kind, buffer }) => ({ gpa, size, kind, buffer })),
      irq: (source) => {
        const l = this.lines[source];
        if (!l || source === 0) throw new RangeError(`PLIC source ${source}`);
        return l;
      },
      addMmio: (name, base, size, device) => this.claim(name, base, size, device, "paravisor"),
      data: this.init.paravisorData,
      // 10 MHz timebase: one tick is 100 ns
      wallClockNs:
        this.init.boot.deterministic === true
          ? () => BigInt(Math.floor(this.clock())) * 100n
          : () => BigInt(Date.now()) * 1_000_000n,
    });
  }

  private claim(
    name: string,
    base: number,
    size: number,
    device: MmioDevice,
    owner: "microkernel" | "paravisor" | "intercept",
  ): void {
    this.mmio.add(name, base, size, device);
    this.owners.set(name, owner);
  }

  private count(c: keyof typeof VpCounter, n = 1): void {
    Atomics.add(this.area, Vp.COUNTERS + VpCounter[c], n);
  }

  /** Runs the guest until the VP is stopped or the guest ends. */
  async run(): Promise<void> {
    const hart = this.hart;
    const a = this.area;
    Atomics.store(a, Vp.STATE, VpState.RUNNING);
    // Start-up (module loading, the paravisor) counts as the partition's CPU time but is not charged as credit.
    this.cpuLast = Math.floor(this.cpuClock.micros());
    this.stealLast = Math.floor(this.cpuClock.stealMicros);
    this.lastSample = performance.now();
    this.account(this.lastSample);
    let lastYield = performance.now();
    let lastInstret = hart.instret;
    const limit = this.init.boot.maxInstructions;
    while (!this.stopped) {
      if (Atomics.load(a, Vp.STOP) !== 0) break;
      if (Atomics.load(a, Vp.DOORBELL) !== this.lastDoorbell) await this.service();
      const left = limit === undefined ? SLICE : Math.min(SLICE, limit - Number(hart.instret));
      if (left <= 0) {
        this.halt("instruction-limit", 124);
        break;
      }
      const t0 = performance.now();
      const exit = hart.run(left);
      this.handle(exit);
      const t1 = performance.now();
      this.count("runMicros", Math.round((t1 - t0) * 1000));
      const done = hart.instret - lastInstret;
      lastInstret = hart.instret;
      this.addInstructions(done);
      // deterministic: WFI is a no-op (priv 1.12 §3.3.3 allows it): time moves only with instructions
      if (exit.kind === "wfi" && !(this.init.boot.deterministic === true && hart.mie !== 0)) {
        // Paravisor work this slice started (a request still to be sent, a completion still to be
        // raised) is promise continuations: run them all before blocking, or they wait for the next wake.
        if (this.paravisor) await new Promise<void>((r) => scheduleMacrotask(r));
        await this.sleep();
      }
      if (t1 - this.lastSample >= (Atomics.load(a, Vp.SCHED_METERED) ? SAMPLE_METERED_MS : SAMPLE_UNMETERED_MS))
        this.account(t1);
      // Paravisor completions are promises: let their microtasks run, and the event loop now and then.
      if (this.paravisor) await undefined;
      if (t1 - lastYield >= YIELD_MS) {
        await yieldToHost();
        lastYield = performance.now();
      }
    }
    this.account(performance.now());
    this.cpuClock.close();
    Atomics.store(a, Vp.STATE, VpState.STOPPED);
    await this.paravisor?.stop?.();
  }

  /**
   * The slice boundary's scheduler check (sched.ts): publish this thread's CPU
   * time and, when the partition is metered, spend it from the credit; none
   * left: park until the kernel's next accounting period refills it.
   */
  private account(now: number): void {
    const a = this.area;
    this.lastSample = now;
    const cpu = Math.floor(this.cpuClock.micros());
    const used = cpu - this.cpuLast;
    this.cpuLast = cpu;
    const steal = Math.floor(this.cpuClock.stealMicros);
    this.count("stealMicros", steal - this.stealLast);
    this.stealLast = steal;
    Atomics.store(a, Vp.COUNTERS + VpCounter.cpuMicrosLo, (cpu % 2 ** 32) | 0);
    Atomics.store(a, Vp.COUNTERS + VpCounter.cpuMicrosHi, Math.floor(cpu / 2 ** 32));
    const tr = this.hart.translatorStats();
    if (tr) {
      Atomics.store(a, Vp.COUNTERS + VpCounter.translatorBlocks, tr.blocksTranslated);
      Atomics.store(a, Vp.COUNTERS + VpCounter.translatorWasmBlocks, tr.wasmBlocks);
    }
    if (Atomics.load(a, Vp.SCHED_METERED) === 0) return;
    if (Atomics.sub(a, Vp.SCHED_CREDIT, used) - used <= 0) this.park();
  }

  /** Out of credit: block on the credit word until the kernel adds some (or stops the VP, or stops metering). */
  private park(): void {
    const a = this.area;
    const t0 = performance.now();
    Atomics.store(a, Vp.STATE, VpState.PARKED);
    for (;;) {
      if (this.stopped || Atomics.load(a, Vp.STOP) !== 0 || Atomics.load(a, Vp.SCHED_METERED) === 0) break;
      const credit = Atomics.load(a, Vp.SCHED_CREDIT);
      if (credit > 0) break;
      Atomics.wait(a, Vp.SCHED_CREDIT, credit, PARK_RECHECK_MS);
    }
    Atomics.store(a, Vp.STATE, VpState.RUNNING);
    const ms = performance.now() - t0;
    this.cpuClock.blocked(ms);
    this.count("throttledMicros", Math.round(ms * 1000));
  }

  private addInstructions(n: number): void {
    const a = this.area;
    const lo = (Atomics.load(a, Vp.COUNTERS + VpCounter.instructionsLo) >>> 0) + n;
    Atomics.store(a, Vp.COUNTERS + VpCounter.instructionsLo, (lo % 2 ** 32) | 0);
    if (lo >= 2 ** 32) Atomics.add(a, Vp.COUNTERS + VpCounter.instructionsHi, Math.floor(lo / 2 ** 32));
  }

  /** The doorbell moved: interrupt lines, paravisor events, host messages. */
  private async service(): Promise<void> {
    const a = this.area;
    this.lastDoorbell = Atomics.load(a, Vp.DOORBELL);
    this.count("doorbellWakeups");
    for (let s = 1; s < IRQ_LINE_COUNT && s < this.lines.length; s++) {
      const v = Atomics.load(a, Vp.IRQ_LINES + s) as 0 | 1;
      if (v !== this.lineLevels[s]) {
        this.lineLevels[s] = v;
        this.lines[s].set(v === 1);
      }
    }
    this.paravisor?.poll();
    if (Atomics.load(a, Vp.HOST_MESSAGE) !== 0) {
      Atomics.store(a, Vp.HOST_MESSAGE, 0);
      await yieldToHost();
    }
  }

  private handle(exit: HartExit): void {
    switch (exit.kind) {
      case "mmio": {
        const name = this.mmio.find(exit.address)?.name;
        const owner = name === undefined ? undefined : this.owners.get(name);
        if (owner === "microkernel") this.count("exitsMicrokernel");
        else if (owner === "paravisor") this.count("exitsParavisor");
        else if (owner === "intercept") this.count("exitsIntercept");
        else this.count("unclaimedMmio");
        if (exit.op === "read") {
          const v = this.mmio.read(exit.address, exit.size);
          if (v === undefined) this.hart.failMmio();
          else this.hart.completeMmio(BigInt(v));
        } else if (this.mmio.write(exit.address, exit.size, exit.value)) this.hart.completeMmio();
        else this.hart.failMmio();
        return;
      }
      case "ecall":
        this.count("exitsMicrokernel");
        this.sbi.handle(0, this.hart.x);
        return;
      case "wfi":
        this.count("exitsWfi");
        return;
      case "halt":
        this.halt("htif", exit.code);
        return;
      default:
        this.count("exitsBudget");
        this.clint.poll();
    }
  }

  /**
   * How long WFI may sleep: 0 when it must not (an interrupt is pending, the VP
   * stops, the doorbell moved), -1 when the guest waits with interrupts off
   * (halted), else milliseconds to the next timer or paravisor deadline.
   */
  private sleepMs(db: number): number {
    const a = this.area;
    this.clint.poll();
    if (this.hart.interruptPending() || this.stopped || Atomics.load(a, Vp.STOP) !== 0) return 0;
    if (db !== this.lastDoorbell) return 0;
    if (this.hart.mie === 0) {
      this.halt("wfi-forever", 1);
      return 0;
    }
    const deadline = Math.min(this.hart.nextTimerDeadline(), this.clint.nextDeadline());
    return Math.max(
      0,
      Math.min(
        1000,
        (deadline - this.clock()) / (VIRT.timebaseFrequency / 1000),
        this.paravisor?.nextDeadlineMs?.() ?? Number.POSITIVE_INFINITY,
      ),
    );
  }

  /**
   * WFI with nothing pending: block on the doorbell until the next deadline,
   * never spin. A VP with a paravisor waits with Atomics.waitAsync: the
   * paravisor is an event-driven program with timers of its own (control
   * message retries, reconnect back-off, request timeouts) that must fire
   * while the guest idles.
   */
  private async sleep(): Promise<void> {
    const a = this.area;
    const t0 = performance.now();
    Atomics.store(a, Vp.STATE, VpState.IDLE);
    for (;;) {
      const db = Atomics.load(a, Vp.DOORBELL);
      const ms = this.sleepMs(db);
      if (ms <= 0) break;
      if (!this.paravisor) {
        Atomics.wait(a, Vp.DOORBELL, db, ms);
        continue;
      }
      const r = waitAsync(a, Vp.DOORBELL, db, ms);
      if (!r.async) continue;
      // A pending waitAsync does not keep Node's event loop alive; a timer of the same length does.
      const keepAlive = setTimeout(() => {}, ms + 10);
      await r.value;
      clearTimeout(keepAlive);
    }
    Atomics.store(a, Vp.STATE, VpState.RUNNING);
    const ms = performance.now() - t0;
    this.cpuClock.blocked(ms);
    this.count("idleMicros", Math.round(ms * 1000));
  }

  private halt(reason: HaltIntercept["reason"], code: number): void {
    this.sendIntercept({ kind: "halt", vp: this.init.vpIndex, reason, code });
    this.stopped = true;
  }

  private reset(type: ResetType, reason: number): void {
    this.sendIntercept({ kind: "reset", vp: this.init.vpIndex, type, reason });
    this.stopped = true;
  }

  private consoleRead(max: number): Uint8Array {
    const r = this.sendIntercept({
      kind: "sbi",
      vp: this.init.vpIndex,
      seq: 0,
      posted: false,
      op: "read",
      bytes: new Uint8Array(0),
      max: Math.min(max, 8),
    });
    if (!r || r.status !== 0) return new Uint8Array(0);
    const n = Math.min(Number(r.a1), 8);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Number((r.value >> BigInt(8 * i)) & 0xffn);
    return out;
  }

  /**
   * An MmioDevice whose accesses become intercept messages to the parent (reads wait, writes are
   * posted). Deterministic mode waits for writes too: a write's effect (the test finisher powering
   * off) must not land after a host-timed number of further instructions.
   */
  private interceptDevice(base: number): MmioDevice {
    const vp = this.init.vpIndex;
    return {
      read: (offset, size) => {
        const r = this.sendIntercept({
          kind: "mmio",
          vp,
          seq: 0,
          write: false,
          posted: false,
          size,
          address: base + offset,
          value: 0n,
        });
        // No answer (the parent is gone or late): the bus floats high, as on real hardware.
        const v = r && r.status === 0 ? BigInt.asUintN(size * 8, r.value) : (1n << BigInt(size * 8)) - 1n;
        return size === 8 ? v : Number(v);
      },
      write: (offset, size, value) => {
        this.sendIntercept({
          kind: "mmio",
          vp,
          seq: 0,
          write: true,
          posted: this.init.boot.deterministic !== true,
          size,
          address: base + offset,
          value: BigInt(value),
        });
      },
    };
  }

  /**
   * Posts an intercept to the parent's SINT 0 queue and, unless it is posted,
   * waits for the completion (the VP is suspended meanwhile, as in Hyper-V).
   */
  private sendIntercept(i: Intercept): { status: number; value: bigint; a1: bigint } | undefined {
    const a = this.area;
    this.seq = (this.seq + 1) | 0 || 1;
    const seq = this.seq;
    const msg = encodeIntercept({ ...i, seq } as Intercept);
    const t0 = performance.now();
    while (!this.parent.queue.post(msg.type, this.init.partitionId, msg.payload)) {
      // 16 buffers in use: the parent is behind; wait a little (TLFS: the sender retries).
      if (performance.now() - t0 > INTERCEPT_TIMEOUT_MS || Atomics.load(a, Vp.STOP) !== 0) {
        this.count("interceptTimeouts");
        return undefined;
      }
      Atomics.wait(a, Vp.ICPT_SEQ, Atomics.load(a, Vp.ICPT_SEQ), 0.05);
    }
    ringDoorbell(this.parent.area);
    if (i.kind === "reset" || i.kind === "halt" || ("posted" in i && i.posted)) return undefined;
    Atomics.store(a, Vp.STATE, VpState.INTERCEPT);
    for (;;) {
      const cur = Atomics.load(a, Vp.ICPT_SEQ);
      if (cur === seq) break;
      const left = INTERCEPT_TIMEOUT_MS - (performance.now() - t0);
      if (left <= 0 || Atomics.load(a, Vp.STOP) !== 0) {
        this.count("interceptTimeouts");
        Atomics.store(a, Vp.STATE, VpState.RUNNING);
        return undefined;
      }
      Atomics.wait(a, Vp.ICPT_SEQ, cur, left);
    }
    Atomics.store(a, Vp.STATE, VpState.RUNNING);
    const waited = performance.now() - t0;
    this.cpuClock.blocked(waited);
    this.count("interceptWaitMicros", Math.round(waited * 1000));
    const lo = BigInt(Atomics.load(a, Vp.ICPT_VALUE_LO) >>> 0);
    const hi = BigInt(Atomics.load(a, Vp.ICPT_VALUE_HI) >>> 0);
    const a1lo = BigInt(Atomics.load(a, Vp.ICPT_A1_LO) >>> 0);
    const a1hi = BigInt(Atomics.load(a, Vp.ICPT_A1_HI) >>> 0);
    return { status: Atomics.load(a, Vp.ICPT_STATUS), value: lo | (hi << 32n), a1: a1lo | (a1hi << 32n) };
  }
}

export { HvStatus };
