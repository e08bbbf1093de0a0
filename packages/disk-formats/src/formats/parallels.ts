// Parallels disk image (.hdd), read and write (QEMU docs/interop/parallels.txt).
// Little endian: a 64-byte header ("WithoutFreeSpace" or "WithouFreSpacExt"),
// then the BAT (u32 per cluster; 0 = unallocated), data from data_off.
// "WithoutFreeSpace" BAT entries count sectors, "WithouFreSpacExt" entries count clusters.

import type { BlockBackend, Extent } from "../backend.js";
import { isZero } from "../bytes.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";
import * as z from "../zod.js";

const F = "parallels";
const MAGIC_OLD = "WithoutFreeSpace";
const MAGIC_EXT = "WithouFreSpacExt";
const HEADER = 64;
const INUSE = 0x746f6e59; // "Ynot": open for writing
const DEFAULT_CLUSTER = 1024 * 1024;

const Header = z
  .object({
    version: z.literal(2),
    tracks: z.int().check(z.minimum(1), z.maximum((256 * 1024 * 1024) / 512)),
    batEntries: z.int().check(z.nonnegative(), z.maximum(2 ** 30)),
    nbSectors: z.int().check(z.nonnegative()),
    dataOff: z.int().check(z.nonnegative()),
  })
  .check(
    z.superRefine((h, ctx) => {
      if (h.batEntries * h.tracks < h.nbSectors)
        ctx.addIssue({ code: "custom", path: ["batEntries"], message: "BAT does not cover the disk size" });
    }),
  );

const OFF: Record<string, number> = { version: 16, tracks: 28, batEntries: 32, nbSectors: 36, dataOff: 48 };

function fail(code: DiskErrorCode, offset: number, detail: string, extra: Record<string, unknown> = {}): DiskError {
  return new DiskError(code, { format: F, offset, ...extra }, detail);
}

export function isParallels(head: Uint8Array): boolean {
  const m = new TextDecoder("latin1").decode(head.subarray(0, 16));
  return m === MAGIC_OLD || m === MAGIC_EXT;
}

export class ParallelsImage implements BlockBackend {
  readonly format = "parallels" as const;
  private closed = false;

  private constructor(
    private readonly store: ByteStore,
    private readonly bat: Uint32Array,
    private readonly cluster: number,
    /** Bytes per BAT unit: 512 (old format) or the cluster size (ext format). */
    private readonly unit: number,
    private readonly virtSize: number,
    readonly readOnly: boolean,
    private end: number,
  ) {}

  get clusterSize(): number {
    return this.cluster;
  }

  size(): number {
    return this.virtSize;
  }

  static async open(store: ByteStore, options: { readOnly?: boolean } = {}): Promise<ParallelsImage> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    if (fileSize < HEADER) throw fail(DiskErrorCode.TRUNCATED, 0, "file shorter than a Parallels header", { fileSize });
    const b = new Uint8Array(HEADER);
    await readFull(store, 0, b);
    if (!isParallels(b)) throw fail(DiskErrorCode.BAD_MAGIC, 0, "not a Parallels image");
    const ext = new TextDecoder("latin1").decode(b.subarray(0, 16)) === MAGIC_EXT;
    const dv = new DataView(b.buffer);
    const nb = dv.getBigUint64(36, true);
    if (nb > BigInt(Math.floor(Number.MAX_SAFE_INTEGER / 512)))
      throw fail(DiskErrorCode.TOO_LARGE, 36, "disk size exceeds 2^53");
    const raw = {
      version: dv.getUint32(16, true),
      tracks: dv.getUint32(28, true),
      batEntries: dv.getUint32(32, true),
      nbSectors: Number(nb),
      dataOff: dv.getUint32(48, true),
    };
    const parsed = Header.safeParse(raw);
    if (!parsed.success) {
      const field = String(parsed.error.issues[0]!.path[0]);
      throw fail(DiskErrorCode.INVALID_HEADER, OFF[field] ?? 0, `${field}: ${parsed.error.issues[0]!.message}`, {
        value: (raw as Record<string, unknown>)[field],
      });
    }
    const h = parsed.data;
    const batEnd = HEADER + h.batEntries * 4;
    if (batEnd > fileSize) throw fail(DiskErrorCode.OUT_OF_BOUNDS, 32, "BAT beyond end of file", { fileSize });
    const dataStart = h.dataOff > 0 ? h.dataOff * 512 : Math.ceil(batEnd / 512) * 512;
    if (dataStart < batEnd) throw fail(DiskErrorCode.INVALID_HEADER, 48, "data area overlaps the BAT");
    const cluster = h.tracks * 512;
    const unit = ext ? cluster : 512;
    const bb = new Uint8Array(h.batEntries * 4);
    await readFull(store, HEADER, bb);
    const bdv = new DataView(bb.buffer);
    const bat = new Uint32Array(h.batEntries);
    const used = new Set<number>();
    let end = Math.max(dataStart, Math.ceil(fileSize / cluster) * cluster);
    for (let i = 0; i < h.batEntries; i++) {
      const e = bdv.getUint32(i * 4, true);
      bat[i] = e;
      if (e === 0) continue;
      const at = HEADER + i * 4;
      const off = e * unit;
      if (off < dataStart)
        throw fail(DiskErrorCode.METADATA_OVERLAP, at, "cluster inside the header or BAT", { entry: e });
      if (off >= fileSize)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "cluster beyond end of file", { entry: e, fileSize });
      if (used.has(e)) throw fail(DiskErrorCode.BAD_ENTRY, at, "cluster used twice", { entry: e });
      used.add(e);
      end = Math.max(end, off + cluster);
    }
    const img = new ParallelsImage(store, bat, cluster, unit, h.nbSectors * 512, readOnly, end);
    if (!readOnly) await store.write(44, u32le(INUSE)); // marks the image open, as QEMU does
    return img;
  }

  /** Creates an image laid out as qemu-img does ("WithouFreSpacExt", 1 MiB clusters, data from the first cluster after the BAT). */
  static async create(store: ByteStore, options: { size: number; clusterSize?: number }): Promise<ParallelsImage> {
    checkSize(F, options.size);
    const cluster = options.clusterSize ?? DEFAULT_CLUSTER;
    if (cluster < 512 || cluster % 512 !== 0)
      throw fail(DiskErrorCode.INVALID_OPTIONS, 28, "cluster size must be a multiple of 512");
    const sectors = Math.ceil(options.size / 512);
    const entries = Math.ceil((sectors * 512) / cluster);
    const dataOff = Math.ceil((HEADER + entries * 4) / cluster) * cluster;
    const head = new Uint8Array(dataOff);
    const dv = new DataView(head.buffer);
    head.set(new TextEncoder().encode(MAGIC_EXT));
    dv.setUint32(16, 2, true);
    dv.setUint32(20, 16, true);
    dv.setUint32(24, Math.floor(sectors / (16 * 32)), true);
    dv.setUint32(28, cluster / 512, true);
    dv.setUint32(32, entries, true);
    dv.setBigUint64(36, BigInt(sectors), true);
    dv.setUint32(48, dataOff / 512, true);
    await store.truncate(0);
    await store.write(0, head.subarray(0, Math.min(head.length, HEADER + entries * 4)));
    await store.truncate(dataOff);
    await store.flush();
    return ParallelsImage.open(store, { readOnly: false });
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  private hostOf(i: number): number | null {
    const e = this.bat[i]!;
    return e === 0 ? null : e * this.unit;
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
      const c = Math.floor(g / this.cluster);
      const inOff = g - c * this.cluster;
      const n = Math.min(this.cluster - inOff, buf.length - pos);
      const host = this.hostOf(c);
      if (host === null) buf.fill(0, pos, pos + n);
      else await readFull(this.store, host + inOff, buf.subarray(pos, pos + n));
      pos += n;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtSize);
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const c = Math.floor(g / this.cluster);
      const inOff = g - c * this.cluster;
      const n = Math.min(this.cluster - inOff, data.length - pos);
      const part = data.subarray(pos, pos + n);
      const host = this.hostOf(c);
      if (host !== null) await this.store.write(host + inOff, part);
      else if (!isZero(part)) {
        // New cluster at the end: data first, then the BAT entry.
        const at = this.end;
        const full = new Uint8Array(this.cluster);
        full.set(part, inOff);
        await this.store.write(at, full);
        this.bat[c] = at / this.unit;
        await this.store.write(HEADER + c * 4, u32le(at / this.unit));
        this.end = at + this.cluster;
      }
      pos += n;
    }
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
    for (let pos = offset; pos < offset + length; ) {
      const c = Math.floor(pos / this.cluster);
      const n = Math.min((c + 1) * this.cluster, offset + length) - pos;
      const host = this.hostOf(c);
      if (host !== null) await this.store.write(host + (pos - c * this.cluster), new Uint8Array(n));
      pos += n;
    }
  }

  /** Clusters are not freed: discard is a no-op. */
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
    const end = offset + length;
    const c = Math.floor(offset / this.cluster);
    const host = this.hostOf(c);
    let n = Math.min((c + 1) * this.cluster, end) - offset;
    for (let k = c + 1; offset + n < end; k++) {
      const h = this.hostOf(k);
      if (host === null ? h !== null : h !== host + (k - c) * this.cluster) break;
      n = Math.min((k + 1) * this.cluster, end) - offset;
    }
    if (host === null) return { start: offset, length: n, kind: "unallocated", depth: 0 };
    return { start: offset, length: n, kind: "data", depth: 0, hostOffset: host + (offset - c * this.cluster) };
  }

  async resize(_newSize: number): Promise<void> {
    throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "resizing Parallels images");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.readOnly) {
      await this.store.flush();
      await this.store.write(44, u32le(0)); // closed cleanly
      await this.store.flush();
    }
    await this.store.close();
  }
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}
