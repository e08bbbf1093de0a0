// Node entry of @ringzero/partition-parent: everything of the main entry, with
// a createMicroVm whose microkernel, partitions and VSPs run in
// node:worker_threads, whose guest images and drives may be host files, and
// whose network is net-stack's user-mode NAT or a switch.
import { pathToFileURL } from "node:url";
import { builtCodeExecArgv, nodeThreads, vpWorkerModuleUrl } from "@ringzero/hypervisor-micro/node";
import { builtSibling } from "./node-host.js";
import {
  type CreateMicroVmConfig,
  type CreateMicroVmOptions,
  type MicroVm,
  type MicroVmHost,
  createMicroVm as portableCreateMicroVm,
} from "./vm.js";

export { nodeImageIo } from "./images-node.js";
export * from "./index.js";
export { openNodeNet } from "./net-node.js";
export { nodeParentHost } from "./node-host.js";

/**
 * Node's MicroVmHost: worker_threads running this package's worker.js and hypervisor-micro's
 * vp-worker.js; a custom VSP's module path is a file against the working directory.
 */
export function nodeMicroVmHost(): MicroVmHost {
  return {
    threads: nodeThreads({ execArgv: builtCodeExecArgv() }),
    parentModule: builtSibling("worker.js"),
    vpModule: vpWorkerModuleUrl(),
    spareVp: true,
    resolveModule: (path) => pathToFileURL(path).href,
  };
}

/**
 * createMicroVm under Node: `options.host` defaults to nodeMicroVmHost(), the
 * engine to RINGZERO_ENGINE when it names one, ramMemory to RINGZERO_MICRO_RAM
 * when it names one ("buffer": the translator's JavaScript back end, for comparison).
 */
export function createMicroVm(config: CreateMicroVmConfig, options: CreateMicroVmOptions): Promise<MicroVm> {
  const env = process.env.RINGZERO_ENGINE;
  const ram = process.env.RINGZERO_MICRO_RAM;
  return portableCreateMicroVm(config, {
    ...options,
    host: options.host ?? nodeMicroVmHost(),
    engine: options.engine ?? (env === "interpreter" || env === "translator" ? env : undefined),
    ramMemory: options.ramMemory ?? (ram === "wasm" || ram === "buffer" ? ram : undefined),
  });
}
