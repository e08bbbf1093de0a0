// VDI (VirtualBox Disk Image), dynamic and fixed, read and write.
// Layout (little endian, as VirtualBox and QEMU's block/vdi.c write it):
// a 64-byte text, the signature 0xbeda107f at 0x40, the header from 0x48,
// the block map (u32 per block: data block index, 0xffffffff unallocated,
// 0xfffffffe zero) at offset_bmap, and data blocks from offset_data.

import type { BlockBackend, Extent } from "../backend.js";
import { isZero } from "../bytes.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";
import * as z from "../zod.js";

const F = "vdi";
export const VDI_SIGNATURE = 0xbeda107f;
const VDI_TEXT = "<<< QEMU VM Virtual Disk Image >>>\n";
const UNALLOCATED = 0xffffffff;
const ZERO = 0xfffffffe;
const TYPE_DYNAMIC = 1;
const TYPE_FIXED = 2;
const DEFAULT_BLOCK = 1024 * 1024;
/** The most bytes of header and map written as one to keep the allocated count and the map in step (writeMetadata). */
const METADATA_SPAN = 64 * 1024;
/** Largest block map QEMU accepts (VDI_BLOCKS_IN_IMAGE_MAX). */
const MAX_BLOCKS = 0x3fffffff;

/** Field offsets (for error reports). */
const OFF = {
  signature: 0x40,
  version: 0x44,
  headerSize: 0x48,
  imageType: 0x4c,
  offsetBmap: 0x154,
  offsetData: 0x158,
  sectorSize: 0x168,
  diskSize: 0x170,
  blockSize: 0x178,
  blockExtra: 0x17c,
  blocksInImage: 0x180,
  blocksAllocated: 0x184,
  uuidLink: 0x1a8,
  uuidParent: 0x1b8,
} as const;

const Header = z
  .object({
    version: z.number().check(z.refine((v) => v >>> 16 === 1, "major version must be 1")),
    headerSize: z.int().check(z.minimum(0x180), z.maximum(0x1b8)),
    imageType: z.union([z.literal(TYPE_DYNAMIC), z.literal(TYPE_FIXED)]),
    offsetBmap: z.int().check(z.minimum(0x1c8)),
    offsetData: z.int(),
    sectorSize: z.literal(512),
    diskSize: z.int().check(z.nonnegative(), z.maximum(Number.MAX_SAFE_INTEGER)),
    blockSize: z.int().check(
      z.minimum(512),
      z.maximum(256 * 1024 * 1024),
      z.refine((v) => (v & (v - 1)) === 0, "block size must be a power of two"),
    ),
    blockExtra: z.literal(0),
    blocksInImage: z.int().check(z.nonnegative(), z.maximum(MAX_BLOCKS)),
    blocksAllocated: z.int().check(z.nonnegative()),
  })
  .check(
    z.superRefine((h, ctx) => {
      const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
      if (h.blocksInImage * h.blockSize < h.diskSize) issue("blocksInImage", "block map does not cover the disk size");
      if (h.offsetData < h.offsetBmap + h.blocksInImage * 4) issue("offsetData", "data area overlaps the block map");
      if (h.blocksAllocated > h.blocksInImage) issue("blocksAllocated", "more blocks allocated than the image has");
    }),
  );
type Header = z.infer<typeof Header>;

function fail(code: DiskErrorCode, offset: number, detail: string, extra: Record<string, unknown> = {}): DiskError {
  return new DiskError(code, { format: F, offset, ...extra }, detail);
}

/** True if the bytes carry the VDI signature at 0x40. */
export function isVdi(head: Uint8Array): boolean {
  return head.length >= 0x44 && new DataView(head.buffer, head.byteOffset).getUint32(0x40, true) === VDI_SIGNATURE;
}

export class VdiImage implements BlockBackend {
  readonly format = "vdi" as const;
  private closed = false;
  /** Metadata write-behind (deferMetadata()): the block map entries [from, to) not written yet. */
  private wb: { on: boolean; from: number; to: number } = { on: false, from: 0, to: 0 };

  private constructor(
    private readonly store: ByteStore,
    private hdr: Header,
    private readonly bmap: Uint32Array,
    readonly readOnly: boolean,
    private fileSize: number,
    /** Blocks whose data lies past the end of the file (kept by a salvage open; reading them fails). */
    private readonly pastEof: ReadonlySet<number> = new Set(),
  ) {}

  get blockSize(): number {
    return this.hdr.blockSize;
  }
  get fixed(): boolean {
    return this.hdr.imageType === TYPE_FIXED;
  }

  size(): number {
    return this.hdr.diskSize;
  }

  /**
   * Opens an image. `salvage` (read-only opens only): a block map entry whose
   * data lies past the end of the file does not refuse the open; reading that
   * block fails instead (`OUT_OF_BOUNDS`), so `convert --salvage` can go on.
   */
  static async open(store: ByteStore, options: { readOnly?: boolean; salvage?: boolean } = {}): Promise<VdiImage> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    if (fileSize < 0x1c8) throw fail(DiskErrorCode.TRUNCATED, 0, "file shorter than a VDI header", { fileSize });
    const b = new Uint8Array(0x1c8);
    await readFull(store, 0, b);
    const dv = new DataView(b.buffer);
    if (dv.getUint32(OFF.signature, true) !== VDI_SIGNATURE)
      throw fail(DiskErrorCode.BAD_MAGIC, OFF.signature, "not a VDI image");
    const diskSize = dv.getBigUint64(OFF.diskSize, true);
    if (diskSize > BigInt(Number.MAX_SAFE_INTEGER))
      throw fail(DiskErrorCode.TOO_LARGE, OFF.diskSize, "disk size exceeds 2^53");
    const raw = {
      version: dv.getUint32(OFF.version, true),
      headerSize: dv.getUint32(OFF.headerSize, true),
      imageType: dv.getUint32(OFF.imageType, true),
      offsetBmap: dv.getUint32(OFF.offsetBmap, true),
      offsetData: dv.getUint32(OFF.offsetData, true),
      sectorSize: dv.getUint32(OFF.sectorSize, true),
      // QEMU's vdi_open accepts an odd disk size ("VBoxManage convertfromraw" makes them) and rounds it up to sectors.
      diskSize: Math.ceil(Number(diskSize) / 512) * 512,
      blockSize: dv.getUint32(OFF.blockSize, true),
      blockExtra: dv.getUint32(OFF.blockExtra, true),
      blocksInImage: dv.getUint32(OFF.blocksInImage, true),
      blocksAllocated: dv.getUint32(OFF.blocksAllocated, true),
    };
    // QEMU's vdi_open reads version 1.1 only, and refuses linked or differencing images by their
    // UUIDs (uuid_link at 0x1a8, uuid_parent at 0x1b8 must be null) whatever the image type says.
    if (raw.version !== 0x00010001)
      throw fail(
        DiskErrorCode.UNSUPPORTED,
        OFF.version,
        `VDI version ${raw.version >>> 16}.${raw.version & 0xffff} (only 1.1 is read, as by QEMU)`,
        { version: raw.version },
      );
    if (!isZero(b.subarray(OFF.uuidLink, OFF.uuidLink + 16)))
      throw fail(DiskErrorCode.UNSUPPORTED, OFF.uuidLink, "linked VDI image (non-null link UUID)");
    if (!isZero(b.subarray(OFF.uuidParent, OFF.uuidParent + 16)))
      throw fail(DiskErrorCode.UNSUPPORTED, OFF.uuidParent, "differencing VDI image (non-null parent UUID)");
    if (raw.imageType === 3 || raw.imageType === 4)
      throw fail(DiskErrorCode.UNSUPPORTED, OFF.imageType, "VDI undo/differencing images");
    const parsed = Header.safeParse(raw);
    if (!parsed.success) {
      const field = String(parsed.error.issues[0]!.path[0]);
      throw fail(
        DiskErrorCode.INVALID_HEADER,
        OFF[field as keyof typeof OFF] ?? 0,
        `${field}: ${parsed.error.issues[0]!.message}`,
        {
          field,
          value: (raw as Record<string, unknown>)[field],
        },
      );
    }
    const h = parsed.data;
    // The block map must be inside the file: this also bounds the memory it takes.
    if (h.offsetBmap + h.blocksInImage * 4 > fileSize)
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, OFF.offsetBmap, "block map beyond end of file", { fileSize });
    const mapBytes = new Uint8Array(h.blocksInImage * 4);
    await readFull(store, h.offsetBmap, mapBytes);
    const mdv = new DataView(mapBytes.buffer);
    const bmap = new Uint32Array(h.blocksInImage);
    const used = new Set<number>();
    const pastEof = new Set<number>();
    const salvage = !!options.salvage && !!options.readOnly;
    let maxIndex = -1;
    for (let i = 0; i < h.blocksInImage; i++) {
      const e = mdv.getUint32(i * 4, true);
      bmap[i] = e;
      if (e === UNALLOCATED || e === ZERO) continue;
      const at = h.offsetBmap + i * 4;
      if (e >= h.blocksInImage)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "block map entry beyond the image's blocks", { entry: e });
      if (h.offsetData + e * h.blockSize >= fileSize && fileSize > 0) {
        if (!salvage)
          throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "data block beyond end of file", { entry: e, fileSize });
        pastEof.add(i);
      }
      if (used.has(e)) throw fail(DiskErrorCode.BAD_ENTRY, at, "data block used twice", { entry: e });
      used.add(e);
      if (e > maxIndex) maxIndex = e;
    }
    // A writer that died between the block map and the header update leaves blocks_allocated short: repair in memory.
    const hdr = { ...h, blocksAllocated: Math.max(h.blocksAllocated, maxIndex + 1) };
    return new VdiImage(store, hdr, bmap, readOnly, fileSize, pastEof);
  }

  /** Creates a dynamic (default) or fixed VDI image of `size` bytes, laid out as QEMU does. */
  static async create(store: ByteStore, options: { size: number; fixed?: boolean }): Promise<VdiImage> {
    checkSize(F, options.size);
    // qemu-img create rounds the size up to whole sectors.
    const size = Math.ceil(options.size / 512) * 512;
    const bs = DEFAULT_BLOCK;
    const blocks = Math.ceil(size / bs);
    if (blocks > MAX_BLOCKS) throw fail(DiskErrorCode.TOO_LARGE, OFF.diskSize, "disk too large for VDI");
    const offsetBmap = 0x200;
    const offsetData = offsetBmap + Math.ceil((blocks * 4) / 512) * 512;
    const head = new Uint8Array(offsetData);
    const dv = new DataView(head.buffer);
    head.set(new TextEncoder().encode(VDI_TEXT));
    dv.setUint32(OFF.signature, VDI_SIGNATURE, true);
    dv.setUint32(OFF.version, 0x00010001, true);
    dv.setUint32(OFF.headerSize, 0x180, true);
    dv.setUint32(OFF.imageType, options.fixed ? TYPE_FIXED : TYPE_DYNAMIC, true);
    dv.setUint32(OFF.offsetBmap, offsetBmap, true);
    dv.setUint32(OFF.offsetData, offsetData, true);
    dv.setUint32(OFF.sectorSize, 512, true);
    dv.setBigUint64(OFF.diskSize, BigInt(size), true);
    dv.setUint32(OFF.blockSize, bs, true);
    dv.setUint32(OFF.blocksInImage, blocks, true);
    dv.setUint32(OFF.blocksAllocated, options.fixed ? blocks : 0, true);
    head.set(uuidBytes(), 0x188);
    for (let i = 0; i < blocks; i++) dv.setUint32(offsetBmap + i * 4, options.fixed ? i : UNALLOCATED, true);
    await store.truncate(0);
    await store.write(0, head);
    if (options.fixed) await store.truncate(offsetData + blocks * bs);
    await store.flush();
    return VdiImage.open(store, { readOnly: false });
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  private hostOf(block: number): number | null {
    const e = this.bmap[block]!;
    return e === UNALLOCATED || e === ZERO ? null : this.hdr.offsetData + e * this.hdr.blockSize;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen(false);
    checkRange(F, offset, buf.length, this.hdr.diskSize);
    const bs = this.hdr.blockSize;
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const block = Math.floor(g / bs);
      const inOff = g - block * bs;
      const n = Math.min(bs - inOff, buf.length - pos);
      const host = this.hostOf(block);
      if (host !== null && this.pastEof.has(block))
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, this.hdr.offsetBmap + block * 4, "data block beyond end of file", {
          entry: this.bmap[block],
          fileSize: this.fileSize,
        });
      if (host === null) buf.fill(0, pos, pos + n);
      else await readFull(this.store, host + inOff, buf.subarray(pos, pos + n));
      pos += n;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.hdr.diskSize);
    const bs = this.hdr.blockSize;
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const block = Math.floor(g / bs);
      const inOff = g - block * bs;
      const n = Math.min(bs - inOff, data.length - pos);
      const part = data.subarray(pos, pos + n);
      const host = this.hostOf(block);
      if (host !== null) await this.store.write(host + inOff, part);
      else if (!isZero(part)) {
        // Allocate: the whole block is written, then the header count and the map entry (writeMetadata).
        // A block past the end of the file gets only its data written and the file extended (the rest
        // reads as zeros), instead of a zero-filled block; the unallocated non-zero blocks after it in
        // `data` go in the same write (they take the next indexes, so they follow it in the file).
        const index = this.hdr.blocksAllocated;
        const at = this.hdr.offsetData + index * bs;
        let len = n;
        let count = 1;
        if (at >= this.fileSize) {
          if (inOff === 0)
            while (len % bs === 0 && pos + len < data.length && this.hostOf(block + count) === null) {
              const m = Math.min(bs, data.length - pos - len);
              if (isZero(data.subarray(pos + len, pos + len + m))) break;
              len += m;
              count++;
            }
          await this.store.write(at + inOff, data.subarray(pos, pos + len));
          if ((inOff + len) % bs !== 0) await this.store.truncate(at + count * bs);
        } else {
          const full = new Uint8Array(bs);
          full.set(part, inOff);
          await this.store.write(at, full);
        }
        for (let i = 0; i < count; i++) this.bmap[block + i] = index + i;
        this.hdr = { ...this.hdr, blocksAllocated: index + count };
        this.fileSize = Math.max(this.fileSize, this.hdr.offsetData + (index + count) * bs);
        if (this.wb.on) {
          this.wb.from = this.wb.to > this.wb.from ? Math.min(this.wb.from, block) : block;
          this.wb.to = Math.max(this.wb.to, block + count);
        } else await this.writeMetadata(block, block + count);
        pos += len;
        continue;
      }
      pos += n;
    }
  }

  /** Block map entries [from, to), little endian. */
  private mapBytes(from: number, to: number): Uint8Array {
    const b = new Uint8Array((to - from) * 4);
    const dv = new DataView(b.buffer);
    for (let i = from; i < to; i++) dv.setUint32((i - from) * 4, this.bmap[i]!, true);
    return b;
  }

  /**
   * Turns metadata write-behind on for an image being filled with new data
   * (convert's target): new blocks' data is written at once, their map
   * entries and the header's allocated count once by flush() or close().
   * When the map follows the header closely (QEMU and this package put it
   * at 0x200), the count and the entries go in one write, so a process
   * killed at any point leaves an image qemu-img check finds clean (the
   * count and the map never disagree; written apart they would: QEMU's own
   * order leaves "allocated blocks mismatch" between its two writes).
   */
  deferMetadata(): void {
    this.checkOpen(true);
    this.wb.on = true;
  }

  /** Writes the deferred map entries and allocated count (see deferMetadata). */
  private async drainMetadata(): Promise<void> {
    const { from, to } = this.wb;
    if (to <= from) return;
    this.wb.from = this.wb.to = 0;
    await this.writeMetadata(from, to, Number.POSITIVE_INFINITY); // once: the whole map prefix, however long
  }

  /**
   * Writes the header's allocated count and the map entries [from, to), after
   * the new blocks' data. When the map starts within 64 KiB of the count
   * (at 0x200, as QEMU and this package lay it out) and the count, the
   * header bytes after it and the map up to entry `to` span at most
   * `maxSpan` bytes (a write's: 64 KiB, images up to 16 GiB at 1 MiB blocks;
   * deferred metadata, written once: any), they go
   * in one write, so a process killed at any point leaves count and map in
   * agreement (qemu-img check: clean). QEMU's vdi_co_pwritev writes the
   * header and the map apart, and a kill between the two leaves "allocated
   * blocks mismatch". Farther entries are written apart too: the entries,
   * then the count (a kill between leaves the count short, which open()
   * repairs in memory).
   */
  private async writeMetadata(from: number, to: number, maxSpan = METADATA_SPAN): Promise<void> {
    const gap = this.hdr.offsetBmap - OFF.blocksAllocated;
    if (gap >= 4 && gap <= METADATA_SPAN && gap + to * 4 <= maxSpan) {
      // count, the header bytes after it as they are on disk, the map up to the last new entry
      const out = new Uint8Array(gap + to * 4);
      await readFull(this.store, OFF.blocksAllocated, out.subarray(0, gap));
      new DataView(out.buffer).setUint32(0, this.hdr.blocksAllocated, true);
      out.set(this.mapBytes(0, to), gap);
      await this.store.write(OFF.blocksAllocated, out);
      return;
    }
    await this.store.write(this.hdr.offsetBmap + from * 4, this.mapBytes(from, to));
    await this.store.write(OFF.blocksAllocated, u32le(this.hdr.blocksAllocated));
  }

  /** Allocated blocks get zeros written; unallocated ones already read as zero. */
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.hdr.diskSize);
    const bs = this.hdr.blockSize;
    let pos = offset;
    while (pos < offset + length) {
      const block = Math.floor(pos / bs);
      const n = Math.min((block + 1) * bs, offset + length) - pos;
      const host = this.hostOf(block);
      if (host !== null) await this.store.write(host + (pos - block * bs), new Uint8Array(n));
      pos += n;
    }
  }

  /** VDI blocks are never freed (QEMU does not either): discard is a no-op. */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.hdr.diskSize);
  }

  async flush(): Promise<void> {
    this.checkOpen(false);
    if (this.readOnly) return;
    await this.drainMetadata();
    await this.store.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen(false);
    checkRange(F, offset, length, this.hdr.diskSize);
    const bs = this.hdr.blockSize;
    const end = offset + length;
    const block = Math.floor(offset / bs);
    const host = this.hostOf(block);
    let n = Math.min((block + 1) * bs, end) - offset;
    for (let b = block + 1; offset + n < end; b++) {
      const h = this.hostOf(b);
      if (host === null ? h !== null : h !== host + (b - block) * bs) break;
      n = Math.min((b + 1) * bs, end) - offset;
    }
    if (host === null) return { start: offset, length: n, kind: "zero", depth: 0 };
    return { start: offset, length: n, kind: "data", depth: 0, hostOffset: host + (offset - block * bs) };
  }

  /** VDI images are not resized (QEMU's vdi driver cannot either). */
  async resize(_newSize: number): Promise<void> {
    throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "resizing VDI images");
  }

  /** Checks the block map against the header, as qemu-img check does for VDI. */
  async check(): Promise<{ corruptions: number; messages: string[] }> {
    if (!this.readOnly) await this.drainMetadata();
    const messages: string[] = [];
    let allocated = 0;
    for (let i = 0; i < this.bmap.length; i++) if (this.hostOf(i) !== null) allocated++;
    const stored = new Uint8Array(4);
    await readFull(this.store, OFF.blocksAllocated, stored);
    const inHeader = new DataView(stored.buffer).getUint32(0, true);
    if (allocated !== inHeader)
      messages.push(`ERROR: allocated blocks mismatch, is ${allocated}, should be ${inHeader}`);
    return { corruptions: messages.length, messages };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.readOnly) await this.drainMetadata();
    this.closed = true;
    if (!this.readOnly) await this.store.flush();
    await this.store.close();
  }
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function uuidBytes(): Uint8Array {
  const hex = globalThis.crypto.randomUUID().replace(/-/g, "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
