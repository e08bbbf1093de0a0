// raw: the virtual disk is the file, byte for byte.
import type { BlockBackend, Extent } from "../backend.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";

const F = "raw";
const ZERO_CHUNK = 1024 * 1024;

export class RawImage implements BlockBackend {
  readonly format = "raw" as const;
  private closed = false;

  private constructor(
    private readonly store: ByteStore,
    private virtualSize: number,
    readonly readOnly: boolean,
  ) {}

  static async open(store: ByteStore, options: { readOnly?: boolean } = {}): Promise<RawImage> {
    return new RawImage(store, await store.size(), options.readOnly ?? store.readOnly);
  }

  /** Sizes the store to `size` bytes (sparse where the store supports it). */
  static async create(store: ByteStore, options: { size: number }): Promise<RawImage> {
    checkSize(F, options.size);
    await store.truncate(0);
    await store.truncate(options.size);
    return new RawImage(store, options.size, false);
  }

  size(): number {
    return this.virtualSize;
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen(false);
    checkRange(F, offset, buf.length, this.virtualSize);
    await readFull(this.store, offset, buf);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtualSize);
    await this.store.write(offset, data);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtualSize);
    const z = new Uint8Array(Math.min(length, ZERO_CHUNK));
    for (let pos = 0; pos < length; pos += z.length) {
      await this.store.write(offset + pos, z.subarray(0, Math.min(z.length, length - pos)));
    }
  }

  /** The byte store has no hole punching: discard keeps the data (allowed: discarded content is unspecified). */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtualSize);
  }

  async flush(): Promise<void> {
    this.checkOpen(false);
    if (!this.readOnly) await this.store.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen(false);
    checkRange(F, offset, length, this.virtualSize);
    return { start: offset, length, kind: "data", depth: 0, hostOffset: offset };
  }

  async resize(newSize: number): Promise<void> {
    this.checkOpen(true);
    checkSize(F, newSize);
    await this.store.truncate(newSize);
    this.virtualSize = newSize;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.store.close();
  }
}
