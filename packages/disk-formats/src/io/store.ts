// The I/O layer under every format: a positional byte store. It knows
// nothing of node:fs, so formats run wherever a store can be provided
// (a file, memory, a browser's OPFS handle later).

/** A byte store: positional reads and writes over a resizable byte array. */
export interface ByteStore {
  /** A name for messages and for resolving relative backing files. */
  readonly name: string;
  readonly readOnly: boolean;
  /** Current size in bytes. */
  size(): Promise<number>;
  /**
   * Reads into `buf` starting at `offset`. Returns the number of bytes read,
   * which is less than `buf.length` only at the end of the store; the rest of
   * `buf` is left untouched.
   */
  read(offset: number, buf: Uint8Array): Promise<number>;
  /** Writes all of `data` at `offset`, growing the store if needed. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Sets the size; growth reads back as zeros. */
  truncate(size: number): Promise<void>;
  /** Makes completed writes durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Bytes actually allocated on the host, if the store can tell (qemu-img's "actual-size"). */
  allocatedSize?(): Promise<number>;
}

/** Where stores come from: opens, creates and names files for formats that refer to other files (backing files). */
export interface StoreHost {
  open(name: string, options: { readOnly: boolean }): Promise<ByteStore>;
  /** Creates (or truncates) a file. */
  create(name: string): Promise<ByteStore>;
  /** Resolves `name` as written inside the image `base` (qemu resolves relative names against the image's directory). */
  resolve(base: string, name: string): string;
  /** A canonical key for cycle detection in backing chains. */
  canonical(name: string): Promise<string>;
  exists(name: string): Promise<boolean>;
  /** Deletes a file (a failed conversion removes the files it created); hosts without it leave them. */
  remove?(name: string): Promise<void>;
}

/** Reads exactly `length` bytes at `offset`; bytes beyond the end of the store read as zero. Returns the count actually present. */
export async function readFull(store: ByteStore, offset: number, buf: Uint8Array): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await store.read(offset + done, buf.subarray(done));
    if (n <= 0) break;
    done += n;
  }
  if (done < buf.length) buf.fill(0, done);
  return done;
}
