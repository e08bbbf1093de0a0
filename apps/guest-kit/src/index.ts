export { BUSYBOX_CODENAME, BUSYBOX_PACKAGE } from "./busybox.js";
export { type CpioEntry, type CpioRecord, cpioEntrySchema, readCpio, writeCpio } from "./cpio.js";
export { GuestKitError, GuestKitErrorCode } from "./errors.js";
export { LINUX_KIT_APPEND, LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "./initramfs.js";
export { checkKconfig, type KconfigMismatch, type KconfigOption, parseKconfigFragment } from "./kconfig.js";
export {
  ensureLinuxKit,
  ensureLinuxKitManifest,
  type LinuxKitManifest,
  type LinuxKitOptions,
  linuxKitLocation,
  linuxKitManifestSchema,
} from "./kit.js";
