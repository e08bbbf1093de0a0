// The parent partition's host under Node: node:worker_threads for the VSP
// workers (this package's vsp-worker.js), host files and gzip for the guest's
// images, net-stack's user-mode NAT and switches for the network.
import { nodeThreads } from "@ringzero/hypervisor-micro/node";
import type { ParentHost } from "./host.js";
import { nodeImageIo } from "./images-node.js";
import { openNodeNet } from "./net-node.js";

/** A module of this package beside the running one (workers run the built JavaScript, also under vitest). */
export function builtSibling(name: string): URL {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith(".ts")) return new URL(`../dist/${name}`, here);
  return new URL(`./${name}`, here);
}

export function nodeParentHost(): ParentHost {
  return {
    threads: nodeThreads(),
    vspModule: builtSibling("vsp-worker.js"),
    images: nodeImageIo,
    openNet: openNodeNet,
  };
}
