// Typed errors of the guest kit: a closed code table; the message is derived
// from the code and its context.
export const GuestKitErrorCode = {
  /** A host tool the build needs is missing (the context names the Debian package). */
  TOOL_MISSING: "TOOL_MISSING",
  /** A host command exited with a failure status. */
  COMMAND_FAILED: "COMMAND_FAILED",
  /** Options of the Kconfig fragment did not land in the kernel's .config. */
  KCONFIG_DROPPED: "KCONFIG_DROPPED",
  /** The Kconfig fragment itself is malformed. */
  KCONFIG_MALFORMED: "KCONFIG_MALFORMED",
  /** No usable Debian mirror was found in the machine's apt sources. */
  APT_SOURCE_MISSING: "APT_SOURCE_MISSING",
  /** A download failed or returned something other than what the index promised. */
  DOWNLOAD_FAILED: "DOWNLOAD_FAILED",
  /** A hash or size did not match the signed index. */
  HASH_MISMATCH: "HASH_MISMATCH",
  /** The Release file's signature did not verify against the Debian archive keyring. */
  SIGNATURE_INVALID: "SIGNATURE_INVALID",
  /** A Release or Packages index is malformed or lacks the wanted entry. */
  INDEX_MALFORMED: "INDEX_MALFORMED",
  /** A cpio entry or archive is invalid (bad name, size, type, truncated input). */
  CPIO_INVALID: "CPIO_INVALID",
  /** Another process holds the build lock for too long. */
  LOCK_TIMEOUT: "LOCK_TIMEOUT",
} as const;
export type GuestKitErrorCode = (typeof GuestKitErrorCode)[keyof typeof GuestKitErrorCode];

export class GuestKitError extends Error {
  override readonly name = "GuestKitError";
  constructor(
    readonly code: GuestKitErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context)}`);
  }
}
