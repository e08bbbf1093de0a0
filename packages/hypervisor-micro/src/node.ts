// Node entry of @ringzero/hypervisor-micro: everything of the main entry, with
// a Microkernel whose partitions and VPs run in node:worker_threads (and whose
// VPs read their thread's CPU time from /proc), and the Node thread helpers.
import { type MicrokernelOptions, Microkernel as PortableMicrokernel } from "./kernel.js";
import { nodeThreads } from "./thread-node.js";

export * from "./index.js";
export { ThreadCpuClock } from "./thread-clock.js";
export { builtCodeExecArgv, nodeThreadSelf, nodeThreads } from "./thread-node.js";

function builtSibling(name: string): URL {
  const here = new URL(import.meta.url);
  // Under vitest the kernel runs from src/*.ts; worker threads need the built JavaScript.
  if (here.pathname.endsWith(".ts")) return new URL(`../dist/${name}`, here);
  return new URL(`./${name}`, here);
}

/** The built vp-worker.js of this package: the VP module the Node Microkernel uses by default. */
export function vpWorkerModuleUrl(): URL {
  return builtSibling("vp-worker.js");
}

/** The microkernel on node:worker_threads; its VP threads run this package's vp-worker.js unless `vpWorker` says otherwise. */
export class Microkernel extends PortableMicrokernel {
  constructor(options: MicrokernelOptions = {}) {
    super({
      ...options,
      threads: options.threads ?? nodeThreads(),
      vpWorker: options.vpWorker ?? vpWorkerModuleUrl(),
      // this package's vp-worker.js takes a spare start (vp-thread.ts); another module may not
      spareVp: options.spareVp ?? options.vpWorker === undefined,
    });
  }
}
