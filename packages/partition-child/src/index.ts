// @ringzero/partition-child: what runs in a child partition's VP thread above
// the guest — an OpenHCL-style paravisor whose virtio-mmio devices are VMBus
// clients of the parent's VSPs.

export type { CreateVsc, VscContext, VscInstance } from "./custom.js";
export { paravisorModuleUrl } from "./module.js";
export {
  createParavisor,
  type ParavisorData,
  ParavisorDataSchema,
  SETUP_SINT,
  SetupMessage,
  VMBUS_SINT,
} from "./paravisor.js";
export { ConsoleVsc, NetworkVsc, Reissuing, StorageError, type StorageInfo, StorageVsc } from "./vsc.js";
