// Byte stores for hosts without files (a browser page or worker): a `Blob` or
// `File` read lazily by slices, an HTTP URL read by Range requests, and an
// in-memory copy-on-write overlay that makes either writable without touching
// the source (the JSLinux / v86 pattern). `RemoteHost` names them for
// openImage, so a backing chain of URLs or picked files opens like files.
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "./memory.js";
import type { ByteStore, StoreHost } from "./store.js";

function readOnlyError(format: string, offset?: number): DiskError {
  return new DiskError(DiskErrorCode.READ_ONLY, { format, offset });
}

/** A read-only store over a `Blob` (or a `File` the user picked): each read is one `slice().arrayBuffer()`. */
export class BlobStore implements ByteStore {
  readonly readOnly = true;
  readonly name: string;
  /** Reads made and bytes fetched from the blob. */
  readonly stats = { reads: 0, bytes: 0 };

  constructor(
    private readonly blob: Blob,
    name?: string,
  ) {
    this.name = name ?? (blob as { name?: string }).name ?? "blob";
  }

  async size(): Promise<number> {
    return this.blob.size;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    const end = Math.min(offset + buf.length, this.blob.size);
    if (end <= offset) return 0;
    const bytes = new Uint8Array(await this.blob.slice(offset, end).arrayBuffer());
    buf.set(bytes);
    this.stats.reads++;
    this.stats.bytes += bytes.length;
    return bytes.length;
  }

  async write(offset: number): Promise<void> {
    throw readOnlyError("blob", offset);
  }

  async truncate(): Promise<void> {
    throw readOnlyError("blob");
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

export interface HttpStoreOptions {
  /** The fetch to use (default globalThis.fetch); a test or an app may wrap it. */
  readonly fetch?: typeof fetch;
  /** Extra request options (headers, credentials) for every request. */
  readonly init?: RequestInit;
  /** Reads are made in aligned blocks of this many bytes, and kept (default 64 KiB). */
  readonly blockSize?: number;
  /** Blocks kept, least recently used dropped first (default 256: 16 MiB at 64 KiB). */
  readonly cacheBlocks?: number;
}

/**
 * A read-only store over an HTTP(S) URL whose server honours Range requests
 * (RFC 9110 §14): the size comes from the Content-Range of a first one-byte
 * request, then every read fetches the aligned blocks it needs (consecutive
 * missing blocks in one request) and keeps them in a small LRU cache.
 */
export class HttpRangeStore implements ByteStore {
  readonly readOnly = true;
  /** Requests made and bytes received. */
  readonly stats = { requests: 0, bytes: 0 };
  private readonly cache = new Map<number, Uint8Array>();
  private readonly blockSize: number;
  private readonly cacheBlocks: number;

  private constructor(
    readonly name: string,
    private readonly length: number,
    private readonly fetchFn: typeof fetch,
    private readonly init: RequestInit | undefined,
    options: HttpStoreOptions,
  ) {
    this.blockSize = options.blockSize ?? 64 * 1024;
    this.cacheBlocks = Math.max(1, options.cacheBlocks ?? 256);
  }

  /** Opens `url`: one request for its size; fails with NOT_FOUND or UNSUPPORTED (no Range support). */
  static async open(url: string, options: HttpStoreOptions = {}): Promise<HttpRangeStore> {
    // Bound: a browser's fetch called as a plain function (detached from its global) throws
    // "Illegal invocation"; Node's does not mind.
    const fetchFn: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    let res: Response;
    try {
      res = await fetchFn(url, { ...options.init, headers: { ...headersOf(options.init), Range: "bytes=0-0" } });
    } catch (e) {
      throw new DiskError(DiskErrorCode.NOT_FOUND, { format: "http", file: url }, (e as Error).message);
    }
    await res.body?.cancel();
    if (res.status === 416) {
      // An empty resource: "bytes */0".
      const total = /\*\/(\d+)/.exec(res.headers.get("content-range") ?? "");
      if (total && Number(total[1]) === 0) return new HttpRangeStore(url, 0, fetchFn, options.init, options);
    }
    if (res.status !== 206) {
      const code = res.ok ? DiskErrorCode.UNSUPPORTED : DiskErrorCode.NOT_FOUND;
      throw new DiskError(
        code,
        { format: "http", file: url, status: res.status },
        res.ok ? "the server does not answer Range requests" : `HTTP ${res.status}`,
      );
    }
    const m = /^bytes\s+\d+-\d+\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
    if (!m)
      throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: "http", file: url }, "no total size in Content-Range");
    const store = new HttpRangeStore(url, Number(m[1]), fetchFn, options.init, options);
    store.stats.requests++;
    return store;
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    const end = Math.min(offset + buf.length, this.length);
    if (end <= offset) return 0;
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    if (last - first + 1 > this.cacheBlocks / 2) {
      // Larger than the cache should hold: straight into the caller's buffer.
      buf.set(await this.fetchRange(offset, end));
      return end - offset;
    }
    // The cached blocks of this read become the most recent, so fetching the rest cannot evict them.
    for (let b = first; b <= last; b++) {
      const block = this.cache.get(b);
      if (block) {
        this.cache.delete(b);
        this.cache.set(b, block);
      }
    }
    // Fetch each run of missing blocks with one request.
    let run = -1;
    for (let b = first; b <= last + 1; b++) {
      const missing = b <= last && !this.cache.has(b);
      if (missing && run < 0) run = b;
      if (!missing && run >= 0) {
        await this.fetchBlocks(run, b - 1);
        run = -1;
      }
    }
    for (let b = first; b <= last; b++) {
      const block = this.cache.get(b) as Uint8Array;
      const from = Math.max(offset, b * bs);
      const to = Math.min(end, (b + 1) * bs);
      buf.set(block.subarray(from - b * bs, to - b * bs), from - offset);
    }
    return end - offset;
  }

  private async fetchBlocks(first: number, last: number): Promise<void> {
    const bs = this.blockSize;
    const body = await this.fetchRange(first * bs, Math.min((last + 1) * bs, this.length));
    for (let b = first; b <= last; b++) {
      this.cache.set(b, body.subarray((b - first) * bs, Math.min((b - first + 1) * bs, body.length)));
      if (this.cache.size > this.cacheBlocks) this.cache.delete(this.cache.keys().next().value as number);
    }
  }

  /** Bytes [start, end) in one Range request. */
  private async fetchRange(start: number, end: number): Promise<Uint8Array> {
    const res = await this.fetchFn(this.name, {
      ...this.init,
      headers: { ...headersOf(this.init), Range: `bytes=${start}-${end - 1}` },
    });
    this.stats.requests++;
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 206 || body.length !== end - start) {
      throw new DiskError(
        DiskErrorCode.TRUNCATED,
        { format: "http", file: this.name, offset: start, status: res.status },
        `asked for ${end - start} bytes, got ${body.length}`,
      );
    }
    this.stats.bytes += body.length;
    return body;
  }

  async write(offset: number): Promise<void> {
    throw readOnlyError("http", offset);
  }

  async truncate(): Promise<void> {
    throw readOnlyError("http");
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.cache.clear();
  }
}

function headersOf(init: RequestInit | undefined): Record<string, string> {
  const h = init?.headers;
  if (!h) return {};
  if (Array.isArray(h)) return Object.fromEntries(h);
  if (typeof (h as Headers).forEach === "function") {
    const out: Record<string, string> = {};
    (h as Headers).forEach((v, k) => {
      out[k] = v;
    });
    return out;
  }
  return { ...(h as Record<string, string>) };
}

const CHUNK = 64 * 1024;

/**
 * A writable view of a read-only store: writes go to memory, in 64 KiB chunks
 * copied from the base on first write; reads take written chunks from memory
 * and the rest from the base. The base is never written; `close` drops the
 * writes (`written()` lists the chunks, for an app that wants to keep them).
 */
export class OverlayStore implements ByteStore {
  readonly readOnly = false;
  readonly name: string;
  private readonly chunks = new Map<number, Uint8Array>();

  private constructor(
    private readonly base: ByteStore,
    private baseLength: number,
    private length: number,
  ) {
    this.name = base.name;
  }

  static async over(base: ByteStore): Promise<OverlayStore> {
    const n = await base.size();
    return new OverlayStore(base, n, n);
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    const end = Math.min(offset + buf.length, this.length);
    if (end <= offset) return 0;
    let pos = offset;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK);
      const c = this.chunks.get(ci);
      if (c) {
        const n = Math.min((ci + 1) * CHUNK, end) - pos;
        buf.set(c.subarray(pos - ci * CHUNK, pos - ci * CHUNK + n), pos - offset);
        pos += n;
        continue;
      }
      // A run of chunks not written: one read of the base.
      let runEnd = (ci + 1) * CHUNK;
      while (runEnd < end && !this.chunks.has(runEnd / CHUNK)) runEnd += CHUNK;
      runEnd = Math.min(runEnd, end);
      await this.readBase(pos, buf.subarray(pos - offset, runEnd - offset));
      pos = runEnd;
    }
    return end - offset;
  }

  /** Base bytes for [pos, pos + dst.length); zeros past the base's (possibly shrunk) end. */
  private async readBase(pos: number, dst: Uint8Array): Promise<void> {
    const inBase = Math.max(0, Math.min(dst.length, this.baseLength - pos));
    let done = 0;
    while (done < inBase) {
      const n = await this.base.read(pos + done, dst.subarray(done, inBase));
      if (n <= 0) break;
      done += n;
    }
    dst.fill(0, done);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK);
      const co = pos - ci * CHUNK;
      const n = Math.min(CHUNK - co, end - pos);
      let c = this.chunks.get(ci);
      if (!c) {
        c = new Uint8Array(CHUNK);
        if (n < CHUNK) await this.readBase(ci * CHUNK, c);
        this.chunks.set(ci, c);
      }
      c.set(data.subarray(pos - offset, pos - offset + n), co);
      pos += n;
    }
    if (end > this.length) this.length = end;
  }

  async truncate(size: number): Promise<void> {
    if (size < this.length) {
      for (const [ci, c] of [...this.chunks]) {
        if (ci * CHUNK >= size) this.chunks.delete(ci);
        else if ((ci + 1) * CHUNK > size) c.fill(0, size - ci * CHUNK);
      }
      // Base bytes past the cut are gone: growing again reads zeros there.
      this.baseLength = Math.min(this.baseLength, size);
    }
    this.length = size;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.chunks.clear();
    await this.base.close();
  }

  async allocatedSize(): Promise<number> {
    return (await (this.base.allocatedSize?.() ?? this.base.size())) + this.chunks.size * CHUNK;
  }

  /** Offsets of the chunks written so far (each `chunkSize` bytes). */
  written(): number[] {
    return [...this.chunks.keys()].sort((a, b) => a - b).map((ci) => ci * CHUNK);
  }

  static readonly chunkSize = CHUNK;
}

/**
 * A StoreHost for a browser: images by name from picked files (`Blob`/`File`)
 * or URLs, read lazily; an image opened for writing gets an in-memory
 * {@link OverlayStore}, and created files (ringzero-img's convert output, a
 * new overlay image) live in memory. Relative backing-file names resolve
 * against the image's name (as a URL when it is one).
 */
export class RemoteHost implements StoreHost {
  private readonly sources = new Map<string, Blob | string>();
  /** Files created through this host. */
  readonly created = new Map<string, MemoryStore>();

  /** `files`: name → a Blob/File, or the URL to read it from (a name that is itself an http(s) URL needs no entry). */
  constructor(
    files: Record<string, Blob | string> | Map<string, Blob | string> = {},
    private readonly options: HttpStoreOptions = {},
  ) {
    for (const [k, v] of files instanceof Map ? files : Object.entries(files)) this.sources.set(k, v);
  }

  async open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
    const made = this.created.get(name);
    if (made) return made.reopen(options.readOnly);
    const src = this.sources.get(name) ?? (isUrl(name) ? name : undefined);
    if (src === undefined) throw new DiskError(DiskErrorCode.NOT_FOUND, { format: "remote", file: name });
    const base = typeof src === "string" ? await HttpRangeStore.open(src, this.options) : new BlobStore(src, name);
    return options.readOnly ? base : OverlayStore.over(base);
  }

  async create(name: string): Promise<ByteStore> {
    const s = new MemoryStore(name);
    this.created.set(name, s);
    return s;
  }

  resolve(base: string, name: string): string {
    if (isUrl(name) || name.startsWith("/")) return name;
    if (isUrl(base)) return new URL(name, base).href;
    const i = base.lastIndexOf("/");
    return i < 0 ? name : `${base.slice(0, i + 1)}${name}`;
  }

  async canonical(name: string): Promise<string> {
    return name;
  }

  /** A URL is taken to exist (opening it tells); other names must have been given or created. */
  async exists(name: string): Promise<boolean> {
    return this.created.has(name) || this.sources.has(name) || isUrl(name);
  }

  async remove(name: string): Promise<void> {
    this.created.delete(name);
  }
}

function isUrl(name: string): boolean {
  return /^https?:\/\//i.test(name);
}
