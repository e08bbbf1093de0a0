// @ringzero/virtio public surface (filled in as the modules land).
export const VIRTIO_MMIO_MAGIC = 0x74726976;
