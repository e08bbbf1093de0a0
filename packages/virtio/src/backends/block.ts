// Block back ends for virtio-blk. `BlockBackend` mirrors the members of
// @ringzero/disk-formats' BlockBackend that the device uses, so an image
// opened there can be passed directly. The raw host file is in block-file.ts
// (the "./node" entry).
import { VirtioError, VirtioErrorCode } from "../errors.js";

export interface BlockBackend {
  readonly readOnly: boolean;
  /** Disk size in bytes. */
  size(): number;
  readInto(offset: number, buf: Uint8Array): Promise<void>;
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  /** Afterwards the range reads as zeros (or from a backing file). */
  discard(offset: number, length: number): Promise<void>;
  /** Afterwards the range reads as zeros; with `mayUnmap` space may be released. */
  writeZeroes(offset: number, length: number, options?: { mayUnmap?: boolean }): Promise<void>;
  /**
   * Optional scatter read straight into the driver's buffers (views of guest
   * memory, in order, `length` bytes in all). A back end that can reach guest
   * memory itself (a VMBus client naming guest pages) avoids the bounce copy.
   * Guest memory may then change while the request is in flight, as with DMA.
   */
  readv?(offset: number, buffers: readonly Uint8Array[]): Promise<void>;
  /** Optional gather write from the driver's buffers (views of guest memory). */
  writev?(offset: number, buffers: readonly Uint8Array[]): Promise<void>;
}

/** Throws unless [offset, offset + length) lies within a disk of `size` bytes. */
export function checkRange(size: number, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > size
  ) {
    throw new VirtioError(VirtioErrorCode.INVALID_STATE, { offset, length, size }, "block range outside the disk");
  }
}

/** A disk held in memory. */
export class MemoryBlockBackend implements BlockBackend {
  readonly bytes: Uint8Array;
  flushes = 0;

  constructor(
    sizeOrBytes: number | Uint8Array,
    readonly readOnly = false,
  ) {
    this.bytes = typeof sizeOrBytes === "number" ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
  }

  size(): number {
    return this.bytes.length;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this.bytes.length, offset, buf.length);
    buf.set(this.bytes.subarray(offset, offset + buf.length));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.assertWritable();
    checkRange(this.bytes.length, offset, data.length);
    this.bytes.set(data, offset);
  }

  async flush(): Promise<void> {
    this.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.assertWritable();
    checkRange(this.bytes.length, offset, length);
    this.bytes.fill(0, offset, offset + length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.assertWritable();
    checkRange(this.bytes.length, offset, length);
    this.bytes.fill(0, offset, offset + length);
  }

  private assertWritable(): void {
    if (this.readOnly) throw new VirtioError(VirtioErrorCode.INVALID_STATE, {}, "read-only disk");
  }
}
