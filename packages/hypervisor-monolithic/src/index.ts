// Public surface of @ringzero/hypervisor-monolithic: browser-safe. The Vm is
// built from bytes (kernel, initrd) and devices the caller attaches;
// createVm and attachDevices, which open host files and sockets for a
// VmConfig, are at "./node".
export { DEFAULT_APPEND, VIRTIO_CONSOLE_APPEND } from "./append.js";
export type { CreateVmConfig, CreateVmOptions } from "./create.js";
export type { AttachOptions, VmDevices } from "./devices.js";
export { VmError, VmErrorCode } from "./errors.js";
export { type BoardOptions, type LinuxInput, type PowerOff, Vm, type VmState, type VmStats } from "./vm.js";
