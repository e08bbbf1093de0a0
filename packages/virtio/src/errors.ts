// Typed errors of @ringzero/virtio: a closed code table for host-side
// configuration mistakes. Guest misbehaviour is never thrown: it is counted
// (see counters.ts) and handled as the virtio spec says.
export const VirtioErrorCode = {
  /** A device or transport configuration failed validation. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** A host-side API was used in a state that does not allow it. */
  INVALID_STATE: "INVALID_STATE",
  /** A host back end could not be opened (file missing, not a regular file…). */
  BACKEND_OPEN_FAILED: "BACKEND_OPEN_FAILED",
} as const;
export type VirtioErrorCode = (typeof VirtioErrorCode)[keyof typeof VirtioErrorCode];

export class VirtioError extends Error {
  override readonly name = "VirtioError";
  constructor(
    readonly code: VirtioErrorCode,
    readonly context: Readonly<Record<string, unknown>>,
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context, bigintReplacer)}`);
  }
}

function bigintReplacer(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}

/** Parses `input` with a zod schema, turning failures into CONFIG_INVALID. */
export function parseConfig<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: unknown[] } } },
  input: unknown,
  what: string,
): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    throw new VirtioError(
      VirtioErrorCode.CONFIG_INVALID,
      { what, issues: r.error.issues },
      `invalid ${what} configuration`,
    );
  }
  return r.data;
}
