// One VM run under either hypervisor, in this process, through the public
// APIs (`createVm`, `createMicroVm`), with the timings and counters compare
// needs in one shape.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createVm } from "@ringzero/hypervisor-monolithic/node";
import { paravisorModuleUrl } from "@ringzero/partition-child";
import { createMicroVm } from "@ringzero/partition-parent/node";
import type { VmConfigInput } from "@ringzero/platform";
import type { Hypervisor } from "./measures.js";

export interface RunStats {
  readonly instructions: number;
  /** vCPU busy seconds: guest code plus exit handling, not WFI sleep. */
  readonly runSeconds: number;
  readonly idleSeconds: number;
  /** Exits by cpu-core exit kind (mono counts all kinds; micro only wfi and budget). */
  readonly exitsByKind: Record<string, number>;
  /** Exits by where they were handled. */
  readonly exitsByPath: Record<string, number>;
  readonly totalExits: number;
  readonly sbiCalls?: number;
  readonly hypercalls?: Record<string, number>;
  readonly interceptWaitSeconds?: number;
  /** micro: VMBus event signals both ways, and requests the storage VSPs served. */
  readonly vmbus?: { readonly signals: number; readonly storageRequests: number };
}

export interface VmRun {
  readonly status: number;
  readonly reason: string;
  readonly detail?: string;
  /** ms from the create call until the VM was ready to start. */
  readonly createMs: number;
  /** ms from the create call to the first console byte on the host (undefined: none came). */
  readonly firstOutputMs?: number;
  /** ms from the create call until start() resolved. */
  readonly wallMs: number;
  /** Peak host RSS during the run minus RSS before create, bytes. */
  readonly rssDelta: number;
  readonly stats: RunStats;
  /** True when the run was ended by the timeout. */
  readonly timedOut: boolean;
}

export interface VmControl {
  /** Types text on the guest's console. */
  send(text: string): void;
  /** Ends the run now (start() resolves with reason "stopped"). */
  stop(): void;
}

export interface Console {
  /** Called once the VM is created, before it starts. */
  attach?: (control: VmControl) => void;
  /** Guest console output, as it comes. */
  onOutput?: (bytes: Uint8Array) => void;
}

let gc: (() => void) | undefined;
/** A full GC before the RSS baseline, so garbage of the previous run does not count (best effort). */
function collect(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as () => void;
    } catch {
      gc = () => {};
    }
  }
  gc();
}

const MICRO_STOP_GRACE_MS = 5000;

/** Boots `config` under `hv`, runs it to power-off (or `timeoutMs`, then stops it), and measures. */
export async function runVm(
  hv: Hypervisor,
  config: VmConfigInput,
  timeoutMs: number,
  con: Console = {},
): Promise<VmRun> {
  collect();
  const rss0 = process.memoryUsage.rss();
  let rssPeak = rss0;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }, 5);
  const t0 = performance.now();
  let firstOutputMs: number | undefined;
  const consoleOut = (bytes: Uint8Array) => {
    if (firstOutputMs === undefined && bytes.length > 0) firstOutputMs = performance.now() - t0;
    con.onOutput?.(bytes);
  };
  let timedOut = false;
  try {
    if (hv === "monolithic") {
      const vm = await createVm(config, { consoleOut });
      const createMs = performance.now() - t0;
      con.attach?.({ send: (text) => vm.sendInput(Buffer.from(text)), stop: () => vm.stop() });
      const timer = setTimeout(() => {
        timedOut = true;
        vm.stop();
      }, timeoutMs);
      const r = await vm.start().finally(() => clearTimeout(timer));
      const wallMs = performance.now() - t0;
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
      const s = vm.stats();
      const total = Object.values(s.exits).reduce((a, b) => a + b, 0);
      return {
        status: r.status,
        reason: r.reason,
        detail: r.detail,
        createMs,
        firstOutputMs,
        wallMs,
        rssDelta: rssPeak - rss0,
        timedOut,
        stats: {
          instructions: s.instructions,
          runSeconds: s.runSeconds,
          idleSeconds: s.idleSeconds,
          exitsByKind: { ...s.exits },
          exitsByPath: { inline: total },
          totalExits: total,
          sbiCalls: s.sbiCalls,
        },
      };
    }
    const vm = await createMicroVm(config, { consoleOut, paravisor: paravisorModuleUrl() });
    const createMs = performance.now() - t0;
    let hard: NodeJS.Timeout | undefined;
    const stop = () => {
      if (hard) return;
      vm.stop();
      // A parent partition that no longer answers: end every thread.
      hard = setTimeout(() => void vm.kill(), MICRO_STOP_GRACE_MS);
    };
    con.attach?.({ send: (text) => vm.sendInput(Buffer.from(text)), stop });
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    const r = await vm.start().finally(() => {
      clearTimeout(timer);
      clearTimeout(hard);
    });
    const wallMs = performance.now() - t0;
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    const s = await vm.stats();
    const v = s.vp;
    const n = (k: string) => v[k] ?? 0;
    const paths = {
      microkernel: n("exitsMicrokernel"),
      paravisor: n("exitsParavisor"),
      intercept: n("exitsIntercept"),
    };
    const kinds = { wfi: n("exitsWfi"), budget: n("exitsBudget") };
    return {
      status: r.status,
      reason: r.reason,
      detail: r.detail,
      createMs,
      firstOutputMs,
      wallMs,
      rssDelta: rssPeak - rss0,
      timedOut,
      stats: {
        instructions: n("instructions"),
        runSeconds: n("runMicros") / 1e6,
        idleSeconds: n("idleMicros") / 1e6,
        exitsByKind: kinds,
        exitsByPath: paths,
        totalExits: paths.microkernel + paths.paravisor + paths.intercept + kinds.wfi + kinds.budget,
        hypercalls: { ...s.kernel.hypercalls },
        interceptWaitSeconds: n("interceptWaitMicros") / 1e6,
        vmbus: vmbusCounts(s.parent.devices),
      },
    };
  } finally {
    clearInterval(sampler);
  }
}

/** Signals and storage requests from the parent's device counters (undefined without a VMBus). */
function vmbusCounts(devices: Record<string, unknown> | undefined): RunStats["vmbus"] {
  const bus = devices?.vmbus as Record<string, number> | undefined;
  if (!bus) return undefined;
  let storageRequests = 0;
  for (const [name, c] of Object.entries(devices ?? {}))
    if (/^storage\d+$/.test(name)) storageRequests += (c as Record<string, number>).requests ?? 0;
  return { signals: (bus.signalsIn ?? 0) + (bus.signalsOut ?? 0), storageRequests };
}
