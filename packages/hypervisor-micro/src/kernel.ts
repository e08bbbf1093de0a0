// The microkernel (ARCHITECTURE.md §4): owns host memory (every partition's
// guest-physical memory and the grants between partitions) and CPU time (one
// worker thread per virtual processor), answers the slow hypercalls on the
// thread that created it, and nothing else: no device, no disk, no network,
// no VMBus. Partitions talk to it through their thread's HvClient.
import { HART_STATE_BYTES, type WasmMemory } from "@ringzero/cpu-core";
import {
  HYPERCALL_NAMES,
  Hypercall,
  type HypercallName,
  ROOT_PARTITION_ID,
  type SlowCallName,
  type SlowCalls,
  type VpBoot,
} from "./hypercalls.js";
import { type GrantTransfer, type MemoryKind, PAGE_SIZE, type RegionInfo } from "./memory.js";
import {
  CpuBudgetSchema,
  type CreditGrant,
  distributeCredits,
  SCHED_PERIOD_MS,
  type Schedule,
  ScheduleSchema,
} from "./sched.js";
import { fail, type HvResult, HvStatus, ok } from "./status.js";
import { createSintQueues, createVpArea, ringDoorbell, Vp, VpCounter, VpState } from "./synic.js";
import { type HostThread, SPARE_VP_START, type ThreadSpawner, webThreads } from "./thread.js";

/**
 * A MessagePort of either host (Node's worker_threads port or the web's): both
 * have postMessage, the onmessage attribute (setting it starts the port, HTML
 * §9.4.4) and close; Node's also ref/unref.
 */
export interface KernelPort {
  postMessage(message: unknown): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  close(): void;
  ref?(): void;
  unref?(): void;
}

function newChannel(): { port1: KernelPort; port2: KernelPort } {
  return new MessageChannel() as unknown as { port1: KernelPort; port2: KernelPort };
}
/** Per-period decay of the host-share sums (about ten periods of memory). */
const HOST_DECAY = 0.9;
/** Largest memory one region may have (typed-array indexing of the vCPU's bus). */
const MAX_REGION = 2 ** 31;
/** Memory the kernel hands out to all partitions together. */
const DEFAULT_MEMORY_LIMIT = 8 * 2 ** 30;
/** VPs a partition may have (CreateVp's vpIndex is below this). */
const MAX_VPS = 1;
const WASM_PAGE = 65536;

export { ROOT_PARTITION_ID };

interface Region extends RegionInfo {
  /** The region's bytes from offset 0; longer than `size` when a WebAssembly memory holds them. */
  readonly buffer: SharedArrayBuffer;
  /** RAM: the shared WebAssembly.Memory whose buffer is `buffer`, with MAX_VPS hart-state windows after RAM. */
  readonly memory?: WasmMemory;
}

interface VpRecord {
  readonly index: number;
  readonly area: SharedArrayBuffer;
  readonly queues: SharedArrayBuffer;
  worker?: HostThread;
  exited: boolean;
  /** Counter values at the last accounting tick (CPU µs, WFI µs, parked µs). */
  tickCpu: number;
  tickIdle: number;
  tickParked: number;
  tickSteal: number;
  /** Decaying sums of run and steal µs: hostShare = run / (run + steal). */
  hostRun: number;
  hostWait: number;
}

interface PartitionRecord {
  readonly id: number;
  readonly name: string;
  readonly parent: number;
  readonly regions: Region[];
  readonly vps: Map<number, VpRecord>;
  readonly intercepts: { base: number; size: number }[];
  deleted: boolean;
  schedule: Schedule;
  /** Parked µs of VPs that are gone, and of the live ones up to their last tick. */
  parkedMicros: number;
  metered: boolean;
}

interface GrantRecord {
  readonly id: number;
  /** The partition whose memory it is. */
  readonly owner: number;
  /** The partition that made the grant (the owner, or its parent). */
  readonly granter: number;
  readonly grantee: number;
  readonly gpa: number;
  readonly size: number;
  readonly writable: boolean;
  readonly revoked: SharedArrayBuffer;
  readonly region: Region;
}

/** A thread that may make hypercalls: the root's worker or a VP's worker. */
interface Caller {
  readonly partitionId: number;
  readonly area: SharedArrayBuffer;
  readonly port: KernelPort;
}

/** What a partition's thread receives to reach the kernel (inside workerData). */
export interface HvThreadInit {
  readonly partitionId: number;
  readonly vpIndex: number;
  readonly area: SharedArrayBuffer;
  readonly queues: SharedArrayBuffer;
  readonly kernel: KernelPort;
  /** Fast-hypercall counters of this thread, by index in HYPERCALL_NAMES. */
  readonly counters: SharedArrayBuffer;
}

/** workerData of a VP thread. */
export interface VpThreadInit extends HvThreadInit {
  /** `buffer` holds the region from offset 0 and may be longer than `size`; `memory` (RAM only) is a WebAssembly.Memory on it. */
  readonly regions: readonly (RegionInfo & { buffer: SharedArrayBuffer; memory?: WasmMemory })[];
  /** This VP's window for hart state in the RAM region's `memory` (bytes after RAM), when it has one. */
  readonly hartState?: { readonly offset: number; readonly bytes: number };
  readonly boot: VpBoot;
  readonly intercepts: readonly { base: number; size: number }[];
  /** The parent's VP 0 area and SINT queues, where intercept messages go. */
  readonly parent: {
    readonly partitionId: number;
    readonly area: SharedArrayBuffer;
    readonly queues: SharedArrayBuffer;
  };
  readonly paravisor?: string;
  readonly paravisorData?: unknown;
  readonly engine?: "interpreter" | "translator";
}

export interface MicrokernelOptions {
  /** Total bytes of partition memory the kernel may allocate (default 8 GiB). */
  readonly memoryLimit?: number;
  /**
   * The VP thread's module: it calls `runVpThread` (the Node entry's default is
   * this package's vp-worker.js beside the built module; in a browser, a
   * bundle of your own that calls `runVpThread(await webThreadSelf())`).
   */
  readonly vpWorker?: URL;
  /** How partition threads start (default: web Workers; the Node entry's Microkernel: worker_threads). */
  readonly threads?: ThreadSpawner;
  /**
   * The CPU budget all child partitions share, in % of one host CPU (the
   * "capped budget" their weights split); 0 or absent = unlimited: weights
   * then have nothing to divide and only caps meter partitions (sched.ts).
   */
  readonly cpuBudgetPercent?: number;
  /**
   * How RAM regions are allocated: "wasm" (default) a shared WebAssembly.Memory, RAM at offset 0
   * followed by a hart-state window per VP, so the translator's WebAssembly back end runs in the
   * VPs (a plain SharedArrayBuffer where the host refuses one); "buffer" a plain SharedArrayBuffer
   * (the translator's JavaScript back end).
   */
  readonly ramMemory?: "wasm" | "buffer";
  /**
   * Start one VP thread with the root partition, before any CreateVp: its module loading and
   * the hart's warm-up then overlap the parent partition's start, and the first CreateVp hands it
   * its VP (SPARE_VP_START; `vpWorker` must call runVpThread). Default false; the
   * Node entry's Microkernel: true.
   */
  readonly spareVp?: boolean;
}

export type KernelEvent =
  | { readonly kind: "vp-exit"; readonly partitionId: number; readonly vpIndex: number; readonly detail: string }
  | { readonly kind: "thread-error"; readonly partitionId: number; readonly error: string };

/** Statistics of the whole kernel, summed over threads. */
export interface KernelStats {
  readonly hypercalls: Record<string, number>;
  readonly partitions: number;
  readonly vps: number;
  readonly memoryBytes: number;
  readonly grants: number;
  readonly scheduler: SchedulerStats;
}

/** The credit scheduler's figures (README "Scheduling"). */
export interface SchedulerStats {
  /** The children's shared CPU budget, % of one host CPU; 0 = unlimited. */
  readonly budgetPercent: number;
  readonly periodMs: number;
  readonly partitions: readonly PartitionCpuStats[];
}

export interface PartitionCpuStats {
  readonly partitionId: number;
  readonly name: string;
  readonly weight: number;
  /** % of one host CPU; 0 = uncapped. */
  readonly capPercent: number;
  /** False: neither a budget nor a cap applies; its VPs never park. */
  readonly metered: boolean;
  /** CPU time of its VPs' threads (µs): guest, paravisor and VP code. */
  readonly cpuMicros: number;
  /** Time its VPs spent parked for want of credit (µs). */
  readonly parkedMicros: number;
  /** Time its VPs' threads were runnable but the host OS ran something else (µs, Linux; a 32-bit counter). */
  readonly stealMicros: number;
  /** Credit balance of its VP now (µs). */
  readonly creditMicros: number;
}

export class Microkernel {
  private readonly partitions = new Map<number, PartitionRecord>();
  private readonly grants = new Map<number, GrantRecord>();
  private readonly threads: { worker: HostThread; counters: Int32Array }[] = [];
  private readonly spawner: ThreadSpawner;
  private readonly slowCounts = new Map<string, number>();
  private readonly listeners: ((e: KernelEvent) => void)[] = [];
  private nextPartition = ROOT_PARTITION_ID + 1;
  private nextGrant = 1;
  private memoryUsed = 0;
  private readonly memoryLimit: number;
  private readonly vpWorker: URL | undefined;
  private readonly ramMemory: "wasm" | "buffer";
  private readonly spareVp: boolean;
  /** The VP thread started with the root partition for the first CreateVp (spareVp). */
  private spare: HostThread | undefined;
  private rootCaller: Caller | undefined;
  private shutDown = false;
  private budgetPercent: number;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private lastTick = 0;

  constructor(options: MicrokernelOptions = {}) {
    this.memoryLimit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
    this.vpWorker = options.vpWorker;
    this.spawner = options.threads ?? webThreads();
    this.budgetPercent = CpuBudgetSchema.parse(options.cpuBudgetPercent ?? 0);
    this.ramMemory = options.ramMemory === "buffer" ? "buffer" : "wasm";
    this.spareVp = options.spareVp === true;
    this.partitions.set(ROOT_PARTITION_ID, newPartition(ROOT_PARTITION_ID, "root", 0, ScheduleSchema.parse({})));
  }

  /** Sets the children's shared CPU budget (% of one host CPU; 0 = unlimited). A host decision, not a hypercall. */
  setCpuBudget(percent: number): void {
    this.budgetPercent = CpuBudgetSchema.parse(percent);
    this.reschedule();
  }

  onEvent(fn: (e: KernelEvent) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Starts the root (parent) partition: `module` runs in a new thread whose
   * start data is `{ hv: HvThreadInit, data }`. Returns the thread (its host
   * messages are the caller's business: console, power events).
   */
  startRoot(module: URL, data: unknown): HostThread {
    if (this.rootCaller) throw new Error("the root partition is already running");
    const root = this.partitions.get(ROOT_PARTITION_ID) as PartitionRecord;
    const vp = newVp(0);
    root.vps.set(0, vp);
    const { port1, port2 } = newChannel();
    const counters = new SharedArrayBuffer(HYPERCALL_NAMES.length * 4);
    const init: HvThreadInit = {
      partitionId: ROOT_PARTITION_ID,
      vpIndex: 0,
      area: vp.area,
      queues: vp.queues,
      kernel: port2,
      counters,
    };
    const worker = this.spawner.spawn(module, { hv: init, data }, [port2]);
    vp.worker = worker;
    this.rootCaller = { partitionId: ROOT_PARTITION_ID, area: vp.area, port: port1 };
    this.serve(this.rootCaller);
    this.watch(worker, ROOT_PARTITION_ID, counters);
    if (this.spareVp && this.vpWorker) this.spare = this.spawner.spawn(this.vpWorker, SPARE_VP_START);
    return worker;
  }

  /** Stops every thread and frees every partition. */
  async shutdown(): Promise<void> {
    if (this.shutDown) return;
    this.shutDown = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    for (const p of this.partitions.values()) {
      for (const vp of p.vps.values()) {
        const a = new Int32Array(vp.area);
        Atomics.store(a, Vp.STOP, 1);
        ringDoorbell(a);
        Atomics.notify(a, Vp.SCHED_CREDIT);
      }
    }
    const spare = this.spare;
    this.spare = undefined;
    await Promise.all([
      ...this.threads.map((t) => t.worker.terminate().catch(() => undefined)),
      spare?.terminate().catch(() => undefined),
    ]);
    this.rootCaller?.port.close();
  }

  stats(): KernelStats {
    const hypercalls: Record<string, number> = {};
    for (const [k, v] of this.slowCounts) hypercalls[k] = v;
    for (const t of this.threads) {
      HYPERCALL_NAMES.forEach((name, i) => {
        const n = Atomics.load(t.counters, i);
        if (n) hypercalls[name] = (hypercalls[name] ?? 0) + n;
      });
    }
    let vps = 0;
    for (const p of this.partitions.values()) vps += p.vps.size;
    return {
      hypercalls,
      partitions: this.partitions.size,
      vps,
      memoryBytes: this.memoryUsed,
      grants: this.grants.size,
      scheduler: {
        budgetPercent: this.budgetPercent,
        periodMs: SCHED_PERIOD_MS,
        partitions: [...this.partitions.values()]
          .filter((p) => p.id !== ROOT_PARTITION_ID)
          .map((p) => this.cpuStats(p)),
      },
    };
  }

  private cpuStats(p: PartitionRecord): PartitionCpuStats {
    let cpu = 0;
    let parked = p.parkedMicros;
    let credit = 0;
    let steal = 0;
    for (const vp of p.vps.values()) {
      const a = new Int32Array(vp.area);
      steal += Atomics.load(a, Vp.COUNTERS + VpCounter.stealMicros) >>> 0;
      cpu += readCpuMicros(a);
      parked += (Atomics.load(a, Vp.COUNTERS + VpCounter.throttledMicros) - vp.tickParked) >>> 0;
      credit += Atomics.load(a, Vp.SCHED_CREDIT);
    }
    return {
      partitionId: p.id,
      name: p.name,
      weight: p.schedule.weight,
      capPercent: p.schedule.capPercent,
      metered: p.metered,
      cpuMicros: cpu,
      parkedMicros: parked,
      stealMicros: steal,
      creditMicros: p.metered ? credit : 0,
    };
  }

  // ---- the credit scheduler (sched.ts) ---------------------------------------

  /** Starts the accounting tick when some partition is metered, stops it (and unmeters every VP) otherwise. */
  private reschedule(): void {
    if (this.shutDown) return;
    const needed = [...this.partitions.values()].some(
      (p) =>
        p.id !== ROOT_PARTITION_ID &&
        (this.budgetPercent > 0 || p.schedule.capPercent > 0) &&
        [...p.vps.values()].some((v) => !v.exited),
    );
    if (needed && !this.ticker) {
      this.lastTick = performance.now() - SCHED_PERIOD_MS;
      this.ticker = setInterval(() => this.tick(), SCHED_PERIOD_MS);
      // Node: the tick alone does not keep the process alive (a number elsewhere, with no unref).
      (this.ticker as { unref?: () => void }).unref?.();
    }
    if (needed) this.tick();
    else if (this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
      for (const p of this.partitions.values()) {
        p.metered = false;
        for (const vp of p.vps.values()) unmeter(new Int32Array(vp.area));
      }
    }
  }

  /** One accounting period: measure each child's use, distribute credit by weight within budget and caps. */
  private tick(): void {
    const now = performance.now();
    // Real elapsed time (timers are late on a busy thread), bounded so a stalled kernel grants no flood.
    const periodMicros = Math.min(Math.max(now - this.lastTick, 1), 5 * SCHED_PERIOD_MS) * 1000;
    this.lastTick = now;
    const live: { p: PartitionRecord; a: Int32Array; used: number; slept: boolean; hostShare: number }[] = [];
    for (const p of this.partitions.values()) {
      if (p.id === ROOT_PARTITION_ID) continue;
      const vp = p.vps.get(0);
      if (!vp || vp.exited) continue;
      const a = new Int32Array(vp.area);
      const cpu = readCpuMicros(a);
      const idle = Atomics.load(a, Vp.COUNTERS + VpCounter.idleMicros);
      const parked = Atomics.load(a, Vp.COUNTERS + VpCounter.throttledMicros);
      const used = Math.max(0, cpu - vp.tickCpu);
      // Slept in WFI during the period, or is asleep now (idleMicros moves only when a sleep ends).
      const slept = ((idle - vp.tickIdle) | 0) !== 0 || Atomics.load(a, Vp.STATE) === VpState.IDLE;
      const steal = Atomics.load(a, Vp.COUNTERS + VpCounter.stealMicros);
      p.parkedMicros += (parked - vp.tickParked) >>> 0;
      // Host share over the last ~10 periods (each period's sums decay by HOST_DECAY).
      vp.hostRun = vp.hostRun * HOST_DECAY + used;
      vp.hostWait = vp.hostWait * HOST_DECAY + ((steal - vp.tickSteal) >>> 0);
      const hostShare = vp.hostRun + vp.hostWait > 0 ? vp.hostRun / (vp.hostRun + vp.hostWait) : 1;
      vp.tickCpu = cpu;
      vp.tickIdle = idle;
      vp.tickParked = parked;
      vp.tickSteal = steal;
      live.push({ p, a, used, slept, hostShare });
    }
    const grants = distributeCredits(
      live.map(({ p, used, slept, hostShare }) => ({
        weight: p.schedule.weight,
        capPercent: p.schedule.capPercent,
        used,
        slept,
        hostShare,
      })),
      periodMicros,
      this.budgetPercent,
    );
    live.forEach(({ p, a }, i) => {
      p.metered = (grants[i] as CreditGrant).metered;
      credit(a, grants[i] as CreditGrant);
    });
  }

  /** Counters of one VP (see VpCounter), or undefined. */
  vpCounters(partitionId: number, vpIndex: number): Record<string, number> | undefined {
    const vp = this.partitions.get(partitionId)?.vps.get(vpIndex);
    if (!vp) return undefined;
    const a = new Int32Array(vp.area);
    const out: Record<string, number> = {};
    for (const [k, i] of Object.entries(VpCounter)) out[k] = Atomics.load(a, Vp.COUNTERS + i) >>> 0;
    out.instructions = out.instructionsLo + out.instructionsHi * 2 ** 32;
    delete out.instructionsLo;
    delete out.instructionsHi;
    out.cpuMicros = readCpuMicros(a);
    delete out.cpuMicrosLo;
    delete out.cpuMicrosHi;
    return out;
  }

  /** Children of the root, for statistics. */
  partitionIds(): number[] {
    return [...this.partitions.keys()];
  }

  // ---- the slow hypercalls ------------------------------------------------

  /** Runs a slow hypercall as `caller` would (the worker protocol calls this; tests may too). */
  hypercall<K extends SlowCallName>(
    callerId: number,
    name: K,
    input: SlowCalls[K]["in"],
  ): HvResult<SlowCalls[K]["out"]> {
    this.slowCounts.set(name, (this.slowCounts.get(name) ?? 0) + 1);
    const fn = this.calls[name] as (c: number, i: SlowCalls[K]["in"]) => HvResult<SlowCalls[K]["out"]>;
    try {
      return fn.call(this, callerId, input);
    } catch (e) {
      return fail(HvStatus.INVALID_PARAMETER, `${name}: ${(e as Error).message}`);
    }
  }

  private readonly calls: { [K in SlowCallName]: (c: number, i: SlowCalls[K]["in"]) => HvResult<SlowCalls[K]["out"]> } =
    {
      CreatePartition: (c, i) => {
        // Only the root creates partitions (TLFS: the CreatePartitions privilege).
        if (c !== ROOT_PARTITION_ID) return fail(HvStatus.ACCESS_DENIED, "only the root partition creates partitions");
        if (typeof i?.name !== "string" || i.name.length > 64)
          return fail(HvStatus.INVALID_PARAMETER, "name: 0..64 chars");
        const schedule = ScheduleSchema.safeParse(i.schedule ?? {});
        if (!schedule.success) return fail(HvStatus.INVALID_PARAMETER, `schedule: ${schedule.error.message}`);
        const id = this.nextPartition++;
        this.partitions.set(id, newPartition(id, i.name, c, schedule.data));
        return ok({ partitionId: id });
      },
      DeletePartition: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        for (const vp of p.vps.values()) this.stopVp(vp);
        for (const g of [...this.grants.values()]) {
          if (g.owner === p.id || g.grantee === p.id || g.granter === p.id) this.revoke(g);
        }
        for (const r of p.regions) this.memoryUsed -= r.size;
        p.regions.length = 0;
        p.deleted = true;
        this.partitions.delete(p.id);
        this.reschedule();
        return ok({});
      },
      MapGpaPages: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        const { gpa, size, kind } = i;
        if (!isPageRange(gpa, size)) return fail(HvStatus.INVALID_ALIGNMENT, "gpa and size must be 4 KiB multiples");
        if (size <= 0 || size > MAX_REGION || gpa + size > 2 ** 52 || (kind !== "ram" && kind !== "private"))
          return fail(HvStatus.INVALID_PARAMETER, "size 4 KiB..2 GiB, kind ram|private");
        if (p.vps.size > 0) return fail(HvStatus.INVALID_PARTITION_STATE, "map before the partition's VPs are created");
        if (kind === "ram" && p.regions.some((r) => r.kind === "ram"))
          return fail(HvStatus.INVALID_PARAMETER, "one ram region per partition");
        if (p.regions.some((r) => gpa < r.gpa + r.size && r.gpa < gpa + size))
          return fail(HvStatus.INVALID_PARAMETER, "overlaps a mapped region");
        if (this.memoryUsed + size > this.memoryLimit)
          return fail(HvStatus.INSUFFICIENT_MEMORY, `${this.memoryLimit - this.memoryUsed} bytes left`);
        const memory = kind === "ram" && this.ramMemory === "wasm" ? ramMemory(size) : undefined;
        let buffer: SharedArrayBuffer;
        try {
          buffer = (memory?.buffer as SharedArrayBuffer | undefined) ?? new SharedArrayBuffer(size);
        } catch {
          return fail(HvStatus.INSUFFICIENT_MEMORY, "the host refused the allocation");
        }
        p.regions.push({ gpa, size, kind: kind as MemoryKind, buffer, memory });
        this.memoryUsed += size;
        return ok({});
      },
      UnmapGpaPages: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        const k = p.regions.findIndex((r) => r.gpa === i.gpa);
        if (k < 0) return fail(HvStatus.INVALID_PARAMETER, "no region starts there");
        if ([...p.vps.values()].some((v) => !v.exited)) return fail(HvStatus.INVALID_PARTITION_STATE, "VPs running");
        const r = p.regions[k];
        if ([...this.grants.values()].some((g) => g.region === r))
          return fail(HvStatus.OBJECT_IN_USE, "grants on this region stand");
        p.regions.splice(k, 1);
        this.memoryUsed -= r.size;
        return ok({});
      },
      InstallIntercept: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        const { base, size } = i;
        if (
          !Number.isSafeInteger(base) ||
          !Number.isSafeInteger(size) ||
          base < 0 ||
          size <= 0 ||
          base + size > 2 ** 32
        )
          return fail(HvStatus.INVALID_PARAMETER, "MMIO range below 4 GiB");
        if (p.regions.some((r) => r.kind === "ram" && base < r.gpa + r.size && r.gpa < base + size))
          return fail(HvStatus.INVALID_PARAMETER, "the range overlaps RAM");
        if (p.vps.size > 0) return fail(HvStatus.INVALID_PARTITION_STATE, "install intercepts before creating VPs");
        p.intercepts.push({ base, size });
        return ok({});
      },
      CreateVp: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        if (!Number.isInteger(i.vpIndex) || i.vpIndex !== p.vps.size || i.vpIndex >= MAX_VPS)
          return fail(HvStatus.INVALID_VP_INDEX, "one VP per partition for now (index 0)");
        const ram = p.regions.find((r) => r.kind === "ram");
        if (!ram) return fail(HvStatus.INVALID_PARTITION_STATE, "map RAM before creating a VP");
        const b = i.boot;
        if (!b || !Number.isSafeInteger(b.pc) || (b.mode !== "supervisor" && b.mode !== "machine"))
          return fail(HvStatus.INVALID_PARAMETER, "boot: pc and mode");
        if (b.maxInstructions !== undefined && !(Number.isSafeInteger(b.maxInstructions) && b.maxInstructions > 0))
          return fail(HvStatus.INVALID_PARAMETER, "boot: maxInstructions must be a positive integer");
        if (b.deterministic !== undefined && typeof b.deterministic !== "boolean")
          return fail(HvStatus.INVALID_PARAMETER, "boot: deterministic must be a boolean");
        if (i.engine !== undefined && i.engine !== "interpreter" && i.engine !== "translator")
          return fail(HvStatus.INVALID_PARAMETER, 'engine: "interpreter" or "translator"');
        const parent = this.partitions.get(p.parent)?.vps.get(0);
        if (!parent) return fail(HvStatus.INVALID_PARTITION_STATE, "the parent has no VP to take intercepts");
        if (!this.vpWorker)
          return fail(HvStatus.INVALID_PARTITION_STATE, "the kernel was made without a vpWorker module");
        const vp = newVp(i.vpIndex);
        const { port1, port2 } = newChannel();
        const counters = new SharedArrayBuffer(HYPERCALL_NAMES.length * 4);
        const init: VpThreadInit = {
          partitionId: p.id,
          vpIndex: vp.index,
          area: vp.area,
          queues: vp.queues,
          kernel: port2,
          counters,
          regions: p.regions.map((r) => ({
            gpa: r.gpa,
            size: r.size,
            kind: r.kind,
            buffer: r.buffer,
            memory: r.memory,
          })),
          hartState: ram.memory
            ? { offset: ram.size + vp.index * HART_STATE_BYTES, bytes: HART_STATE_BYTES }
            : undefined,
          boot: b,
          intercepts: [...p.intercepts],
          parent: { partitionId: p.parent, area: parent.area, queues: parent.queues },
          paravisor: i.paravisor,
          paravisorData: i.paravisorData,
          engine: i.engine,
        };
        // the spare thread started with the root partition (spareVp), or a new one
        const spare = this.spare;
        this.spare = undefined;
        let worker: HostThread;
        if (spare?.alive) {
          spare.postMessage({ vpInit: init }, [port2]);
          worker = spare;
        } else {
          void spare?.terminate();
          worker = this.spawner.spawn(this.vpWorker, init, [port2]);
        }
        vp.worker = worker;
        p.vps.set(vp.index, vp);
        this.serve({ partitionId: p.id, area: vp.area, port: port1 });
        this.watch(worker, p.id, counters, vp);
        // Metered from its first instruction: the tick grants its first credit before the thread starts.
        this.reschedule();
        return ok({ partitionId: p.id, vpIndex: vp.index, area: vp.area });
      },
      GrantPages: (c, i) => {
        const owner = this.partitions.get(i?.partitionId);
        if (!owner) return fail(HvStatus.INVALID_PARTITION_ID, `no partition ${i?.partitionId}`);
        // The owner grants its own pages; a parent may grant a child's pages only before the child runs (loading).
        const mayGrant = owner.id === c || (owner.parent === c && owner.vps.size === 0);
        if (!mayGrant) return fail(HvStatus.ACCESS_DENIED, "only the owner (or its parent before start) grants pages");
        const grantee = this.partitions.get(i.grantee);
        if (!grantee || grantee.id === owner.id) return fail(HvStatus.INVALID_PARTITION_ID, "grantee");
        if (!isPageRange(i.gpa, i.size))
          return fail(HvStatus.INVALID_ALIGNMENT, "gpa and size must be 4 KiB multiples");
        const region = owner.regions.find((r) => i.gpa >= r.gpa && i.gpa + i.size <= r.gpa + r.size);
        if (!region || i.size <= 0)
          return fail(HvStatus.INVALID_PARAMETER, "the range is not inside one mapped region");
        const id = this.nextGrant++;
        this.grants.set(id, {
          id,
          owner: owner.id,
          granter: c,
          grantee: grantee.id,
          gpa: i.gpa,
          size: i.size,
          writable: i.writable === true,
          revoked: new SharedArrayBuffer(4),
          region,
        });
        return ok({ grantId: id });
      },
      AcceptGrant: (c, i) => {
        const g = this.grants.get(i?.grantId);
        if (!g) return fail(HvStatus.INVALID_PARAMETER, `no grant ${i?.grantId}`);
        if (g.grantee !== c) return fail(HvStatus.ACCESS_DENIED, "the grant is not to the caller");
        const t: GrantTransfer = {
          id: g.id,
          owner: g.owner,
          gpa: g.gpa,
          size: g.size,
          writable: g.writable,
          buffer: g.region.buffer,
          bufferOffset: g.gpa - g.region.gpa,
          revoked: g.revoked,
        };
        return ok(t);
      },
      RevokeGrant: (c, i) => {
        const g = this.grants.get(i?.grantId);
        if (!g) return fail(HvStatus.INVALID_PARAMETER, `no grant ${i?.grantId}`);
        if (g.granter !== c && g.owner !== c && g.grantee !== c)
          return fail(HvStatus.ACCESS_DENIED, "neither owner, granter nor grantee");
        this.revoke(g);
        return ok({});
      },
      ConnectSint: (c, i) => {
        const target = this.partitions.get(i?.partitionId);
        if (!target) return fail(HvStatus.INVALID_PARTITION_ID, `no partition ${i?.partitionId}`);
        const caller = this.partitions.get(c);
        // Messages and events flow between a partition and its parent only.
        if (!caller || !(target.parent === c || caller.parent === target.id))
          return fail(HvStatus.ACCESS_DENIED, "connections join a parent and its child");
        if (!Number.isInteger(i.sint) || i.sint < 1 || i.sint > 15)
          return fail(HvStatus.INVALID_PARAMETER, "SINT 1..15 (SINT 0 carries intercepts)");
        const vp = target.vps.get(i.vpIndex);
        if (!vp) return fail(HvStatus.INVALID_VP_INDEX, `no VP ${i.vpIndex}`);
        return ok({ partitionId: target.id, vpIndex: vp.index, sint: i.sint, area: vp.area, queues: vp.queues });
      },
      StopVp: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        const vp = p.vps.get(i.vpIndex);
        if (!vp) return fail(HvStatus.INVALID_VP_INDEX, `no VP ${i.vpIndex}`);
        this.stopVp(vp);
        return ok({});
      },
      SetPartitionSchedule: (c, i) => {
        const p = this.child(c, i?.partitionId);
        if ("status" in p) return p;
        const { partitionId: _, ...rest } = i;
        const schedule = ScheduleSchema.safeParse(rest);
        if (!schedule.success) return fail(HvStatus.INVALID_PARAMETER, schedule.error.message);
        p.schedule = schedule.data;
        this.reschedule();
        return ok({});
      },
    };

  private child(caller: number, id: unknown): PartitionRecord | HvResult<never> {
    const p = typeof id === "number" ? this.partitions.get(id) : undefined;
    if (!p || p.id === ROOT_PARTITION_ID)
      return fail(HvStatus.INVALID_PARTITION_ID, `no child partition ${String(id)}`);
    if (p.parent !== caller) return fail(HvStatus.ACCESS_DENIED, `partition ${p.id} is not a child of ${caller}`);
    return p;
  }

  private revoke(g: GrantRecord): void {
    Atomics.store(new Int32Array(g.revoked), 0, 1);
    this.grants.delete(g.id);
  }

  private stopVp(vp: VpRecord): void {
    const a = new Int32Array(vp.area);
    Atomics.store(a, Vp.STOP, 1);
    ringDoorbell(a);
    Atomics.notify(a, Vp.SCHED_CREDIT);
  }

  private serve(caller: Caller): void {
    caller.port.onmessage = (e) => {
      const m = e.data as { id: number; name: SlowCallName; input: unknown };
      const known = (Hypercall as Record<string, { path: string }>)[m?.name];
      const result =
        known?.path === "slow"
          ? this.hypercall(caller.partitionId, m.name, m.input as never)
          : fail(HvStatus.INVALID_HYPERCALL_CODE, `no slow hypercall ${String(m?.name)}`);
      caller.port.postMessage({ id: m?.id, result });
      // A VP may be blocked in WFI or in an intercept wait: have it look at its port.
      const a = new Int32Array(caller.area);
      Atomics.store(a, Vp.HOST_MESSAGE, 1);
      ringDoorbell(a);
    };
  }

  private watch(worker: HostThread, partitionId: number, counters: SharedArrayBuffer, vp?: VpRecord): void {
    this.threads.push({ worker, counters: new Int32Array(counters) });
    worker.onError((e) => {
      for (const l of this.listeners) l({ kind: "thread-error", partitionId, error: String(e?.stack ?? e) });
    });
    worker.onExit((code) => {
      if (vp) {
        vp.exited = true;
        Atomics.store(new Int32Array(vp.area), Vp.STATE, VpState.STOPPED);
        this.reschedule();
        for (const l of this.listeners)
          l({ kind: "vp-exit", partitionId, vpIndex: vp.index, detail: `thread exit ${code}` });
      }
    });
  }
}

/**
 * A RAM region of `size` bytes as a shared WebAssembly.Memory (WebAssembly threads: its buffer is
 * a SharedArrayBuffer that crosses to every thread of the partition) with MAX_VPS hart-state
 * windows after RAM, `maximum` = `initial` as the translator imports it; undefined where the host
 * has no WebAssembly or refuses the memory (the region is then a plain SharedArrayBuffer).
 */
function ramMemory(size: number): WasmMemory | undefined {
  const api = (
    globalThis as {
      WebAssembly?: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory };
    }
  ).WebAssembly;
  if (api === undefined) return undefined;
  const pages = Math.ceil((size + MAX_VPS * HART_STATE_BYTES) / WASM_PAGE);
  try {
    const memory = new api.Memory({ initial: pages, maximum: pages, shared: true });
    return typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer ? memory : undefined;
  } catch {
    return undefined;
  }
}

function newPartition(id: number, name: string, parent: number, schedule: Schedule): PartitionRecord {
  return {
    id,
    name,
    parent,
    regions: [],
    vps: new Map(),
    intercepts: [],
    deleted: false,
    schedule,
    parkedMicros: 0,
    metered: false,
  };
}

function newVp(index: number): VpRecord {
  return {
    index,
    area: createVpArea(),
    queues: createSintQueues(),
    exited: false,
    tickCpu: 0,
    tickIdle: 0,
    tickParked: 0,
    tickSteal: 0,
    hostRun: 0,
    hostWait: 0,
  };
}

/** The VP thread's CPU time (µs), published as two words; re-read if the high word moved meanwhile. */
function readCpuMicros(a: Int32Array): number {
  for (;;) {
    const hi = Atomics.load(a, Vp.COUNTERS + VpCounter.cpuMicrosHi);
    const lo = Atomics.load(a, Vp.COUNTERS + VpCounter.cpuMicrosLo) >>> 0;
    if (Atomics.load(a, Vp.COUNTERS + VpCounter.cpuMicrosHi) === hi) return hi * 2 ** 32 + lo;
  }
}

/** Adds a period's credit to a VP, clamped to its ceiling (debt stands), and wakes it if parked. */
function credit(a: Int32Array, g: CreditGrant): void {
  if (!g.metered) {
    unmeter(a);
    return;
  }
  let old: number;
  let next: number;
  do {
    old = Atomics.load(a, Vp.SCHED_CREDIT);
    // The floor only keeps the word an Int32 (2^30 µs of debt is 18 minutes).
    next = Math.max(-(2 ** 30), Math.min(g.ceiling, old + g.grant));
  } while (Atomics.compareExchange(a, Vp.SCHED_CREDIT, old, next) !== old);
  Atomics.store(a, Vp.SCHED_METERED, 1);
  if (next > 0) Atomics.notify(a, Vp.SCHED_CREDIT);
}

/** The VP stops spending credit; a parked one resumes. */
function unmeter(a: Int32Array): void {
  if (Atomics.exchange(a, Vp.SCHED_METERED, 0) !== 0) Atomics.notify(a, Vp.SCHED_CREDIT);
}

function isPageRange(gpa: unknown, size: unknown): boolean {
  return (
    typeof gpa === "number" &&
    typeof size === "number" &&
    Number.isSafeInteger(gpa) &&
    Number.isSafeInteger(size) &&
    gpa >= 0 &&
    gpa % PAGE_SIZE === 0 &&
    size % PAGE_SIZE === 0
  );
}

export type { HypercallName };
