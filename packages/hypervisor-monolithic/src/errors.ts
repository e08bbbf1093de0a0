// Typed errors of VM creation: a code from a closed table plus context.
export const VmErrorCode = {
  CONFIG_INVALID: "CONFIG_INVALID",
  KERNEL_UNREADABLE: "KERNEL_UNREADABLE",
  INITRD_UNREADABLE: "INITRD_UNREADABLE",
  KERNEL_FORMAT: "KERNEL_FORMAT",
  BIOS_MISMATCH: "BIOS_MISMATCH",
  /** A drive image, network back end or shared directory could not be opened. */
  DEVICE_OPEN: "DEVICE_OPEN",
} as const;
export type VmErrorCode = (typeof VmErrorCode)[keyof typeof VmErrorCode];

export class VmError extends Error {
  override readonly name = "VmError";
  constructor(
    readonly code: VmErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail: string,
  ) {
    super(detail);
  }
}
