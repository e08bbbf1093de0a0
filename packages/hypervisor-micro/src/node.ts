// Node entry of @ringzero/hypervisor-micro: everything of the main entry, plus
// the Microkernel, whose VPs and partitions run in node:worker_threads. The
// name was exported from the main entry before; only the import path changes.
export * from "./index.js";
export { Microkernel } from "./kernel.js";
