// Entry of a VP's worker thread: the microkernel's per-VP half (VpHost) and,
// above it, the paravisor module the partition's creator named at CreateVp.
import { workerData } from "node:worker_threads";
import type { VpThreadInit } from "./kernel.js";
import { type ParavisorFactory, VpHost } from "./vp.js";

const init = workerData as VpThreadInit;
const host = new VpHost(init);
let factory: ParavisorFactory | undefined;
if (init.paravisor) {
  const mod = (await import(init.paravisor)) as { createParavisor?: ParavisorFactory };
  if (typeof mod.createParavisor !== "function") throw new Error(`${init.paravisor} exports no createParavisor`);
  factory = mod.createParavisor;
}
await host.loadParavisor(factory);
await host.run();
process.exit(0);
