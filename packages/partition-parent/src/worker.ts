// Entry of the parent partition's worker thread under Node (the Node entry's
// createMicroVm starts it): runParentThread with Node's host.
import { nodeThreadSelf } from "@ringzero/hypervisor-micro/node";
import { nodeParentHost } from "./node-host.js";
import { runParentThread } from "./parent-thread.js";

await runParentThread(nodeThreadSelf(), nodeParentHost());
