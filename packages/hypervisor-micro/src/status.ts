// Hypercall results as typed data (STYLE.md §9; the TLFS HV_STATUS values,
// vmbus.md §1.2): one closed table, each hypercall documents its subset.

/** HV_STATUS codes (TLFS "Hypercall Interface"; OpenVMM hvdef). */
export const HvStatus = {
  SUCCESS: 0x0000,
  INVALID_HYPERCALL_CODE: 0x0002,
  INVALID_HYPERCALL_INPUT: 0x0003,
  INVALID_ALIGNMENT: 0x0004,
  INVALID_PARAMETER: 0x0005,
  ACCESS_DENIED: 0x0006,
  INVALID_PARTITION_STATE: 0x0007,
  INSUFFICIENT_MEMORY: 0x000b,
  INVALID_PARTITION_ID: 0x000d,
  INVALID_VP_INDEX: 0x000e,
  INVALID_PORT_ID: 0x0011,
  INVALID_CONNECTION_ID: 0x0012,
  INSUFFICIENT_BUFFERS: 0x0013,
  OBJECT_IN_USE: 0x0019,
  TIMEOUT: 0x0078,
} as const;

export type HvStatusName = keyof typeof HvStatus;
export type HvStatusCode = (typeof HvStatus)[HvStatusName];

const NAMES = new Map<number, HvStatusName>(
  (Object.entries(HvStatus) as [HvStatusName, number][]).map(([k, v]) => [v, k]),
);

/** The name of a status code ("UNKNOWN_0x..." for a value outside the table). */
export function hvStatusName(code: number): string {
  return NAMES.get(code) ?? `UNKNOWN_0x${code.toString(16)}`;
}

/** A hypercall's outcome: a value on success, otherwise a status from the call's documented set. */
export type HvResult<T> =
  | { readonly status: typeof HvStatus.SUCCESS; readonly value: T }
  | { readonly status: Exclude<HvStatusCode, 0>; readonly detail: string };

export function ok<T>(value: T): HvResult<T> {
  return { status: HvStatus.SUCCESS, value };
}

export function fail<T = never>(status: Exclude<HvStatusCode, 0>, detail: string): HvResult<T> {
  return { status, detail };
}

/** Thrown by `unwrap` when a hypercall a caller cannot do without fails. */
export class HypercallError extends Error {
  constructor(
    readonly call: string,
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${call}: ${hvStatusName(status)}: ${detail}`);
    this.name = "HypercallError";
  }
}

/** The value of a successful result; a HypercallError otherwise. */
export function unwrap<T>(call: string, r: HvResult<T>): T {
  if (r.status === HvStatus.SUCCESS) return r.value;
  throw new HypercallError(call, r.status, r.detail);
}
