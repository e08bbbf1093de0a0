// Typed errors of the ringzero command (STYLE.md 9).
export const DemoErrorCode = {
  USAGE: "USAGE",
  MEMORY_SIZE: "MEMORY_SIZE",
  /** The --monitor socket could not be created. */
  MONITOR: "MONITOR",
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
