// A minimal 9P2000.L client for tests: encodes T-messages the way Linux's
// net/9p/protocol.c does and decodes the R-messages. Not a general client:
// one outstanding request at a time, errors surface as RlerrorReply.
import { P9, type Qid, WireReader } from "./protocol.js";

/** Little-endian T-message builder: size[4] type[1] tag[2] followed by fields. */
export class TBuilder {
  private parts: Uint8Array[] = [];
  private length = 0;
  private push(b: Uint8Array): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number): this {
    return this.push(Uint8Array.of(v & 0xff));
  }
  u16(v: number): this {
    return this.push(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return this.push(b);
  }
  u64(v: bigint | number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    return this.push(b);
  }
  bytes(b: Uint8Array): this {
    return this.push(b);
  }
  str(s: string | Uint8Array): this {
    const b = typeof s === "string" ? Buffer.from(s) : s;
    return this.u16(b.length).bytes(b);
  }
  build(type: number, tag: number): Uint8Array {
    const out = new Uint8Array(7 + this.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, out.length, true);
    out[4] = type;
    dv.setUint16(5, tag, true);
    let at = 7;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

export class RlerrorReply extends Error {
  override readonly name = "RlerrorReply";
  constructor(readonly errno: number) {
    super(`Rlerror ${errno}`);
  }
}

export interface Getattr {
  valid: bigint;
  qid: Qid;
  mode: number;
  uid: number;
  gid: number;
  nlink: bigint;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atimeSec: bigint;
  atimeNsec: bigint;
  mtimeSec: bigint;
  mtimeNsec: bigint;
  ctimeSec: bigint;
  ctimeNsec: bigint;
}

export interface Dirent {
  qid: Qid;
  offset: bigint;
  type: number;
  name: string;
}

export interface SetattrFields {
  valid: number;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint | number;
  atimeSec?: bigint | number;
  atimeNsec?: bigint | number;
  mtimeSec?: bigint | number;
  mtimeNsec?: bigint | number;
}

function readQid(r: WireReader): Qid {
  return { type: r.u8(), version: r.u32(), path: r.u64() };
}

/** Drive a server (or a whole virtio device) through one message handler. */
export class NinePTestClient {
  private nextTag = 1;
  constructor(private readonly send: (msg: Uint8Array) => Promise<Uint8Array>) {}

  /** Send raw bytes, return the raw reply. */
  raw(msg: Uint8Array): Promise<Uint8Array> {
    return this.send(msg);
  }

  /** Send type+fields; return a reader positioned after the reply header, or throw RlerrorReply. */
  async rpc(type: number, fields: (b: TBuilder) => void, tag?: number): Promise<WireReader> {
    const b = new TBuilder();
    fields(b);
    const t = tag ?? this.nextTag++ % 0xfffe;
    const reply = await this.send(b.build(type, t));
    const r = new WireReader(reply);
    const size = r.u32();
    const rtype = r.u8();
    const rtag = r.u16();
    if (size !== reply.length) throw new Error(`reply size ${size} != ${reply.length}`);
    if (rtag !== t) throw new Error(`reply tag ${rtag} != ${t}`);
    if (rtype === P9.Rlerror) throw new RlerrorReply(r.u32());
    if (rtype !== type + 1) throw new Error(`reply type ${rtype} for ${type}`);
    return r;
  }

  async version(msize = 65536, version = "9P2000.L"): Promise<{ msize: number; version: string }> {
    const r = await this.rpc(P9.Tversion, (b) => b.u32(msize).str(version), 0xffff);
    return { msize: r.u32(), version: Buffer.from(r.str()).toString() };
  }
  async attach(fid: number, uid = 0, aname = ""): Promise<Qid> {
    return readQid(await this.rpc(P9.Tattach, (b) => b.u32(fid).u32(0xffffffff).str("root").str(aname).u32(uid)));
  }
  async walk(fid: number, newfid: number, ...names: (string | Uint8Array)[]): Promise<Qid[]> {
    const r = await this.rpc(P9.Twalk, (b) => {
      b.u32(fid).u32(newfid).u16(names.length);
      for (const n of names) b.str(n);
    });
    const n = r.u16();
    return Array.from({ length: n }, () => readQid(r));
  }
  async lopen(fid: number, flags: number): Promise<{ qid: Qid; iounit: number }> {
    const r = await this.rpc(P9.Tlopen, (b) => b.u32(fid).u32(flags));
    return { qid: readQid(r), iounit: r.u32() };
  }
  async lcreate(fid: number, name: string | Uint8Array, flags: number, mode: number, gid = 0): Promise<Qid> {
    return readQid(await this.rpc(P9.Tlcreate, (b) => b.u32(fid).str(name).u32(flags).u32(mode).u32(gid)));
  }
  async read(fid: number, offset: bigint | number, count: number): Promise<Uint8Array> {
    const r = await this.rpc(P9.Tread, (b) => b.u32(fid).u64(offset).u32(count));
    return r.bytesN(r.u32()).slice();
  }
  async write(fid: number, offset: bigint | number, data: Uint8Array | string): Promise<number> {
    const d = typeof data === "string" ? Buffer.from(data) : data;
    const r = await this.rpc(P9.Twrite, (b) => b.u32(fid).u64(offset).u32(d.length).bytes(d));
    return r.u32();
  }
  async clunk(fid: number): Promise<void> {
    await this.rpc(P9.Tclunk, (b) => b.u32(fid));
  }
  async remove(fid: number): Promise<void> {
    await this.rpc(P9.Tremove, (b) => b.u32(fid));
  }
  async getattr(fid: number, mask: bigint = 0x3fffn): Promise<Getattr> {
    const r = await this.rpc(P9.Tgetattr, (b) => b.u32(fid).u64(mask));
    return {
      valid: r.u64(),
      qid: readQid(r),
      mode: r.u32(),
      uid: r.u32(),
      gid: r.u32(),
      nlink: r.u64(),
      rdev: r.u64(),
      size: r.u64(),
      blksize: r.u64(),
      blocks: r.u64(),
      atimeSec: r.u64(),
      atimeNsec: r.u64(),
      mtimeSec: r.u64(),
      mtimeNsec: r.u64(),
      ctimeSec: r.u64(),
      ctimeNsec: r.u64(),
    };
  }
  async setattr(fid: number, a: SetattrFields): Promise<void> {
    await this.rpc(P9.Tsetattr, (b) =>
      b
        .u32(fid)
        .u32(a.valid)
        .u32(a.mode ?? 0)
        .u32(a.uid ?? 0)
        .u32(a.gid ?? 0)
        .u64(a.size ?? 0)
        .u64(a.atimeSec ?? 0)
        .u64(a.atimeNsec ?? 0)
        .u64(a.mtimeSec ?? 0)
        .u64(a.mtimeNsec ?? 0),
    );
  }
  async readdir(fid: number, offset: bigint | number, count: number): Promise<Dirent[]> {
    const r = await this.rpc(P9.Treaddir, (b) => b.u32(fid).u64(offset).u32(count));
    const end = r.pos + r.u32();
    const out: Dirent[] = [];
    while (r.pos < end) {
      out.push({ qid: readQid(r), offset: r.u64(), type: r.u8(), name: Buffer.from(r.str()).toString("latin1") });
    }
    return out;
  }
  /** Read a whole directory the way Linux does: resume from the last entry's offset. */
  async readdirAll(fid: number, count: number): Promise<{ entries: Dirent[]; calls: number }> {
    const entries: Dirent[] = [];
    let offset = 0n;
    let calls = 0;
    for (;;) {
      const batch = await this.readdir(fid, offset, count);
      calls++;
      if (batch.length === 0) return { entries, calls };
      entries.push(...batch);
      offset = (batch[batch.length - 1] as Dirent).offset;
    }
  }
  async statfs(fid: number) {
    const r = await this.rpc(P9.Tstatfs, (b) => b.u32(fid));
    return {
      type: r.u32(),
      bsize: r.u32(),
      blocks: r.u64(),
      bfree: r.u64(),
      bavail: r.u64(),
      files: r.u64(),
      ffree: r.u64(),
      fsid: r.u64(),
      namelen: r.u32(),
    };
  }
  async mkdir(dfid: number, name: string | Uint8Array, mode: number, gid = 0): Promise<Qid> {
    return readQid(await this.rpc(P9.Tmkdir, (b) => b.u32(dfid).str(name).u32(mode).u32(gid)));
  }
  async symlink(dfid: number, name: string | Uint8Array, target: string | Uint8Array, gid = 0): Promise<Qid> {
    return readQid(await this.rpc(P9.Tsymlink, (b) => b.u32(dfid).str(name).str(target).u32(gid)));
  }
  async readlink(fid: number): Promise<string> {
    return Buffer.from((await this.rpc(P9.Treadlink, (b) => b.u32(fid))).str()).toString("latin1");
  }
  async link(dfid: number, fid: number, name: string | Uint8Array): Promise<void> {
    await this.rpc(P9.Tlink, (b) => b.u32(dfid).u32(fid).str(name));
  }
  async rename(fid: number, dfid: number, name: string | Uint8Array): Promise<void> {
    await this.rpc(P9.Trename, (b) => b.u32(fid).u32(dfid).str(name));
  }
  async renameat(odfid: number, oldName: string, ndfid: number, newName: string): Promise<void> {
    await this.rpc(P9.Trenameat, (b) => b.u32(odfid).str(oldName).u32(ndfid).str(newName));
  }
  async unlinkat(dfid: number, name: string | Uint8Array, flags = 0): Promise<void> {
    await this.rpc(P9.Tunlinkat, (b) => b.u32(dfid).str(name).u32(flags));
  }
  async mknod(dfid: number, name: string, mode: number, major = 0, minor = 0, gid = 0): Promise<Qid> {
    return readQid(await this.rpc(P9.Tmknod, (b) => b.u32(dfid).str(name).u32(mode).u32(major).u32(minor).u32(gid)));
  }
  async fsync(fid: number, datasync = 0): Promise<void> {
    await this.rpc(P9.Tfsync, (b) => b.u32(fid).u32(datasync));
  }
  async flush(oldtag: number): Promise<void> {
    await this.rpc(P9.Tflush, (b) => b.u16(oldtag));
  }
  async xattrwalk(fid: number, newfid: number, name: string): Promise<bigint> {
    return (await this.rpc(P9.Txattrwalk, (b) => b.u32(fid).u32(newfid).str(name))).u64();
  }
  async lock(fid: number, type: number): Promise<number> {
    const r = await this.rpc(P9.Tlock, (b) => b.u32(fid).u8(type).u32(0).u64(0).u64(0).u32(1).str("guest"));
    return r.u8();
  }
  async getlock(
    fid: number,
    type: number,
  ): Promise<{ type: number; start: bigint; length: bigint; procId: number; clientId: string }> {
    const r = await this.rpc(P9.Tgetlock, (b) => b.u32(fid).u8(type).u64(10).u64(20).u32(7).str("guest"));
    return {
      type: r.u8(),
      start: r.u64(),
      length: r.u64(),
      procId: r.u32(),
      clientId: Buffer.from(r.str()).toString(),
    };
  }
}
