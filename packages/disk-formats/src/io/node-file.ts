// Node implementation of the I/O layer: files through node:fs's callback calls (libuv's thread
// pool), or (`blocking`) its synchronous calls on the calling thread. The only module of the
// library that imports node:fs. Not node:fs/promises' FileHandle: its wrappers cost 3-5 µs more of
// the main thread per call (about 1,400 calls in a 1 GiB conversion), and loading node:fs/promises
// (with the readline and stream modules it pulls in) about 4 ms of a ringzero-img start.
import {
  access,
  close,
  constants,
  fdatasync,
  fdatasyncSync,
  fstat,
  fstatSync,
  ftruncate,
  ftruncateSync,
  open,
  read,
  readSync,
  readv,
  readvSync,
  realpath,
  rm,
  type Stats,
  write,
  writeSync,
} from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { DiskError, DiskErrorCode } from "../errors.js";
import type { ByteStore, StoreHost } from "./store.js";

/** POSIX's minimum for IOV_MAX is 16; Linux, macOS and the BSDs have 1024. */
const IOV_MAX = 1024;

/** A node:fs callback call as a promise. */
function call<T>(f: (done: (e: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> {
  return new Promise((ok, fail) => f((e, v) => (e ? fail(e) : ok(v))));
}

export class NodeFileStore implements ByteStore {
  private constructor(
    /** -1 once close() has begun: later calls fail with CLOSED instead of reaching a reused descriptor. */
    private fd: number,
    readonly name: string,
    readonly readOnly: boolean,
    private readonly sync: boolean,
    private readonly blocking: boolean,
    /** A file this store created and has not changed since: empty. */
    private fresh: boolean,
  ) {}

  /** Calls in flight on the thread pool, and close()'s wait for them to end. */
  private busy = 0;
  private idle: (() => void) | null = null;

  /** The descriptor, or CLOSED (a FileHandle refused calls after close; a bare descriptor number may be reused). */
  private handle(): number {
    if (this.fd < 0) throw new DiskError(DiskErrorCode.CLOSED, { format: "file", file: this.name });
    return this.fd;
  }

  /** A callback call on the descriptor as a promise, counted so that close() waits for it. */
  private io<T>(f: (fd: number, done: (e: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> {
    const fd = this.handle();
    this.busy++;
    return new Promise((ok, fail) => {
      const settle = (e: NodeJS.ErrnoException | null, v: T) => {
        if (--this.busy === 0 && this.idle) this.idle();
        if (e) fail(e);
        else ok(v);
      };
      try {
        f(fd, settle); // node:fs throws at once on bad arguments (an offset past 2^53, say)
      } catch (e) {
        settle(e as NodeJS.ErrnoException, undefined as T);
      }
    });
  }

  /**
   * `sync: false` makes flush() a no-op (qemu-img convert's cache=unsafe for its target).
   * `blocking: true` does every read, write, truncate and flush with node:fs's synchronous
   * calls on the calling thread instead of libuv's thread pool: when the call's promise
   * exists, the I/O is done, so none outlives the thread that asked for it (a terminated
   * worker's queued thread-pool writes still land, late). For a thread with nothing else to do.
   */
  static async open(
    path: string,
    options: { readOnly: boolean; create?: boolean; sync?: boolean; blocking?: boolean },
  ): Promise<NodeFileStore> {
    const flags = options.create ? "w+" : options.readOnly ? "r" : "r+";
    try {
      return new NodeFileStore(
        await call<number>((done) => open(path, flags, 0o666, done)),
        path,
        options.readOnly,
        options.sync ?? true,
        options.blocking ?? false,
        options.create ?? false,
      );
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DiskError(
        code === "ENOENT" ? DiskErrorCode.NOT_FOUND : DiskErrorCode.INVALID_OPTIONS,
        { format: "file", file: path, errno: code },
        (e as Error).message,
      );
    }
  }

  async size(): Promise<number> {
    return this.blocking ? fstatSync(this.handle()).size : (await this.io<Stats>((fd, done) => fstat(fd, done))).size;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      const at = done;
      const bytesRead = this.blocking
        ? readSync(this.handle(), buf, at, buf.length - at, offset + at)
        : await this.io<number>((fd, cb) => read(fd, buf, at, buf.length - at, offset + at, cb));
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  /**
   * One `preadv` (node:fs readv at a position): a qcow2 source's clusters that follow each other in
   * the file but not in the guest are read in one call instead of one per run (README, Bench).
   * At most IOV_MAX (1024 on Linux) buffers per call; the caller reads on after a short count
   * (readFullv).
   */
  async readv(offset: number, bufs: readonly Uint8Array[]): Promise<number> {
    const iov = bufs.length > IOV_MAX ? bufs.slice(0, IOV_MAX) : (bufs as Uint8Array[]);
    return this.blocking
      ? readvSync(this.handle(), iov, offset)
      : await this.io<number>((fd, cb) => readv(fd, iov, offset, cb));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: "file", file: this.name, offset });
    this.fresh = false;
    let done = 0;
    while (done < data.length) {
      const at = done;
      const bytesWritten = this.blocking
        ? writeSync(this.handle(), data, at, data.length - at, offset + at)
        : await this.io<number>((fd, cb) => write(fd, data, at, data.length - at, offset + at, cb));
      done += bytesWritten;
    }
  }

  async truncate(size: number): Promise<void> {
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: "file", file: this.name });
    // Formats' create() empty the file first; on a file just created that is a no-op to skip: on
    // ext4 a truncate to size 0 marks the file for "auto_da_alloc", so its close() would allocate
    // blocks for (and start writing back) all the data written since, a stall at the end of a convert.
    if (this.fresh && size === 0) return;
    this.fresh = false;
    if (this.blocking) ftruncateSync(this.handle(), size);
    else await this.io<void>((fd, done) => ftruncate(fd, size, (e) => done(e, undefined)));
  }

  async flush(): Promise<void> {
    if (this.readOnly || !this.sync) return;
    if (this.blocking) fdatasyncSync(this.handle());
    else await this.io<void>((fd, done) => fdatasync(fd, (e) => done(e, undefined)));
  }

  /** Closes the file once the calls in flight have ended (as FileHandle's close); again: nothing. */
  async close(): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    if (this.busy > 0)
      await new Promise<void>((ok) => {
        this.idle = ok;
      });
    await call<void>((done) => close(fd, (e) => done(e, undefined)));
  }

  async allocatedSize(): Promise<number> {
    return (await this.io<Stats>((fd, done) => fstat(fd, done))).blocks * 512;
  }
}

/** Files on the local file system. */
export class NodeFileHost implements StoreHost {
  /**
   * With `sync: false`, flushes do not reach the disk (for throw-away or conversion targets).
   * With `blocking: true`, every store's I/O is synchronous on the calling thread (NodeFileStore.open).
   */
  constructor(private readonly options: { sync?: boolean; blocking?: boolean } = {}) {}

  open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
    return NodeFileStore.open(name, { ...options, sync: this.options.sync ?? true, blocking: this.options.blocking });
  }

  create(name: string): Promise<ByteStore> {
    return NodeFileStore.open(name, {
      readOnly: false,
      create: true,
      sync: this.options.sync ?? true,
      blocking: this.options.blocking,
    });
  }

  resolve(base: string, name: string): string {
    // Like QEMU: relative backing names are relative to the directory of the image naming them.
    if (isAbsolute(name)) return name;
    return join(dirname(base), name);
  }

  async canonical(name: string): Promise<string> {
    try {
      return await call<string>((done) => realpath(name, done));
    } catch {
      return resolve(name);
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await call<void>((done) => access(name, constants.F_OK, (e) => done(e, undefined)));
      return true;
    } catch {
      return false;
    }
  }

  async remove(name: string): Promise<void> {
    await call<void>((done) => rm(name, { force: true }, (e) => done(e, undefined)));
  }
}
