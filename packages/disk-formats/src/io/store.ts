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
  /**
   * Optional vectored read (POSIX `preadv`): reads the bytes at `offset` onwards into `bufs` in
   * turn, as if they were one buffer. Returns the number of bytes read, which may be less than
   * their total length (at the end of the store, or a short read: call again for the rest); the
   * rest of the buffers is left untouched. Stores without it are read one buffer at a time.
   */
  readv?(offset: number, bufs: readonly Uint8Array[]): Promise<number>;
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

/**
 * Reads the bytes at `offset` onwards into `bufs` in turn, as if they were one buffer (readFull on
 * their concatenation): bytes beyond the end of the store read as zero. One `readv` call when the
 * store has it and it reads everything; otherwise the rest is read on from where it stopped.
 * Returns the count actually present.
 */
export async function readFullv(store: ByteStore, offset: number, bufs: readonly Uint8Array[]): Promise<number> {
  if (bufs.length === 1) return readFull(store, offset, bufs[0]!);
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = 0;
  if (store.readv) {
    // Buffers still (partly) to fill: `k` is the first, `inK` the bytes of it already read.
    let k = 0;
    let inK = 0;
    while (done < total) {
      const rest = inK > 0 ? [bufs[k]!.subarray(inK), ...bufs.slice(k + 1)] : k > 0 ? bufs.slice(k) : bufs;
      const n = await store.readv(offset + done, rest);
      if (n <= 0) break;
      done += n;
      let m = n + inK;
      while (k < bufs.length && m >= bufs[k]!.length) m -= bufs[k++]!.length;
      inK = m;
    }
  } else {
    // One read per buffer, all started at once (as the reads of several ranges would be).
    const at: number[] = [];
    let o = offset;
    for (const b of bufs) {
      at.push(o);
      o += b.length;
    }
    const got = await Promise.all(bufs.map((b, i) => readFull(store, at[i]!, b)));
    for (let i = 0; i < bufs.length && got[i] === bufs[i]!.length; i++) done += got[i]!;
    if (done < total) done += got[bufs.findIndex((b, i) => got[i]! < b.length)]!;
  }
  // Past the end of the store: zeros, as readFull.
  let at = 0;
  for (const b of bufs) {
    if (at + b.length > done) b.fill(0, Math.max(0, done - at));
    at += b.length;
  }
  return done;
}
