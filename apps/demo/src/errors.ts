// Typed errors of the ringzero command (STYLE.md 9).
export const DemoErrorCode = {
  USAGE: "USAGE",
  KERNEL_UNREADABLE: "KERNEL_UNREADABLE",
  MEMORY_SIZE: "MEMORY_SIZE",
  INITRD_UNREADABLE: "INITRD_UNREADABLE",
  KERNEL_FORMAT: "KERNEL_FORMAT",
} as const;
export type DemoErrorCode = (typeof DemoErrorCode)[keyof typeof DemoErrorCode];

export class DemoError extends Error {
  override readonly name = "DemoError";
  constructor(
    readonly code: DemoErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail: string,
  ) {
    super(detail);
  }
}
