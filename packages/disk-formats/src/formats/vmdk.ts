// VMDK: a text descriptor listing extents (VMware "Virtual Disk Format 1.1").
// Supported: monolithicSparse and streamOptimized (descriptor embedded in a
// hosted sparse extent, "KDMV" header, grain directory -> grain tables ->
// grains), monolithicFlat, twoGbMaxExtentSparse/Flat (descriptor file plus
// 2 GiB extent files, created as QEMU block/vmdk.c does) and other descriptor
// files with FLAT / SPARSE / ZERO extents.
// Little endian; offsets in the sparse header and tables are in sectors.
import type { BlockBackend, Extent } from "../backend.js";
import { isZero } from "../bytes.js";
import { zlibDeflate, zlibInflate } from "../compress.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull, type StoreHost } from "../io/store.js";

const F = "vmdk";
const MAGIC = 0x564d444b; // "KDMV"
const SECTOR = 512;
const GD_AT_END = 0xffffffffffffffffn;
const FLAG_NL_TEST = 1 << 0;
const FLAG_RGD = 1 << 1;
const FLAG_ZERO_GRAIN = 1 << 2;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
/** Limits (QEMU's vmdk driver): at most 512 entries per grain table, grains up to 128 MiB, descriptors up to 1 MiB. */
const MAX_GTES = 512;
const MAX_GRAIN_SECTORS = (128 * 1024 * 1024) / SECTOR;
const MAX_DESCRIPTOR = 1024 * 1024;
const MAX_EXTENTS = 4096;
/** QEMU vmdk_co_do_create: "VMDK has constant split size" 0x80000000 bytes per twoGbMaxExtent* extent. */
const SPLIT_SECTORS = 0x80000000 / SECTOR;
const GT_CACHE = 64;

type Access = "RW" | "RDONLY" | "NOACCESS";

interface SparseExtent {
  kind: "sparse";
  store: ByteStore;
  file: string;
  start: number; // guest byte offset of the extent
  bytes: number;
  grain: number; // bytes
  gtes: number;
  gd: Uint32Array;
  rgd: Uint32Array | null;
  gtCache: Map<number, Uint32Array>;
  /** Metadata write-behind (VmdkImage.deferMetadata): grain table index -> entry range [from, to) not written yet. */
  dirty?: Map<number, [number, number]>;
  compressed: boolean;
  zeroGrains: boolean;
  end: number; // allocation pointer (bytes, sector aligned)
  fileSize: number;
  metaEnd: number; // bytes: end of header, descriptor and tables (overHead)
  /** streamOptimized with the grain directory in a footer (header gdOffset -1): not written (appending would bury the footer). */
  footer: boolean;
}
interface FlatExtent {
  kind: "flat";
  store: ByteStore;
  file: string;
  start: number;
  bytes: number;
  offset: number;
}
interface ZeroExtent {
  kind: "zero";
  start: number;
  bytes: number;
}
type VExtent = SparseExtent | FlatExtent | ZeroExtent;

function fail(
  code: DiskErrorCode,
  offset: number | undefined,
  detail: string,
  extra: Record<string, unknown> = {},
): DiskError {
  return new DiskError(code, { format: F, ...(offset !== undefined ? { offset } : {}), ...extra }, detail);
}

/** True if the bytes start with the sparse extent magic "KDMV". */
export function isVmdkSparse(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset).getUint32(0, true) === MAGIC;
}

/** True if the bytes look like a VMDK text descriptor. */
export function isVmdkDescriptor(head: Uint8Array): boolean {
  const t = new TextDecoder("latin1").decode(head.subarray(0, Math.min(head.length, 64)));
  return t.startsWith("# Disk DescriptorFile");
}

interface SparseHeader {
  version: number;
  flags: number;
  capacity: number;
  grainSize: number;
  descriptorOffset: number;
  descriptorSize: number;
  gtes: number;
  rgdOffset: number;
  gdOffset: bigint;
  overHead: number;
}

function u64(dv: DataView, off: number, what: string, base: number): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Math.floor(Number.MAX_SAFE_INTEGER / SECTOR)))
    throw fail(DiskErrorCode.TOO_LARGE, base + off, `${what} exceeds 2^53 bytes`);
  return Number(v);
}

function parseSparseHeader(b: Uint8Array, base: number): SparseHeader {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw fail(DiskErrorCode.BAD_MAGIC, base, "not a VMDK sparse extent");
  const version = dv.getUint32(4, true);
  if (version < 1 || version > 3) throw fail(DiskErrorCode.UNSUPPORTED, base + 4, `sparse extent version ${version}`);
  const h: SparseHeader = {
    version,
    flags: dv.getUint32(8, true),
    capacity: u64(dv, 12, "capacity", base),
    grainSize: u64(dv, 20, "grain size", base),
    descriptorOffset: u64(dv, 28, "descriptor offset", base),
    descriptorSize: u64(dv, 36, "descriptor size", base),
    gtes: dv.getUint32(44, true),
    rgdOffset: u64(dv, 48, "redundant directory offset", base),
    gdOffset: dv.getBigUint64(56, true),
    overHead: u64(dv, 64, "overhead", base),
  };
  if (h.grainSize < 1 || h.grainSize > MAX_GRAIN_SECTORS)
    throw fail(DiskErrorCode.INVALID_HEADER, base + 20, "grain size out of range", { grainSize: h.grainSize });
  if (h.gtes < 1 || h.gtes > MAX_GTES)
    throw fail(DiskErrorCode.INVALID_HEADER, base + 44, "grain table size out of range", { gtes: h.gtes });
  const compress = new DataView(b.buffer, b.byteOffset).getUint16(77, true);
  if ((h.flags & FLAG_COMPRESSED) !== 0 && compress !== 1)
    throw fail(DiskErrorCode.UNSUPPORTED, base + 77, `compression algorithm ${compress}`);
  return h;
}

/** The subformats qemu-img creates (`-o subformat=`). */
export type VmdkSubformat =
  | "monolithicSparse"
  | "monolithicFlat"
  | "streamOptimized"
  | "twoGbMaxExtentSparse"
  | "twoGbMaxExtentFlat";

export interface VmdkCreateOptions {
  size: number;
  subformat?: VmdkSubformat;
}

export class VmdkImage implements BlockBackend {
  readonly format = "vmdk" as const;
  private closed = false;

  private constructor(
    private readonly extents: VExtent[],
    private readonly virtSize: number,
    readonly readOnly: boolean,
    readonly createType: string,
    readonly cid: number,
    readonly parentCid: number,
    private readonly stores: ByteStore[],
  ) {}

  size(): number {
    return this.virtSize;
  }
  /** Grain size of the first sparse extent (qemu-img info's cluster-size), if any. */
  get grainSize(): number | null {
    const s = this.extents.find((e) => e.kind === "sparse") as SparseExtent | undefined;
    return s ? s.grain : null;
  }
  /** The extents as qemu-img info lists them. */
  get extentInfo(): Array<{ file: string; bytes: number; kind: string; grain: number | null; compressed: boolean }> {
    return this.extents.map((e) => ({
      file: e.kind === "zero" ? "" : e.file,
      bytes: e.bytes,
      kind: e.kind,
      grain: e.kind === "sparse" ? e.grain : null,
      compressed: e.kind === "sparse" && e.compressed,
    }));
  }

  /**
   * Opens a VMDK: either a sparse extent with an embedded descriptor, or a text
   * descriptor whose extent files are opened through `host` relative to `name`.
   */
  static async open(
    store: ByteStore,
    options: { readOnly?: boolean; host?: StoreHost; name?: string } = {},
  ): Promise<VmdkImage> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    const head = new Uint8Array(Math.min(SECTOR, fileSize));
    await readFull(store, 0, head);
    const stores: ByteStore[] = [store];
    let descriptor: string;
    let embedded: SparseHeader | null = null;
    if (isVmdkSparse(head)) {
      if (fileSize < SECTOR) throw fail(DiskErrorCode.TRUNCATED, 0, "file shorter than a sparse header");
      embedded = parseSparseHeader(head, 0);
      if (embedded.descriptorOffset === 0)
        throw fail(DiskErrorCode.UNSUPPORTED, 28, "sparse extent without a descriptor");
      const bytes = embedded.descriptorSize * SECTOR;
      if (bytes > MAX_DESCRIPTOR) throw fail(DiskErrorCode.TOO_LARGE, 36, "descriptor larger than 1 MiB");
      if (embedded.descriptorOffset * SECTOR + bytes > fileSize)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, 28, "descriptor beyond end of file");
      const d = new Uint8Array(bytes);
      await readFull(store, embedded.descriptorOffset * SECTOR, d);
      descriptor = new TextDecoder().decode(d.subarray(0, d.indexOf(0) < 0 ? d.length : d.indexOf(0)));
    } else {
      if (fileSize > MAX_DESCRIPTOR)
        throw fail(DiskErrorCode.BAD_MAGIC, 0, "not a VMDK (no sparse header, too large for a descriptor)");
      const d = new Uint8Array(fileSize);
      await readFull(store, 0, d);
      descriptor = new TextDecoder().decode(d);
      if (!descriptor.startsWith("# Disk DescriptorFile"))
        throw fail(DiskErrorCode.BAD_MAGIC, 0, "not a VMDK descriptor");
    }
    const desc = parseDescriptor(descriptor);
    const extents: VExtent[] = [];
    let pos = 0;
    try {
      for (const [i, x] of desc.extents.entries()) {
        const bytes = x.sectors * SECTOR;
        if (x.type === "ZERO") extents.push({ kind: "zero", start: pos, bytes });
        else {
          let es: ByteStore;
          if (embedded && desc.extents.length === 1) es = store;
          else {
            if (!options.host || options.name === undefined)
              throw fail(DiskErrorCode.UNSUPPORTED, undefined, "extent files need a StoreHost", { extent: x.file });
            const path = options.host.resolve(options.name, x.file);
            if (!(await options.host.exists(path)))
              throw fail(DiskErrorCode.NOT_FOUND, undefined, "extent file not found", { file: path, extent: i });
            es = await options.host.open(path, { readOnly: readOnly || x.access !== "RW" });
            stores.push(es);
          }
          if (x.type === "FLAT")
            extents.push({ kind: "flat", store: es, file: x.file, start: pos, bytes, offset: x.offset * SECTOR });
          else extents.push(await openSparse(es, x.file, pos));
        }
        pos += extents.at(-1)!.bytes;
        if (!Number.isSafeInteger(pos)) throw fail(DiskErrorCode.TOO_LARGE, undefined, "extents exceed 2^53 bytes");
      }
    } catch (e) {
      for (const s of stores.slice(1)) await s.close().catch(() => {});
      throw e;
    }
    return new VmdkImage(extents, pos, readOnly, desc.createType, desc.cid, desc.parentCid, stores);
  }

  /**
   * Creates a VMDK laid out as qemu-img does (monolithicSparse by default). Subformats with
   * extent files (monolithicFlat, twoGbMaxExtent*) need `host` and `name`; `store` then holds
   * the text descriptor.
   */
  static async create(
    store: ByteStore,
    options: VmdkCreateOptions,
    where: { host?: StoreHost; name?: string } = {},
  ): Promise<VmdkImage> {
    checkSize(F, options.size);
    const sectors = Math.ceil(options.size / SECTOR);
    const sub = options.subformat ?? "monolithicSparse";
    const { prefix, postfix } = decompose(where.name ?? "disk.vmdk");
    await store.truncate(0);
    if (sub === "monolithicSparse" || sub === "streamOptimized") {
      const text = new TextEncoder().encode(
        descriptorText(sub, `RW ${sectors} SPARSE "${prefix}${postfix}"\n`, sectors),
      );
      await writeSparseExtent(store, sectors, sub === "streamOptimized", text);
      await store.flush();
      return VmdkImage.open(store, { readOnly: false, ...where });
    }
    const host = where.host;
    if (!host || where.name === undefined)
      throw fail(DiskErrorCode.INVALID_OPTIONS, undefined, `${sub} needs a StoreHost for its extent files`);
    const flat = sub !== "twoGbMaxExtentSparse";
    // QEMU vmdk_co_do_create: split images use extents of split_size = 0x80000000 bytes (the last one
    // shorter), named "%s-%c%03d%s" (prefix, 'f' or 's', index from 1, postfix) in vmdk_co_create_opts_cb;
    // monolithicFlat has one "%s-flat%s" extent.
    const split = sub !== "monolithicFlat";
    const perExtent = split ? SPLIT_SECTORS : Math.max(sectors, 1);
    const count = split ? Math.ceil(sectors / perExtent) : 1;
    if (split && sectors === 0)
      throw fail(DiskErrorCode.INVALID_OPTIONS, undefined, `${sub} needs a size above zero (no extents otherwise)`);
    if (count > MAX_EXTENTS)
      throw fail(DiskErrorCode.TOO_LARGE, undefined, `${sub} above ${MAX_EXTENTS} extents`, { size: options.size });
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const n = Math.min(perExtent, sectors - i * perExtent);
      const file = split
        ? `${prefix}-${flat ? "f" : "s"}${String(i + 1).padStart(3, "0")}${postfix}`
        : `${prefix}-flat${postfix}`;
      const es = await host.create(host.resolve(where.name, file));
      try {
        if (flat) await es.truncate(n * SECTOR);
        else await writeSparseExtent(es, n, false, null);
        await es.flush();
      } finally {
        await es.close();
      }
      lines.push(flat ? `RW ${n} FLAT "${file}" 0\n` : `RW ${n} SPARSE "${file}"\n`);
    }
    // The descriptor file is exactly the text (QEMU truncates it to desc_len).
    await store.write(0, new TextEncoder().encode(descriptorText(sub, lines.join(""), sectors)));
    await store.flush();
    return VmdkImage.open(store, { readOnly: false, ...where });
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  private extentAt(offset: number): VExtent {
    // Few extents in practice: a linear scan.
    for (const e of this.extents) if (offset < e.start + e.bytes) return e;
    throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "offset beyond the last extent", { guest: offset });
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen(false);
    checkRange(F, offset, buf.length, this.virtSize);
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const e = this.extentAt(g);
      const inExt = g - e.start;
      let n = Math.min(e.start + e.bytes - g, buf.length - pos);
      const dst = () => buf.subarray(pos, pos + n);
      if (e.kind === "zero") dst().fill(0);
      else if (e.kind === "flat") await readFull(e.store, e.offset + inExt, dst());
      else {
        const gi = Math.floor(inExt / e.grain);
        const inGrain = inExt - gi * e.grain;
        n = Math.min(n, e.grain - inGrain);
        const loc = await grainLocation(e, gi);
        if (loc.kind === "none") dst().fill(0);
        else if (loc.kind === "plain") await readFull(e.store, loc.offset + inGrain, dst());
        else {
          const data = await readCompressedGrain(e, loc.offset, gi);
          dst().set(data.subarray(inGrain, inGrain + n));
        }
      }
      pos += n;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtSize);
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const e = this.extentAt(g);
      const inExt = g - e.start;
      let n = Math.min(e.start + e.bytes - g, data.length - pos);
      if (e.kind === "zero") {
        if (!isZero(data.subarray(pos, pos + n)))
          throw fail(DiskErrorCode.READ_ONLY, undefined, "ZERO extents cannot hold data");
      } else if (e.kind === "flat") await e.store.write(e.offset + inExt, data.subarray(pos, pos + n));
      else {
        const gi = Math.floor(inExt / e.grain);
        const inGrain = inExt - gi * e.grain;
        const whole = inGrain === 0 ? await freshGrainRun(e, gi, Math.floor(n / e.grain)) : 0;
        if (whole > 0) {
          n = whole * e.grain;
          await writeFreshGrains(e, gi, data.subarray(pos, pos + n));
        } else {
          n = Math.min(n, e.grain - inGrain);
          await writeGrain(e, gi, inGrain, data.subarray(pos, pos + n));
        }
      }
      pos += n;
    }
  }

  /**
   * The grain size when every grain this image writes is compressed (a
   * streamOptimized image of one writable extent), else null: convert then
   * compresses grains ahead (a Compressor, kind "zlib") for writeGrainDeflated.
   */
  get compressedGrainSize(): number | null {
    const e = this.extents[0];
    return this.extents.length === 1 && e?.kind === "sparse" && e.compressed && !e.footer && !this.readOnly
      ? e.grain
      : null;
  }

  /**
   * Writes one grain-aligned grain (or the disk's short last one) as write()
   * would, with `deflated` the zlib stream of the grain zero-padded to a whole
   * grain (from a Compressor) used instead of compressing here when the grain
   * was not written before.
   */
  async writeGrainDeflated(offset: number, data: Uint8Array, deflated: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtSize);
    const e = this.extents[0];
    const grain = this.compressedGrainSize;
    if (!e || e.kind !== "sparse" || grain === null || offset % grain !== 0 || data.length > grain)
      throw new DiskError(DiskErrorCode.INVALID_REQUEST, { format: F, offset, length: data.length }, "not one grain");
    const gi = offset / grain;
    if (data.length !== grain && offset + data.length !== this.virtSize)
      throw new DiskError(DiskErrorCode.INVALID_REQUEST, { format: F, offset, length: data.length }, "not one grain");
    await writeGrain(e, gi, 0, data, deflated);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
    let pos = offset;
    while (pos < offset + length) {
      const st = await this.blockStatus(pos, offset + length - pos);
      if (st.kind === "data") {
        for (let p = st.start; p < st.start + st.length; p += 1024 * 1024)
          await this.write(p, new Uint8Array(Math.min(1024 * 1024, st.start + st.length - p)));
      }
      pos = st.start + st.length;
    }
  }

  /** Grains are not freed (as in QEMU): discard is a no-op. */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
  }

  async flush(): Promise<void> {
    this.checkOpen(false);
    if (this.readOnly) return;
    for (const e of this.extents) if (e.kind === "sparse") await drainGts(e);
    for (const s of new Set(this.stores)) await s.flush();
  }

  /**
   * Turns metadata write-behind on for an image being filled with new data
   * (convert's target): grains are written at once, the grain table entries
   * naming them once by flush() or close(), each table's changed range in
   * one write (primary tables, then the redundant ones), instead of two
   * small writes per run of grains. A process killed before leaves grains
   * nothing names (qemu-img check: clean).
   */
  deferMetadata(): void {
    this.checkOpen(true);
    for (const e of this.extents) if (e.kind === "sparse") e.dirty ??= new Map();
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen(false);
    checkRange(F, offset, length, this.virtSize);
    const e = this.extentAt(offset);
    const end = Math.min(offset + length, e.start + e.bytes);
    const inExt = offset - e.start;
    if (e.kind === "zero") return { start: offset, length: end - offset, kind: "zero", depth: 0 };
    if (e.kind === "flat")
      return { start: offset, length: end - offset, kind: "data", depth: 0, hostOffset: e.offset + inExt };
    const gi = Math.floor(inExt / e.grain);
    const first = await grainLocation(e, gi);
    let n = Math.min((gi + 1) * e.grain + e.start, end) - offset;
    for (let k = gi + 1; offset + n < end; k++) {
      const l = await grainLocation(e, k);
      if (l.kind !== first.kind) break;
      if (l.kind === "none" && first.kind === "none" && l.zero !== first.zero) break;
      if (l.kind === "plain" && first.kind === "plain" && l.offset !== first.offset + (k - gi) * e.grain) break;
      n = Math.min((k + 1) * e.grain + e.start, end) - offset;
    }
    const inGrain = inExt - gi * e.grain;
    if (first.kind === "none") return { start: offset, length: n, kind: first.zero ? "zero" : "unallocated", depth: 0 };
    if (first.kind === "plain")
      return { start: offset, length: n, kind: "data", depth: 0, hostOffset: first.offset + inGrain };
    return { start: offset, length: n, kind: "data", depth: 0, compressed: true };
  }

  async resize(_newSize: number): Promise<void> {
    throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "resizing VMDK images");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.readOnly) for (const e of this.extents) if (e.kind === "sparse") await drainGts(e);
    for (const e of this.extents) {
      // streamOptimized: an end-of-stream marker after the last grain (as QEMU writes on close).
      if (!this.readOnly && e.kind === "sparse" && e.compressed && e.end > e.metaEnd) {
        const tail = new Uint8Array(SECTOR);
        await readFull(e.store, e.end, tail);
        if (!isZero(tail) || e.fileSize < e.end + SECTOR) await e.store.write(e.end, new Uint8Array(SECTOR));
      }
    }
    for (const s of new Set(this.stores)) {
      if (!this.readOnly) await s.flush();
      await s.close();
    }
  }
}

/** QEMU vmdk_co_do_create's descriptor template (adapter ide, hwversion 4); extent lines end in "\n". */
function descriptorText(createType: string, extentLines: string, sectors: number): string {
  const cid = (Math.floor(Math.random() * 0xfffffffe) + 1).toString(16); // "%" PRIx32, unpadded
  // QEMU writes size / (63 * heads * 512) cylinders, uncapped.
  const cyl = Math.floor(sectors / (16 * 63));
  return `# Disk DescriptorFile
version=1
CID=${cid}
parentCID=ffffffff
createType="${createType}"

# Extent description
${extentLines}
# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "${cyl}"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
ddb.toolsVersion = "2147483647"
`;
}

/**
 * QEMU filename_decompose: the base name split at its last "." into prefix and postfix
 * ("d.vmdk" -> "d", ".vmdk"; "d" -> "d", "").
 */
function decompose(name: string): { prefix: string; postfix: string } {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot < 0 ? { prefix: base, postfix: "" } : { prefix: base.slice(0, dot), postfix: base.slice(dot) };
}

/**
 * Writes a hosted sparse extent header, its directories and (optionally) an embedded descriptor, as
 * QEMU vmdk_init_extent does: 128-sector grains, 512-entry grain tables all preallocated after the
 * redundant and the primary directory, the file truncated to the first grain (overHead). Only the
 * non-zero sectors are written, so the extent stays sparse on the host.
 */
async function writeSparseExtent(
  store: ByteStore,
  sectors: number,
  stream: boolean,
  descriptor: Uint8Array | null,
): Promise<void> {
  const grain = 128;
  const gtes = 512;
  const grains = Math.ceil(sectors / grain);
  const gtCount = Math.ceil(grains / gtes);
  const gtSectors = Math.ceil((gtes * 4) / SECTOR);
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const descSectors = 20;
  const rgd = 1 + descSectors;
  const gd = rgd + gdSectors + gtSectors * gtCount;
  const overHead = Math.ceil((gd + gdSectors + gtSectors * gtCount) / grain) * grain;
  if (descriptor && descriptor.length > descSectors * SECTOR)
    throw fail(DiskErrorCode.INVALID_OPTIONS, 28, "file name too long for the descriptor");
  const head = new Uint8Array(SECTOR);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, stream ? 3 : 1, true);
  dv.setUint32(8, FLAG_NL_TEST | FLAG_RGD | (stream ? FLAG_COMPRESSED | FLAG_MARKERS : 0), true);
  dv.setBigUint64(12, BigInt(sectors), true);
  dv.setBigUint64(20, BigInt(grain), true);
  dv.setBigUint64(28, 1n, true);
  dv.setBigUint64(36, BigInt(descSectors), true);
  dv.setUint32(44, gtes, true);
  dv.setBigUint64(48, BigInt(rgd), true);
  dv.setBigUint64(56, BigInt(gd), true);
  dv.setBigUint64(64, BigInt(overHead), true);
  head.set([0x0a, 0x20, 0x0d, 0x0a], 73);
  dv.setUint16(77, stream ? 1 : 0, true);
  const dirs = (dir: number) => {
    const b = new Uint8Array(gdSectors * SECTOR);
    const d = new DataView(b.buffer);
    for (let i = 0; i < gtCount; i++) d.setUint32(i * 4, dir + gdSectors + i * gtSectors, true);
    return b;
  };
  await store.truncate(overHead * SECTOR);
  await store.write(0, head);
  if (descriptor) await store.write(SECTOR, descriptor);
  await store.write(rgd * SECTOR, dirs(rgd));
  await store.write(gd * SECTOR, dirs(gd));
}

interface Descriptor {
  createType: string;
  cid: number;
  parentCid: number;
  extents: Array<{ access: Access; sectors: number; type: string; file: string; offset: number }>;
}

function parseDescriptor(text: string): Descriptor {
  let createType = "";
  let cid = 0;
  let parentCid = 0xffffffff;
  const extents: Descriptor["extents"] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    let m = /^createType\s*=\s*"([^"]*)"/.exec(line);
    if (m) {
      createType = m[1]!;
      continue;
    }
    m = /^CID\s*=\s*([0-9a-fA-F]+)/.exec(line);
    if (m) {
      cid = Number.parseInt(m[1]!, 16);
      continue;
    }
    m = /^parentCID\s*=\s*([0-9a-fA-F]+)/.exec(line);
    if (m) {
      parentCid = Number.parseInt(m[1]!, 16);
      continue;
    }
    if (/^parentFileNameHint\s*=/.test(line))
      throw fail(DiskErrorCode.UNSUPPORTED, undefined, "VMDK delta links (parent images)");
    m = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?/.exec(line);
    if (m) {
      const type = m[3]!;
      if (!["SPARSE", "FLAT", "ZERO"].includes(type))
        throw fail(DiskErrorCode.UNSUPPORTED, undefined, `extent type ${type}`);
      if (type !== "ZERO" && m[4] === undefined)
        throw fail(DiskErrorCode.INVALID_HEADER, undefined, "extent without a file name", { line });
      const sectors = Number(m[2]);
      if (!Number.isSafeInteger(sectors * SECTOR))
        throw fail(DiskErrorCode.TOO_LARGE, undefined, "extent size exceeds 2^53", { line });
      extents.push({ access: m[1] as Access, sectors, type, file: m[4] ?? "", offset: Number(m[5] ?? 0) });
      if (extents.length > MAX_EXTENTS) throw fail(DiskErrorCode.TOO_LARGE, undefined, "too many extents");
    }
  }
  if (extents.length === 0) throw fail(DiskErrorCode.INVALID_HEADER, undefined, "descriptor lists no extents");
  const known = [
    "monolithicSparse",
    "monolithicFlat",
    "streamOptimized",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "vmfs",
  ];
  if (!known.includes(createType)) throw fail(DiskErrorCode.UNSUPPORTED, undefined, `createType "${createType}"`);
  return { createType, cid, parentCid, extents };
}

/**
 * Opens a sparse extent. Its size is the header's capacity, whatever its
 * descriptor line says: QEMU's rule (vmdk_open_vmdk4 adds the extent with
 * `header.capacity` sectors and ignores the line's size), so both agree on
 * the virtual size.
 */
async function openSparse(store: ByteStore, file: string, start: number): Promise<SparseExtent> {
  const fileSize = await store.size();
  if (fileSize < SECTOR) throw fail(DiskErrorCode.TRUNCATED, 0, "sparse extent shorter than its header", { file });
  const hb = new Uint8Array(SECTOR);
  await readFull(store, 0, hb);
  let h = parseSparseHeader(hb, 0);
  const footer = h.gdOffset === GD_AT_END;
  if (footer) {
    // streamOptimized written by VMware: the real header is the footer, 1024 bytes before the end.
    if (fileSize < 3 * SECTOR) throw fail(DiskErrorCode.TRUNCATED, 56, "no footer for a grain directory at the end");
    const fb = new Uint8Array(SECTOR);
    await readFull(store, fileSize - 2 * SECTOR, fb);
    h = parseSparseHeader(fb, fileSize - 2 * SECTOR);
    if (h.gdOffset === GD_AT_END)
      throw fail(DiskErrorCode.INVALID_HEADER, fileSize - 2 * SECTOR + 56, "footer has no grain directory");
  }
  if (h.gdOffset > BigInt(Math.floor(fileSize / SECTOR)))
    throw fail(DiskErrorCode.OUT_OF_BOUNDS, 56, "grain directory beyond end of file");
  const grain = h.grainSize * SECTOR;
  const bytes = h.capacity * SECTOR;
  const gdEntries = Math.ceil(h.capacity / h.grainSize / h.gtes);
  const readDir = async (sector: number, at: number): Promise<Uint32Array> => {
    if (sector * SECTOR + gdEntries * 4 > fileSize)
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "grain directory beyond end of file", { file });
    const b = new Uint8Array(gdEntries * 4);
    await readFull(store, sector * SECTOR, b);
    const dv = new DataView(b.buffer);
    const out = new Uint32Array(gdEntries);
    for (let i = 0; i < gdEntries; i++) {
      out[i] = dv.getUint32(i * 4, true);
      if (out[i] !== 0 && out[i]! * SECTOR + h.gtes * 4 > fileSize)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, sector * SECTOR + i * 4, "grain table beyond end of file", { file });
    }
    return out;
  };
  const gd = await readDir(Number(h.gdOffset), 56);
  const rgd = (h.flags & FLAG_RGD) !== 0 && h.rgdOffset !== 0 ? await readDir(h.rgdOffset, 48) : null;
  const metaEnd = Math.max(h.overHead * SECTOR, SECTOR);
  return {
    kind: "sparse",
    store,
    file,
    start,
    bytes,
    grain,
    gtes: h.gtes,
    gd,
    rgd,
    gtCache: new Map(),
    dirty: undefined,
    compressed: (h.flags & FLAG_COMPRESSED) !== 0,
    zeroGrains: (h.flags & FLAG_ZERO_GRAIN) !== 0,
    end: Math.ceil(fileSize / SECTOR) * SECTOR,
    fileSize,
    metaEnd,
    footer,
  };
}

async function loadGt(e: SparseExtent, gdi: number): Promise<Uint32Array | null> {
  const sector = e.gd[gdi] ?? 0;
  if (sector === 0) return null;
  const hit = e.gtCache.get(gdi);
  if (hit) return hit;
  const b = new Uint8Array(e.gtes * 4);
  await readFull(e.store, sector * SECTOR, b);
  const t = new Uint32Array(e.gtes);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < e.gtes; i++) t[i] = dv.getUint32(i * 4, true);
  if (e.gtCache.size >= GT_CACHE)
    for (const k of e.gtCache.keys())
      if (!e.dirty?.has(k)) {
        e.gtCache.delete(k);
        break;
      }
  e.gtCache.set(gdi, t);
  return t;
}

type GrainLoc =
  | { kind: "none"; zero: boolean }
  | { kind: "plain"; offset: number }
  | { kind: "compressed"; offset: number };

async function grainLocation(e: SparseExtent, gi: number): Promise<GrainLoc> {
  const gdi = Math.floor(gi / e.gtes);
  const gt = await loadGt(e, gdi);
  if (!gt) return { kind: "none", zero: false };
  const v = gt[gi % e.gtes]!;
  if (v === 0) return { kind: "none", zero: false };
  if (v === 1 && e.zeroGrains) return { kind: "none", zero: true };
  const off = v * SECTOR;
  const where = e.gd[gdi]! * SECTOR + (gi % e.gtes) * 4;
  if (off < e.metaEnd)
    throw fail(DiskErrorCode.METADATA_OVERLAP, where, "grain inside the header and tables", {
      file: e.file,
      grain: off,
    });
  if (off >= e.fileSize)
    throw fail(DiskErrorCode.OUT_OF_BOUNDS, where, "grain beyond end of file", { file: e.file, grain: off });
  return e.compressed ? { kind: "compressed", offset: off } : { kind: "plain", offset: off };
}

/** A compressed grain: a marker (u64 lba, u32 size) then zlib data (streamOptimized). */
async function readCompressedGrain(e: SparseExtent, off: number, gi: number): Promise<Uint8Array> {
  const m = new Uint8Array(12);
  await readFull(e.store, off, m);
  const dv = new DataView(m.buffer);
  const lba = dv.getBigUint64(0, true);
  const size = dv.getUint32(8, true);
  if (size === 0 || size > 2 * e.grain + 1024 || off + 12 + size > e.fileSize)
    throw fail(DiskErrorCode.BAD_COMPRESSED_DATA, off, "bad compressed grain marker", { file: e.file, size });
  if (lba !== BigInt((gi * e.grain) / SECTOR))
    throw fail(DiskErrorCode.BAD_COMPRESSED_DATA, off, "grain marker names another grain", {
      file: e.file,
      lba: String(lba),
    });
  const c = new Uint8Array(size);
  await readFull(e.store, off + 12, c);
  const data = zlibInflate(c, e.grain);
  if (!data) throw fail(DiskErrorCode.BAD_COMPRESSED_DATA, off, "compressed grain does not inflate", { file: e.file });
  if (data.length === e.grain) return data;
  const full = new Uint8Array(e.grain); // the last grain may be short
  full.set(data);
  return full;
}

async function writeGrain(
  e: SparseExtent,
  gi: number,
  inGrain: number,
  data: Uint8Array,
  deflated?: Uint8Array,
): Promise<void> {
  const loc = await grainLocation(e, gi);
  if (loc.kind === "plain") {
    await e.store.write(loc.offset + inGrain, data);
    return;
  }
  if (e.footer)
    throw fail(DiskErrorCode.UNSUPPORTED, undefined, "writing a streamOptimized extent whose header is a footer", {
      file: e.file,
    });
  let full: Uint8Array;
  if (loc.kind === "compressed") {
    // QEMU refuses this ("Could not write to allocated cluster for streamOptimized"); here the grain's
    // new content is appended as a new compressed grain and its table entry repointed (the old grain
    // stays behind, unreferenced, as in a stream a reader follows the tables, not the markers).
    full = await readCompressedGrain(e, loc.offset, gi);
    full.set(data, inGrain);
  } else {
    if (isZero(data)) return; // reads as zero already
    if (data.length === e.grain) full = data;
    else {
      full = new Uint8Array(e.grain);
      full.set(data, inGrain);
    }
  }
  const gdi = Math.floor(gi / e.gtes);
  let gt = await loadGt(e, gdi);
  if (!gt) gt = await allocGt(e, gdi);
  const at = e.end;
  let sectors: number;
  if (e.compressed) {
    // `deflated` (a Compressor's zlib output for this whole grain) applies to a grain not yet written.
    const comp = deflated && loc.kind === "none" ? deflated : zlibDeflate(full);
    const rec = new Uint8Array(Math.ceil((12 + comp.length) / SECTOR) * SECTOR);
    const dv = new DataView(rec.buffer);
    dv.setBigUint64(0, BigInt((gi * e.grain) / SECTOR), true);
    dv.setUint32(8, comp.length, true);
    rec.set(comp, 12);
    await e.store.write(at, rec);
    sectors = rec.length / SECTOR;
  } else {
    await e.store.write(at, full);
    sectors = e.grain / SECTOR;
  }
  e.end = at + sectors * SECTOR;
  e.fileSize = Math.max(e.fileSize, e.end);
  // Grain data first, then the grain table entries (primary, then redundant).
  gt[gi % e.gtes] = at / SECTOR;
  await gtWrite(e, gdi, gt, gi % e.gtes, 1);
}

/**
 * Writes grain table entries [first, first + count) of table `gdi`, primary
 * then redundant copy, or records them when write-behind is on (drainGts).
 */
async function gtWrite(e: SparseExtent, gdi: number, gt: Uint32Array, first: number, count: number): Promise<void> {
  if (e.dirty) {
    const r = e.dirty.get(gdi);
    e.dirty.set(gdi, r ? [Math.min(r[0], first), Math.max(r[1], first + count)] : [first, first + count]);
    // Bounded memory: the pinned tables are written out past 256 of them.
    if (e.dirty.size > 256) await drainGts(e);
    return;
  }
  const ent = gtBytes(gt, first, first + count);
  await e.store.write(e.gd[gdi]! * SECTOR + first * 4, ent);
  const r = e.rgd?.[gdi] ?? 0;
  if (r !== 0) await e.store.write(r * SECTOR + first * 4, ent);
}

function gtBytes(gt: Uint32Array, from: number, to: number): Uint8Array {
  const b = new Uint8Array((to - from) * 4);
  const dv = new DataView(b.buffer);
  for (let i = from; i < to; i++) dv.setUint32((i - from) * 4, gt[i]!, true);
  return b;
}

/**
 * Writes the deferred grain table entries: every primary table first, then
 * the redundant copies (the grains they name were written before). A stop
 * in between leaves tables that name written grains or none.
 */
async function drainGts(e: SparseExtent): Promise<void> {
  const dirty = e.dirty;
  if (!dirty || dirty.size === 0) return;
  const list = [...dirty].sort((a, b) => a[0] - b[0]);
  dirty.clear();
  for (const [gdi, [from, to]] of list)
    await e.store.write(e.gd[gdi]! * SECTOR + from * 4, gtBytes(e.gtCache.get(gdi)!, from, to));
  for (const [gdi, [from, to]] of list) {
    const r = e.rgd?.[gdi] ?? 0;
    if (r !== 0) await e.store.write(r * SECTOR + from * 4, gtBytes(e.gtCache.get(gdi)!, from, to));
  }
}

/**
 * How many grains from `gi` (at most `max`, within one grain table) can be
 * written as one fresh run: a plain (uncompressed) extent, unallocated
 * grains, a grain table present. 0 or 1 means the grain-by-grain path.
 */
async function freshGrainRun(e: SparseExtent, gi: number, max: number): Promise<number> {
  if (e.compressed || e.footer || max < 2) return 0;
  const gdi = Math.floor(gi / e.gtes);
  const gt = await loadGt(e, gdi);
  if (!gt) return 0;
  const limit = Math.min(max, e.gtes - (gi % e.gtes));
  let k = 0;
  while (k < limit && (gt[(gi + k) % e.gtes] === 0 || (gt[(gi + k) % e.gtes] === 1 && e.zeroGrains))) k++;
  return k;
}

/**
 * Writes whole unallocated grains [gi, gi + data.length / grain) of a plain
 * extent: their data in one write at the end of the file, then their grain
 * table entries in one write per table (primary, then redundant), as
 * writeGrain does grain by grain. The caller's bytes are written as they
 * are (zero grains included: convert has skipped the zero ranges already).
 */
async function writeFreshGrains(e: SparseExtent, gi: number, data: Uint8Array): Promise<void> {
  const k = data.length / e.grain;
  const gdi = Math.floor(gi / e.gtes);
  const gt = (await loadGt(e, gdi))!;
  const at = e.end;
  await e.store.write(at, data);
  e.end = at + data.length;
  e.fileSize = Math.max(e.fileSize, e.end);
  const first = gi % e.gtes;
  for (let i = 0; i < k; i++) gt[first + i] = (at + i * e.grain) / SECTOR;
  await gtWrite(e, gdi, gt, first, k);
}

/** Grain tables are preallocated by qemu-img and by create(); images without them are not written. */
async function allocGt(e: SparseExtent, gdi: number): Promise<Uint32Array> {
  throw fail(DiskErrorCode.UNSUPPORTED, undefined, "writing where no grain table is allocated", { file: e.file, gdi });
}
