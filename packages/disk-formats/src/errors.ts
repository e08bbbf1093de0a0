// Typed errors of disk-formats: a closed code table; the message is derived
// from the code and its context (STYLE.md 9). Every error names the format
// it was raised in and, where one applies, the file offset.
export const DiskErrorCode = {
  /** The file is not an image of the expected format (bad magic, unknown version). */
  BAD_MAGIC: "BAD_MAGIC",
  /** A header or table field is out of the range the format allows. */
  INVALID_HEADER: "INVALID_HEADER",
  /** A table entry or structure points outside the file or the virtual disk. */
  OUT_OF_BOUNDS: "OUT_OF_BOUNDS",
  /** A table entry points into metadata (header, L1/L2, refcount structures). */
  METADATA_OVERLAP: "METADATA_OVERLAP",
  /** A table entry is malformed: reserved bits set, unaligned offset. */
  BAD_ENTRY: "BAD_ENTRY",
  /** The file ends before a structure the header promises. */
  TRUNCATED: "TRUNCATED",
  /** A size or count exceeds the limits of this implementation or the format. */
  TOO_LARGE: "TOO_LARGE",
  /** A feature of the image is valid but not supported by this library. */
  UNSUPPORTED: "UNSUPPORTED",
  /** The backing chain loops back onto itself. */
  BACKING_CYCLE: "BACKING_CYCLE",
  /** The backing chain is deeper than the configured limit. */
  BACKING_TOO_DEEP: "BACKING_TOO_DEEP",
  /** A compressed cluster does not decompress to exactly one cluster. */
  BAD_COMPRESSED_DATA: "BAD_COMPRESSED_DATA",
  /** A request (offset, length, size) is invalid: negative, unsafe integer, beyond the disk. */
  INVALID_REQUEST: "INVALID_REQUEST",
  /** A write was attempted on an image opened read-only. */
  READ_ONLY: "READ_ONLY",
  /** The image or backend was used after close(). */
  CLOSED: "CLOSED",
  /** The image holds a journal (VHDX log) that only a read-write open can replay. */
  NEEDS_REPLAY: "NEEDS_REPLAY",
  /** The image is marked corrupt and cannot be opened for writing. */
  CORRUPT: "CORRUPT",
  /** A file named by the image or the user could not be found or opened. */
  NOT_FOUND: "NOT_FOUND",
  /** Options passed to create/open/convert are invalid. */
  INVALID_OPTIONS: "INVALID_OPTIONS",
} as const;
export type DiskErrorCode = (typeof DiskErrorCode)[keyof typeof DiskErrorCode];

/** Context every disk error carries: the format, and the file offset where one applies. */
export interface DiskErrorContext {
  readonly format: string;
  readonly offset?: number;
  readonly [key: string]: unknown;
}

export class DiskError extends Error {
  override readonly name = "DiskError";
  constructor(
    readonly code: DiskErrorCode,
    readonly context: DiskErrorContext,
    readonly detail = "",
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context)}`);
  }
  get format(): string {
    return this.context.format;
  }
  get offset(): number | undefined {
    return this.context.offset;
  }
}

/** Largest byte offset or size accepted anywhere: 2^53 (Number.MAX_SAFE_INTEGER + 1 is not safe). */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/** Validates a request range against a disk of `size` bytes. */
export function checkRange(format: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new DiskError(
      DiskErrorCode.INVALID_REQUEST,
      { format, offset, length },
      "offset and length must be non-negative safe integers",
    );
  }
  if (offset + length > size) {
    throw new DiskError(
      DiskErrorCode.INVALID_REQUEST,
      { format, offset, length, size },
      "request beyond the end of the disk",
    );
  }
}

/** Validates a size (non-negative safe integer). */
export function checkSize(format: string, size: number, what = "size"): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new DiskError(
      DiskErrorCode.INVALID_REQUEST,
      { format, [what]: size },
      `${what} must be a non-negative safe integer`,
    );
  }
}
