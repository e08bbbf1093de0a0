// A VP's thread, on any host: the microkernel's per-VP half (VpHost) and,
// above it, the paravisor module the partition's creator named at CreateVp.
// vp-worker.ts starts it in a Node worker thread; in a browser, a Worker
// bundle calls `runVpThread(await webThreadSelf())`.
import { warmUp } from "@ringzero/cpu-core";
import type { CpuClock } from "./cpu-clock.js";
import type { VpThreadInit } from "./kernel.js";
import { SPARE_VP_START, type ThreadSelf } from "./thread.js";

import { type ParavisorFactory, VpHost } from "./vp.js";

export interface VpThreadOptions {
  /** The thread's CPU clock for the scheduler (default: wall time minus blocked time). */
  readonly cpuClock?: CpuClock;
  /**
   * Loads the paravisor module CreateVp named (default: `import(url)`). A
   * bundle that carries the paravisor itself returns its factory here.
   */
  readonly loadParavisor?: (url: string) => Promise<ParavisorFactory>;
}

async function importParavisor(url: string): Promise<ParavisorFactory> {
  const mod = (await import(/* @vite-ignore */ url)) as { createParavisor?: ParavisorFactory };
  if (typeof mod.createParavisor !== "function") throw new Error(`${url} exports no createParavisor`);
  return mod.createParavisor;
}

function isSpareStart(data: unknown): boolean {
  // (a structured clone of SPARE_VP_START: compared by its field)
  return (data as { spareVp?: unknown } | null)?.spareVp === SPARE_VP_START.spareVp;
}

/** A spare thread's VP: warm up, then the first message's vpInit. */
function spareInit(self: ThreadSelf): Promise<VpThreadInit> {
  const got = new Promise<VpThreadInit>((resolve) => {
    let done = false;
    self.onMessage((m) => {
      const init = (m as { vpInit?: VpThreadInit } | null)?.vpInit;
      if (done || init === undefined) return;
      done = true;
      resolve(init);
    });
  });
  // (the message is queued until the warm-up ends: onMessage delivers what came before)
  warmUp();
  return got;
}

/**
 * Runs the VP of `self.data` (a VpThreadInit; SPARE_VP_START: the one its first message names)
 * until it stops, then ends the thread.
 */
export async function runVpThread(self: ThreadSelf, options: VpThreadOptions = {}): Promise<void> {
  const init = isSpareStart(self.data) ? await spareInit(self) : (self.data as VpThreadInit);
  const host = new VpHost(init, options.cpuClock);
  const factory = init.paravisor ? await (options.loadParavisor ?? importParavisor)(init.paravisor) : undefined;
  await host.loadParavisor(factory);
  await host.run();
  self.exit(0);
}
