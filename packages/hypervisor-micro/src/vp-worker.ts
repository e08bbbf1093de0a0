// Entry of a VP's worker thread under Node: runVpThread with the thread's
// real CPU time from /proc (the Node entry's Microkernel starts this module).

import { ThreadCpuClock } from "./thread-clock.js";
import { nodeThreadSelf } from "./thread-node.js";
import { runVpThread } from "./vp-thread.js";

await runVpThread(nodeThreadSelf(), { cpuClock: new ThreadCpuClock() });
