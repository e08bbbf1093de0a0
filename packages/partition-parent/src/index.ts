// @ringzero/partition-parent: the privileged partition of the micro VM and
// the host-side API that starts it (createMicroVm). Browser-safe: threads,
// files and the network come from the host; "./node" has Node's.

export type { BalloonStatus } from "@ringzero/vmbus/protocols";
export {
  type CreateVsp,
  type CustomVsp,
  CustomVspSchema,
  type VspContext,
  type VspService,
} from "./custom.js";
export { MicroVmError, MicroVmErrorCode } from "./errors.js";
export type { Opening, ParentHost } from "./host.js";
export type { GuestImageIo } from "./images.js";
export { runParentThread } from "./parent-thread.js";
export type { ParentStats, PowerOffReason } from "./protocol.js";
export {
  type CreateMicroVmConfig,
  type CreateMicroVmOptions,
  createMicroVm,
  type MicroPowerOff,
  MicroVm,
  type MicroVmHost,
  type MicroVmStats,
} from "./vm.js";
export { viewsOfRanges } from "./vsp.js";
export { runVspThread, type VspThreadHost } from "./vsp-thread.js";
