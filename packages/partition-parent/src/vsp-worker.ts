// Entry of a VSP's worker thread under Node: runVspThread with host files
// (disk-formats' NodeFileHost) and 9p over a host directory (virtio's NinePServer).
import { NodeFileHost } from "@ringzero/disk-formats/node";
import { nodeThreadSelf } from "@ringzero/hypervisor-micro/node";
import { NinePServer } from "@ringzero/virtio/node";
import { runVspThread } from "./vsp-thread.js";

runVspThread(nodeThreadSelf(), {
  files: () => new NodeFileHost(),
  ninePServer: (s) => new NinePServer({ root: s.path, readOnly: s.readOnly, maxMsize: s.maxMsize }),
});
