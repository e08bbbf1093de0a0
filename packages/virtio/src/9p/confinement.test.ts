// Confinement: nothing the guest sends reaches outside the shared root.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Errno } from "./errno.js";
import { AT_REMOVEDIR, ATTR, DOTL, QT } from "./protocol.js";
import { NinePServer } from "./server.js";
import { NinePTestClient } from "./testing.js";

let base: string;
let share: string;
let outside: string;
let server: NinePServer;
let c: NinePTestClient;
const E = (e: number) => ({ errno: e });

/** Everything observable about the outside directory (not atime: reading it here updates it). */
function snapshot(): string {
  const rows = [`base:${readdirSync(base).sort().join(",")}`];
  for (const n of readdirSync(outside).sort()) {
    const p = join(outside, n);
    const st = lstatSync(p);
    rows.push(`${n} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.uid}:${st.gid} ${st.nlink}`);
    if (st.isFile()) rows.push(readFileSync(p, "latin1"));
    if (st.isDirectory()) rows.push(readdirSync(p).sort().join(","));
  }
  return rows.join("\n");
}

beforeEach(async () => {
  base = mkdtempSync(join(tmpdir(), "rz9p-conf-"));
  share = join(base, "share");
  outside = join(base, "outside");
  mkdirSync(share);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret"), "s3cret");
  chmodSync(join(outside, "secret"), 0o640);
  utimesSync(join(outside, "secret"), 1000, 1000);
  mkdirSync(join(outside, "sub"));
  writeFileSync(join(outside, "sub", "b"), "outside-b");
  // Links inside the share that point out of it, absolute and relative.
  symlinkSync(outside, join(share, "abs"));
  symlinkSync("../outside", join(share, "rel"));
  symlinkSync(join(outside, "secret"), join(share, "secretlink"));
  symlinkSync("/", join(share, "slash"));
  mkdirSync(join(share, "a"));
  writeFileSync(join(share, "a", "b"), "inside-b");
  server = new NinePServer({ root: share });
  c = new NinePTestClient((m) => server.handle(m));
  await c.version(65536);
  await c.attach(0, process.getuid?.() ?? 0);
});

afterEach(async () => {
  await server.close();
  rmSync(base, { recursive: true, force: true });
});

describe("9p confinement", () => {
  it("'..' never leaves the root", async () => {
    const before = snapshot();
    const rootQid = (await c.getattr(0)).qid;
    const qids = await c.walk(0, 1, "..", "..", "..");
    expect(qids.map((q) => q.path)).toEqual([rootQid.path, rootQid.path, rootQid.path]);
    expect((await c.getattr(1)).qid).toEqual(rootQid);
    await expect(c.walk(0, 2, "..", "outside")).resolves.toHaveLength(1); // partial: "outside" is not in the share
    await expect(c.getattr(2)).rejects.toMatchObject(E(Errno.EBADF));
    await expect(c.walk(0, 2, "..", "outside", "secret")).resolves.toHaveLength(1);
    // ".." inside the share goes to the real parent.
    const [aq] = await c.walk(0, 3, "a");
    const up = await c.walk(3, 4, "b", "..", "..");
    expect(up).toHaveLength(1); // "b" is a file: ".." below it is ENOTDIR
    const up2 = await c.walk(3, 4, "..", "a", "..");
    expect(up2.map((q) => q.path)).toEqual([rootQid.path, aq?.path, rootQid.path]);
    await c.lopen(4, DOTL.RDONLY);
    const ls = await c.readdirAll(4, 4096);
    expect(ls.entries.map((e) => e.name).sort()).toEqual([".", "..", "a", "abs", "rel", "secretlink", "slash"]);
    expect(ls.entries.find((e) => e.name === "..")?.qid.path).toBe(rootQid.path);
    expect(snapshot()).toBe(before);
  });

  it("names with '/', NUL, empty, '.' or '..' are refused wherever a name is taken", async () => {
    const before = snapshot();
    const bad = ["../outside/x", "a/b", "x\0y", "/abs"];
    for (const n of bad) {
      await expect(c.walk(0, 1, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await c.walk(0, 1);
      await expect(c.lcreate(1, n, DOTL.RDWR | DOTL.CREATE, 0o644)).rejects.toMatchObject(E(Errno.EINVAL));
      await c.clunk(1);
      await expect(c.mkdir(0, n, 0o755)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.symlink(0, n, "x")).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.mknod(0, n, 0o100644)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.unlinkat(0, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.renameat(0, "a", 0, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.renameat(0, n, 0, "zz")).rejects.toMatchObject(E(Errno.EINVAL));
      await c.walk(0, 5, "a", "b");
      await expect(c.link(0, 5, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.rename(5, 0, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await c.clunk(5);
    }
    for (const n of [".", ".."]) {
      await expect(c.mkdir(0, n, 0o755)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.unlinkat(0, n, AT_REMOVEDIR)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.renameat(0, "a", 0, n)).rejects.toMatchObject(E(Errno.EINVAL));
      await expect(c.symlink(0, n, "x")).rejects.toMatchObject(E(Errno.EINVAL));
    }
    await expect(c.walk(0, 1, "")).rejects.toMatchObject(E(Errno.ENOENT));
    await expect(c.mkdir(0, "", 0o755)).rejects.toMatchObject(E(Errno.ENOENT));
    await expect(c.mkdir(0, "n".repeat(256), 0o755)).rejects.toMatchObject(E(Errno.ENAMETOOLONG));
    await expect(c.walk(0, 1, "n".repeat(256))).rejects.toMatchObject(E(Errno.ENAMETOOLONG));
    await expect(c.symlink(0, "s", "")).rejects.toMatchObject(E(Errno.ENOENT));
    expect(readdirSync(share).sort()).toEqual(["a", "abs", "rel", "secretlink", "slash"]);
    expect(snapshot()).toBe(before);
  });

  it("a symlink to a directory outside is only text: no walk, open, create or mkdir through it", async () => {
    const before = snapshot();
    for (const link of ["abs", "rel", "slash"]) {
      const [q] = await c.walk(0, 1, link);
      expect(q?.type).toBe(QT.SYMLINK);
      expect(await c.readlink(1)).toBe(readlinkSync(join(share, link)));
      // Walking through it stops at the link (partial Rwalk, newfid not made).
      expect(await c.walk(0, 2, link, "secret")).toHaveLength(1);
      expect(await c.walk(0, 2, link, "sub", "b")).toHaveLength(1);
      await expect(c.walk(1, 2, "secret")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.walk(1, 2, "..")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.lopen(1, DOTL.RDONLY | DOTL.DIRECTORY)).rejects.toMatchObject(E(Errno.ELOOP));
      await expect(c.lcreate(1, "planted", DOTL.RDWR | DOTL.CREATE, 0o644)).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.mkdir(1, "planted", 0o755)).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.symlink(1, "planted", "x")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.mknod(1, "planted", 0o100644)).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.unlinkat(1, "secret")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.renameat(1, "secret", 0, "stolen")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.renameat(0, "a", 1, "planted")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await c.walk(0, 3, "a", "b");
      await expect(c.link(1, 3, "planted")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await expect(c.rename(3, 1, "planted")).rejects.toMatchObject(E(Errno.ENOTDIR));
      await c.clunk(3);
      await c.clunk(1);
    }
    expect(snapshot()).toBe(before);
  });

  it("a symlink to a file outside: attributes, open, truncate and create act on the link or fail", async () => {
    const before = snapshot();
    await c.walk(0, 1, "secretlink");
    const a = await c.getattr(1);
    expect(a.mode & 0o170000).toBe(0o120000); // the link's own attributes (lstat)
    expect(a.qid.path).toBe(BigInt(lstatSync(join(share, "secretlink")).ino));
    await expect(c.lopen(1, DOTL.RDONLY)).rejects.toMatchObject(E(Errno.ELOOP));
    await expect(c.lopen(1, DOTL.WRONLY | DOTL.TRUNC)).rejects.toMatchObject(E(Errno.ELOOP));
    await expect(c.setattr(1, { valid: ATTR.MODE, mode: 0o777 })).rejects.toMatchObject(E(Errno.EOPNOTSUPP));
    await expect(c.setattr(1, { valid: ATTR.SIZE, size: 0 })).rejects.toMatchObject(E(Errno.EINVAL));
    // Times and owner change the link itself (lutimes/lchown).
    await c.setattr(1, {
      valid: ATTR.MTIME | ATTR.MTIME_SET | ATTR.ATIME | ATTR.ATIME_SET,
      mtimeSec: 5000,
      atimeSec: 5000,
    });
    expect(Math.round(lstatSync(join(share, "secretlink")).mtimeMs)).toBe(5_000_000);
    await c.setattr(1, { valid: ATTR.UID | ATTR.GID, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    // lcreate over the link's name must not open the target.
    await c.walk(0, 2);
    await expect(c.lcreate(2, "secretlink", DOTL.WRONLY | DOTL.CREATE | DOTL.TRUNC, 0o666)).rejects.toMatchObject(
      E(Errno.ELOOP),
    );
    await c.clunk(2);
    // A hard link of it is a second link, not the target.
    await c.link(0, 1, "hard");
    expect(lstatSync(join(share, "hard")).isSymbolicLink()).toBe(true);
    // Renaming and removing it moves/removes the link only.
    await c.rename(1, 0, "moved");
    expect(lstatSync(join(share, "moved")).isSymbolicLink()).toBe(true);
    await c.remove(1);
    await c.unlinkat(0, "hard");
    expect(existsSync(join(share, "moved"))).toBe(false);
    expect(snapshot()).toBe(before);
  });

  it("a directory swapped for a symlink behind an existing fid (guest- or host-made) is not followed", async () => {
    const before = snapshot();
    await c.walk(0, 1, "a", "b");
    await c.walk(0, 2, "a");
    // Host-side swap: a -> a2, a -> outside (which also has sub/b and secret).
    renameSync(join(share, "a"), join(share, "a2"));
    symlinkSync(outside, join(share, "a"));
    await expect(c.getattr(1)).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.lopen(1, DOTL.RDWR | DOTL.TRUNC)).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.setattr(1, { valid: ATTR.SIZE | ATTR.MODE, size: 0, mode: 0o777 })).rejects.toMatchObject(
      E(Errno.ENOTDIR),
    );
    await expect(c.remove(1)).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.walk(2, 3, "secret")).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.lcreate(2, "planted", DOTL.RDWR | DOTL.CREATE, 0o644)).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.unlinkat(2, "secret")).rejects.toMatchObject(E(Errno.ENOTDIR));
    await expect(c.setattr(2, { valid: ATTR.MODE, mode: 0o777 })).rejects.toMatchObject(E(Errno.EOPNOTSUPP));
    expect(snapshot()).toBe(before);
    // The same swap done by the guest: the fids follow the renamed directory.
    rmSync(join(share, "a"));
    renameSync(join(share, "a2"), join(share, "a"));
    await c.walk(0, 1, "a", "b");
    await c.renameat(0, "a", 0, "a2");
    await c.symlink(0, "a", outside);
    await c.lopen(1, DOTL.RDWR);
    await c.write(1, 0, "guest-write");
    expect(readFileSync(join(share, "a2", "b"), "utf8")).toBe("guest-write");
    await c.walk(2, 3, "b"); // fid 2 ("a") is now "a2"
    expect(await c.getattr(3)).toMatchObject({ size: 11n });
    expect(snapshot()).toBe(before);
  });

  it("a file swapped for a symlink between walk and open is refused", async () => {
    const before = snapshot();
    await c.walk(0, 1, "a", "b");
    rmSync(join(share, "a", "b"));
    symlinkSync(join(outside, "secret"), join(share, "a", "b"));
    await expect(c.lopen(1, DOTL.RDWR | DOTL.TRUNC)).rejects.toMatchObject(E(Errno.ELOOP));
    await expect(c.setattr(1, { valid: ATTR.SIZE, size: 0 })).rejects.toMatchObject(E(Errno.EINVAL));
    await expect(c.setattr(1, { valid: ATTR.MODE, mode: 0o777 })).rejects.toMatchObject(E(Errno.EOPNOTSUPP));
    await c.walk(0, 2, "a");
    await expect(c.lcreate(2, "b", DOTL.RDWR | DOTL.CREATE | DOTL.TRUNC, 0o644)).rejects.toMatchObject(E(Errno.ELOOP));
    expect(snapshot()).toBe(before);
  });

  it("FIFOs in the share are not opened (no hang), devices are not created", async () => {
    execFileSync("mkfifo", [join(share, "fifo")]);
    const [q] = await c.walk(0, 1, "fifo");
    expect(q?.type).toBe(QT.FILE);
    await expect(c.lopen(1, DOTL.RDONLY)).rejects.toMatchObject(E(Errno.EOPNOTSUPP));
    await expect(c.setattr(1, { valid: ATTR.SIZE, size: 0 })).rejects.toMatchObject(E(Errno.EINVAL));
    await expect(c.mknod(0, "null", 0o020666, 1, 3)).rejects.toMatchObject(E(Errno.EPERM));
    await expect(c.mknod(0, "disk", 0o060666, 8, 0)).rejects.toMatchObject(E(Errno.EPERM));
    expect(existsSync(join(share, "null"))).toBe(false);
  });

  it("non-UTF-8 names round-trip as bytes", async () => {
    const name = Uint8Array.from([0x66, 0xff, 0xfe, 0x80]);
    await c.walk(0, 1);
    await c.lcreate(1, name, DOTL.RDWR | DOTL.CREATE, 0o644);
    await c.write(1, 0, "bytes");
    const host = readdirSync(share, { encoding: "buffer" }).find((n) => n.length === 4 && n[1] === 0xff);
    expect(host && Buffer.compare(host, Buffer.from(name))).toBe(0);
    await c.walk(0, 2, name);
    await c.lopen(2, DOTL.RDONLY | DOTL.DIRECTORY).catch(() => undefined);
    await c.walk(0, 3);
    await c.lopen(3, DOTL.RDONLY);
    const ls = await c.readdirAll(3, 4096);
    expect(ls.entries.some((e) => Buffer.from(e.name, "latin1").equals(Buffer.from(name)))).toBe(true);
  });

  it("limits: depth, fids, open files", async () => {
    await server.close();
    server = new NinePServer({ root: share, maxDepth: 2, maxFids: 16, maxOpenFiles: 2 });
    c = new NinePTestClient((m) => server.handle(m));
    await c.version(8192);
    await c.attach(0);
    await c.walk(0, 1, "a");
    await expect(c.mkdir(1, "deeper", 0o755)).resolves.toBeDefined();
    await c.walk(1, 2, "deeper");
    await expect(c.mkdir(2, "too-deep", 0o755)).rejects.toMatchObject(E(Errno.ENAMETOOLONG));
    await expect(c.walk(0, 3, "a", "deeper", "x")).resolves.toHaveLength(2);
    for (let f = 3; f < 16; f++) await c.walk(0, f);
    await expect(c.walk(0, 16)).rejects.toMatchObject(E(Errno.ENFILE));
    await expect(c.attach(99)).rejects.toMatchObject(E(Errno.ENFILE));
    await c.lopen(3, DOTL.RDONLY);
    await c.lopen(4, DOTL.RDONLY);
    await expect(c.lopen(5, DOTL.RDONLY)).rejects.toMatchObject(E(Errno.EMFILE));
    await c.clunk(3);
    await c.lopen(5, DOTL.RDONLY);
    // Tversion starts a new session: every fid is gone.
    await c.version(8192);
    await expect(c.getattr(4)).rejects.toMatchObject(E(Errno.EBADF));
    await c.attach(0);
    expect((await c.getattr(0)).qid.type).toBe(QT.DIR);
    expect(statSync(share).isDirectory()).toBe(true);
  });

  it("directory snapshots: cut at maxDirEntries, ENOMEM beyond maxDirEntriesTotal", async () => {
    await server.close();
    mkdirSync(join(share, "big"));
    for (let i = 0; i < 20; i++) writeFileSync(join(share, "big", `e${i}`), "");
    server = new NinePServer({ root: share, maxDirEntries: 16, maxDirEntriesTotal: 30 });
    c = new NinePTestClient((m) => server.handle(m));
    await c.version(8192);
    await c.attach(0);
    await c.walk(0, 1, "big");
    await c.lopen(1, DOTL.RDONLY);
    expect((await c.readdirAll(1, 8000)).entries).toHaveLength(18); // . .. and 16 names
    expect(server.stats()).toMatchObject({ dirTruncated: 1, dirEntriesHeld: 18 });
    await c.walk(0, 2, "big");
    await c.lopen(2, DOTL.RDONLY);
    await expect(c.readdir(2, 0, 8000)).rejects.toMatchObject(E(Errno.ENOMEM));
    await c.clunk(1);
    expect(server.stats().dirEntriesHeld).toBe(0);
    expect((await c.readdirAll(2, 8000)).entries).toHaveLength(18);
  });
});
