// Numbers from the virtio 1.2 specification.

/** Device IDs (§5). */
export const VirtioDeviceId = {
  net: 1,
  block: 2,
  console: 3,
  entropy: 4,
  balloon: 5,
  ninep: 9,
} as const;

/** Device status bits (§2.1). */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Reserved (transport / ring) feature bits (§6). */
export const VirtioFeature = {
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
} as const;

/** `1n << BigInt(bit)` for a feature bit number. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** Interrupt status bits of virtio-mmio (§4.2.2). */
export const VirtioInterrupt = {
  USED_BUFFER: 1,
  CONFIG_CHANGE: 2,
} as const;

/** Split virtqueue descriptor flags (§2.7.5). */
export const VirtqDescFlag = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4,
} as const;

/** avail.flags (§2.7.6) and used.flags (§2.7.8). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Largest split queue size (§2.7). */
export const VIRTQ_MAX_SIZE = 32768;
