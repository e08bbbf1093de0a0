// @ringzero/virtio/testing: driver-side mock (filled in as the modules land).
export const VIRTIO_TESTING = true;
