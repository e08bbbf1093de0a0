// @ringzero/virtio: hypervisor-agnostic virtio 1.2 devices. Browser-safe; the
// back ends over host files and directories are at "./node".

export {
  NinePErrno,
  NinePError,
  NinePErrorCode,
  type NinePGauges,
  type NinePHandler,
  type NinePServerConfig,
  NinePServerConfigSchema,
  type NinePServerOptions,
  type NinePStats,
  ninePConfigBytes,
  VIRTIO_9P_MOUNT_TAG,
  Virtio9p,
  type Virtio9pOptions,
  type Virtio9pStats,
} from "./9p/index.js";
export { type BlockBackend, MemoryBlockBackend } from "./backends/block.js";
export { LoopbackNetBackend, pcapGlobalHeader, pcapRecord } from "./backends/net.js";
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
  type GuestMemoryStats,
  VIRTIO_BALLOON_PAGE_SIZE,
  VirtioBalloon,
  VirtioBalloonConfig,
  VirtioBalloonFeature,
  type VirtioBalloonOptions,
  type VirtioBalloonStats,
  VirtioBalloonStatTag,
} from "./devices/balloon.js";
export {
  VirtioBlk,
  VirtioBlkConfig,
  VirtioBlkFeature,
  type VirtioBlkOptions,
  type VirtioBlkStats,
  VirtioBlkStatus,
  VirtioBlkType,
} from "./devices/blk.js";
export {
  VirtioConsole,
  VirtioConsoleConfig,
  VirtioConsoleFeature,
  type VirtioConsoleOptions,
  type VirtioConsoleStats,
} from "./devices/console.js";
export {
  type NetBackend,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_MAX_FRAME,
  VIRTIO_NET_S_LINK_UP,
  VirtioNet,
  VirtioNetConfig,
  VirtioNetFeature,
  type VirtioNetOptions,
  type VirtioNetStats,
} from "./devices/net.js";
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
