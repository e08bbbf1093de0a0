// Typed errors of the micro VM (STYLE.md §9): the same codes as
// hypervisor-monolithic's VmError where the cause is the same, so a caller
// handles both hypervisors alike.

export const MicroVmErrorCode = {
  CONFIG_INVALID: "CONFIG_INVALID",
  KERNEL_UNREADABLE: "KERNEL_UNREADABLE",
  KERNEL_FORMAT: "KERNEL_FORMAT",
  INITRD_UNREADABLE: "INITRD_UNREADABLE",
  BIOS_MISMATCH: "BIOS_MISMATCH",
  DEVICE_OPEN: "DEVICE_OPEN",
  /** A hypercall the parent needs failed (the status is in the context). */
  HYPERCALL_FAILED: "HYPERCALL_FAILED",
  /** The parent partition's thread died. */
  PARENT_CRASHED: "PARENT_CRASHED",
} as const;

export type MicroVmErrorCode = (typeof MicroVmErrorCode)[keyof typeof MicroVmErrorCode];

export class MicroVmError extends Error {
  constructor(
    readonly code: MicroVmErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    message?: string,
  ) {
    super(message ?? code);
    this.name = "MicroVmError";
  }
}
