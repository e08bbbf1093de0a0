// In-memory byte store: sparse (fixed-size chunks allocated on first write)
// so that images with multi-GiB virtual sizes cost only what is written.

import { isZero } from "../bytes.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import type { ByteStore, StoreHost } from "./store.js";

const CHUNK = 64 * 1024;

export class MemoryStore implements ByteStore {
  // Shared between reopened views of the same bytes.
  private state = { chunks: new Map<number, Uint8Array>(), length: 0 };
  private closed = false;
  /** Counts of calls, for tests that check I/O behaviour. */
  readonly stats = { reads: 0, writes: 0, flushes: 0 };

  constructor(
    readonly name = "memory",
    readonly readOnly = false,
    initial?: Uint8Array,
  ) {
    if (initial) {
      this.state.length = initial.length;
      for (let off = 0; off < initial.length; off += CHUNK) {
        const part = initial.subarray(off, Math.min(off + CHUNK, initial.length));
        if (!isZero(part)) {
          const c = new Uint8Array(CHUNK);
          c.set(part);
          this.state.chunks.set(off / CHUNK, c);
        }
      }
    }
  }

  /** A read-only or writable view sharing the same bytes (for reopening). */
  reopen(readOnly: boolean): MemoryStore {
    const s = new MemoryStore(this.name, readOnly);
    s.state = this.state;
    return s;
  }

  private check(): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: "memory" });
  }

  async size(): Promise<number> {
    this.check();
    return this.state.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    this.check();
    this.stats.reads++;
    const end = Math.min(offset + buf.length, this.state.length);
    if (end <= offset) return 0;
    let pos = offset;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK);
      const co = pos - ci * CHUNK;
      const n = Math.min(CHUNK - co, end - pos);
      const c = this.state.chunks.get(ci);
      const dst = buf.subarray(pos - offset, pos - offset + n);
      if (c) dst.set(c.subarray(co, co + n));
      else dst.fill(0);
      pos += n;
    }
    return end - offset;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check();
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: "memory", offset });
    this.stats.writes++;
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK);
      const co = pos - ci * CHUNK;
      const n = Math.min(CHUNK - co, end - pos);
      const src = data.subarray(pos - offset, pos - offset + n);
      let c = this.state.chunks.get(ci);
      if (!c) {
        if (isZero(src)) {
          pos += n;
          continue;
        }
        c = new Uint8Array(CHUNK);
        this.state.chunks.set(ci, c);
      }
      c.set(src, co);
      pos += n;
    }
    if (end > this.state.length) this.state.length = end;
  }

  async truncate(size: number): Promise<void> {
    this.check();
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: "memory" });
    if (size < this.state.length) {
      for (const ci of [...this.state.chunks.keys()]) {
        if (ci * CHUNK >= size) this.state.chunks.delete(ci);
        else if ((ci + 1) * CHUNK > size) this.state.chunks.get(ci)!.fill(0, size - ci * CHUNK);
      }
    }
    this.state.length = size;
  }

  async flush(): Promise<void> {
    this.check();
    this.stats.flushes++;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async allocatedSize(): Promise<number> {
    return this.state.chunks.size * CHUNK;
  }

  /** A copy of the whole content (tests; small stores only). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.state.length);
    for (const [ci, c] of this.state.chunks) {
      const off = ci * CHUNK;
      if (off < this.state.length) out.set(c.subarray(0, Math.min(CHUNK, this.state.length - off)), off);
    }
    return out;
  }
}

/** A name -> MemoryStore map that acts as a file system for images and their backing files. */
export class MemoryHost implements StoreHost {
  readonly files = new Map<string, MemoryStore>();

  async open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
    const f = this.files.get(name);
    if (!f) throw new DiskError(DiskErrorCode.NOT_FOUND, { format: "memory", file: name });
    return f.reopen(options.readOnly);
  }

  async create(name: string): Promise<ByteStore> {
    const s = new MemoryStore(name);
    this.files.set(name, s);
    return s;
  }

  resolve(base: string, name: string): string {
    if (name.startsWith("/")) return name;
    const i = base.lastIndexOf("/");
    return i < 0 ? name : `${base.slice(0, i + 1)}${name}`;
  }

  async canonical(name: string): Promise<string> {
    return name;
  }

  async exists(name: string): Promise<boolean> {
    return this.files.has(name);
  }

  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }
}
