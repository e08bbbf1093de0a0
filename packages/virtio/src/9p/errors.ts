// Host-side configuration errors of the 9P server: a closed code table
// (STYLE.md 9). Guest requests never throw: they get Rlerror(errno).
export const NinePErrorCode = {
  /** The server or device configuration failed validation. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** The shared root does not exist or is not a directory. */
  ROOT_INVALID: "ROOT_INVALID",
  /** The host lacks what confinement relies on (Linux /proc/self/fd and O_PATH). */
  HOST_UNSUPPORTED: "HOST_UNSUPPORTED",
  /** The server was used after close(). */
  CLOSED: "CLOSED",
} as const;
export type NinePErrorCode = (typeof NinePErrorCode)[keyof typeof NinePErrorCode];

export class NinePError extends Error {
  override readonly name = "NinePError";
  constructor(
    readonly code: NinePErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context)}`);
  }
}
