// Entry of a VSP's worker thread under Node: runVspThread with host files
// (disk-formats' NodeFileHost) and 9p over a host directory (virtio's NinePServer).
// Image I/O is blocking, on this thread (it has nothing else to do): a write is
// done when its request completes and none outlives the worker, so a successor
// opens the image as soon as this worker has exited (vsp-host.ts onExit).
import { NodeFileHost } from "@ringzero/disk-formats/node";
import { nodeThreadSelf } from "@ringzero/hypervisor-micro/node";
import { NinePServer } from "@ringzero/virtio/node";
import { runVspThread } from "./vsp-thread.js";

runVspThread(nodeThreadSelf(), {
  files: () => new NodeFileHost({ blocking: true }),
  ninePServer: (s) => new NinePServer({ root: s.path, readOnly: s.readOnly, maxMsize: s.maxMsize }),
});
