// Node implementation of the I/O layer: files through node:fs/promises, or
// (`blocking`) node:fs's synchronous calls on the calling thread. The only
// module of the library that imports node:fs.
import { constants, fdatasyncSync, fstatSync, ftruncateSync, readSync, writeSync } from "node:fs";
import { access, type FileHandle, open, realpath, rm } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { DiskError, DiskErrorCode } from "../errors.js";
import type { ByteStore, StoreHost } from "./store.js";

export class NodeFileStore implements ByteStore {
  private constructor(
    private readonly fh: FileHandle,
    readonly name: string,
    readonly readOnly: boolean,
    private readonly sync: boolean,
    private readonly blocking: boolean,
    /** A file this store created and has not changed since: empty. */
    private fresh: boolean,
  ) {}

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
        await open(path, flags),
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
    return this.blocking ? fstatSync(this.fh.fd).size : (await this.fh.stat()).size;
  }

  async read(offset: number, buf: Uint8Array): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      const bytesRead = this.blocking
        ? readSync(this.fh.fd, buf, done, buf.length - done, offset + done)
        : (await this.fh.read(buf, done, buf.length - done, offset + done)).bytesRead;
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: "file", file: this.name, offset });
    this.fresh = false;
    let done = 0;
    while (done < data.length) {
      const bytesWritten = this.blocking
        ? writeSync(this.fh.fd, data, done, data.length - done, offset + done)
        : (await this.fh.write(data, done, data.length - done, offset + done)).bytesWritten;
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
    if (this.blocking) ftruncateSync(this.fh.fd, size);
    else await this.fh.truncate(size);
  }

  async flush(): Promise<void> {
    if (this.readOnly || !this.sync) return;
    if (this.blocking) fdatasyncSync(this.fh.fd);
    else await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async allocatedSize(): Promise<number> {
    return (await this.fh.stat()).blocks * 512;
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
      return await realpath(name);
    } catch {
      return resolve(name);
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await access(name, constants.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  async remove(name: string): Promise<void> {
    await rm(name, { force: true });
  }
}
