// @ringzero/virtio: hypervisor-agnostic virtio 1.2 devices.

export { type BlockBackend, FileBlockBackend, MemoryBlockBackend } from "./backends/block.js";
export {
  featureBit,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtioDeviceId,
  VirtioFeature,
  VirtioInterrupt,
  VirtioStatus,
  VirtqDescFlag,
} from "./constants.js";
export { GuestErrorCounter, type GuestErrorCounters } from "./counters.js";
export { VirtioDevice, type VirtioDeviceContext, type VirtioDeviceHost } from "./device.js";
export {
  VirtioBlk,
  VirtioBlkConfig,
  VirtioBlkFeature,
  type VirtioBlkOptions,
  type VirtioBlkStats,
  VirtioBlkStatus,
  VirtioBlkType,
} from "./devices/blk.js";
export { VirtioRng, type VirtioRngOptions, type VirtioRngStats } from "./devices/rng.js";
export { VirtioError, VirtioErrorCode } from "./errors.js";
export { arrayGuestMemory, type GuestMemory } from "./memory.js";
export {
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_SLOT_SIZE,
  VIRTIO_MMIO_VERSION,
  type VirtioIrq,
  type VirtioMmioOptions,
  VirtioMmioReg,
  VirtioMmioTransport,
} from "./mmio.js";
export { type DescriptorChain, gather, SplitQueue, scatter, splitQueueLayout } from "./virtqueue.js";
