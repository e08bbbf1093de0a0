export {
  type CreateVmConfig,
  type CreateVmOptions,
  createVm,
  DEFAULT_APPEND,
  VIRTIO_CONSOLE_APPEND,
  VmError,
  VmErrorCode,
} from "./create.js";
export { type AttachOptions, attachDevices, type VmDevices } from "./devices.js";
export { type BoardOptions, type LinuxInput, type PowerOff, Vm, type VmState, type VmStats } from "./vm.js";
