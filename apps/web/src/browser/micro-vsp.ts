// A VSP's Worker (storage, console): partition-parent's runVspThread with no
// host files: a drive is the picked File (by slices) or a URL (by Range
// requests), its writes kept in memory.
import { webThreadSelf } from "@ringzero/hypervisor-micro";
import { runVspThread } from "@ringzero/partition-parent";

runVspThread(await webThreadSelf());
