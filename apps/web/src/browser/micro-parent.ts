// The parent partition's Worker under the microkernel (the page's VM Worker
// is the kernel): partition-parent's runParentThread on web Workers; its VSPs
// run micro-vsp.js. No host files, gzip or network here: the guest comes as
// bytes, a disk as a Blob or URL.
import { webThreadSelf, webThreads } from "@ringzero/hypervisor-micro";
import { runParentThread } from "@ringzero/partition-parent";

await runParentThread(await webThreadSelf(), {
  threads: webThreads(),
  vspModule: new URL("./micro-vsp.js", import.meta.url),
});
