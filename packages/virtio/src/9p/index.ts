// virtio-9p: a 9P2000.L file server over a host directory and its virtio
// device. The server (node:fs) is exported from the package's "./node" entry.
export { type NinePServerConfig, NinePServerConfigSchema, type NinePServerOptions } from "./config.js";
export {
  type NinePHandler,
  ninePConfigBytes,
  VIRTIO_9P_MOUNT_TAG,
  Virtio9p,
  type Virtio9pOptions,
  type Virtio9pStats,
} from "./device.js";
export { Errno as NinePErrno } from "./errno.js";
export { NinePError, NinePErrorCode } from "./errors.js";
export type { NinePGauges, NinePStats } from "./server.js";
