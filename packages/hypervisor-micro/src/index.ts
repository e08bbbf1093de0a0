// @ringzero/hypervisor-micro: the Hyper-V-style microkernel. Memory, CPU time,
// hypercalls, SynIC-style ports. Nothing else (ARCHITECTURE.md §2, §4).
// Browser-safe: the Microkernel's threads are web Workers here (thread.ts);
// "./node" has the same Microkernel on node:worker_threads.
export {
  CHANNEL_MESSAGE_TYPE,
  HvClient,
  type SharedSintConnection,
  SintConnection,
  SintTransport,
  VpControl,
} from "./client.js";
export { type CpuClock, WallCpuClock } from "./cpu-clock.js";
export {
  HYPERCALL_NAMES,
  Hypercall,
  type HypercallName,
  type HypercallSpec,
  ROOT_PARTITION_ID,
  type SintConnectionTransfer,
  type SlowCallName,
  type SlowCalls,
  type VpBoot,
  type VpControlTransfer,
} from "./hypercalls.js";
export {
  decodeIntercept,
  encodeIntercept,
  type HaltIntercept,
  INTERCEPT_SINT,
  type Intercept,
  InterceptType,
  type MmioIntercept,
  type ResetIntercept,
  type SbiIntercept,
} from "./intercept.js";
export {
  type HvThreadInit,
  type KernelEvent,
  type KernelPort,
  type KernelStats,
  Microkernel,
  type MicrokernelOptions,
  type PartitionCpuStats,
  type SchedulerStats,
  type VpThreadInit,
} from "./kernel.js";
export { GrantedMemory, type GrantTransfer, type MemoryKind, PAGE_SIZE, type RegionInfo } from "./memory.js";
export {
  DEFAULT_WEIGHT,
  MAX_WEIGHT,
  SCHED_PERIOD_MS,
  type Schedule,
  type ScheduleInput,
  ScheduleSchema,
} from "./sched.js";
export {
  fail,
  type HvResult,
  HvStatus,
  type HvStatusCode,
  type HvStatusName,
  HypercallError,
  hvStatusName,
  ok,
  unwrap,
} from "./status.js";
export {
  type HvMessage,
  MESSAGE_PAYLOAD_MAX,
  MessageQueue,
  PORT_BUFFERS,
  SINT_COUNT,
  VpCounter,
  type VpCounterName,
  VpState,
} from "./synic.js";
export {
  type HostThread,
  SPARE_VP_START,
  type ThreadSelf,
  type ThreadSpawner,
  type Transferable,
  webThreadSelf,
  webThreads,
} from "./thread.js";
export type { Paravisor, ParavisorContext, ParavisorFactory } from "./vp.js";
export { runVpThread, type VpThreadOptions } from "./vp-thread.js";
