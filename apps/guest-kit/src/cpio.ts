// The cpio "newc" (SVR4, no CRC) archive format, as the Linux kernel unpacks
// an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst):
// a 110-byte ASCII header (magic 070701 and thirteen 8-digit hex fields),
// the NUL-terminated name padded to 4 bytes, the data padded to 4 bytes, and
// a final entry named TRAILER!!!.
import { z } from "zod";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";

export const CPIO_NEWC_MAGIC = "070701";
const HEADER_SIZE = 110;
const TRAILER = "TRAILER!!!";
const MAX_NAME = 4096; // PATH_MAX
const U32 = 0xffff_ffff;

// File type bits of st_mode (POSIX <sys/stat.h>, as stored in c_mode).
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

const path = z
  .string()
  .min(1)
  .max(MAX_NAME - 1)
  .refine((p) => !p.includes("\0"), "no NUL in a path")
  .refine((p) => !p.startsWith("/") && !p.endsWith("/"), "relative, no trailing slash")
  .refine((p) => p.split("/").every((c) => c !== "" && c !== "." && c !== ".."), "no empty, . or .. components")
  .refine((p) => p !== TRAILER, "reserved name");
const u32 = z.number().int().min(0).max(U32);
const common = {
  path,
  /** Permission bits (0..07777); the type bits come from `type`. */
  mode: z.number().int().min(0).max(0o7777).optional(),
  uid: u32.optional(),
  gid: u32.optional(),
  mtime: u32.optional(),
};
export const cpioEntrySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("dir"), ...common }),
  z.object({
    type: z.literal("file"),
    ...common,
    data: z
      .custom<Uint8Array>((d) => d instanceof Uint8Array, "data must be a Uint8Array")
      .refine((d) => d.length <= U32, "file larger than 4 GiB"),
  }),
  z.object({
    type: z.literal("symlink"),
    ...common,
    target: z
      .string()
      .min(1)
      .max(MAX_NAME - 1)
      .refine((t) => !t.includes("\0")),
  }),
  z.object({ type: z.enum(["char", "block"]), ...common, major: u32, minor: u32 }),
]);
export type CpioEntry = z.infer<typeof cpioEntrySchema>;

const TYPE_BITS = { dir: S_IFDIR, file: S_IFREG, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK } as const;
const DEFAULT_PERM = { dir: 0o755, file: 0o644, symlink: 0o777, char: 0o600, block: 0o600 } as const;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function header(fields: readonly number[], nameSize: number): string {
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  return CPIO_NEWC_MAGIC + [...fields, nameSize, 0].map((v) => v.toString(16).toUpperCase().padStart(8, "0")).join("");
}

/**
 * Writes a newc archive. Entries are validated (safe relative paths, no
 * duplicates, every parent directory listed before its children, since the
 * kernel's unpacker does not create missing parents).
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const seen = new Map<string, CpioEntry["type"]>();
  let ino = 1;
  const push = (fields: number[], name: string, data: Uint8Array) => {
    const nameBytes = Buffer.from(`${name}\0`, "utf8");
    const head = Buffer.from(header(fields, nameBytes.length), "ascii");
    parts.push(head, nameBytes, Buffer.alloc(pad4(HEADER_SIZE + nameBytes.length)));
    if (data.length > 0)
      parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.alloc(pad4(data.length)));
  };
  entries.forEach((raw, index) => {
    const parsed = cpioEntrySchema.safeParse(raw);
    if (!parsed.success)
      throw new GuestKitError(
        GuestKitErrorCode.CPIO_INVALID,
        { index, path: String((raw as { path?: unknown }).path) },
        parsed.error.message,
      );
    const e = parsed.data;
    if (Buffer.byteLength(e.path, "utf8") >= MAX_NAME)
      throw new GuestKitError(GuestKitErrorCode.CPIO_INVALID, { index }, "name too long");
    if (seen.has(e.path))
      throw new GuestKitError(GuestKitErrorCode.CPIO_INVALID, { index, path: e.path }, "duplicate path");
    const slash = e.path.lastIndexOf("/");
    if (slash > 0 && seen.get(e.path.slice(0, slash)) !== "dir") {
      throw new GuestKitError(
        GuestKitErrorCode.CPIO_INVALID,
        { index, path: e.path },
        "parent directory must be listed first",
      );
    }
    seen.set(e.path, e.type);
    const mode = TYPE_BITS[e.type] | (e.mode ?? DEFAULT_PERM[e.type]);
    const data = e.type === "file" ? e.data : e.type === "symlink" ? Buffer.from(e.target, "utf8") : new Uint8Array(0);
    const rdev = e.type === "char" || e.type === "block" ? [e.major, e.minor] : [0, 0];
    const nlink = e.type === "dir" ? 2 : 1;
    push([ino++, mode, e.uid ?? 0, e.gid ?? 0, nlink, e.mtime ?? 0, data.length, 0, 0, ...rdev], e.path, data);
  });
  push([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], TRAILER, new Uint8Array(0));
  return Buffer.concat(parts);
}

/** One entry read back from an archive (all header fields, the data as a view). */
export interface CpioRecord {
  readonly name: string;
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly mtime: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly data: Uint8Array;
}

/**
 * Reads a newc archive up to its trailer. Hostile input gives a typed error:
 * every field is checked to be hex, every length to lie inside the buffer.
 */
export function readCpio(buf: Uint8Array, maxEntries = 1_000_000): CpioRecord[] {
  const bad = (offset: number, why: string) => new GuestKitError(GuestKitErrorCode.CPIO_INVALID, { offset }, why);
  const out: CpioRecord[] = [];
  const ascii = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  for (;;) {
    if (out.length >= maxEntries) throw bad(off, "too many entries");
    if (off + HEADER_SIZE > buf.length) throw bad(off, "truncated header (no trailer)");
    const head = ascii.toString("latin1", off, off + HEADER_SIZE);
    if (!head.startsWith(CPIO_NEWC_MAGIC)) throw bad(off, "bad magic (not newc)");
    const f: number[] = [];
    for (let i = 0; i < 13; i++) {
      const h = head.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9A-Fa-f]{8}$/.test(h)) throw bad(off, `field ${i} is not hex`);
      f.push(Number.parseInt(h, 16));
    }
    const [ino, mode, uid, gid, nlink, mtime, fileSize, , , rdevMajor, rdevMinor, nameSize] = f;
    if (nameSize < 1 || nameSize > MAX_NAME) throw bad(off, "bad name size");
    const nameStart = off + HEADER_SIZE;
    if (nameStart + nameSize > buf.length) throw bad(off, "truncated name");
    if (buf[nameStart + nameSize - 1] !== 0) throw bad(off, "name not NUL-terminated");
    const name = ascii.toString("utf8", nameStart, nameStart + nameSize - 1);
    const dataStart = nameStart + nameSize + pad4(HEADER_SIZE + nameSize);
    if (name === TRAILER) return out;
    if (dataStart + fileSize > buf.length) throw bad(off, "truncated data");
    out.push({
      name,
      ino,
      mode,
      uid,
      gid,
      nlink,
      mtime,
      rdevMajor,
      rdevMinor,
      data: buf.subarray(dataStart, dataStart + fileSize),
    });
    off = dataStart + fileSize + pad4(fileSize);
  }
}
