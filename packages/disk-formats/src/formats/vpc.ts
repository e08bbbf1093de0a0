// VHD ("vpc" in qemu-img), fixed and dynamic, read and write.
// Microsoft "Virtual Hard Disk Image Format Specification" (big endian):
// a 512-byte footer at the end of the file (and a copy at offset 0 for
// dynamic disks), a 1024-byte dynamic header ("cxsparse") with the block
// allocation table (BAT: u32 sector numbers, 0xffffffff = not allocated);
// each block is a sector bitmap followed by the block's data.

import type { BlockBackend, Extent } from "../backend.js";
import { isZero } from "../bytes.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";
import * as z from "../zod.js";

const F = "vpc";
const FOOTER = 512;
const DYN_HEADER = 1024;
const UNALLOCATED = 0xffffffff;
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;
const TYPE_DIFFERENCING = 4;
const DEFAULT_BLOCK = 2 * 1024 * 1024;
/** Seconds between the Unix epoch and 2000-01-01 00:00:00 UTC (the VHD time base). */
const VHD_EPOCH = 946684800;
/** Largest CHS geometry (65535 cylinders, 16 heads, 255 sectors). */
const MAX_CHS_SECTORS = 65535 * 16 * 255;
/** VHD dynamic disks are limited to 2040 GiB by the spec. */
const MAX_DYNAMIC_SIZE = 2040 * 1024 ** 3;

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

interface Footer {
  timestamp: number;
  uuid: Uint8Array;
  dataOffset: bigint;
  currentSize: number;
  cylinders: number;
  heads: number;
  sectors: number;
  diskType: number;
  creatorApp: string;
}

const DynHeader = z.object({
  tableOffset: z.int().check(z.nonnegative()),
  maxTableEntries: z.int().check(z.nonnegative(), z.maximum(2 ** 30)),
  blockSize: z.int().check(
    z.minimum(512),
    z.maximum(256 * 1024 * 1024),
    z.refine((v) => (v & (v - 1)) === 0, "block size must be a power of two"),
  ),
});

function fail(code: DiskErrorCode, offset: number, detail: string, extra: Record<string, unknown> = {}): DiskError {
  return new DiskError(code, { format: F, offset, ...extra }, detail);
}

/** VHD footer checksum: one's complement of the byte sum, the checksum field counted as zero. */
function checksum(b: Uint8Array, fieldOffset: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < fieldOffset || i >= fieldOffset + 4) sum += b[i]!;
  return ~sum >>> 0;
}

/** CHS geometry of the VHD spec's appendix (as QEMU's calculate_geometry). */
export function vhdGeometry(totalSectors: number): { cylinders: number; heads: number; sectors: number } {
  let spt: number;
  let heads: number;
  let cth: number;
  if (totalSectors > MAX_CHS_SECTORS) totalSectors = MAX_CHS_SECTORS;
  if (totalSectors >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(totalSectors / spt);
  } else {
    spt = 17;
    cth = Math.floor(totalSectors / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(totalSectors / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(totalSectors / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectors: spt };
}

function parseFooter(b: Uint8Array, where: number): Footer | null {
  if (dec.decode(b.subarray(0, 8)) !== "conectix") return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // VHD spec "Hard Disk Footer Format", Checksum: QEMU refuses a footer whose checksum does not
  // match ("Incorrect header checksum"), without falling back to the other copy; so does this.
  const stored = dv.getUint32(64);
  const computed = checksum(b, 64);
  if (stored !== computed)
    throw fail(DiskErrorCode.INVALID_HEADER, where + 64, "footer checksum mismatch", { stored, computed });
  const current = dv.getBigUint64(48);
  if (current > BigInt(Number.MAX_SAFE_INTEGER))
    throw fail(DiskErrorCode.TOO_LARGE, where + 48, "current size exceeds 2^53");
  return {
    timestamp: dv.getUint32(24),
    uuid: b.slice(68, 84),
    dataOffset: dv.getBigUint64(16),
    currentSize: Number(current),
    cylinders: dv.getUint16(56),
    heads: dv.getUint8(58),
    sectors: dv.getUint8(59),
    diskType: dv.getUint32(60),
    creatorApp: dec.decode(b.subarray(28, 32)),
  };
}

/** QEMU's rule for the virtual size: the CHS geometry, unless the creator is known to use the current size. */
function virtualSize(f: Footer): number {
  const chs = f.cylinders * f.heads * f.sectors;
  const usesCurrent = ["win ", "qem2", "d2v ", "CTXS", "tap\0"].includes(f.creatorApp);
  if (usesCurrent || chs === MAX_CHS_SECTORS) return f.currentSize;
  return chs * 512;
}

function buildFooter(o: {
  size: number;
  type: number;
  dataOffset: bigint;
  forceSize: boolean;
  geometry?: { cylinders: number; heads: number; sectors: number };
}): Uint8Array {
  const b = new Uint8Array(FOOTER);
  const dv = new DataView(b.buffer);
  b.set(enc.encode("conectix"));
  dv.setUint32(8, 2); // features: reserved bit always set
  dv.setUint32(12, 0x00010000);
  dv.setBigUint64(16, o.dataOffset);
  dv.setUint32(24, Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH));
  b.set(enc.encode(o.forceSize ? "qem2" : "qemu"), 28);
  dv.setUint32(32, 0x00050003);
  b.set(enc.encode("Wi2k"), 36);
  dv.setBigUint64(40, BigInt(o.size));
  dv.setBigUint64(48, BigInt(o.size));
  const g = o.geometry ?? vhdGeometry(Math.floor(o.size / 512));
  dv.setUint16(56, g.cylinders);
  dv.setUint8(58, g.heads);
  dv.setUint8(59, g.sectors);
  dv.setUint32(60, o.type);
  const uuid = globalThis.crypto.randomUUID().replace(/-/g, "");
  for (let i = 0; i < 16; i++) b[68 + i] = Number.parseInt(uuid.slice(i * 2, i * 2 + 2), 16);
  dv.setUint32(64, checksum(b, 64));
  return b;
}

/** True if `b` (512 bytes) is a VHD footer with a valid checksum. */
export function isVpcFooter(b: Uint8Array): boolean {
  if (b.length !== FOOTER || dec.decode(b.subarray(0, 8)) !== "conectix") return false;
  return new DataView(b.buffer, b.byteOffset, FOOTER).getUint32(64) === checksum(b, 64);
}

/** True if the bytes start with a VHD footer copy (dynamic disks). */
export function isVpcHead(head: Uint8Array): boolean {
  return head.length >= 8 && dec.decode(head.subarray(0, 8)) === "conectix";
}

export class VpcImage implements BlockBackend {
  readonly format = "vpc" as const;
  private closed = false;

  private constructor(
    private readonly store: ByteStore,
    private readonly footer: Footer,
    private readonly footerBytes: Uint8Array,
    private readonly virtSize: number,
    readonly readOnly: boolean,
    private readonly dyn: { tableOffset: number; blockSize: number; bat: Uint32Array; bitmapSize: number } | null,
    /** Byte offset where the next block goes (where the trailing footer sits). */
    private freeOffset: number,
    /** Differencing disks: the parent named by the locators, and its unique id. */
    readonly parentName: string | null = null,
    private readonly parentUuid: Uint8Array | null = null,
  ) {}

  private parent: BlockBackend | null = null;
  private readonly bitmaps = new Map<number, Uint8Array>();

  /** Differencing disks name their parent; the opener attaches it. */
  get backingFile(): string | null {
    return this.parentName;
  }
  get backingFormat(): string | null {
    return this.parentName !== null ? "vpc" : null;
  }
  get differencing(): boolean {
    return this.footer.diskType === TYPE_DIFFERENCING;
  }
  /** The footer's unique id (a differencing child records its parent's). */
  get uniqueId(): Uint8Array {
    return this.footer.uuid.slice();
  }

  /** Attaches the parent of a differencing disk; its unique id must match the one recorded here. */
  attachBacking(b: BlockBackend | null): void {
    if (b instanceof VpcImage && this.parentUuid && !b.footer.uuid.every((x, i) => x === this.parentUuid![i]))
      throw fail(DiskErrorCode.BAD_ENTRY, FOOTER + 40, "parent unique id does not match the parent image", {
        parent: this.parentName,
      });
    this.parent = b;
  }

  get fixed(): boolean {
    return this.footer.diskType === TYPE_FIXED;
  }
  get blockSize(): number | null {
    return this.dyn?.blockSize ?? null;
  }

  size(): number {
    return this.virtSize;
  }

  static async open(store: ByteStore, options: { readOnly?: boolean } = {}): Promise<VpcImage> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    if (fileSize < FOOTER) throw fail(DiskErrorCode.TRUNCATED, 0, "file shorter than a VHD footer", { fileSize });
    // Dynamic disks keep a footer copy at offset 0; fixed disks only the one at the end.
    let where = 0;
    const fb = new Uint8Array(FOOTER);
    await readFull(store, 0, fb);
    let footer = parseFooter(fb, 0);
    if (!footer) {
      where = fileSize - FOOTER;
      await readFull(store, where, fb);
      footer = parseFooter(fb, where);
    }
    if (!footer) throw fail(DiskErrorCode.BAD_MAGIC, 0, "no VHD footer (conectix) at the start or the end");
    const size = virtualSize(footer);
    if (footer.diskType === TYPE_FIXED) {
      if (size > fileSize - FOOTER)
        throw fail(DiskErrorCode.TRUNCATED, where + 48, "fixed VHD shorter than its size", { size, fileSize });
      return new VpcImage(store, footer, fb, size, readOnly, null, 0);
    }
    if (footer.diskType !== TYPE_DYNAMIC && footer.diskType !== TYPE_DIFFERENCING)
      throw fail(DiskErrorCode.INVALID_HEADER, where + 60, `disk type ${footer.diskType}`, {
        diskType: footer.diskType,
      });
    if (footer.dataOffset > BigInt(fileSize - DYN_HEADER))
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, where + 16, "dynamic header beyond end of file");
    const dynOff = Number(footer.dataOffset);
    const hb = new Uint8Array(DYN_HEADER);
    await readFull(store, dynOff, hb);
    if (dec.decode(hb.subarray(0, 8)) !== "cxsparse")
      throw fail(DiskErrorCode.BAD_MAGIC, dynOff, "no dynamic header (cxsparse)");
    const hdv = new DataView(hb.buffer);
    const tableOffset = hdv.getBigUint64(16);
    if (tableOffset > BigInt(fileSize)) throw fail(DiskErrorCode.OUT_OF_BOUNDS, dynOff + 16, "BAT beyond end of file");
    const parsed = DynHeader.safeParse({
      tableOffset: Number(tableOffset),
      maxTableEntries: hdv.getUint32(28),
      blockSize: hdv.getUint32(32),
    });
    if (!parsed.success) {
      const field = String(parsed.error.issues[0]!.path[0]);
      const off = { tableOffset: 16, maxTableEntries: 28, blockSize: 32 }[field] ?? 0;
      throw fail(DiskErrorCode.INVALID_HEADER, dynOff + off, `${field}: ${parsed.error.issues[0]!.message}`);
    }
    const h = parsed.data;
    if (h.maxTableEntries * h.blockSize < size)
      throw fail(DiskErrorCode.INVALID_HEADER, dynOff + 28, "BAT does not cover the disk size", { size });
    if (h.tableOffset + h.maxTableEntries * 4 > fileSize)
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, dynOff + 16, "BAT beyond end of file", { fileSize });
    const batBytes = new Uint8Array(h.maxTableEntries * 4);
    await readFull(store, h.tableOffset, batBytes);
    const bdv = new DataView(batBytes.buffer);
    const bat = new Uint32Array(h.maxTableEntries);
    const bitmapSize = Math.ceil(h.blockSize / 512 / 8 / 512) * 512;
    const metaEnd = Math.max(dynOff + DYN_HEADER, h.tableOffset + Math.ceil((h.maxTableEntries * 4) / 512) * 512);
    let free = Math.ceil(metaEnd / 512) * 512;
    const used = new Set<number>();
    for (let i = 0; i < h.maxTableEntries; i++) {
      const e = bdv.getUint32(i * 4);
      bat[i] = e;
      if (e === UNALLOCATED) continue;
      const at = h.tableOffset + i * 4;
      const start = e * 512;
      if (start < metaEnd)
        throw fail(DiskErrorCode.METADATA_OVERLAP, at, "block overlaps the VHD headers or the BAT", { sector: e });
      if (start + bitmapSize >= fileSize)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "block beyond end of file", { sector: e, fileSize });
      if (used.has(e)) throw fail(DiskErrorCode.BAD_ENTRY, at, "block used twice", { sector: e });
      used.add(e);
      free = Math.max(free, start + bitmapSize + h.blockSize);
    }
    // QEMU's vpc_open: the end of the last block (free_data_block_offset) must lie inside the
    // file, else the image was truncated (a block may reach into the trailing footer copy).
    if (free > fileSize)
      throw fail(DiskErrorCode.TRUNCATED, h.tableOffset, "free_data_block_offset past the end of file (truncated)", {
        freeDataBlockOffset: free,
        fileSize,
      });
    let parentName: string | null = null;
    let parentUuid: Uint8Array | null = null;
    if (footer.diskType === TYPE_DIFFERENCING) {
      parentUuid = hb.slice(40, 56);
      parentName = await parentLocator(store, hb, dynOff, fileSize);
      if (parentName === null)
        throw fail(DiskErrorCode.INVALID_HEADER, dynOff + 64, "differencing disk names no parent");
      // Locator data lies between the BAT and the blocks: keep allocations after it.
      for (let i = 0; i < 8; i++) {
        const l = 576 + i * 24;
        const len = hdv.getUint32(l + 8);
        const off = hdv.getBigUint64(l + 16);
        if (len > 0 && off < BigInt(fileSize)) free = Math.max(free, Math.ceil((Number(off) + len) / 512) * 512);
      }
    }
    return new VpcImage(
      store,
      footer,
      fb,
      size,
      readOnly,
      { tableOffset: h.tableOffset, blockSize: h.blockSize, bat, bitmapSize },
      free,
      parentName,
      parentUuid,
    );
  }

  /**
   * Creates a differencing disk over `parent` (a VHD), named in the locators
   * as `parentName` (relative to the new image), with the parent's size and geometry.
   */
  static async createDifferencing(store: ByteStore, parent: VpcImage, parentName: string): Promise<VpcImage> {
    const size = parent.footer.currentSize;
    const entries = Math.ceil(parent.size() / DEFAULT_BLOCK);
    const batBytes = Math.ceil((entries * 4) / 512) * 512;
    const rel = `.\\${parentName.replace(/\//g, "\\")}`;
    const loc = utf16(rel, true);
    const locBytes = Math.ceil(loc.length / 512) * 512;
    const footer = buildFooter({
      size,
      type: TYPE_DIFFERENCING,
      dataOffset: BigInt(FOOTER),
      forceSize: parent.footer.creatorApp === "qem2",
      geometry: { cylinders: parent.footer.cylinders, heads: parent.footer.heads, sectors: parent.footer.sectors },
    });
    if (parent.footer.creatorApp !== "qemu" && parent.footer.creatorApp !== "qem2") {
      // Keep the parent's sizing rule: the creator decides whether the geometry or the current size counts.
      footer.set(enc.encode(parent.footer.creatorApp.padEnd(4, "\0").slice(0, 4)), 28);
      new DataView(footer.buffer).setUint32(64, checksum(footer, 64));
    }
    const locAt = FOOTER + DYN_HEADER + batBytes;
    const layout = new Uint8Array(locAt + locBytes + FOOTER);
    layout.set(footer, 0);
    const h = layout.subarray(FOOTER, FOOTER + DYN_HEADER);
    const hdv = new DataView(h.buffer, h.byteOffset, DYN_HEADER);
    h.set(enc.encode("cxsparse"));
    hdv.setBigUint64(8, 0xffffffffffffffffn);
    hdv.setBigUint64(16, BigInt(FOOTER + DYN_HEADER));
    hdv.setUint32(24, 0x00010000);
    hdv.setUint32(28, entries);
    hdv.setUint32(32, DEFAULT_BLOCK);
    h.set(parent.footer.uuid, 40);
    hdv.setUint32(56, parent.footer.timestamp);
    h.set(utf16(parentName.split("/").pop()!, false).subarray(0, 512), 64);
    // Locator 0: W2ru, a Windows relative path in UTF-16LE.
    hdv.setUint32(576, 0x57327275);
    hdv.setUint32(580, locBytes);
    hdv.setUint32(584, loc.length);
    hdv.setBigUint64(592, BigInt(locAt));
    hdv.setUint32(36, checksum(h, 36));
    layout.fill(0xff, FOOTER + DYN_HEADER, locAt);
    layout.set(loc, locAt);
    layout.set(footer, locAt + locBytes);
    await store.truncate(0);
    await store.write(0, layout);
    await store.flush();
    return VpcImage.open(store, { readOnly: false });
  }

  /** Creates a dynamic (default) or fixed VHD laid out as QEMU does; the size is rounded up to a CHS geometry unless `forceSize`. */
  static async create(
    store: ByteStore,
    options: { size: number; fixed?: boolean; forceSize?: boolean },
  ): Promise<VpcImage> {
    checkSize(F, options.size);
    let size = options.size;
    if (!options.forceSize) {
      // Round up to what the geometry can express, as QEMU does (qemu-img create -f vpc 10M -> 10514432 bytes).
      const want = Math.ceil(size / 512);
      let total = want;
      for (;;) {
        const g = vhdGeometry(total);
        const chs = g.cylinders * g.heads * g.sectors;
        if (chs >= want || total >= MAX_CHS_SECTORS) {
          size = chs >= want ? chs * 512 : size;
          break;
        }
        total++;
      }
    }
    if (size % 512 !== 0) throw fail(DiskErrorCode.INVALID_OPTIONS, 0, "VHD sizes are whole sectors");
    await store.truncate(0);
    if (options.fixed) {
      await store.truncate(size);
      await store.write(
        size,
        buildFooter({ size, type: TYPE_FIXED, dataOffset: 0xffffffffffffffffn, forceSize: !!options.forceSize }),
      );
      await store.flush();
      return VpcImage.open(store, { readOnly: false });
    }
    if (size > MAX_DYNAMIC_SIZE) throw fail(DiskErrorCode.TOO_LARGE, 48, "dynamic VHD larger than 2040 GiB");
    const entries = Math.ceil(size / DEFAULT_BLOCK);
    const batBytes = Math.ceil((entries * 4) / 512) * 512;
    const footer = buildFooter({
      size,
      type: TYPE_DYNAMIC,
      dataOffset: BigInt(FOOTER),
      forceSize: !!options.forceSize,
    });
    const layout = new Uint8Array(FOOTER + DYN_HEADER + batBytes + FOOTER);
    layout.set(footer, 0);
    const h = layout.subarray(FOOTER, FOOTER + DYN_HEADER);
    const hdv = new DataView(h.buffer, h.byteOffset, DYN_HEADER);
    h.set(enc.encode("cxsparse"));
    hdv.setBigUint64(8, 0xffffffffffffffffn);
    hdv.setBigUint64(16, BigInt(FOOTER + DYN_HEADER));
    hdv.setUint32(24, 0x00010000);
    hdv.setUint32(28, entries);
    hdv.setUint32(32, DEFAULT_BLOCK);
    hdv.setUint32(36, checksum(h, 36));
    layout.fill(0xff, FOOTER + DYN_HEADER, FOOTER + DYN_HEADER + batBytes);
    layout.set(footer, FOOTER + DYN_HEADER + batBytes);
    await store.write(0, layout);
    await store.flush();
    return VpcImage.open(store, { readOnly: false });
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  /** Host byte offset of the data of block `i`, or null when not allocated. */
  private blockData(i: number): number | null {
    const d = this.dyn!;
    const e = d.bat[i]!;
    return e === UNALLOCATED ? null : e * 512 + d.bitmapSize;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen(false);
    checkRange(F, offset, buf.length, this.virtSize);
    if (!this.dyn) {
      await readFull(this.store, offset, buf);
      return;
    }
    const bs = this.dyn.blockSize;
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const block = Math.floor(g / bs);
      const inOff = g - block * bs;
      const n = Math.min(bs - inOff, buf.length - pos);
      const host = this.blockData(block);
      const dst = buf.subarray(pos, pos + n);
      if (this.differencing) await this.readDiff(block, host, g, inOff, dst);
      else if (host === null) dst.fill(0);
      else await readFull(this.store, host + inOff, dst);
      pos += n;
    }
  }

  private async readParent(g: number, dst: Uint8Array): Promise<void> {
    const p = this.parent;
    if (!p || g >= p.size()) {
      dst.fill(0);
      return;
    }
    const n = Math.min(dst.length, p.size() - g);
    await p.readInto(g, dst.subarray(0, n));
    dst.fill(0, n);
  }

  private async bitmap(block: number): Promise<Uint8Array> {
    let b = this.bitmaps.get(block);
    if (!b) {
      b = new Uint8Array(this.dyn!.bitmapSize);
      await readFull(this.store, this.dyn!.bat[block]! * 512, b);
      if (this.bitmaps.size >= 64) this.bitmaps.delete(this.bitmaps.keys().next().value!);
      this.bitmaps.set(block, b);
    }
    return b;
  }

  /** Differencing read: sectors whose bitmap bit is set come from this file, the others from the parent. */
  private async readDiff(block: number, host: number | null, g: number, inOff: number, dst: Uint8Array): Promise<void> {
    if (host === null) return this.readParent(g, dst);
    const bm = await this.bitmap(block);
    let p = 0;
    while (p < dst.length) {
      const sector = Math.floor((inOff + p) / 512);
      const present = bitSet(bm, sector);
      let q = Math.min((sector + 1) * 512 - inOff, dst.length);
      while (q < dst.length && bitSet(bm, Math.floor((inOff + q) / 512)) === present) q = Math.min(q + 512, dst.length);
      if (present) await readFull(this.store, host + inOff + p, dst.subarray(p, q));
      else await this.readParent(g + p, dst.subarray(p, q));
      p = q;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtSize);
    if (!this.dyn) {
      await this.store.write(offset, data);
      return;
    }
    const d = this.dyn;
    const bs = d.blockSize;
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const block = Math.floor(g / bs);
      const inOff = g - block * bs;
      const n = Math.min(bs - inOff, data.length - pos);
      const part = data.subarray(pos, pos + n);
      const host = this.blockData(block);
      if (this.differencing) await this.writeDiff(block, host, g, inOff, part);
      else if (host !== null) await this.store.write(host + inOff, part);
      else if (!isZero(part)) {
        // New block where the trailing footer was: bitmap (all sectors present) and data,
        // then the footer after it, then the BAT entry that makes the block visible.
        const at = this.freeOffset;
        const blockBytes = new Uint8Array(d.bitmapSize + bs);
        blockBytes.fill(0xff, 0, d.bitmapSize);
        blockBytes.set(part, d.bitmapSize + inOff);
        await this.store.write(at, blockBytes);
        await this.store.write(at + blockBytes.length, this.footerBytes);
        d.bat[block] = at / 512;
        const e = new Uint8Array(4);
        new DataView(e.buffer).setUint32(0, at / 512);
        await this.store.write(d.tableOffset + block * 4, e);
        this.freeOffset = at + blockBytes.length;
      }
      pos += n;
    }
  }

  /** Allocates block `block` with a cleared bitmap (differencing) or a full one, footer moved after it. */
  private async allocBlock(block: number, bitmapFill: number): Promise<number> {
    const d = this.dyn!;
    const at = this.freeOffset;
    const blockBytes = new Uint8Array(d.bitmapSize + d.blockSize);
    blockBytes.fill(bitmapFill, 0, d.bitmapSize);
    await this.store.write(at, blockBytes);
    await this.store.write(at + blockBytes.length, this.footerBytes);
    d.bat[block] = at / 512;
    const e = new Uint8Array(4);
    new DataView(e.buffer).setUint32(0, at / 512);
    await this.store.write(d.tableOffset + block * 4, e);
    this.freeOffset = at + blockBytes.length;
    this.bitmaps.set(block, blockBytes.slice(0, d.bitmapSize));
    return at + d.bitmapSize;
  }

  /** Differencing write: partial sectors are completed from the parent, then data, then bitmap bits. */
  private async writeDiff(
    block: number,
    host: number | null,
    g: number,
    inOff: number,
    part: Uint8Array,
  ): Promise<void> {
    const h = host ?? (await this.allocBlock(block, 0));
    const bm = await this.bitmap(block);
    const first = Math.floor(inOff / 512);
    const last = Math.floor((inOff + part.length - 1) / 512);
    const start = first * 512;
    const buf = new Uint8Array((last - first + 1) * 512);
    if (inOff !== start && !bitSet(bm, first)) await this.readParent(g - (inOff - start), buf.subarray(0, 512));
    else if (inOff !== start) await readFull(this.store, h + start, buf.subarray(0, 512));
    const endIn = inOff + part.length;
    if (endIn !== (last + 1) * 512) {
      const tail = buf.subarray(buf.length - 512);
      if (!bitSet(bm, last)) await this.readParent(g - inOff + last * 512, tail);
      else await readFull(this.store, h + last * 512, tail);
    }
    buf.set(part, inOff - start);
    await this.store.write(h + start, buf);
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let sct = first; sct <= last; sct++) {
      bm[sct >> 3] = bm[sct >> 3]! | (0x80 >> (sct & 7));
      lo = Math.min(lo, sct >> 3);
      hi = Math.max(hi, (sct >> 3) + 1);
    }
    await this.store.write(this.dyn!.bat[block]! * 512 + lo, bm.subarray(lo, hi));
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
    if (this.differencing) {
      // Zeros must hide the parent's data: store them.
      for (let pos = offset; pos < offset + length; pos += 1024 * 1024)
        await this.write(pos, new Uint8Array(Math.min(1024 * 1024, offset + length - pos)));
      return;
    }
    const end = offset + length;
    const step = this.dyn?.blockSize ?? 1024 * 1024;
    for (let pos = offset; pos < end; ) {
      const block = Math.floor(pos / step);
      const n = Math.min((block + 1) * step, end) - pos;
      // Unallocated dynamic blocks already read as zeros.
      if (!this.dyn) await this.store.write(pos, new Uint8Array(n));
      else {
        const host = this.blockData(block);
        if (host !== null) await this.store.write(host + (pos - block * step), new Uint8Array(n));
      }
      pos += n;
    }
  }

  /** Blocks are not freed (neither does QEMU): discard is a no-op. */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
  }

  async flush(): Promise<void> {
    this.checkOpen(false);
    if (!this.readOnly) await this.store.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen(false);
    checkRange(F, offset, length, this.virtSize);
    if (!this.dyn) return { start: offset, length, kind: "data", depth: 0, hostOffset: offset };
    const bs = this.dyn.blockSize;
    const end = offset + length;
    const block = Math.floor(offset / bs);
    const host = this.blockData(block);
    if (this.differencing) return this.statusDiff(block, host, offset, Math.min((block + 1) * bs, end) - offset);
    let n = Math.min((block + 1) * bs, end) - offset;
    for (let b = block + 1; offset + n < end; b++) {
      const h = this.blockData(b);
      if (host === null ? h !== null : h !== host + (b - block) * bs) break;
      n = Math.min((b + 1) * bs, end) - offset;
    }
    if (host === null) return { start: offset, length: n, kind: "zero", depth: 0 };
    return { start: offset, length: n, kind: "data", depth: 0, hostOffset: host + (offset - block * bs) };
  }

  private async statusDiff(block: number, host: number | null, offset: number, n: number): Promise<Extent> {
    const parentStatus = async (len: number): Promise<Extent> => {
      const p = this.parent;
      if (!p || offset >= p.size()) return { start: offset, length: len, kind: "unallocated", depth: 0 };
      const s = await p.blockStatus(offset, Math.min(len, p.size() - offset));
      return { ...s, depth: s.depth + 1 };
    };
    if (host === null) return parentStatus(n);
    const bm = await this.bitmap(block);
    const inOff = offset - block * this.dyn!.blockSize;
    const present = bitSet(bm, Math.floor(inOff / 512));
    let q = Math.min((Math.floor(inOff / 512) + 1) * 512 - inOff, n);
    while (q < n && bitSet(bm, Math.floor((inOff + q) / 512)) === present) q = Math.min(q + 512, n);
    if (present) return { start: offset, length: q, kind: "data", depth: 0, hostOffset: host + inOff };
    return parentStatus(q);
  }

  async resize(_newSize: number): Promise<void> {
    throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "resizing VHD images");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.readOnly) await this.store.flush();
    await this.store.close();
    if (this.parent) await this.parent.close();
  }
}

function bitSet(bm: Uint8Array, sector: number): boolean {
  return ((bm[sector >> 3] ?? 0) & (0x80 >> (sector & 7))) !== 0;
}

function utf16(s: string, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < s.length; i++) dv.setUint16(i * 2, s.charCodeAt(i), littleEndian);
  return out;
}

/** The parent's name from the locators (W2ru relative, W2ku absolute, MacX URL), else the Unicode name field. */
async function parentLocator(
  store: ByteStore,
  hb: Uint8Array,
  dynOff: number,
  fileSize: number,
): Promise<string | null> {
  const dv = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
  const found: Record<string, string> = {};
  for (let i = 0; i < 8; i++) {
    const l = 576 + i * 24;
    const code = dv.getUint32(l);
    const len = dv.getUint32(l + 8);
    const off = dv.getBigUint64(l + 16);
    if (code === 0 || len === 0) continue;
    if (len > 4096 || off + BigInt(len) > BigInt(fileSize))
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, dynOff + l, "parent locator beyond end of file or too long", { len });
    const b = new Uint8Array(len);
    await readFull(store, Number(off), b);
    const text =
      code === 0x4d616358 ? new TextDecoder().decode(b) : new TextDecoder("utf-16le").decode(b).replace(/\0+$/, "");
    found[code.toString(16)] = text;
  }
  const rel = found["57327275"]; // W2ru
  if (rel) return rel.replace(/\\/g, "/").replace(/^\.\//, "");
  const abs = found["57326b75"]; // W2ku
  if (abs) return abs.replace(/\\/g, "/");
  const mac = found["4d616358"]; // MacX: file:// URL
  if (mac) return decodeURI(mac.replace(/^file:\/\//, ""));
  const name = new TextDecoder("utf-16be").decode(hb.subarray(64, 576)).replace(/\0+$/, "");
  return name === "" ? null : name;
}
