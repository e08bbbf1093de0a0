// Confined access to the host directory tree. Node has no openat(2), so this
// module gets the same effect the Linux way: "/proc/self/fd/<dirfd>/<name>"
// is resolved by the kernel by jumping to the directory the fd refers to (a
// magic link, not a textual path) and then looking `name` up in it. Every
// path the server touches is reached component by component from the root
// fd with O_PATH|O_DIRECTORY|O_NOFOLLOW, and the final component is used
// with a no-follow operation (lstat, lchown, lutimes, readlink, O_NOFOLLOW
// opens, unlink, rmdir, rename, mkdir, symlink, link). A symlink anywhere in
// a path is therefore never followed on the host — as QEMU's local backend
// does with openat(O_NOFOLLOW) relative to the parent directory.
import { type BigIntStats, constants as C, closeSync, fstatSync, lstatSync, openSync } from "node:fs";
import fsp, { type FileHandle } from "node:fs/promises";
import { fail } from "./errno.js";
import { NinePError, NinePErrorCode } from "./errors.js";

/** O_PATH (Linux, all architectures but alpha/parisc/sparc): a handle to a path, no I/O. */
const O_PATH = 0o10000000;
const DIR_FLAGS = O_PATH | C.O_DIRECTORY | C.O_NOFOLLOW;

/** Path of `name` inside the directory open as `dirFd`, as bytes (Linux names are bytes). */
function at(dirFd: number, name: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]);
}
/** The magic link of an fd: resolves to the open file itself, never re-walked by name. */
function self(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** A directory opened for lookups; release() closes it unless it is the root. */
interface DirRef {
  readonly fd: number;
  release(): Promise<void>;
}

/** Location below the root: the list of names (empty = the root itself). */
export type Loc = readonly Uint8Array[];

export class HostFs {
  private constructor(
    readonly rootPath: string,
    private readonly rootFd: number,
  ) {}

  /** Open the root (realpath'd once) and check the host supports /proc/self/fd lookups. */
  static openRoot(root: string): HostFs {
    let fd: number;
    try {
      fd = openSync(root, DIR_FLAGS & ~C.O_NOFOLLOW);
    } catch (err) {
      throw new NinePError(NinePErrorCode.ROOT_INVALID, { root, code: (err as NodeJS.ErrnoException).code });
    }
    try {
      if (!fstatSync(fd).isDirectory()) throw new Error("not a directory");
      // The probe: look the root up through its own magic link.
      const probe = openSync(`${self(fd)}/.`, DIR_FLAGS);
      closeSync(probe);
    } catch (err) {
      closeSync(fd);
      throw new NinePError(NinePErrorCode.HOST_UNSUPPORTED, { root, platform: process.platform }, String(err));
    }
    return new HostFs(root, fd);
  }

  close(): void {
    closeSync(this.rootFd);
  }

  private rootRef(): DirRef {
    return { fd: this.rootFd, release: async () => {} };
  }

  /**
   * Open the directory at `loc` by walking from the root with O_NOFOLLOW at
   * every step. These O_PATH lookups are synchronous: they only resolve names
   * (no data I/O), cost a few microseconds each on a local file system, and a
   * deep path would otherwise pay a thread-pool round trip per component.
   */
  async openDir(loc: Loc): Promise<DirRef> {
    if (loc.length === 0) return this.rootRef();
    let cur = -1;
    try {
      for (const name of loc) {
        const next = openSync(at(cur < 0 ? this.rootFd : cur, name), DIR_FLAGS);
        if (cur >= 0) closeSync(cur);
        cur = next;
      }
    } catch (err) {
      if (cur >= 0) closeSync(cur);
      throw err;
    }
    const fd = cur;
    return { fd, release: async () => closeSync(fd) };
  }

  /** Run `fn` with the parent directory of `loc` open and the last name; the root has no parent. */
  async inParent<T>(loc: Loc, fn: (dirFd: number, name: Buffer) => Promise<T>): Promise<T> {
    if (loc.length === 0) fail("EBUSY", "operation on the share root");
    const dir = await this.openDir(loc.slice(0, -1));
    try {
      return await fn(dir.fd, at(dir.fd, loc[loc.length - 1] as Uint8Array));
    } finally {
      await dir.release();
    }
  }

  async inDir<T>(loc: Loc, fn: (dirFd: number) => Promise<T>): Promise<T> {
    const dir = await this.openDir(loc);
    try {
      return await fn(dir.fd);
    } finally {
      await dir.release();
    }
  }

  // stat calls are synchronous like the O_PATH walk above: metadata only.
  async lstat(loc: Loc): Promise<BigIntStats> {
    if (loc.length === 0) return fstatSync(this.rootFd, { bigint: true });
    return this.inParent(loc, async (_d, p) => lstatSync(p, { bigint: true }));
  }

  /** lstat of `name` inside an already open directory fd (readdir entries). */
  async lstatAt(dirFd: number, name: Uint8Array): Promise<BigIntStats> {
    return lstatSync(at(dirFd, name), { bigint: true });
  }

  async fstat(fd: number): Promise<BigIntStats> {
    return fstatSync(fd, { bigint: true });
  }

  /** open(2) of an existing object with O_NOFOLLOW (the root is reopened through its magic link). */
  async open(loc: Loc, flags: number): Promise<FileHandle> {
    if (loc.length === 0) return fsp.open(self(this.rootFd), flags & ~C.O_NOFOLLOW);
    return this.inParent(loc, (_d, p) => fsp.open(p, flags | C.O_NOFOLLOW));
  }

  /** Create (O_CREAT|O_EXCL) `name` in `dir`; returns the open handle. */
  create(dir: Loc, name: Uint8Array, flags: number, mode: number): Promise<FileHandle> {
    return this.inDir(dir, (d) => fsp.open(at(d, name), flags | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode));
  }

  mkdir(dir: Loc, name: Uint8Array, mode: number): Promise<void> {
    return this.inDir(dir, (d) => fsp.mkdir(at(d, name), { mode }).then(() => undefined));
  }

  symlink(dir: Loc, name: Uint8Array, target: Uint8Array): Promise<void> {
    return this.inDir(dir, (d) => fsp.symlink(Buffer.from(target), at(d, name)));
  }

  /** link(2) does not follow a symlink source on Linux. */
  link(src: Loc, dir: Loc, name: Uint8Array): Promise<void> {
    return this.inParent(src, (_s, sp) => this.inDir(dir, (d) => fsp.link(sp, at(d, name))));
  }

  rename(srcDir: Loc, srcName: Uint8Array, dstDir: Loc, dstName: Uint8Array): Promise<void> {
    return this.inDir(srcDir, (s) => this.inDir(dstDir, (d) => fsp.rename(at(s, srcName), at(d, dstName))));
  }

  unlink(dir: Loc, name: Uint8Array): Promise<void> {
    return this.inDir(dir, (d) => fsp.unlink(at(d, name)));
  }

  rmdir(dir: Loc, name: Uint8Array): Promise<void> {
    return this.inDir(dir, (d) => fsp.rmdir(at(d, name)));
  }

  readlink(loc: Loc): Promise<Buffer> {
    return this.inParent(loc, (_d, p) => fsp.readlink(p, { encoding: "buffer" }));
  }

  /** chmod without following a final symlink: O_PATH|O_NOFOLLOW, then chmod of the magic link. */
  async chmod(loc: Loc, mode: number): Promise<void> {
    if (loc.length === 0) return fsp.chmod(self(this.rootFd), mode);
    const h = await this.inParent(loc, (_d, p) => fsp.open(p, O_PATH | C.O_NOFOLLOW));
    try {
      if (fstatSync(h.fd).isSymbolicLink()) fail("EOPNOTSUPP", "chmod of a symlink");
      await fsp.chmod(self(h.fd), mode);
    } finally {
      await h.close();
    }
  }

  lchown(loc: Loc, uid: number, gid: number): Promise<void> {
    if (loc.length === 0) return fsp.chown(self(this.rootFd), uid, gid);
    return this.inParent(loc, (_d, p) => fsp.lchown(p, uid, gid));
  }

  lutimes(loc: Loc, atime: number, mtime: number): Promise<void> {
    if (loc.length === 0) return fsp.utimes(self(this.rootFd), atime, mtime);
    return this.inParent(loc, (_d, p) => fsp.lutimes(p, atime, mtime));
  }

  /** Snapshot up to `max` names of the directory open as `fd` (a fresh stream, not the fd's offset). */
  async listNames(fd: number, max: number): Promise<{ names: Buffer[]; truncated: boolean }> {
    const dir = await fsp.opendir(self(fd), { encoding: "buffer" as BufferEncoding, bufferSize: 256 });
    const names: Buffer[] = [];
    let truncated = false;
    try {
      for (;;) {
        const ent = await dir.read();
        if (ent === null) break;
        if (names.length >= max) {
          truncated = true;
          break;
        }
        names.push(ent.name as unknown as Buffer);
      }
    } finally {
      await dir.close();
    }
    return { names, truncated };
  }

  statfs(): Promise<import("node:fs").BigIntStatsFs> {
    return fsp.statfs(self(this.rootFd), { bigint: true });
  }
}
