// Typed errors of net-stack: a closed code table; the message is derived from
// the code and its context (STYLE.md 9). Guest frames never raise these: they
// are counted in NetStats and dropped. Errors are for the host's own calls.
export const NetErrorCode = {
  /** The configuration object failed its zod schema. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** A host resource (port forward listener, pcap file, upstream) could not be opened. */
  HOST_RESOURCE: "HOST_RESOURCE",
  /** A saved state failed its zod schema or does not fit the configuration. */
  STATE_INVALID: "STATE_INVALID",
  /** The object was already closed. */
  CLOSED: "CLOSED",
} as const;
export type NetErrorCode = (typeof NetErrorCode)[keyof typeof NetErrorCode];

export class NetError extends Error {
  override readonly name = "NetError";
  constructor(
    readonly code: NetErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context)}`);
  }
}
