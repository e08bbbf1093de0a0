// A VP's thread, on any host: the microkernel's per-VP half (VpHost) and,
// above it, the paravisor module the partition's creator named at CreateVp.
// vp-worker.ts starts it in a Node worker thread; in a browser, a Worker
// bundle calls `runVpThread(await webThreadSelf())`.
import type { CpuClock } from "./cpu-clock.js";
import type { VpThreadInit } from "./kernel.js";
import type { ThreadSelf } from "./thread.js";
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

/** Runs the VP of `self.data` (a VpThreadInit) until it stops, then ends the thread. */
export async function runVpThread(self: ThreadSelf, options: VpThreadOptions = {}): Promise<void> {
  const init = self.data as VpThreadInit;
  const host = new VpHost(init, options.cpuClock);
  const factory = init.paravisor ? await (options.loadParavisor ?? importParavisor)(init.paravisor) : undefined;
  await host.loadParavisor(factory);
  await host.run();
  self.exit(0);
}
