// The micro VM as its user sees it (the same shape as hypervisor-monolithic's
// Vm): the microkernel runs on the calling thread, the parent partition in a
// thread that creates the child partition, whose VP runs in another. Threads
// come from the host (MicroVmHost): web Workers in a browser, worker_threads
// through the "./node" entry's createMicroVm.
import { parseSize } from "@ringzero/disk-formats";
import { type HostThread, type KernelStats, Microkernel, type ThreadSpawner } from "@ringzero/hypervisor-micro";
import { type VmConfigInput, VmConfigSchema } from "@ringzero/platform";
import type { BalloonStatus } from "@ringzero/vmbus/protocols";
import { type CustomVsp, parseCustomVsps } from "./custom.js";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";
import type { FromHost, ParentStats, PowerOffReason, ToHost } from "./protocol.js";

export interface MicroPowerOff {
  readonly status: number;
  readonly reason: PowerOffReason;
  readonly detail?: string;
}

/** Where the micro VM's threads come from. */
export interface MicroVmHost {
  readonly threads: ThreadSpawner;
  /** The parent partition's module: it calls `runParentThread` (with the host's ParentHost). */
  readonly parentModule: URL | string;
  /** The child VP's module: it calls hypervisor-micro's `runVpThread`. */
  readonly vpModule: URL | string;
  /**
   * Start the VP's thread with the parent's, so that its module loading and warm-up overlap
   * the parent's start (hypervisor-micro's MicrokernelOptions.spareVp; `vpModule` must call
   * `runVpThread`, which takes such a start). Default false.
   */
  readonly spareVp?: boolean;
  /**
   * A custom VSP's module given as a file path, as a URL (Node: a `file:` URL against the working
   * directory); absent: such modules must be URLs.
   */
  readonly resolveModule?: (path: string) => string;
}

export interface CreateMicroVmOptions {
  readonly consoleOut: (bytes: Uint8Array) => void;
  /**
   * URL of the child's paravisor module, as Hyper-V takes an OpenHCL image:
   * `paravisorModuleUrl()` of @ringzero/partition-child for ringzero's own.
   */
  readonly paravisor: string;
  /** Stop the guest after this many instructions (power-off reason "instruction-limit"). */
  readonly maxInstructions?: number;
  /** What executes the guest's code in the child's VP (default RINGZERO_ENGINE when it names one, else cpu-core's default, the translator). */
  readonly engine?: "interpreter" | "translator";
  /** Time from the child VP's instructions (instret / 10), not the host: hypervisor-micro's VpBoot.deterministic. */
  readonly deterministic?: boolean;
  /**
   * The child's RAM: "wasm" (default) a shared WebAssembly.Memory, so the translator runs its
   * WebAssembly back end; "buffer" a plain SharedArrayBuffer (its JavaScript back end), for
   * comparison. hypervisor-micro's MicrokernelOptions.ramMemory.
   */
  readonly ramMemory?: "wasm" | "buffer";
  /** The threads and their modules (the "./node" entry's createMicroVm passes Node's). */
  readonly host?: MicroVmHost;
  /** Drives given as Blobs (a browser's Files), by the path the config's drive names (read by slices, writes in memory). */
  readonly files?: Readonly<Record<string, Blob>>;
  /**
   * VSPs of the user's own: each is offered to the child as a VMBus channel of
   * its `interfaceId`, served by its `vsp.module` in a worker of the parent
   * (restarted like the built-in VSPs), and presented to the guest by its
   * `vsc.module` in the child's paravisor, in the next free virtio-mmio slot.
   * Node only so far (the "./node" entry's createMicroVm): a browser's threads are not tested with them.
   */
  readonly vsps?: readonly CustomVsp[];
}

/**
 * What `createMicroVm` takes: a VmConfig whose kernel and initrd may also be
 * the file's bytes and whose memory may be a size string ("256M", "1.5G";
 * @ringzero/disk-formats' `parseSize`), as hypervisor-monolithic's createVm.
 */
export type CreateMicroVmConfig = Omit<VmConfigInput, "kernel" | "initrd" | "memory"> & {
  kernel: string | Uint8Array;
  initrd?: string | Uint8Array;
  memory?: number | string;
};

export interface MicroVmStats {
  readonly kernel: KernelStats;
  /** Counters of the child's VP 0 (instructions, exits by path, idle and intercept time). */
  readonly vp: Record<string, number>;
  readonly parent: ParentStats;
}

export class MicroVm {
  private result: Promise<MicroPowerOff>;
  private resolveResult!: (r: MicroPowerOff) => void;
  private statsWaiters = new Map<number, (s: ParentStats) => void>();
  private vspWaiters = new Map<number, (r: { ok: boolean; message: string }) => void>();
  private balloonWaiters = new Map<number, (r: { status?: BalloonStatus; error?: string }) => void>();
  private nextStats = 1;
  private started = false;
  private finalStats: MicroVmStats | undefined;
  private finished = false;

  constructor(
    readonly kernel: Microkernel,
    private readonly parent: HostThread,
    private readonly childId: () => number,
  ) {
    this.result = new Promise((r) => {
      this.resolveResult = r;
    });
  }

  /** @internal wired by createMicroVm */
  onParentMessage(m: ToHost): void {
    if (m.kind === "poweroff") this.finish({ status: m.status, reason: m.reason, detail: m.detail });
    else if (m.kind === "stats") {
      this.statsWaiters.get(m.id)?.(m.stats);
      this.statsWaiters.delete(m.id);
    } else if (m.kind === "vsp") {
      this.vspWaiters.get(m.id)?.({ ok: m.ok, message: m.message });
      this.vspWaiters.delete(m.id);
    } else if (m.kind === "balloon") {
      this.balloonWaiters.get(m.id)?.({ status: m.status, error: m.error });
      this.balloonWaiters.delete(m.id);
    }
  }

  /** @internal */
  finish(r: MicroPowerOff): void {
    if (this.finished) return;
    this.finished = true;
    for (const w of this.vspWaiters.values()) w({ ok: false, message: "the VM ended" });
    this.vspWaiters.clear();
    for (const w of this.balloonWaiters.values()) w({ error: "the VM ended" });
    this.balloonWaiters.clear();
    this.resolveResult(r);
  }

  private post(m: FromHost): void {
    this.parent.postMessage(m);
  }

  /** Runs the guest; resolves when it powers off or stop() is called. */
  async start(): Promise<MicroPowerOff> {
    if (this.started) throw new Error("MicroVm.start() twice");
    this.started = true;
    this.post({ kind: "start" });
    const r = await this.result;
    // The last figures, while the parent still answers; then every thread ends.
    this.finalStats = await this.stats();
    await this.kernel.shutdown();
    return r;
  }

  stop(): void {
    if (!this.started) {
      this.finish({ status: 0, reason: "stopped" });
      void this.kernel.shutdown();
      return;
    }
    this.post({ kind: "stop" });
  }

  /**
   * Fault injection and servicing of the parent's device back ends: "kill"
   * terminates the VSP's worker wherever it is (requests in flight and all),
   * "restart" lets it answer what it holds first. Either way the parent
   * rescinds the channel, starts a new worker and offers the device again;
   * the child re-issues what was in flight. `name`: storage, storage0..,
   * 9p, 9p0.., network, console, a VSP of your own by its name (or custom:
   * all of them). Resolves once the successor is running.
   */
  vsp(action: "kill" | "restart", name: string): Promise<{ ok: boolean; message: string }> {
    if (!this.started || this.finished) return Promise.resolve({ ok: false, message: "the VM is not running" });
    const id = this.nextStats++;
    return new Promise((resolve) => {
      this.vspWaiters.set(id, resolve);
      this.post({ kind: "vsp", id, action, name });
    });
  }

  /**
   * The memory balloon (run with `balloon: true`): sets its target to `pages`
   * 4 KiB pages when given, and reports its state as the paravisor sees it.
   * The request travels host -> parent partition -> VMBus control channel ->
   * the child's paravisor, which owns the virtio-balloon (Hyper-V's dynamic
   * memory path). Resolves with `error` when there is no balloon or it does not answer.
   */
  balloon(pages?: number): Promise<{ status?: BalloonStatus; error?: string }> {
    if (!this.started || this.finished) return Promise.resolve({ error: "the VM is not running" });
    if (pages !== undefined && (!Number.isInteger(pages) || pages < 0 || pages > 0xffff_ffff))
      return Promise.resolve({ error: `balloon target ${pages} is not a page count` });
    const id = this.nextStats++;
    return new Promise((resolve) => {
      this.balloonWaiters.set(id, resolve);
      this.post({ kind: "balloon", id, pages });
    });
  }

  /**
   * Ends the VM now without asking the parent partition (which may no longer
   * answer): the microkernel terminates every thread; `start()` resolves with
   * status 1, reason "stopped", detail "killed". `stop()` is the polite form.
   */
  async kill(): Promise<void> {
    // The figures as they are (1 s at most if the parent does not answer), then every thread ends.
    if (!this.finished && this.started) this.finalStats = await this.stats();
    this.finish({ status: 1, reason: "stopped", detail: "killed" });
    await this.kernel.shutdown();
  }

  sendInput(bytes: Uint8Array): void {
    this.post({ kind: "input", bytes });
  }

  /** Statistics now (or, once the VM ended, as it ended). */
  async stats(): Promise<MicroVmStats> {
    if (this.finalStats) return this.finalStats;
    const id = this.nextStats++;
    const parent = await new Promise<ParentStats>((resolve) => {
      // A parent that does not answer (crashed, shut down) gives empty figures, not a hang.
      const timer = setTimeout(() => resolve({ intercepts: {}, badIntercepts: 0, uart: {} }), 1000);
      this.statsWaiters.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.post({ kind: "stats", id });
    });
    return { kernel: this.kernel.stats(), vp: this.kernel.vpCounters(this.childId(), 0) ?? {}, parent };
  }
}

/**
 * Boots the microkernel and its parent partition, which creates the child
 * partition and loads the guest; resolves once the guest is loaded (config
 * and image errors surface here as MicroVmError), before it runs.
 */
export async function createMicroVm(config: CreateMicroVmConfig, options: CreateMicroVmOptions): Promise<MicroVm> {
  // Bytes stand in the schema as a name for messages; a size string becomes bytes (as createVm).
  const kernelBytes = config.kernel instanceof Uint8Array ? config.kernel : undefined;
  const initrdBytes = config.initrd instanceof Uint8Array ? config.initrd : undefined;
  let memory = config.memory;
  if (typeof memory === "string") {
    const bytes = parseSize(memory);
    if (bytes === null)
      throw new MicroVmError(
        MicroVmErrorCode.CONFIG_INVALID,
        { path: "memory" },
        `memory: invalid size "${memory}" (try 256M)`,
      );
    memory = bytes;
  }
  const parsed = VmConfigSchema.safeParse({
    ...config,
    memory,
    kernel: kernelBytes ? "(kernel bytes)" : config.kernel,
    initrd: initrdBytes ? "(initrd bytes)" : config.initrd,
  });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new MicroVmError(
      MicroVmErrorCode.CONFIG_INVALID,
      { path: i.path.join(".") },
      `${i.path.join(".")}: ${i.message}`,
    );
  }
  const host = options.host;
  if (!host)
    throw new MicroVmError(
      MicroVmErrorCode.CONFIG_INVALID,
      { path: "host" },
      "no host for the VM's threads: in Node import createMicroVm from @ringzero/partition-parent/node",
    );
  const vsps = parseCustomVsps(options.vsps, host.resolveModule);
  const kernel = new Microkernel({
    threads: host.threads,
    vpWorker: new URL(host.vpModule),
    ramMemory: options.ramMemory,
    spareVp: host.spareVp === true,
  });
  const paravisor = options.paravisor;
  const worker = kernel.startRoot(new URL(host.parentModule), {
    config: parsed.data,
    kernelBytes,
    initrdBytes,
    paravisor,
    maxInstructions: options.maxInstructions,
    deterministic: options.deterministic,
    engine: options.engine,
    files: options.files,
    vsps,
  });
  const vm = new MicroVm(kernel, worker, () => 2);
  await new Promise<void>((resolve, reject) => {
    worker.onMessage((message) => {
      const m = message as ToHost;
      if (m.kind === "ready") resolve();
      else if (m.kind === "error") reject(new MicroVmError(m.code as MicroVmErrorCode, m.context, m.message));
      else if (m.kind === "console") options.consoleOut(m.bytes);
      else vm.onParentMessage(m);
    });
    worker.onError((e) => {
      const err = new MicroVmError(MicroVmErrorCode.PARENT_CRASHED, {}, `the parent partition crashed: ${e.message}`);
      reject(err);
      vm.finish({ status: 1, reason: "error", detail: err.message });
    });
    worker.onExit((code) => {
      reject(new MicroVmError(MicroVmErrorCode.PARENT_CRASHED, { code }, `the parent partition exited (${code})`));
      vm.finish({ status: 1, reason: "error", detail: `the parent partition exited (${code})` });
    });
  }).catch(async (e) => {
    await kernel.shutdown();
    throw e;
  });
  return vm;
}
