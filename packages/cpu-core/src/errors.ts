// Typed errors of cpu-core: a closed code table; the message is derived from
// the code and its context (STYLE.md 9).
export const CpuErrorCode = {
  /** The ELF file is not a well-formed little-endian ELF64 RISC-V executable. */
  ELF_MALFORMED: "ELF_MALFORMED",
  /** A loadable segment or the entry point lies outside guest RAM. */
  ELF_OUTSIDE_RAM: "ELF_OUTSIDE_RAM",
  /** A hart or bus configuration is invalid (zero-size RAM, overlapping regions…). */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** An MMIO exit was not completed before the next run(). */
  MMIO_PENDING: "MMIO_PENDING",
} as const;
export type CpuErrorCode = (typeof CpuErrorCode)[keyof typeof CpuErrorCode];

export class CpuError extends Error {
  override readonly name = "CpuError";
  constructor(
    readonly code: CpuErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context, bigintReplacer)}`);
  }
}

function bigintReplacer(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}
