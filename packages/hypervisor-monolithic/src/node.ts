// Node entry of @ringzero/hypervisor-monolithic: everything of the main
// entry, plus createVm and attachDevices (they read kernel and image files and
// open sockets). These names were exported from the main entry before; only
// the import path changes.

export { type CreateVmConfig, type CreateVmOptions, createVm } from "./create.js";
export { type AttachOptions, attachDevices, type VmDevices } from "./devices.js";
export * from "./index.js";
