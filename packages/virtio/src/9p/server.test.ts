import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Errno } from "./errno.js";
import { NinePError } from "./errors.js";
import { AT_REMOVEDIR, ATTR, DOTL, DT, LOCK, QT } from "./protocol.js";
import { NinePServer } from "./server.js";
import { NinePTestClient } from "./testing.js";

let dir: string;
let server: NinePServer;
let c: NinePTestClient;
const uid = process.getuid?.() ?? 0;

async function session(readOnly = false) {
  server = new NinePServer({ root: dir, readOnly });
  c = new NinePTestClient((m) => server.handle(m));
  await c.version(65536);
  await c.attach(0, uid);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "rz9p-"));
});
afterEach(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const errno = (e: number) => ({ errno: e });

describe("NinePServer: a Linux-style session", () => {
  it("negotiates version and msize", async () => {
    server = new NinePServer({ root: dir, maxMsize: 8192 });
    c = new NinePTestClient((m) => server.handle(m));
    expect(await c.version(512 * 1024)).toEqual({ msize: 8192, version: "9P2000.L" });
    expect(server.negotiatedMsize).toBe(8192);
    expect(await c.version(65536, "9P2000.u")).toEqual({ msize: 8192, version: "unknown" });
    await expect(c.attach(0)).rejects.toMatchObject(errno(Errno.EPROTO));
    await expect(c.version(1024)).rejects.toMatchObject(errno(Errno.EINVAL));
    expect(await c.version(4096, "9P2000.L")).toEqual({ msize: 4096, version: "9P2000.L" });
  });

  it("attach, walk, create, write, read, getattr, clunk", async () => {
    await session();
    const root = await c.getattr(0);
    expect(root.qid.type).toBe(QT.DIR);
    expect(root.qid.path).toBe(BigInt(statSync(dir).ino));
    await c.walk(0, 1); // clone
    const q = await c.lcreate(1, "hello.txt", DOTL.RDWR | DOTL.CREATE, 0o640, 0);
    expect(q.type).toBe(QT.FILE);
    expect(await c.write(1, 0, "hello, world")).toBe(12);
    expect(Buffer.from(await c.read(1, 7, 100)).toString()).toBe("world");
    await c.fsync(1);
    await c.fsync(1, 1);
    await c.clunk(1);
    expect(readFileSync(join(dir, "hello.txt"), "utf8")).toBe("hello, world");
    expect(statSync(join(dir, "hello.txt")).mode & 0o7777).toBe(0o640);

    const [wq] = await c.walk(0, 2, "hello.txt");
    expect(wq?.path).toBe(BigInt(statSync(join(dir, "hello.txt")).ino));
    const a = await c.getattr(2);
    expect(a.size).toBe(12n);
    expect(a.mode).toBe(0o100640);
    expect(a.nlink).toBe(1n);
    expect(a.qid).toEqual(wq);
    const { qid } = await c.lopen(2, DOTL.RDONLY);
    expect(qid.path).toBe(wq?.path);
    expect(Buffer.from(await c.read(2, 0, 5)).toString()).toBe("hello");
    expect((await c.read(2, 100, 5)).length).toBe(0);
    await expect(c.write(2, 0, "x")).rejects.toMatchObject(errno(Errno.EBADF));
    await expect(c.lopen(2, DOTL.RDONLY)).rejects.toMatchObject(errno(Errno.EINVAL));
    await c.clunk(2);
    await c.walk(0, 2, "hello.txt");
    await expect(c.lopen(2, DOTL.RDONLY | DOTL.DIRECTORY)).rejects.toMatchObject(errno(Errno.ENOTDIR));
    await c.clunk(2);
    await expect(c.clunk(2)).rejects.toMatchObject(errno(Errno.EBADF));
  });

  it("lopen honours O_TRUNC and O_APPEND; lcreate without O_EXCL opens an existing file", async () => {
    await session();
    writeFileSync(join(dir, "f"), "0123456789");
    await c.walk(0, 1, "f");
    await c.lopen(1, DOTL.WRONLY | DOTL.APPEND);
    await c.write(1, 0, "AB");
    await c.clunk(1);
    expect(readFileSync(join(dir, "f"), "utf8")).toBe("0123456789AB");
    await c.walk(0, 1, "f");
    await c.lopen(1, DOTL.WRONLY | DOTL.TRUNC);
    await c.clunk(1);
    expect(readFileSync(join(dir, "f"), "utf8")).toBe("");
    await c.walk(0, 1);
    await c.lcreate(1, "f", DOTL.RDWR | DOTL.CREATE, 0o600);
    await c.clunk(1);
    await c.walk(0, 1);
    await expect(c.lcreate(1, "f", DOTL.RDWR | DOTL.CREATE | DOTL.EXCL, 0o600)).rejects.toMatchObject(
      errno(Errno.EEXIST),
    );
    mkdirSync(join(dir, "d"));
    await expect(c.lcreate(1, "d", DOTL.RDWR | DOTL.CREATE, 0o600)).rejects.toMatchObject(errno(Errno.EISDIR));
  });

  it("mkdir and readdir across several calls lists every entry once", async () => {
    await session();
    await c.walk(0, 1);
    const dq = await c.mkdir(1, "dir", 0o755);
    expect(dq.type).toBe(QT.DIR);
    expect(statSync(join(dir, "dir")).mode & 0o7777).toBe(0o755);
    const names = Array.from({ length: 200 }, (_, i) => `file-with-a-longish-name-${i}`);
    for (const n of names) writeFileSync(join(dir, "dir", n), n);
    mkdirSync(join(dir, "dir", "sub"));
    await c.walk(0, 2, "dir");
    await c.lopen(2, DOTL.RDONLY | DOTL.DIRECTORY);
    const { entries, calls } = await c.readdirAll(2, 1000);
    expect(calls).toBeGreaterThan(5);
    const got = entries.map((e) => e.name).sort();
    expect(got).toEqual([".", "..", ...names, "sub"].sort());
    expect(new Set(entries.map((e) => e.offset)).size).toBe(entries.length);
    const sub = entries.find((e) => e.name === "sub");
    expect(sub?.type).toBe(DT.DIR);
    expect(sub?.qid.type).toBe(QT.DIR);
    expect(sub?.qid.path).toBe(BigInt(statSync(join(dir, "dir", "sub")).ino));
    const f0 = entries.find((e) => e.name === names[0]);
    expect(f0?.type).toBe(DT.REG);
    expect(entries.find((e) => e.name === ".")?.qid.path).toBe(BigInt(statSync(join(dir, "dir")).ino));
    expect(entries.find((e) => e.name === "..")?.qid.path).toBe(BigInt(statSync(dir).ino));

    // Cookies stay valid while the directory changes: resuming at a cookie
    // continues the same snapshot; offset 0 takes a new one.
    const first = await c.readdir(2, 0, 300);
    writeFileSync(join(dir, "dir", "late"), "");
    const rest = await c.readdir(2, first[first.length - 1]?.offset ?? 0n, 100000);
    expect([...first, ...rest].map((e) => e.name).sort()).toEqual(got);
    const again = await c.readdirAll(2, 8192);
    expect(again.entries.map((e) => e.name)).toContain("late");
    // A directory fid that is not open cannot be read; nor can a file be listed.
    await c.walk(0, 3, "dir");
    await expect(c.readdir(3, 0, 4096)).rejects.toMatchObject(errno(Errno.EBADF));
    await c.walk(0, 4, "dir", names[0] as string);
    await c.lopen(4, DOTL.RDONLY);
    await expect(c.readdir(4, 0, 4096)).rejects.toMatchObject(errno(Errno.ENOTDIR));
    await expect(c.readdir(2, 0, 10)).rejects.toMatchObject(errno(Errno.EINVAL));
    await expect(c.read(2, 0, 10)).rejects.toMatchObject(errno(Errno.EISDIR));
    await expect(c.lopen(3, DOTL.RDWR)).rejects.toMatchObject(errno(Errno.EISDIR));
  });

  it("setattr: mode, size, times (explicit and now), owner", async () => {
    await session();
    writeFileSync(join(dir, "f"), "0123456789");
    await c.walk(0, 1, "f");
    await c.setattr(1, { valid: ATTR.MODE, mode: 0o604 });
    expect(statSync(join(dir, "f")).mode & 0o7777).toBe(0o604);
    await c.setattr(1, { valid: ATTR.SIZE, size: 4 });
    expect(readFileSync(join(dir, "f"), "utf8")).toBe("0123");
    await c.setattr(1, { valid: ATTR.SIZE, size: 8 });
    expect(statSync(join(dir, "f")).size).toBe(8);
    await c.setattr(1, {
      valid: ATTR.ATIME | ATTR.ATIME_SET | ATTR.MTIME | ATTR.MTIME_SET,
      atimeSec: 1_000_000,
      atimeNsec: 0,
      mtimeSec: 2_000_000,
      mtimeNsec: 500_000_000,
    });
    let a = await c.getattr(1);
    expect(a.atimeSec).toBe(1_000_000n);
    expect(a.mtimeSec).toBe(2_000_000n);
    expect(Number(a.mtimeNsec)).toBeCloseTo(500_000_000, -4);
    // Only mtime, set to now: atime must stay.
    await c.setattr(1, { valid: ATTR.MTIME });
    a = await c.getattr(1);
    expect(a.atimeSec).toBe(1_000_000n);
    expect(Math.abs(Number(a.mtimeSec) - Date.now() / 1000)).toBeLessThan(5);
    await c.setattr(1, { valid: ATTR.UID | ATTR.GID, uid, gid: process.getgid?.() ?? 0 });
    await c.setattr(1, { valid: ATTR.CTIME });
    await expect(c.setattr(1, { valid: 0x8000 })).rejects.toMatchObject(errno(Errno.EINVAL));
    // Through an open fid (ftruncate/fchmod on the handle).
    await c.lopen(1, DOTL.RDWR);
    await c.setattr(1, { valid: ATTR.SIZE | ATTR.MODE, size: 2, mode: 0o600 });
    expect(statSync(join(dir, "f")).size).toBe(2);
    expect(statSync(join(dir, "f")).mode & 0o7777).toBe(0o600);
    // Directories cannot be truncated.
    await expect(c.setattr(0, { valid: ATTR.SIZE, size: 0 })).rejects.toMatchObject(errno(Errno.EINVAL));
  });

  it("rename and renameat move the file; fids follow it", async () => {
    await session();
    mkdirSync(join(dir, "a"));
    mkdirSync(join(dir, "b"));
    writeFileSync(join(dir, "a", "x"), "X");
    await c.walk(0, 1, "a", "x");
    await c.walk(0, 2, "b");
    await c.rename(1, 2, "y");
    expect(existsSync(join(dir, "a", "x"))).toBe(false);
    expect(readFileSync(join(dir, "b", "y"), "utf8")).toBe("X");
    // fid 1 now names b/y
    await c.lopen(1, DOTL.RDONLY);
    expect(Buffer.from(await c.read(1, 0, 10)).toString()).toBe("X");
    await c.clunk(1);
    // renameat of a directory carries fids below it along.
    await c.walk(0, 3, "b", "y");
    await c.renameat(0, "b", 0, "c");
    expect(readFileSync(join(dir, "c", "y"), "utf8")).toBe("X");
    expect((await c.getattr(3)).size).toBe(1n);
    await c.walk(2, 4, "y"); // fid 2 was "b", now "c"
    // Renaming over a name: fids of the replaced file no longer resolve.
    writeFileSync(join(dir, "c", "z"), "ZZ");
    await c.walk(0, 5, "c", "z");
    await c.renameat(2, "y", 2, "z");
    expect(readFileSync(join(dir, "c", "z"), "utf8")).toBe("X");
    await expect(c.getattr(5)).rejects.toMatchObject(errno(Errno.ENOENT));
    await expect(c.renameat(0, "nope", 0, "n2")).rejects.toMatchObject(errno(Errno.ENOENT));
    await expect(c.renameat(0, "c", 2, "inside")).rejects.toMatchObject(errno(Errno.EINVAL));
    await expect(c.rename(0, 2, "root")).rejects.toMatchObject(errno(Errno.EBUSY));
  });

  it("unlinkat, remove, symlink, readlink, link, mknod, statfs, locks, xattrs", async () => {
    await session();
    writeFileSync(join(dir, "f"), "data");
    mkdirSync(join(dir, "d"));
    writeFileSync(join(dir, "d", "inner"), "");
    await expect(c.unlinkat(0, "d", AT_REMOVEDIR)).rejects.toMatchObject(errno(Errno.ENOTEMPTY));
    await expect(c.unlinkat(0, "d", 0)).rejects.toMatchObject(errno(Errno.EISDIR));
    await expect(c.unlinkat(0, "f", AT_REMOVEDIR)).rejects.toMatchObject(errno(Errno.ENOTDIR));
    await expect(c.unlinkat(0, "missing")).rejects.toMatchObject(errno(Errno.ENOENT));
    await c.walk(0, 1, "d", "inner");
    await c.remove(1);
    await expect(c.getattr(1)).rejects.toMatchObject(errno(Errno.EBADF)); // remove clunks
    await c.unlinkat(0, "d", AT_REMOVEDIR);
    expect(existsSync(join(dir, "d"))).toBe(false);

    const sq = await c.symlink(0, "ln", "f");
    expect(sq.type).toBe(QT.SYMLINK);
    expect(readlinkSync(join(dir, "ln"))).toBe("f");
    await c.walk(0, 2, "ln");
    expect(await c.readlink(2)).toBe("f");
    expect((await c.getattr(2)).mode & 0o170000).toBe(0o120000);
    await c.walk(0, 3, "f");
    await expect(c.readlink(3)).rejects.toMatchObject(errno(Errno.EINVAL));
    await c.link(0, 3, "hard");
    expect(statSync(join(dir, "hard")).ino).toBe(statSync(join(dir, "f")).ino);
    expect((await c.getattr(3)).nlink).toBe(2n);
    await expect(c.link(0, 3, "hard")).rejects.toMatchObject(errno(Errno.EEXIST));
    await expect(c.link(0, 0, "rootlink")).rejects.toMatchObject(errno(Errno.EPERM));

    const nq = await c.mknod(0, "plain", 0o100644);
    expect(nq.type).toBe(QT.FILE);
    expect(statSync(join(dir, "plain")).isFile()).toBe(true);
    await expect(c.mknod(0, "dev", 0o020644, 1, 3)).rejects.toMatchObject(errno(Errno.EPERM));
    await expect(c.mknod(0, "fifo", 0o010644)).rejects.toMatchObject(errno(Errno.EOPNOTSUPP));

    const s = await c.statfs(0);
    expect(s.bsize).toBeGreaterThan(0);
    expect(s.blocks).toBeGreaterThan(0n);
    expect(s.namelen).toBe(255);

    await c.walk(0, 4, "f");
    await c.lopen(4, DOTL.RDWR);
    expect(await c.lock(4, LOCK.TYPE_WRLCK)).toBe(LOCK.SUCCESS);
    expect(await c.getlock(4, LOCK.TYPE_WRLCK)).toEqual({
      type: LOCK.TYPE_UNLCK,
      start: 10n,
      length: 20n,
      procId: 7,
      clientId: "guest",
    });
    await expect(c.xattrwalk(4, 5, "security.capability")).rejects.toMatchObject(errno(Errno.EOPNOTSUPP));
    await c.flush(1234);
  });

  it("an unlinked file stays usable through its open fid", async () => {
    await session();
    await c.walk(0, 1);
    await c.lcreate(1, "tmp", DOTL.RDWR | DOTL.CREATE, 0o600);
    await c.unlinkat(0, "tmp");
    expect(await c.write(1, 0, "still here")).toBe(10);
    expect(Buffer.from(await c.read(1, 0, 5)).toString()).toBe("still");
    expect((await c.getattr(1)).nlink).toBe(0n);
    // A new file with the old name is not what fid 1 refers to.
    writeFileSync(join(dir, "tmp"), "new");
    expect((await c.getattr(1)).size).toBe(10n);
  });

  it("readOnly: every mutating request fails with EROFS, reads work", async () => {
    writeFileSync(join(dir, "f"), "ro");
    mkdirSync(join(dir, "d"));
    await session(true);
    await c.walk(0, 1, "f");
    await expect(c.lopen(1, DOTL.RDWR)).rejects.toMatchObject(errno(Errno.EROFS));
    await expect(c.lopen(1, DOTL.RDONLY | DOTL.TRUNC)).rejects.toMatchObject(errno(Errno.EROFS));
    await c.lopen(1, DOTL.RDONLY);
    expect(Buffer.from(await c.read(1, 0, 10)).toString()).toBe("ro");
    await c.walk(0, 2);
    const rofs = errno(Errno.EROFS);
    await expect(c.lcreate(2, "n", DOTL.RDWR | DOTL.CREATE, 0o644)).rejects.toMatchObject(rofs);
    await expect(c.mkdir(0, "n", 0o755)).rejects.toMatchObject(rofs);
    await expect(c.symlink(0, "n", "f")).rejects.toMatchObject(rofs);
    await expect(c.mknod(0, "n", 0o100644)).rejects.toMatchObject(rofs);
    await c.walk(0, 3, "f");
    await expect(c.link(0, 3, "n")).rejects.toMatchObject(rofs);
    await expect(c.rename(3, 0, "n")).rejects.toMatchObject(rofs);
    await expect(c.renameat(0, "f", 0, "n")).rejects.toMatchObject(rofs);
    await expect(c.unlinkat(0, "f")).rejects.toMatchObject(rofs);
    await expect(c.unlinkat(0, "d", AT_REMOVEDIR)).rejects.toMatchObject(rofs);
    await expect(c.setattr(3, { valid: ATTR.MODE, mode: 0o777 })).rejects.toMatchObject(rofs);
    await expect(c.setattr(3, { valid: ATTR.SIZE, size: 0 })).rejects.toMatchObject(rofs);
    await expect(c.remove(3)).rejects.toMatchObject(rofs);
    await expect(c.getattr(3)).rejects.toMatchObject(errno(Errno.EBADF));
    expect(readFileSync(join(dir, "f"), "utf8")).toBe("ro");
    expect(lstatSync(join(dir, "d")).isDirectory()).toBe(true);
    expect((await c.statfs(0)).namelen).toBe(255);
  });

  it("rejects bad configuration with typed errors", () => {
    expect(() => new NinePServer({ root: "" })).toThrow(NinePError);
    expect(() => new NinePServer({ root: dir, maxMsize: 100 })).toThrowError(/CONFIG_INVALID/);
    expect(() => new NinePServer({ root: join(dir, "missing") })).toThrowError(/ROOT_INVALID/);
    writeFileSync(join(dir, "file"), "");
    expect(() => new NinePServer({ root: join(dir, "file") })).toThrowError(/ROOT_INVALID/);
    server = undefined as unknown as NinePServer;
  });
});
