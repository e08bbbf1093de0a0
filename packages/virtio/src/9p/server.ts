// A 9P2000.L file server over a host directory: what QEMU's
// `-virtfs local,security_model=none` gives Linux's v9fs
// (`mount -t 9p -o trans=virtio,version=9p2000.L`). Transport-independent:
// handle() takes one whole T-message and returns the whole R-message.
//
// Requests are executed one at a time, in arrival order, so no two guest
// operations interleave on the host (the confinement argument in host.ts then
// only has host-side processes left as racers, see README).
import { type BigIntStats, constants as C } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { yieldToHost } from "../host-yield.js";
import { type NinePServerConfig, NinePServerConfigSchema, type NinePServerOptions } from "./config.js";
import { Errno, errnoOf, fail, P9Errno } from "./errno.js";
import { NinePError, NinePErrorCode } from "./errors.js";
import { HostFs, type Loc } from "./host.js";
import { type PathNode, PathTree } from "./pathtree.js";
import {
  AT_REMOVEDIR,
  ATTR,
  DOTL,
  DT,
  encodeRlerror,
  HEADER_SIZE,
  IO_REPLY_HEADER,
  LOCK,
  MAXWELEM,
  MIN_MSIZE,
  NOTAG,
  P9,
  QID_SIZE,
  type Qid,
  QT,
  replyWriter,
  STATS,
  VERSION_9P2000_L,
  WireError,
  WireReader,
} from "./protocol.js";

/** Counters of what the server saw; guest misbehaviour is counted, never thrown. */
export interface NinePStats {
  /** Messages handled. */
  requests: number;
  /** Replies that were Rlerror. */
  errors: number;
  /** Messages that could not be parsed (short, size lying, strings past the end...). */
  malformed: number;
  /** Messages of a type this server does not implement (legacy 9P2000/.u, unknown). */
  unsupported: number;
  /** Directory streams cut at maxDirEntries. */
  dirTruncated: number;
  /** Unexpected host exceptions turned into EIO (should stay 0). */
  internal: number;
}

/** What the server holds right now (bounded by the config's limits). */
export interface NinePGauges {
  fids: number;
  openFiles: number;
  /** Path nodes shared by the fids (at most 4 × maxFids). */
  pathNodes: number;
  dirEntriesHeld: number;
}

interface Fid {
  node: PathNode;
  /** Attach uid (n_uname) used as owner of created files; -1 = leave as the server's. */
  uid: number;
  file?: FileHandle;
  /** Host access mode of `file` (O_RDONLY/O_WRONLY/O_RDWR). */
  access: number;
  isDir: boolean;
  /** Directory snapshot for Treaddir; cookie i+1 names the entry after index i. */
  entries?: Buffer[];
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const MAX_NAME = 255;
const DOT = Buffer.from(".");
const DOTDOT = Buffer.from("..");

export class NinePServer {
  readonly options: NinePServerOptions;
  private readonly host: HostFs;
  private readonly tree = new PathTree();
  private readonly fids = new Map<number, Fid>();
  private openFiles = 0;
  /** Directory entries held in all Treaddir snapshots. */
  private dirEntriesHeld = 0;
  /** Negotiated msize; 0 until Tversion. */
  private msize = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly devIndex = new Map<bigint, bigint>();
  private readonly counters: NinePStats = {
    requests: 0,
    errors: 0,
    malformed: 0,
    unsupported: 0,
    dirTruncated: 0,
    internal: 0,
  };

  /** @throws NinePError CONFIG_INVALID, ROOT_INVALID or HOST_UNSUPPORTED. */
  constructor(config: NinePServerConfig) {
    const parsed = NinePServerConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new NinePError(NinePErrorCode.CONFIG_INVALID, {
        issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`),
      });
    }
    this.options = parsed.data;
    this.host = HostFs.openRoot(this.options.root);
  }

  /** Negotiated msize (0 before Tversion). */
  get negotiatedMsize(): number {
    return this.msize;
  }

  stats(): Readonly<NinePStats & NinePGauges> {
    return {
      ...this.counters,
      fids: this.fids.size,
      openFiles: this.openFiles,
      pathNodes: this.tree.size,
      dirEntriesHeld: this.dirEntriesHeld,
    };
  }

  /** Close every fid and the root. Later requests get Rlerror(EIO). */
  async close(): Promise<void> {
    await this.queue;
    if (this.closed) return;
    this.closed = true;
    await this.clunkAll();
    this.host.close();
  }

  /**
   * Handle one whole T-message (size[4] type[1] tag[2] ...) and return the
   * whole R-message. Never rejects: failures are Rlerror with a Linux errno.
   * Requests run one at a time in call order; the input is copied, so the
   * caller may reuse its buffer once this returns.
   */
  handle(request: Uint8Array): Promise<Uint8Array> {
    const limit = Math.max(this.msize, this.options.maxMsize);
    const copy = request.slice(0, Math.min(request.length, limit + 1));
    const run = this.queue.then(() => this.process(copy));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async process(msg: Uint8Array): Promise<Uint8Array> {
    this.counters.requests++;
    if (msg.length < HEADER_SIZE) {
      // No tag to answer with: reply on NOTAG so the transport can still complete the buffer.
      this.counters.malformed++;
      return this.error(NOTAG, Errno.EPROTO);
    }
    const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const size = dv.getUint32(0, true);
    const type = msg[4] as number;
    const tag = dv.getUint16(5, true);
    const cap = this.msize || this.options.maxMsize;
    if (size < HEADER_SIZE || size > cap || size > msg.length) {
      this.counters.malformed++;
      return this.error(tag, size > cap ? Errno.EMSGSIZE : Errno.EPROTO);
    }
    if (this.closed) return this.error(tag, Errno.EIO);
    const r = new WireReader(msg, HEADER_SIZE, size);
    try {
      if (type !== P9.Tversion && this.msize === 0) fail("EPROTO", "no Tversion yet");
      const reply = await this.dispatch(type, tag, r);
      if (reply.length > (this.msize || cap)) fail("EMSGSIZE", "reply larger than msize");
      return reply;
    } catch (err) {
      if (err instanceof WireError) {
        this.counters.malformed++;
        return this.error(tag, Errno.EPROTO);
      }
      if (!(err instanceof P9Errno) && typeof (err as { code?: unknown })?.code !== "string") {
        this.counters.internal++;
      }
      return this.error(tag, errnoOf(err));
    }
  }

  private error(tag: number, errno: number): Uint8Array {
    this.counters.errors++;
    return encodeRlerror(tag, errno);
  }

  private dispatch(type: number, tag: number, r: WireReader): Promise<Uint8Array> {
    switch (type) {
      case P9.Tversion:
        return this.version(tag, r);
      case P9.Tattach:
        return this.attach(tag, r);
      case P9.Twalk:
        return this.walk(tag, r);
      case P9.Tlopen:
        return this.lopen(tag, r);
      case P9.Tlcreate:
        return this.lcreate(tag, r);
      case P9.Tread:
        return this.read(tag, r);
      case P9.Twrite:
        return this.write(tag, r);
      case P9.Tclunk:
        return this.clunk(tag, r);
      case P9.Tremove:
        return this.remove(tag, r);
      case P9.Tgetattr:
        return this.getattr(tag, r);
      case P9.Tsetattr:
        return this.setattr(tag, r);
      case P9.Treaddir:
        return this.readdir(tag, r);
      case P9.Tstatfs:
        return this.statfs(tag, r);
      case P9.Tmkdir:
        return this.mkdir(tag, r);
      case P9.Tsymlink:
        return this.symlink(tag, r);
      case P9.Treadlink:
        return this.readlink(tag, r);
      case P9.Tlink:
        return this.link(tag, r);
      case P9.Trename:
        return this.rename(tag, r);
      case P9.Trenameat:
        return this.renameat(tag, r);
      case P9.Tunlinkat:
        return this.unlinkat(tag, r);
      case P9.Tmknod:
        return this.mknod(tag, r);
      case P9.Tfsync:
        return this.fsync(tag, r);
      case P9.Tflush:
        return this.flush(tag, r);
      case P9.Txattrwalk:
        return this.xattrwalk(tag, r);
      case P9.Txattrcreate:
        return this.xattrcreate(tag, r);
      case P9.Tlock:
        return this.lock(tag, r);
      case P9.Tgetlock:
        return this.getlock(tag, r);
      default:
        // Tauth (no authentication), legacy 9P2000/9P2000.u messages, R-types, unknown numbers.
        this.counters.unsupported++;
        return Promise.resolve(this.error(tag, Errno.EOPNOTSUPP));
    }
  }

  // --- helpers ---------------------------------------------------------------

  private fid(n: number): Fid {
    const f = this.fids.get(n);
    if (f === undefined) fail("EBADF", `unknown fid ${n}`);
    return f;
  }

  private newFid(n: number, node: PathNode, uid: number): Fid {
    if (this.fids.has(n)) fail("EINVAL", `fid ${n} in use`);
    if (this.fids.size >= this.options.maxFids) fail("ENFILE", "too many fids");
    const f: Fid = { node: this.tree.acquire(node), uid, access: 0, isDir: false };
    this.fids.set(n, f);
    return f;
  }

  private setEntries(f: Fid, entries: Buffer[] | undefined): void {
    this.dirEntriesHeld += (entries?.length ?? 0) - (f.entries?.length ?? 0);
    f.entries = entries;
  }

  private async dropFid(n: number, f: Fid): Promise<void> {
    this.fids.delete(n);
    this.setEntries(f, undefined);
    this.tree.release(f.node);
    if (f.file) {
      this.openFiles--;
      const h = f.file;
      f.file = undefined;
      await h.close().catch(() => undefined);
    }
  }

  private async clunkAll(): Promise<void> {
    for (const [n, f] of [...this.fids]) await this.dropFid(n, f);
  }

  private mutating(): void {
    if (this.options.readOnly) fail("EROFS");
  }

  /** A name used to create, link, rename or unlink (not a walk): one component, no "/" or NUL. */
  private checkName(name: Uint8Array): void {
    if (name.length === 0) fail("ENOENT", "empty name");
    if (name.includes(0x2f) || name.includes(0)) fail("EINVAL", "name contains '/' or NUL");
    if (DOT.equals(name) || DOTDOT.equals(name)) fail("EINVAL", "'.' or '..' as a name");
    if (name.length > MAX_NAME) fail("ENAMETOOLONG");
  }

  /** Child node of a directory fid for creating `name`, respecting maxDepth. */
  private childOf(dir: PathNode, name: Uint8Array): PathNode {
    if (dir.depth + 1 > this.options.maxDepth) fail("ENAMETOOLONG", "path too deep");
    return this.tree.child(dir, name);
  }

  private qid(st: BigIntStats): Qid {
    const kind = Number(st.mode) & S_IFMT;
    const type = kind === 0o040000 ? QT.DIR : kind === 0o120000 ? QT.SYMLINK : QT.FILE;
    // qid.path from (dev, ino): the root's device maps to the raw inode so the
    // guest sees the host's inode numbers; other devices get a 16-bit prefix.
    let idx = this.devIndex.get(st.dev);
    if (idx === undefined) {
      idx = BigInt(this.devIndex.size);
      this.devIndex.set(st.dev, idx);
    }
    const path = idx === 0n ? st.ino : (idx << 48n) | (st.ino & 0xffff_ffff_ffffn);
    const version = type === QT.DIR ? 0 : Number(BigInt.asUintN(32, (st.mtimeNs / 1_000_000_000n) ^ (st.size << 8n)));
    return { type, version, path: BigInt.asUintN(64, path) };
  }

  private async statFid(f: Fid): Promise<BigIntStats> {
    if (f.file) return this.host.fstat(f.file.fd);
    return this.host.lstat(f.node.loc());
  }

  /** Map P9_DOTL open flags to host flags; the access mode is returned separately. */
  private hostOpenFlags(flags: number): { flags: number; access: number } {
    const acc = flags & DOTL.ACCMODE;
    if (acc === 3) fail("EINVAL", "O_ACCMODE 3");
    const access = acc === DOTL.WRONLY ? C.O_WRONLY : acc === DOTL.RDWR ? C.O_RDWR : C.O_RDONLY;
    let h = access | C.O_NOFOLLOW | C.O_NONBLOCK;
    if (flags & DOTL.TRUNC) h |= C.O_TRUNC;
    if (flags & DOTL.APPEND) h |= C.O_APPEND;
    if (flags & DOTL.DSYNC) h |= C.O_DSYNC;
    if ((flags & DOTL.SYNC) === DOTL.SYNC) h |= C.O_SYNC;
    // Ignored like QEMU does: NOCTTY, FASYNC, DIRECT (alignment), NOATIME (EPERM
    // unless owner), LARGEFILE, CLOEXEC, NOFOLLOW (always on), CREATE/EXCL (Tlcreate).
    return { flags: h, access };
  }

  private writes(flags: number): boolean {
    return (flags & DOTL.ACCMODE) !== DOTL.RDONLY || (flags & DOTL.TRUNC) !== 0;
  }

  private reserveOpen(): void {
    if (this.openFiles >= this.options.maxOpenFiles) fail("EMFILE", "too many open fids");
  }

  /** Give a created object the attaching uid and requested gid; refusals ignored (security_model=none). */
  private async chownCreated(loc: Loc, uid: number, gid: number, h?: FileHandle): Promise<void> {
    if (uid === -1 && gid === 0xffffffff) return;
    const g = gid === 0xffffffff ? -1 : gid;
    try {
      if (h) await h.chown(uid, g);
      else await this.host.lchown(loc, uid, g);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EPERM" && code !== "EINVAL") throw err;
    }
  }

  private static nonNegOffset(off: bigint): number {
    if (off > BigInt(Number.MAX_SAFE_INTEGER)) fail("EFBIG", "offset beyond 2^53");
    return Number(off);
  }

  // --- session ---------------------------------------------------------------

  private async version(tag: number, r: WireReader): Promise<Uint8Array> {
    const msize = r.u32();
    const version = Buffer.from(r.str()).toString("latin1");
    // Tversion aborts all outstanding I/O and clunks every fid (version(5)).
    await this.clunkAll();
    this.msize = 0;
    const dotl = version === VERSION_9P2000_L || version.startsWith(`${VERSION_9P2000_L}.`);
    const m = Math.min(msize, this.options.maxMsize);
    if (dotl && m < MIN_MSIZE) fail("EINVAL", `msize ${msize} below ${MIN_MSIZE}`);
    const answer = dotl ? VERSION_9P2000_L : "unknown";
    if (dotl) this.msize = m;
    return replyWriter(HEADER_SIZE + 4 + 2 + answer.length, P9.Rversion, tag)
      .u32(m)
      .str(answer)
      .finish();
  }

  private async attach(tag: number, r: WireReader): Promise<Uint8Array> {
    const fidNo = r.u32();
    r.u32(); // afid: no authentication, ignored
    r.str(); // uname
    r.str(); // aname: one export per server, ignored
    const nUname = r.u32();
    const st = await this.host.lstat([]);
    this.newFid(fidNo, this.tree.root, nUname === 0xffffffff ? -1 : nUname);
    return replyWriter(HEADER_SIZE + QID_SIZE, P9.Rattach, tag)
      .qid(this.qid(st))
      .finish();
  }

  private async flush(tag: number, r: WireReader): Promise<Uint8Array> {
    r.u16(); // oldtag: requests run in order, so it has already been answered
    return replyWriter(HEADER_SIZE, P9.Rflush, tag).finish();
  }

  // --- names -----------------------------------------------------------------

  private async walk(tag: number, r: WireReader): Promise<Uint8Array> {
    const fidNo = r.u32();
    const newFidNo = r.u32();
    const n = r.u16();
    if (n > MAXWELEM) fail("EINVAL", `${n} wnames > ${MAXWELEM}`);
    const names: Uint8Array[] = [];
    for (let i = 0; i < n; i++) names.push(r.str());
    const from = this.fid(fidNo);
    if (newFidNo !== fidNo && this.fids.has(newFidNo)) fail("EINVAL", `newfid ${newFidNo} in use`);
    if (newFidNo !== fidNo && this.fids.size >= this.options.maxFids) fail("ENFILE", "too many fids");
    const qids: Qid[] = [];
    let node = from.node;
    const created: PathNode[] = [];
    try {
      for (let i = 0; i < names.length; i++) {
        const name = names[i] as Uint8Array;
        try {
          let next: PathNode;
          if (name.length === 0) fail("ENOENT", "empty wname");
          if (name.includes(0x2f) || name.includes(0)) fail("EINVAL", "wname contains '/' or NUL");
          const here = node.loc();
          if (DOT.equals(name) || DOTDOT.equals(name)) {
            // ".." never leaves the share: at the root it is the root.
            if (!(await this.host.lstat(here)).isDirectory()) fail("ENOTDIR");
            next = DOT.equals(name) ? node : (node.parent ?? node);
          } else {
            if (name.length > MAX_NAME) fail("ENAMETOOLONG");
            if (this.tree.size >= this.options.maxFids * 4) fail("ENFILE", "too many path nodes");
            next = this.childOf(node, name);
            created.push(next);
          }
          const st = await this.host.lstat(next.loc());
          qids.push(this.qid(st));
          node = next;
        } catch (err) {
          if (i === 0) throw err;
          break; // partial walk: Rwalk with the qids so far, newfid untouched
        }
      }
      if (qids.length === names.length) {
        if (newFidNo === fidNo) {
          this.tree.acquire(node);
          this.tree.release(from.node);
          from.node = node;
        } else {
          this.newFid(newFidNo, node, from.uid);
        }
      }
    } finally {
      for (const c of created.reverse()) this.tree.prune(c);
    }
    const w = replyWriter(HEADER_SIZE + 2 + qids.length * QID_SIZE, P9.Rwalk, tag).u16(qids.length);
    for (const q of qids) w.qid(q);
    return w.finish();
  }

  // --- open, create, I/O -------------------------------------------------------

  private async lopen(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const flags = r.u32();
    if (f.file) fail("EINVAL", "fid already open");
    if ((flags & DOTL.ACCMODE) === 3) fail("EINVAL", "O_ACCMODE 3");
    if (this.writes(flags)) this.mutating();
    this.reserveOpen();
    const loc = f.node.loc();
    const st = await this.host.lstat(loc);
    let h: FileHandle;
    let access = C.O_RDONLY;
    if (st.isDirectory()) {
      if ((flags & DOTL.ACCMODE) !== DOTL.RDONLY) fail("EISDIR");
      h = await this.host.open(loc, C.O_RDONLY | C.O_DIRECTORY);
    } else if (st.isSymbolicLink()) {
      fail("ELOOP", "lopen of a symlink"); // Linux resolves links itself via Treadlink
    } else if (flags & DOTL.DIRECTORY) {
      fail("ENOTDIR");
    } else if (st.isFile()) {
      const o = this.hostOpenFlags(flags);
      access = o.access;
      h = await this.host.open(loc, o.flags);
    } else {
      fail("EOPNOTSUPP", "devices, FIFOs and sockets of the host are not opened");
    }
    // Race check: the object opened must still be the kind (and inode) lstat saw.
    const ost = await this.host.fstat(h.fd);
    if (ost.ino !== st.ino || ost.dev !== st.dev || (Number(ost.mode) & S_IFMT) !== (Number(st.mode) & S_IFMT)) {
      await h.close();
      fail("EAGAIN", "file changed while opening");
    }
    this.attachFile(f, h, access, ost.isDirectory());
    return replyWriter(HEADER_SIZE + QID_SIZE + 4, P9.Rlopen, tag)
      .qid(this.qid(ost))
      .u32(0)
      .finish();
  }

  private attachFile(f: Fid, h: FileHandle, access: number, isDir: boolean): void {
    f.file = h;
    f.access = access;
    f.isDir = isDir;
    this.setEntries(f, undefined);
    this.openFiles++;
  }

  private async lcreate(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const name = r.str();
    const flags = r.u32();
    const mode = r.u32();
    const gid = r.u32();
    this.mutating();
    this.checkName(name);
    if (f.file) fail("EINVAL", "fid already open");
    this.reserveOpen();
    const dirLoc = f.node.loc();
    const node = this.childOf(f.node, name);
    const o = this.hostOpenFlags(flags);
    let h: FileHandle;
    let created = true;
    try {
      h = await this.host.create(dirLoc, name, o.flags, mode & 0o7777);
    } catch (err) {
      // Without O_EXCL an existing regular file is opened, as open(O_CREAT) does.
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || flags & DOTL.EXCL) {
        this.tree.prune(node);
        throw err;
      }
      created = false;
      h = await this.host.open([...dirLoc, name], o.flags).catch((e: unknown) => {
        this.tree.prune(node);
        throw e;
      });
    }
    try {
      const st0 = await this.host.fstat(h.fd);
      if (!st0.isFile()) fail("EEXIST", "not a regular file");
      if (created) {
        await h.chmod(mode & 0o7777); // exact mode: the server's umask must not apply twice
        await this.chownCreated([], f.uid, gid, h);
      }
      const st = await this.host.fstat(h.fd);
      this.tree.acquire(node);
      this.tree.release(f.node);
      f.node = node;
      this.attachFile(f, h, o.access, false);
      return replyWriter(HEADER_SIZE + QID_SIZE + 4, P9.Rlcreate, tag)
        .qid(this.qid(st))
        .u32(0)
        .finish();
    } catch (err) {
      await h.close();
      this.tree.prune(node);
      throw err;
    }
  }

  private async read(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const offset = r.u64();
    const count = Math.min(r.u32(), this.msize - IO_REPLY_HEADER);
    if (!f.file) fail("EBADF", "fid not open");
    if (f.isDir) fail("EISDIR");
    const pos = NinePServer.nonNegOffset(offset);
    const w = replyWriter(IO_REPLY_HEADER + count, P9.Rread, tag);
    const { bytesRead } = await f.file.read(w.buf, IO_REPLY_HEADER, count, pos);
    w.u32(bytesRead);
    w.pos = IO_REPLY_HEADER + bytesRead;
    return w.finish();
  }

  private async write(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const offset = r.u64();
    const count = r.u32();
    const data = r.bytesN(count); // a count past the message end is a malformed message
    if (!f.file) fail("EBADF", "fid not open");
    if (f.isDir) fail("EISDIR");
    if (f.access === C.O_RDONLY) fail("EBADF", "fid not open for writing");
    this.mutating();
    const pos = NinePServer.nonNegOffset(offset);
    if (pos + count > Number.MAX_SAFE_INTEGER) fail("EFBIG");
    const { bytesWritten } = await f.file.write(data, 0, count, pos);
    return replyWriter(HEADER_SIZE + 4, P9.Rwrite, tag)
      .u32(bytesWritten)
      .finish();
  }

  private async clunk(tag: number, r: WireReader): Promise<Uint8Array> {
    const n = r.u32();
    await this.dropFid(n, this.fid(n));
    return replyWriter(HEADER_SIZE, P9.Rclunk, tag).finish();
  }

  private async remove(tag: number, r: WireReader): Promise<Uint8Array> {
    const n = r.u32();
    const f = this.fid(n);
    try {
      // Tremove clunks the fid even when the remove fails (remove(5)).
      this.mutating();
      const node = f.node;
      const parent = node.parent;
      if (parent === null) fail("EBUSY", "remove of the share root");
      const loc = node.loc();
      const st = await this.host.lstat(loc);
      const dirLoc = loc.slice(0, -1);
      const name = loc[loc.length - 1] as Uint8Array;
      if (st.isDirectory()) await this.host.rmdir(dirLoc, name);
      else await this.host.unlink(dirLoc, name);
      this.tree.detach(parent, name);
    } finally {
      await this.dropFid(n, f);
    }
    return replyWriter(HEADER_SIZE, P9.Rremove, tag).finish();
  }

  private async fsync(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const datasync = r.u32();
    if (!f.file) fail("EBADF", "fid not open");
    if (datasync) await f.file.datasync();
    else await f.file.sync();
    return replyWriter(HEADER_SIZE, P9.Rfsync, tag).finish();
  }

  // --- attributes ----------------------------------------------------------------

  private async getattr(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    r.u64(); // request_mask: everything basic is always returned
    const st = await this.statFid(f);
    const ns = (t: bigint): [bigint, bigint] => [t / 1_000_000_000n, t % 1_000_000_000n];
    const [as, an] = ns(st.atimeNs);
    const [ms, mn] = ns(st.mtimeNs);
    const [cs, cn] = ns(st.ctimeNs);
    const [bs, bn] = ns(st.birthtimeNs);
    const valid = STATS.BASIC | (st.birthtimeNs > 0n ? STATS.BTIME : 0n);
    const w = replyWriter(160, P9.Rgetattr, tag)
      .u64(valid)
      .qid(this.qid(st))
      .u32(Number(st.mode))
      .u32(Number(st.uid))
      .u32(Number(st.gid))
      .u64(st.nlink)
      .u64(st.rdev)
      .u64(st.size)
      .u64(st.blksize)
      .u64(st.blocks);
    for (const v of [as, an, ms, mn, cs, cn, bs, bn, 0n, 0n]) w.u64(v); // ...gen, data_version
    return w.finish();
  }

  private async setattr(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const valid = r.u32();
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const size = r.u64();
    const atimeS = r.u64();
    const atimeN = r.u64();
    const mtimeS = r.u64();
    const mtimeN = r.u64();
    if (valid & ~0x1ff) fail("EINVAL", "unknown setattr bits");
    if (valid & ~ATTR.CTIME) this.mutating();
    const h = f.file;
    // Order as QEMU v9fs_setattr: mode, times, owner, size.
    if (valid & ATTR.MODE) {
      if (h) await h.chmod(mode & 0o7777);
      else await this.host.chmod(f.node.loc(), mode & 0o7777);
    }
    if (valid & (ATTR.ATIME | ATTR.MTIME)) {
      const now = Date.now() / 1000;
      const secs = (s: bigint, n: bigint): number => {
        if (n >= 1_000_000_000n) fail("EINVAL", "nsec >= 1e9");
        return Number(BigInt.asIntN(64, s)) + Number(n) / 1e9;
      };
      let at: number | undefined;
      let mt: number | undefined;
      if (valid & ATTR.ATIME) at = valid & ATTR.ATIME_SET ? secs(atimeS, atimeN) : now;
      if (valid & ATTR.MTIME) mt = valid & ATTR.MTIME_SET ? secs(mtimeS, mtimeN) : now;
      if (at === undefined || mt === undefined) {
        // Node has no UTIME_OMIT: keep the untouched time from a fresh stat.
        const st = await this.statFid(f);
        at ??= Number(st.atimeNs) / 1e9;
        mt ??= Number(st.mtimeNs) / 1e9;
      }
      if (h) await h.utimes(at, mt);
      else await this.host.lutimes(f.node.loc(), at, mt);
    }
    if (valid & (ATTR.UID | ATTR.GID)) {
      const u = valid & ATTR.UID ? uid : -1;
      const g = valid & ATTR.GID ? gid : -1;
      try {
        if (h) await h.chown(u, g);
        else await this.host.lchown(f.node.loc(), u, g);
      } catch (err) {
        // security_model=none: a refused ownership change is not reported.
        if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
      }
    }
    if (valid & ATTR.SIZE) {
      const len = NinePServer.nonNegOffset(size);
      if (h && f.access !== C.O_RDONLY) await h.truncate(len);
      else {
        const loc = f.node.loc();
        if (!(await this.host.lstat(loc)).isFile()) fail("EINVAL", "truncate of a non-regular file");
        const t = await this.host.open(loc, C.O_WRONLY | C.O_NONBLOCK);
        try {
          if (!(await this.host.fstat(t.fd)).isFile()) fail("EINVAL");
          await t.truncate(len);
        } finally {
          await t.close();
        }
      }
    }
    return replyWriter(HEADER_SIZE, P9.Rsetattr, tag).finish();
  }

  private async statfs(tag: number, r: WireReader): Promise<Uint8Array> {
    this.fid(r.u32());
    const s = await this.host.statfs();
    const rootSt = await this.host.lstat([]);
    return replyWriter(HEADER_SIZE + 4 + 4 + 8 * 6 + 4, P9.Rstatfs, tag)
      .u32(Number(BigInt.asUintN(32, s.type)))
      .u32(Number(BigInt.asUintN(32, s.bsize)))
      .u64(s.blocks)
      .u64(s.bfree)
      .u64(s.bavail)
      .u64(s.files)
      .u64(s.ffree)
      .u64(rootSt.dev) // fsid
      .u32(MAX_NAME)
      .finish();
  }

  // --- directories ----------------------------------------------------------------

  private async readdir(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const offset = r.u64();
    const count = Math.min(r.u32(), this.msize - IO_REPLY_HEADER);
    if (!f.file) fail("EBADF", "fid not open");
    if (!f.isDir) fail("ENOTDIR");
    // Cookies are indexes into a snapshot taken when the stream (re)starts at 0:
    // a listing read over several Treaddir calls is complete and has no duplicates.
    let entries = f.entries;
    if (offset === 0n || entries === undefined) {
      // All snapshots together stay within maxDirEntriesTotal (memory a guest can pin).
      const held = this.dirEntriesHeld - (f.entries?.length ?? 0);
      const room = this.options.maxDirEntriesTotal - held - 2;
      const limit = Math.min(this.options.maxDirEntries, room);
      if (limit <= 0) fail("ENOMEM", "directory snapshot budget exhausted");
      const { names, truncated } = await this.host.listNames(f.file.fd, limit);
      if (truncated && limit < this.options.maxDirEntries) fail("ENOMEM", "directory snapshot budget exhausted");
      if (truncated) this.counters.dirTruncated++;
      entries = [DOT, DOTDOT, ...names];
      this.setEntries(f, entries);
    }
    const w = replyWriter(IO_REPLY_HEADER + count, P9.Rreaddir, tag).u32(0);
    let i = offset > BigInt(entries.length) ? entries.length : Number(offset);
    for (let n = 1; i < entries.length; i++, n++) {
      const name = entries[i] as Buffer;
      const need = QID_SIZE + 8 + 1 + 2 + name.length;
      if (!w.fits(need)) break;
      // The lstats are synchronous: let the event loop (vCPUs, other devices) run now and then.
      if (n % 256 === 0) await yieldToHost();
      let st: BigIntStats;
      try {
        if (name === DOT) st = await this.host.fstat(f.file.fd);
        else if (name === DOTDOT) st = await this.host.lstat((f.node.parent ?? f.node).loc());
        else st = await this.host.lstatAt(f.file.fd, name);
      } catch {
        continue; // removed since the snapshot (or parent gone): skip it
      }
      w.qid(this.qid(st))
        .u64(BigInt(i + 1))
        .u8(direntType(st))
        .str(name);
    }
    if (w.pos === IO_REPLY_HEADER && i < entries.length) fail("EINVAL", "count too small for one entry");
    new DataView(w.buf.buffer, w.buf.byteOffset).setUint32(7, w.pos - IO_REPLY_HEADER, true);
    return w.finish();
  }

  private async mkdir(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const name = r.str();
    const mode = r.u32();
    const gid = r.u32();
    this.mutating();
    this.checkName(name);
    const dirLoc = f.node.loc();
    if (f.node.depth + 1 > this.options.maxDepth) fail("ENAMETOOLONG", "path too deep");
    await this.host.mkdir(dirLoc, name, mode & 0o7777);
    const loc = [...dirLoc, name];
    await this.host.chmod(loc, mode & 0o7777);
    await this.chownCreated(loc, f.uid, gid);
    const st = await this.host.lstat(loc);
    return replyWriter(HEADER_SIZE + QID_SIZE, P9.Rmkdir, tag)
      .qid(this.qid(st))
      .finish();
  }

  private async symlink(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const name = r.str();
    const target = r.str();
    const gid = r.u32();
    this.mutating();
    this.checkName(name);
    // The target is only text: it is stored, never resolved by the server.
    if (target.length === 0) fail("ENOENT", "empty symlink target");
    if (target.includes(0)) fail("EINVAL", "NUL in symlink target");
    const dirLoc = f.node.loc();
    if (f.node.depth + 1 > this.options.maxDepth) fail("ENAMETOOLONG");
    await this.host.symlink(dirLoc, name, target);
    const loc = [...dirLoc, name];
    await this.chownCreated(loc, f.uid, gid);
    const st = await this.host.lstat(loc);
    return replyWriter(HEADER_SIZE + QID_SIZE, P9.Rsymlink, tag)
      .qid(this.qid(st))
      .finish();
  }

  private async readlink(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const target = await this.host.readlink(f.node.loc());
    if (target.length > 0xffff || HEADER_SIZE + 2 + target.length > this.msize) fail("ERANGE");
    return replyWriter(HEADER_SIZE + 2 + target.length, P9.Rreadlink, tag)
      .str(target)
      .finish();
  }

  private async mknod(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const name = r.str();
    const mode = r.u32();
    r.u32(); // major
    r.u32(); // minor
    const gid = r.u32();
    this.mutating();
    this.checkName(name);
    const kind = mode & S_IFMT;
    if (kind === S_IFCHR || kind === S_IFBLK) fail("EPERM", "device nodes are not created on the host");
    if (kind === S_IFIFO || kind === S_IFSOCK) fail("EOPNOTSUPP", "FIFOs and sockets are not created on the host");
    if (kind !== S_IFREG && kind !== 0) fail("EINVAL", "mknod type");
    if (f.node.depth + 1 > this.options.maxDepth) fail("ENAMETOOLONG");
    const dirLoc = f.node.loc();
    const h = await this.host.create(dirLoc, name, C.O_RDONLY | C.O_NONBLOCK, mode & 0o7777);
    try {
      await h.chmod(mode & 0o7777);
      await this.chownCreated([], f.uid, gid, h);
      const st = await this.host.fstat(h.fd);
      return replyWriter(HEADER_SIZE + QID_SIZE, P9.Rmknod, tag)
        .qid(this.qid(st))
        .finish();
    } finally {
      await h.close();
    }
  }

  private async link(tag: number, r: WireReader): Promise<Uint8Array> {
    const d = this.fid(r.u32());
    const src = this.fid(r.u32());
    const name = r.str();
    this.mutating();
    this.checkName(name);
    if (src.node.parent === null) fail("EPERM", "link of the share root");
    await this.host.link(src.node.loc(), d.node.loc(), name);
    return replyWriter(HEADER_SIZE, P9.Rlink, tag).finish();
  }

  private async rename(tag: number, r: WireReader): Promise<Uint8Array> {
    const f = this.fid(r.u32());
    const d = this.fid(r.u32());
    const name = r.str();
    this.mutating();
    this.checkName(name);
    const parent = f.node.parent;
    if (parent === null) fail("EBUSY", "rename of the share root");
    f.node.loc(); // ENOENT if the fid's file was removed: never rename whatever took its name
    await this.doRename(parent, f.node.name, d.node, name);
    return replyWriter(HEADER_SIZE, P9.Rrename, tag).finish();
  }

  private async renameat(tag: number, r: WireReader): Promise<Uint8Array> {
    const od = this.fid(r.u32());
    const oldName = r.str();
    const nd = this.fid(r.u32());
    const newName = r.str();
    this.mutating();
    this.checkName(oldName);
    this.checkName(newName);
    await this.doRename(od.node, oldName, nd.node, newName);
    return replyWriter(HEADER_SIZE, P9.Rrenameat, tag).finish();
  }

  private async doRename(srcDir: PathNode, srcName: Uint8Array, dstDir: PathNode, dstName: Uint8Array): Promise<void> {
    if (dstDir.depth + 1 > this.options.maxDepth) fail("ENAMETOOLONG");
    await this.host.rename(srcDir.loc(), srcName, dstDir.loc(), dstName);
    this.tree.move(srcDir, srcName, dstDir, dstName);
  }

  private async unlinkat(tag: number, r: WireReader): Promise<Uint8Array> {
    const d = this.fid(r.u32());
    const name = r.str();
    const flags = r.u32();
    this.mutating();
    this.checkName(name);
    if (flags & ~AT_REMOVEDIR) fail("EINVAL", "unlinkat flags");
    const dirLoc = d.node.loc();
    if (flags & AT_REMOVEDIR) await this.host.rmdir(dirLoc, name);
    else await this.host.unlink(dirLoc, name);
    this.tree.detach(d.node, name);
    return replyWriter(HEADER_SIZE, P9.Runlinkat, tag).finish();
  }

  // --- xattrs and locks --------------------------------------------------------------

  private async xattrwalk(_tag: number, r: WireReader): Promise<Uint8Array> {
    this.fid(r.u32());
    r.u32(); // newfid
    r.str(); // name
    // No extended attributes: Linux's v9fs treats EOPNOTSUPP as "none".
    fail("EOPNOTSUPP", "xattrs");
  }

  private async xattrcreate(_tag: number, r: WireReader): Promise<Uint8Array> {
    this.fid(r.u32());
    r.str();
    r.u64();
    r.u32();
    this.mutating();
    fail("EOPNOTSUPP", "xattrs");
  }

  /** POSIX locks are granted without being recorded, as QEMU does (one client per export). */
  private async lock(tag: number, r: WireReader): Promise<Uint8Array> {
    this.fid(r.u32());
    const type = r.u8();
    r.u32(); // flags
    r.u64(); // start
    r.u64(); // length
    r.u32(); // proc_id
    r.str(); // client_id
    if (type > LOCK.TYPE_UNLCK) fail("EINVAL", "lock type");
    return replyWriter(HEADER_SIZE + 1, P9.Rlock, tag)
      .u8(LOCK.SUCCESS)
      .finish();
  }

  private async getlock(tag: number, r: WireReader): Promise<Uint8Array> {
    this.fid(r.u32());
    r.u8(); // type
    const start = r.u64();
    const length = r.u64();
    const procId = r.u32();
    const clientId = r.str();
    return replyWriter(HEADER_SIZE + 1 + 8 + 8 + 4 + 2 + clientId.length, P9.Rgetlock, tag)
      .u8(LOCK.TYPE_UNLCK)
      .u64(start)
      .u64(length)
      .u32(procId)
      .str(clientId)
      .finish();
  }
}

function direntType(st: BigIntStats): number {
  if (st.isDirectory()) return DT.DIR;
  if (st.isFile()) return DT.REG;
  if (st.isSymbolicLink()) return DT.LNK;
  if (st.isFIFO()) return DT.FIFO;
  if (st.isCharacterDevice()) return DT.CHR;
  if (st.isBlockDevice()) return DT.BLK;
  if (st.isSocket()) return DT.SOCK;
  return DT.UNKNOWN;
}
