// 9P2000.L wire format: message numbers, flag values and a bounds-checked
// little-endian reader/writer. Layouts follow Linux include/net/9p/9p.h and
// net/9p/protocol.c (the client this server is written for) and the
// 9P2000.L description in the diod/v9fs documentation.

/** Message types (include/net/9p/9p.h `enum p9_msg_t`). T = request, R = reply = T + 1. */
export const P9 = {
  Tlerror: 6,
  Rlerror: 7,
  Tstatfs: 8,
  Rstatfs: 9,
  Tlopen: 12,
  Rlopen: 13,
  Tlcreate: 14,
  Rlcreate: 15,
  Tsymlink: 16,
  Rsymlink: 17,
  Tmknod: 18,
  Rmknod: 19,
  Trename: 20,
  Rrename: 21,
  Treadlink: 22,
  Rreadlink: 23,
  Tgetattr: 24,
  Rgetattr: 25,
  Tsetattr: 26,
  Rsetattr: 27,
  Txattrwalk: 30,
  Rxattrwalk: 31,
  Txattrcreate: 32,
  Rxattrcreate: 33,
  Treaddir: 40,
  Rreaddir: 41,
  Tfsync: 50,
  Rfsync: 51,
  Tlock: 52,
  Rlock: 53,
  Tgetlock: 54,
  Rgetlock: 55,
  Tlink: 70,
  Rlink: 71,
  Tmkdir: 72,
  Rmkdir: 73,
  Trenameat: 74,
  Rrenameat: 75,
  Tunlinkat: 76,
  Runlinkat: 77,
  Tversion: 100,
  Rversion: 101,
  Tauth: 102,
  Rauth: 103,
  Tattach: 104,
  Rattach: 105,
  Tflush: 108,
  Rflush: 109,
  Twalk: 110,
  Rwalk: 111,
  Tread: 116,
  Rread: 117,
  Twrite: 118,
  Rwrite: 119,
  Tclunk: 120,
  Rclunk: 121,
  Tremove: 122,
  Rremove: 123,
} as const;

/** The protocol version string this server speaks. */
export const VERSION_9P2000_L = "9P2000.L";
/** Tag of Tversion (P9_NOTAG). */
export const NOTAG = 0xffff;
/** "No fid" (P9_NOFID), e.g. afid of an unauthenticated Tattach. */
export const NOFID = 0xffffffff;
/** Maximum wnames in one Twalk (P9_MAXWELEM). */
export const MAXWELEM = 16;
/** size[4] type[1] tag[2]. */
export const HEADER_SIZE = 7;
/** Rread/Rreaddir header: size[4] type[1] tag[2] count[4] (P9_IOHDRSZ of a reply). */
export const IO_REPLY_HEADER = 11;
/** Twrite header: size[4] type[1] tag[2] fid[4] offset[8] count[4]. */
export const IO_WRITE_HEADER = 23;
/** Smallest msize this server negotiates (QEMU and Linux use 4096 as the floor). */
export const MIN_MSIZE = 4096;

/** qid.type bits (P9_QT*). */
export const QT = { DIR: 0x80, APPEND: 0x40, EXCL: 0x20, AUTH: 0x08, TMP: 0x04, SYMLINK: 0x02, FILE: 0x00 } as const;

/** Tgetattr request_mask / Rgetattr valid bits (P9_STATS_*). */
export const STATS = {
  MODE: 0x1n,
  NLINK: 0x2n,
  UID: 0x4n,
  GID: 0x8n,
  RDEV: 0x10n,
  ATIME: 0x20n,
  MTIME: 0x40n,
  CTIME: 0x80n,
  INO: 0x100n,
  SIZE: 0x200n,
  BLOCKS: 0x400n,
  BTIME: 0x800n,
  GEN: 0x1000n,
  DATA_VERSION: 0x2000n,
  BASIC: 0x7ffn,
  ALL: 0x3fffn,
} as const;

/** Tsetattr valid bits (P9_ATTR_*). */
export const ATTR = {
  MODE: 0x1,
  UID: 0x2,
  GID: 0x4,
  SIZE: 0x8,
  ATIME: 0x10,
  MTIME: 0x20,
  CTIME: 0x40,
  ATIME_SET: 0x80,
  MTIME_SET: 0x100,
} as const;

/** Tlopen/Tlcreate flags (P9_DOTL_*), the asm-generic Linux O_* values. */
export const DOTL = {
  RDONLY: 0o0,
  WRONLY: 0o1,
  RDWR: 0o2,
  ACCMODE: 0o3,
  CREATE: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DSYNC: 0o10000,
  FASYNC: 0o20000,
  DIRECT: 0o40000,
  LARGEFILE: 0o100000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  SYNC: 0o4000000,
} as const;

/** Tunlinkat flags: AT_REMOVEDIR. */
export const AT_REMOVEDIR = 0x200;

/** Lock types and Rlock status (P9_LOCK_*). */
export const LOCK = {
  TYPE_RDLCK: 0,
  TYPE_WRLCK: 1,
  TYPE_UNLCK: 2,
  SUCCESS: 0,
  BLOCKED: 1,
  ERROR: 2,
  GRACE: 3,
} as const;

/** Linux dirent d_type values used in Rreaddir. */
export const DT = { UNKNOWN: 0, FIFO: 1, CHR: 2, DIR: 4, BLK: 6, REG: 8, LNK: 10, SOCK: 12 } as const;

/** A 9P qid: type[1] version[4] path[8]. */
export interface Qid {
  readonly type: number;
  readonly version: number;
  readonly path: bigint;
}
export const QID_SIZE = 13;

/** Thrown by {@link WireReader} when a message is shorter than its fields claim. */
export class WireError extends Error {
  override readonly name = "WireError";
}

/** Bounds-checked little-endian reader over one message. Never reads past `end`. */
export class WireReader {
  private readonly view: DataView;
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  private need(n: number): void {
    if (n > this.end - this.pos) throw new WireError(`need ${n} bytes at ${this.pos}, have ${this.end - this.pos}`);
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** n bytes as a view (no copy). */
  bytesN(n: number): Uint8Array {
    this.need(n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A 9P string len[2] bytes[len], as raw bytes (names are bytes on Linux). */
  str(): Uint8Array {
    return this.bytesN(this.u16());
  }
}

/** Little-endian writer into a fixed buffer sized by the caller (the reply never exceeds msize). */
export class WireWriter {
  private readonly view: DataView;
  pos = 0;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  fits(n: number): boolean {
    return this.pos + n <= this.buf.length;
  }
  private need(n: number): void {
    if (!this.fits(n)) throw new WireError(`reply overflow: ${n} bytes at ${this.pos} of ${this.buf.length}`);
  }
  u8(v: number): this {
    this.need(1);
    this.view.setUint8(this.pos++, v);
    return this;
  }
  u16(v: number): this {
    this.need(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    this.need(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
    return this;
  }
  u64(v: bigint): this {
    this.need(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v), true);
    this.pos += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.need(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  str(b: Uint8Array | string): this {
    const s = typeof b === "string" ? new TextEncoder().encode(b) : b;
    if (s.length > 0xffff) throw new WireError(`string of ${s.length} bytes`);
    return this.u16(s.length).bytes(s);
  }
  qid(q: Qid): this {
    return this.u8(q.type).u32(q.version).u64(q.path);
  }
  /** Patch size[4] at offset 0 and return the finished message. */
  finish(): Uint8Array {
    this.view.setUint32(0, this.pos, true);
    return this.buf.subarray(0, this.pos);
  }
}

/** Start a reply: size[4] (patched by finish) type[1] tag[2]. */
export function replyWriter(capacity: number, type: number, tag: number): WireWriter {
  return new WireWriter(new Uint8Array(capacity)).u32(0).u8(type).u16(tag);
}

/** Encode Rlerror: size[4] type[1] tag[2] ecode[4]. */
export function encodeRlerror(tag: number, errno: number): Uint8Array {
  return replyWriter(11, P9.Rlerror, tag).u32(errno).finish();
}
