// @ringzero/partition-parent: the privileged partition of the micro VM and
// the host-side API that starts it (createMicroVm).

export type { BalloonStatus } from "@ringzero/vmbus/protocols";
export {
  type CreateVsp,
  type CustomVsp,
  CustomVspSchema,
  type VspContext,
  type VspService,
} from "./custom.js";
export { MicroVmError, MicroVmErrorCode } from "./errors.js";
export type { ParentStats, PowerOffReason } from "./protocol.js";
export {
  type CreateMicroVmConfig,
  type CreateMicroVmOptions,
  createMicroVm,
  type MicroPowerOff,
  MicroVm,
  type MicroVmStats,
} from "./vm.js";
export { viewsOfRanges } from "./vsp.js";
