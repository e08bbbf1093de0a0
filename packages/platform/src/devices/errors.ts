import type * as z from "../zod.js";

// Typed errors of @ringzero/platform: a closed code table (STYLE.md 9). The
// message is derived from the code, an optional detail and the context.
export const PlatformErrorCode = {
  /** A device, board or device-tree configuration failed validation. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** Two MMIO regions overlap, or a region is empty or outside the address space. */
  MMIO_OVERLAP: "MMIO_OVERLAP",
  /** A device state value (snapshot) failed validation in fromState(). */
  STATE_INVALID: "STATE_INVALID",
  /** A device-tree node or property cannot be encoded (bad name, value, size). */
  FDT_INVALID: "FDT_INVALID",
  /** The kernel file is not a RISC-V Linux Image (bad magic, truncated, ELF, compressed…). */
  KERNEL_INVALID: "KERNEL_INVALID",
  /** The kernel, initrd or device tree does not fit in guest RAM where it must go. */
  LOAD_DOES_NOT_FIT: "LOAD_DOES_NOT_FIT",
} as const;
export type PlatformErrorCode = (typeof PlatformErrorCode)[keyof typeof PlatformErrorCode];

export class PlatformError extends Error {
  override readonly name = "PlatformError";
  constructor(
    readonly code: PlatformErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context, hexReplacer)}`);
  }
}

function hexReplacer(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}

/** Throws STATE_INVALID with zod's issues when `value` does not match. */
export function parseState<T>(schema: z.ZodMiniType<T>, value: unknown, device: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new PlatformError(
      PlatformErrorCode.STATE_INVALID,
      { device },
      r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  return r.data;
}

/** Throws CONFIG_INVALID with zod's issues when `value` does not match. */
export function parseConfig<T>(schema: z.ZodMiniType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new PlatformError(
      PlatformErrorCode.CONFIG_INVALID,
      { what },
      r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  return r.data;
}
