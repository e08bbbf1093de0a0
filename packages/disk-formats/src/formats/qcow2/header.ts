// qcow2 header, header extensions and backing file name: parse (zod-validated,
// with the sanity limits QEMU applies) and serialize.
// Spec: QEMU docs/interop/qcow2.txt, "Header" and "Header extensions".

import { DiskError, DiskErrorCode } from "../../errors.js";
import * as z from "../../zod.js";

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** Size of the v2 header; v3 headers are at least 104 bytes, QEMU writes 112. */
export const V2_HEADER_LENGTH = 72;
export const V3_MIN_HEADER_LENGTH = 104;
export const V3_HEADER_LENGTH = 112;
/** QEMU's limits (block/qcow2.h): L1 at most 32 MiB, refcount table at most 8 MiB, 65536 snapshots. */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
export const MAX_BACKING_NAME = 1023;

export const Ext = {
  END: 0x00000000,
  BACKING_FORMAT: 0xe2792aca,
  FEATURE_TABLE: 0x6803f857,
  BITMAPS: 0x23852875,
  CRYPTO: 0x0537be77,
  DATA_FILE: 0x44415441,
} as const;

/** Incompatible feature bits (qcow2.txt, header bytes 72-79). */
export const Incompat = { DIRTY: 0, CORRUPT: 1, DATA_FILE: 2, COMPRESSION: 3, EXTL2: 4 } as const;
export const Compat = { LAZY_REFCOUNTS: 0 } as const;

/** Field byte offsets, to report where a bad value sits. */
const FIELD_OFFSET: Record<string, number> = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
  compressionType: 104,
};

const u64 = z.int().check(z.nonnegative(), z.maximum(Number.MAX_SAFE_INTEGER));
const u32 = z.int().check(z.nonnegative(), z.maximum(2 ** 32 - 1));

/** The fixed fields; 64-bit fields above 2^53 are rejected before this schema (TOO_LARGE). */
const HeaderFields = z
  .object({
    magic: z.literal(QCOW2_MAGIC),
    version: z.union([z.literal(2), z.literal(3)]),
    backingFileOffset: u64,
    backingFileSize: u32.check(z.maximum(MAX_BACKING_NAME)),
    clusterBits: u32.check(z.minimum(9), z.maximum(21)),
    size: u64,
    cryptMethod: z.literal(0),
    l1Size: u32.check(z.maximum(MAX_L1_BYTES / 8)),
    l1TableOffset: u64,
    refcountTableOffset: u64,
    refcountTableClusters: u32.check(z.minimum(1)),
    nbSnapshots: u32.check(z.maximum(MAX_SNAPSHOTS)),
    snapshotsOffset: u64,
    // The feature words are kept as bigint bit masks.
    incompatibleFeatures: z.bigint(),
    compatibleFeatures: z.bigint(),
    autoclearFeatures: z.bigint(),
    refcountOrder: u32.check(z.maximum(6)),
    headerLength: u32,
    compressionType: z.union([z.literal(0), z.literal(1)]),
  })
  .check(
    z.superRefine((h, ctx) => {
      const cs = 2 ** h.clusterBits;
      const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
      if (h.version === 2) {
        if (h.refcountOrder !== 4) issue("refcountOrder", "v2 images have 16-bit refcounts");
      } else {
        if (h.headerLength < V3_MIN_HEADER_LENGTH || h.headerLength % 8 !== 0 || h.headerLength > cs)
          issue("headerLength", "v3 header length must be >= 104, a multiple of 8 and within the first cluster");
      }
      if (h.backingFileOffset !== 0 && h.backingFileOffset + h.backingFileSize > cs)
        issue("backingFileOffset", "backing file name must lie in the first cluster");
      // The L1 table must map the whole virtual disk (qcow2.txt "size").
      // Extended L2 entries are 16 bytes (qcow2.txt "Extended L2 Entries"), and need clusters of 16 KiB or more.
      const ext = bit(h.incompatibleFeatures, Incompat.EXTL2);
      if (ext && h.clusterBits < 14) issue("clusterBits", "extended L2 entries need clusters of at least 16 KiB");
      const l2Entries = cs / (ext ? 16 : 8);
      if (Math.ceil(h.size / cs / l2Entries) > h.l1Size) issue("l1Size", "L1 table too small for the virtual size");
      if (h.l1TableOffset % cs !== 0 && h.l1Size > 0) issue("l1TableOffset", "L1 table not cluster aligned");
      if (h.refcountTableOffset % cs !== 0) issue("refcountTableOffset", "refcount table not cluster aligned");
      if (h.refcountTableClusters * cs > MAX_REFTABLE_BYTES) issue("refcountTableClusters", "refcount table too large");
      // QEMU's qcow2_validate_table checks the offset even when nb_snapshots is 0 ("Snapshot table offset invalid").
      if (h.snapshotsOffset % cs !== 0) issue("snapshotsOffset", "snapshot table not aligned");
      if (h.compressionType !== 0 && !bit(h.incompatibleFeatures, Incompat.COMPRESSION))
        issue("compressionType", "non-zlib compression type without the compression-type feature bit");
    }),
  );
export type HeaderFields = z.infer<typeof HeaderFields>;

export interface HeaderExtension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface FeatureName {
  readonly type: number;
  readonly bit: number;
  readonly name: string;
}

export interface Qcow2Header extends HeaderFields {
  /** Extensions other than backing format and feature table, preserved as read. */
  readonly otherExtensions: HeaderExtension[];
  readonly backingFile: string | null;
  readonly backingFormat: string | null;
  readonly featureNames: FeatureName[];
}

export function bit(word: bigint, n: number): boolean {
  return ((word >> BigInt(n)) & 1n) === 1n;
}

function headerError(code: DiskErrorCode, offset: number, detail: string, extra: Record<string, unknown> = {}) {
  return new DiskError(code, { format: "qcow2", offset, ...extra }, detail);
}

function readU64(dv: DataView, off: number, field: string): number {
  const v = dv.getBigUint64(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw headerError(DiskErrorCode.TOO_LARGE, off, `${field} exceeds 2^53`, { field, value: `0x${v.toString(16)}` });
  }
  return Number(v);
}

/** True if `head` starts with the qcow2 magic. */
export function isQcow2(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0) === QCOW2_MAGIC;
}

/**
 * Parses the header from the first bytes of the file (at least the first
 * cluster, or the whole file if smaller). `fileSize` bounds every table.
 */
export function parseHeader(buf: Uint8Array, fileSize: number): Qcow2Header {
  if (buf.length < V2_HEADER_LENGTH) throw headerError(DiskErrorCode.TRUNCATED, 0, "file shorter than a qcow2 header");
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== QCOW2_MAGIC) throw headerError(DiskErrorCode.BAD_MAGIC, 0, "not a qcow2 image");
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3)
    throw headerError(DiskErrorCode.UNSUPPORTED, 4, `qcow2 version ${version}`, { version });
  const v3 = version === 3;
  if (v3 && buf.length < V3_MIN_HEADER_LENGTH) throw headerError(DiskErrorCode.TRUNCATED, 72, "v3 header truncated");
  const cryptMethod = dv.getUint32(32);
  if (cryptMethod !== 0) throw headerError(DiskErrorCode.UNSUPPORTED, 32, "encrypted images", { cryptMethod });
  const headerLength = v3 ? dv.getUint32(100) : V2_HEADER_LENGTH;
  const raw = {
    magic,
    version,
    backingFileOffset: readU64(dv, 8, "backing_file_offset"),
    backingFileSize: dv.getUint32(16),
    clusterBits: dv.getUint32(20),
    size: readU64(dv, 24, "size"),
    cryptMethod,
    l1Size: dv.getUint32(36),
    l1TableOffset: readU64(dv, 40, "l1_table_offset"),
    refcountTableOffset: readU64(dv, 48, "refcount_table_offset"),
    refcountTableClusters: dv.getUint32(56),
    nbSnapshots: dv.getUint32(60),
    snapshotsOffset: readU64(dv, 64, "snapshots_offset"),
    incompatibleFeatures: v3 ? dv.getBigUint64(72) : 0n,
    compatibleFeatures: v3 ? dv.getBigUint64(80) : 0n,
    autoclearFeatures: v3 ? dv.getBigUint64(88) : 0n,
    refcountOrder: v3 ? dv.getUint32(96) : 4,
    headerLength,
    compressionType: v3 && headerLength > 104 && buf.length > 104 ? dv.getUint8(104) : 0,
  };
  const parsed = HeaderFields.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    const field = String(first.path[0] ?? "header");
    throw headerError(DiskErrorCode.INVALID_HEADER, FIELD_OFFSET[field] ?? 0, `${field}: ${first.message}`, {
      field,
      value: String((raw as Record<string, unknown>)[field]),
    });
  }
  const h = parsed.data;
  const cs = 2 ** h.clusterBits;
  // Tables must lie inside the file (qcow2.txt; QEMU's validate_table_offset).
  const inFile = (field: string, off: number, bytes: number) => {
    if (off + bytes > fileSize)
      throw headerError(DiskErrorCode.OUT_OF_BOUNDS, FIELD_OFFSET[field]!, `${field} table beyond end of file`, {
        tableOffset: off,
        tableBytes: bytes,
        fileSize,
      });
  };
  if (h.l1Size > 0) inFile("l1TableOffset", h.l1TableOffset, h.l1Size * 8);
  inFile("refcountTableOffset", h.refcountTableOffset, h.refcountTableClusters * cs);
  if (h.refcountTableOffset === 0) throw headerError(DiskErrorCode.INVALID_HEADER, 48, "refcount table at offset 0");
  if (h.nbSnapshots > 0) inFile("snapshotsOffset", h.snapshotsOffset, h.nbSnapshots * 40);
  if (buf.length < Math.min(cs, fileSize)) throw headerError(DiskErrorCode.TRUNCATED, 0, "first cluster not provided");

  // Header extensions: from the end of the header to the backing file name (or the first cluster's end).
  // QEMU's qcow2_read_extensions: an extension whose 8-byte header or data crosses that end is refused
  // ("Header extension too large"), the end marker included; bytes past the end of the file read as zeros.
  const areaEnd = h.backingFileOffset !== 0 ? h.backingFileOffset : cs;
  const extEnd = Math.min(areaEnd, buf.length);
  let pos = h.headerLength;
  const otherExtensions: HeaderExtension[] = [];
  const featureNames: FeatureName[] = [];
  let backingFormat: string | null = null;
  const dec = new TextDecoder("utf-8", { fatal: false });
  while (pos < areaEnd) {
    if (pos + 8 > areaEnd)
      throw headerError(DiskErrorCode.INVALID_HEADER, pos, "header extension runs past its area", { areaEnd });
    if (pos + 8 > buf.length) break; // past the end of the file: zeros, the end marker
    const type = dv.getUint32(pos);
    const len = dv.getUint32(pos + 4);
    if (type === Ext.END) break;
    if (pos + 8 + len > extEnd)
      throw headerError(DiskErrorCode.INVALID_HEADER, pos, "header extension runs past its area", { type, len });
    const data = buf.slice(pos + 8, pos + 8 + len);
    // QEMU refuses a bitmaps extension of any other length than its 24 bytes ("bitmaps_ext: Invalid
    // extension length"), whether or not the bitmaps autoclear bit is set, and a crypto header extension
    // in an image without LUKS encryption (encrypted images are refused above).
    if (type === Ext.BITMAPS && len !== 24)
      throw headerError(DiskErrorCode.INVALID_HEADER, pos + 4, "bitmaps extension length is not 24", { len });
    if (type === Ext.CRYPTO)
      throw headerError(DiskErrorCode.INVALID_HEADER, pos, "crypto header extension in an image without encryption");
    if (type === Ext.BACKING_FORMAT) {
      // QEMU keeps the format name in a 16-byte buffer and refuses longer ones
      // ("ext_backing_format: len=N too large (>=16)"); so does this.
      if (len >= 16)
        throw headerError(
          DiskErrorCode.INVALID_HEADER,
          pos + 4,
          "backing format extension too long (16 bytes or more)",
          {
            len,
          },
        );
      backingFormat = dec.decode(data);
    } else if (type === Ext.FEATURE_TABLE) {
      for (let i = 0; i + 48 <= len; i += 48) {
        const nameBytes = data.subarray(i + 2, i + 48);
        const nul = nameBytes.indexOf(0);
        featureNames.push({
          type: data[i]!,
          bit: data[i + 1]!,
          name: dec.decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)),
        });
      }
    } else otherExtensions.push({ type, data });
    pos += 8 + Math.ceil(len / 8) * 8;
  }
  let backingFile: string | null = null;
  if (h.backingFileOffset !== 0 && h.backingFileSize > 0) {
    if (h.backingFileOffset + h.backingFileSize > buf.length)
      throw headerError(DiskErrorCode.TRUNCATED, 8, "backing file name beyond end of file");
    backingFile = dec.decode(buf.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize));
  }
  return { ...h, otherExtensions, backingFile, backingFormat, featureNames };
}

/** The feature name table QEMU 7.2 writes into every v3 image. */
export const QEMU_FEATURE_NAMES: FeatureName[] = [
  { type: 0, bit: 0, name: "dirty bit" },
  { type: 0, bit: 1, name: "corrupt bit" },
  { type: 0, bit: 2, name: "external data file" },
  { type: 0, bit: 3, name: "compression type" },
  { type: 0, bit: 4, name: "extended L2 entries" },
  { type: 1, bit: 0, name: "lazy refcounts" },
  { type: 2, bit: 0, name: "bitmaps" },
  { type: 2, bit: 1, name: "raw external data" },
];

/**
 * Serializes the header, its extensions and the backing file name into the
 * bytes of the first cluster (returned trimmed to what is used).
 */
export function serializeHeader(h: Qcow2Header): Uint8Array {
  const cs = 2 ** h.clusterBits;
  const v3 = h.version === 3;
  const headerLength = v3 ? Math.max(h.headerLength, V3_MIN_HEADER_LENGTH) : V2_HEADER_LENGTH;
  const enc = new TextEncoder();
  const exts: HeaderExtension[] = [];
  if (h.backingFormat !== null && h.backingFile !== null)
    exts.push({ type: Ext.BACKING_FORMAT, data: enc.encode(h.backingFormat) });
  if (v3) {
    const names = h.featureNames.length > 0 ? h.featureNames : QEMU_FEATURE_NAMES;
    const t = new Uint8Array(names.length * 48);
    names.forEach((f, i) => {
      t[i * 48] = f.type;
      t[i * 48 + 1] = f.bit;
      t.set(enc.encode(f.name).subarray(0, 46), i * 48 + 2);
    });
    exts.push({ type: Ext.FEATURE_TABLE, data: t });
  }
  exts.push(...h.otherExtensions);
  let len = headerLength;
  for (const e of exts) len += 8 + Math.ceil(e.data.length / 8) * 8;
  len += 8; // end marker
  const name = h.backingFile !== null ? enc.encode(h.backingFile) : null;
  if (name && name.length > MAX_BACKING_NAME)
    throw headerError(DiskErrorCode.INVALID_OPTIONS, 8, "backing file name longer than 1023 bytes");
  const backingOffset = name ? len : 0;
  if (name) len += name.length;
  if (len > cs) throw headerError(DiskErrorCode.TOO_LARGE, 0, "header, extensions and backing name exceed one cluster");
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, QCOW2_MAGIC);
  dv.setUint32(4, h.version);
  dv.setBigUint64(8, BigInt(backingOffset));
  dv.setUint32(16, name ? name.length : 0);
  dv.setUint32(20, h.clusterBits);
  dv.setBigUint64(24, BigInt(h.size));
  dv.setUint32(32, 0);
  dv.setUint32(36, h.l1Size);
  dv.setBigUint64(40, BigInt(h.l1TableOffset));
  dv.setBigUint64(48, BigInt(h.refcountTableOffset));
  dv.setUint32(56, h.refcountTableClusters);
  dv.setUint32(60, h.nbSnapshots);
  dv.setBigUint64(64, BigInt(h.snapshotsOffset));
  if (v3) {
    dv.setBigUint64(72, h.incompatibleFeatures);
    dv.setBigUint64(80, h.compatibleFeatures);
    dv.setBigUint64(88, h.autoclearFeatures);
    dv.setUint32(96, h.refcountOrder);
    dv.setUint32(100, headerLength);
    if (headerLength > 104) out[104] = h.compressionType;
  }
  let pos = headerLength;
  for (const e of exts) {
    dv.setUint32(pos, e.type);
    dv.setUint32(pos + 4, e.data.length);
    out.set(e.data, pos + 8);
    pos += 8 + Math.ceil(e.data.length / 8) * 8;
  }
  pos += 8; // end marker (zeros)
  if (name) out.set(name, pos);
  return out;
}
