// FAT12/FAT16 file systems on a BlockBackend: format (floppy geometries
// 360 KiB to 2.88 MiB, or FAT16 for larger disks), list, read, write and
// create directories — what mtools does. Microsoft "FAT: General Overview of
// On-Disk Format" (fatgen103): BPB, FAT type by cluster count, 8.3 entries,
// VFAT long names (read and write).
import type { BlockBackend } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";

const F = "fat";
const SECTOR = 512;
const ATTR_VOLUME = 0x08;
const ATTR_DIR = 0x10;
const ATTR_ARCHIVE = 0x20;
const ATTR_LFN = 0x0f;

/** Floppy formats (as mformat and mkfs.fat lay them out). */
export const FLOPPY = {
  "360K": { sectors: 720, spt: 9, heads: 2, media: 0xfd, spc: 2, root: 112 },
  "720K": { sectors: 1440, spt: 9, heads: 2, media: 0xf9, spc: 2, root: 112 },
  "1.2M": { sectors: 2400, spt: 15, heads: 2, media: 0xf9, spc: 1, root: 224 },
  "1.44M": { sectors: 2880, spt: 18, heads: 2, media: 0xf0, spc: 1, root: 224 },
  "2.88M": { sectors: 5760, spt: 36, heads: 2, media: 0xf0, spc: 2, root: 240 },
} as const;
export type FloppyFormat = keyof typeof FLOPPY;

export interface FatEntry {
  readonly name: string;
  readonly shortName: string;
  readonly size: number;
  readonly directory: boolean;
  readonly cluster: number;
}

interface Dirent extends FatEntry {
  /** Byte offsets on disk of the short entry and of its LFN entries. */
  readonly at: number;
  readonly lfnAt: number[];
}

function fail(
  code: DiskErrorCode,
  offset: number | undefined,
  detail: string,
  extra: Record<string, unknown> = {},
): DiskError {
  return new DiskError(code, { format: F, ...(offset !== undefined ? { offset } : {}), ...extra }, detail);
}

export class FatFs {
  private constructor(
    private readonly disk: BlockBackend,
    readonly fatType: 12 | 16,
    private readonly spc: number,
    private readonly reserved: number,
    private readonly fats: number,
    private readonly fatSectors: number,
    private readonly rootEntries: number,
    private readonly clusters: number,
    private fat: Uint8Array,
  ) {}

  private get rootStart(): number {
    return (this.reserved + this.fats * this.fatSectors) * SECTOR;
  }
  private get dataStart(): number {
    return this.rootStart + Math.ceil((this.rootEntries * 32) / SECTOR) * SECTOR;
  }
  private get clusterBytes(): number {
    return this.spc * SECTOR;
  }

  /** Formats the disk: a floppy geometry, or FAT16 sized to the disk. */
  static async format(disk: BlockBackend, options: { floppy?: FloppyFormat; label?: string } = {}): Promise<FatFs> {
    let sectors: number;
    let spt: number;
    let heads: number;
    let media: number;
    let spc: number;
    let root: number;
    let fatType: 12 | 16;
    if (options.floppy || disk.size() <= 2880 * SECTOR * 2) {
      const g = FLOPPY[options.floppy ?? "1.44M"];
      ({ sectors, spt, heads, media, spc, root } = g);
      if (sectors * SECTOR > disk.size())
        throw fail(DiskErrorCode.INVALID_OPTIONS, undefined, "disk smaller than the floppy format", {
          size: disk.size(),
        });
      fatType = 12;
    } else {
      sectors = Math.floor(disk.size() / SECTOR);
      if (sectors > 0xffffffff) throw fail(DiskErrorCode.TOO_LARGE, undefined, "disk too large for FAT16");
      spt = 63;
      heads = 16;
      media = 0xf8;
      root = 512;
      spc = 1;
      while (sectors / spc > 65524) spc *= 2;
      if (spc > 128) throw fail(DiskErrorCode.TOO_LARGE, undefined, "disk too large for FAT16 (over 4 GiB)");
      fatType = 16;
    }
    const rootSectors = Math.ceil((root * 32) / SECTOR);
    // Sectors per FAT: enough entries for every cluster the data area can hold.
    let fatSectors = 1;
    for (;;) {
      const clusters = Math.floor((sectors - 1 - 2 * fatSectors - rootSectors) / spc);
      const bytes = fatType === 12 ? Math.ceil(((clusters + 2) * 3) / 2) : (clusters + 2) * 2;
      if (Math.ceil(bytes / SECTOR) <= fatSectors) break;
      fatSectors++;
    }
    if (fatType === 16 && Math.floor((sectors - 1 - 2 * fatSectors - rootSectors) / spc) < 4085)
      throw fail(DiskErrorCode.INVALID_OPTIONS, undefined, "disk too small for FAT16 and too large for a floppy");
    const boot = new Uint8Array(SECTOR);
    const dv = new DataView(boot.buffer);
    boot.set([0xeb, 0x3c, 0x90]);
    boot.set(new TextEncoder().encode("RINGZERO"), 3);
    dv.setUint16(11, SECTOR, true);
    boot[13] = spc;
    dv.setUint16(14, 1, true);
    boot[16] = 2;
    dv.setUint16(17, root, true);
    dv.setUint16(19, sectors < 65536 ? sectors : 0, true);
    boot[21] = media;
    dv.setUint16(22, fatSectors, true);
    dv.setUint16(24, spt, true);
    dv.setUint16(26, heads, true);
    dv.setUint32(32, sectors < 65536 ? 0 : sectors, true);
    boot[36] = fatType === 12 ? 0x00 : 0x80;
    boot[38] = 0x29;
    dv.setUint32(39, (Math.random() * 0xffffffff) >>> 0, true);
    boot.set(new TextEncoder().encode((options.label ?? "NO NAME").toUpperCase().padEnd(11).slice(0, 11)), 43);
    boot.set(new TextEncoder().encode(fatType === 12 ? "FAT12   " : "FAT16   "), 54);
    boot[510] = 0x55;
    boot[511] = 0xaa;
    await disk.write(0, boot);
    const fat = new Uint8Array(fatSectors * SECTOR);
    if (fatType === 12) fat.set([media, 0xff, 0xff]);
    else fat.set([media, 0xff, 0xff, 0xff]);
    for (let i = 0; i < 2; i++) await disk.write((1 + i * fatSectors) * SECTOR, fat);
    await disk.writeZeroes((1 + 2 * fatSectors) * SECTOR, rootSectors * SECTOR);
    if (options.label) {
      const e = new Uint8Array(32);
      e.set(new TextEncoder().encode(options.label.toUpperCase().padEnd(11).slice(0, 11)));
      e[11] = ATTR_VOLUME;
      await disk.write((1 + 2 * fatSectors) * SECTOR, e);
    }
    return FatFs.open(disk);
  }

  /** Opens the FAT file system on `disk`, validating the BPB. */
  static async open(disk: BlockBackend): Promise<FatFs> {
    if (disk.size() < SECTOR) throw fail(DiskErrorCode.TRUNCATED, 0, "disk smaller than a boot sector");
    const b = await disk.read(0, SECTOR);
    const dv = new DataView(b.buffer);
    const bps = dv.getUint16(11, true);
    const spc = b[13]!;
    const reserved = dv.getUint16(14, true);
    const fats = b[16]!;
    const rootEntries = dv.getUint16(17, true);
    const total = dv.getUint16(19, true) || dv.getUint32(32, true);
    const fatSectors = dv.getUint16(22, true);
    if (bps !== SECTOR) throw fail(DiskErrorCode.UNSUPPORTED, 11, "sector size other than 512", { bps });
    if (spc === 0 || (spc & (spc - 1)) !== 0)
      throw fail(DiskErrorCode.INVALID_HEADER, 13, "sectors per cluster must be a power of two");
    if (reserved === 0) throw fail(DiskErrorCode.INVALID_HEADER, 14, "no reserved sectors");
    if (fats === 0 || fats > 4) throw fail(DiskErrorCode.INVALID_HEADER, 16, "number of FATs");
    if (fatSectors === 0) throw fail(DiskErrorCode.UNSUPPORTED, 22, "FAT32 (sectors per FAT is 0)");
    if (total * SECTOR > disk.size())
      throw fail(DiskErrorCode.OUT_OF_BOUNDS, 19, "file system larger than the disk", { total });
    const rootSectors = Math.ceil((rootEntries * 32) / SECTOR);
    const meta = reserved + fats * fatSectors + rootSectors;
    if (meta >= total) throw fail(DiskErrorCode.INVALID_HEADER, 19, "no room for data");
    const clusters = Math.floor((total - meta) / spc);
    // The FAT type is decided by the cluster count alone (fatgen103 "FAT Type Determination").
    if (clusters >= 65525) throw fail(DiskErrorCode.UNSUPPORTED, 19, "FAT32 (65525 clusters or more)");
    const fatType = clusters < 4085 ? 12 : 16;
    const need = fatType === 12 ? Math.ceil(((clusters + 2) * 3) / 2) : (clusters + 2) * 2;
    if (need > fatSectors * SECTOR) throw fail(DiskErrorCode.INVALID_HEADER, 22, "FAT too small for the cluster count");
    const fat = await disk.read(reserved * SECTOR, fatSectors * SECTOR);
    return new FatFs(disk, fatType, spc, reserved, fats, fatSectors, rootEntries, clusters, fat);
  }

  // ------------------------------------------------------------------ FAT

  private get(n: number): number {
    if (this.fatType === 16) return this.fat[n * 2]! | (this.fat[n * 2 + 1]! << 8);
    const o = Math.floor((n * 3) / 2);
    const v = this.fat[o]! | (this.fat[o + 1]! << 8);
    return n & 1 ? v >> 4 : v & 0xfff;
  }

  private set(n: number, v: number): [number, number] {
    if (this.fatType === 16) {
      this.fat[n * 2] = v & 0xff;
      this.fat[n * 2 + 1] = v >> 8;
      return [n * 2, n * 2 + 2];
    }
    const o = Math.floor((n * 3) / 2);
    if (n & 1) {
      this.fat[o] = (this.fat[o]! & 0x0f) | ((v << 4) & 0xf0);
      this.fat[o + 1] = (v >> 4) & 0xff;
    } else {
      this.fat[o] = v & 0xff;
      this.fat[o + 1] = (this.fat[o + 1]! & 0xf0) | ((v >> 8) & 0x0f);
    }
    return [o, o + 2];
  }

  private get eoc(): number {
    return this.fatType === 12 ? 0xfff : 0xffff;
  }

  private isEnd(v: number): boolean {
    return v >= (this.fatType === 12 ? 0xff8 : 0xfff8);
  }

  /** The cluster chain from `first`; loops and out-of-range links are typed errors. */
  private chain(first: number): number[] {
    const out: number[] = [];
    let c = first;
    while (true) {
      if (c < 2 || c >= this.clusters + 2)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, undefined, "cluster chain leaves the data area", { cluster: c });
      out.push(c);
      if (out.length > this.clusters) throw fail(DiskErrorCode.BAD_ENTRY, undefined, "cluster chain loops", { first });
      const next = this.get(c);
      if (this.isEnd(next)) return out;
      if (next === 0)
        throw fail(DiskErrorCode.BAD_ENTRY, undefined, "cluster chain runs into a free cluster", { cluster: c });
      c = next;
    }
  }

  private async writeFatRange(lo: number, hi: number): Promise<void> {
    for (let i = 0; i < this.fats; i++)
      await this.disk.write((this.reserved + i * this.fatSectors) * SECTOR + lo, this.fat.subarray(lo, hi));
  }

  /** Allocates `n` clusters as one chain (written to every FAT copy). */
  private async allocChain(n: number): Promise<number[]> {
    const got: number[] = [];
    for (let c = 2; c < this.clusters + 2 && got.length < n; c++) if (this.get(c) === 0) got.push(c);
    if (got.length < n)
      throw fail(DiskErrorCode.TOO_LARGE, undefined, "file system full", { need: n, free: got.length });
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    got.forEach((c, i) => {
      const [a, b] = this.set(c, i + 1 < got.length ? got[i + 1]! : this.eoc);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    });
    if (got.length > 0) await this.writeFatRange(lo, hi);
    return got;
  }

  private async freeChain(first: number): Promise<void> {
    if (first < 2) return;
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (const c of this.chain(first)) {
      const [a, b] = this.set(c, 0);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
    await this.writeFatRange(lo, hi);
  }

  private clusterOffset(c: number): number {
    return this.dataStart + (c - 2) * this.clusterBytes;
  }

  // ----------------------------------------------------------- directories

  /** Byte ranges of a directory: the fixed root area, or a cluster chain. */
  private dirRanges(cluster: number): Array<[number, number]> {
    if (cluster === 0) return [[this.rootStart, this.rootEntries * 32]];
    return this.chain(cluster).map((c) => [this.clusterOffset(c), this.clusterBytes]);
  }

  private async readDir(cluster: number): Promise<{ entries: Dirent[]; free: number[] }> {
    const entries: Dirent[] = [];
    const free: number[] = [];
    let lfn: string[] = [];
    let lfnAt: number[] = [];
    let ended = false;
    for (const [off, len] of this.dirRanges(cluster)) {
      const b = await this.disk.read(off, len);
      const dv = new DataView(b.buffer);
      for (let i = 0; i < len; i += 32) {
        const at = off + i;
        const first = b[i]!;
        // 0x00 ends the directory: every later slot is free (fatgen103 "DIR_Name[0]").
        if (first === 0x00) ended = true;
        if (ended || first === 0xe5) {
          free.push(at);
          lfn = [];
          lfnAt = [];
          continue;
        }
        const attr = b[i + 11]!;
        if (attr === ATTR_LFN) {
          const seq = first & 0x1f;
          let part = "";
          for (const o of [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]) {
            const ch = dv.getUint16(i + o, true);
            if (ch === 0 || ch === 0xffff) break;
            part += String.fromCharCode(ch);
          }
          if (seq >= 1 && seq <= 20) lfn[seq - 1] = part;
          lfnAt.push(at);
          continue;
        }
        if (attr & ATTR_VOLUME) {
          lfn = [];
          lfnAt = [];
          continue;
        }
        const base = new TextDecoder("latin1").decode(b.subarray(i, i + 8)).trimEnd();
        const ext = new TextDecoder("latin1").decode(b.subarray(i + 8, i + 11)).trimEnd();
        const shortName = (first === 0x05 ? "\xe5" + base.slice(1) : base) + (ext ? `.${ext}` : "");
        // Windows NT case bits (byte 12): lower-case base (0x08) and extension (0x10) without a long name.
        const nt = b[i + 12]!;
        const cased = (nt & 0x08 ? base.toLowerCase() : base) + (ext ? `.${nt & 0x10 ? ext.toLowerCase() : ext}` : "");
        const long = lfn.length > 0 && lfn.every((p) => p !== undefined) ? lfn.join("") : null;
        entries.push({
          name: long ?? (first === 0x05 ? shortName : cased),
          shortName,
          size: dv.getUint32(i + 28, true),
          directory: (attr & ATTR_DIR) !== 0,
          cluster: dv.getUint16(i + 26, true),
          at,
          lfnAt,
        });
        lfn = [];
        lfnAt = [];
      }
    }
    return { entries, free };
  }

  /** Resolves a path to its directory entry (null for the root). */
  private async lookup(path: string): Promise<{ parent: number; entry: Dirent | null; name: string }> {
    const parts = path.split("/").filter((p) => p !== "");
    let dir = 0;
    let entry: Dirent | null = null;
    for (let i = 0; i < parts.length; i++) {
      const { entries } = await this.readDir(dir);
      const want = parts[i]!.toUpperCase();
      const e = entries.find((x) => x.name.toUpperCase() === want || x.shortName === want) ?? null;
      if (i === parts.length - 1) return { parent: dir, entry: e, name: parts[i]! };
      if (!e || !e.directory) throw fail(DiskErrorCode.NOT_FOUND, undefined, "no such directory", { path });
      if (e.cluster === 0 || e.name === "." || e.name === "..")
        throw fail(DiskErrorCode.NOT_FOUND, undefined, "bad directory", { path });
      dir = e.cluster;
      entry = e;
    }
    return { parent: 0, entry, name: "" };
  }

  /** Lists a directory ("/" for the root), without "." and "..". */
  async list(path = "/"): Promise<FatEntry[]> {
    const { entry } = await this.lookup(path);
    if (entry && !entry.directory) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "not a directory", { path });
    const { entries } = await this.readDir(entry ? entry.cluster : 0);
    return entries
      .filter((e) => e.name !== "." && e.name !== "..")
      .map(({ name, shortName, size, directory, cluster }) => ({ name, shortName, size, directory, cluster }));
  }

  async readFile(path: string): Promise<Uint8Array> {
    const { entry } = await this.lookup(path);
    if (!entry || entry.directory) throw fail(DiskErrorCode.NOT_FOUND, undefined, "no such file", { path });
    const out = new Uint8Array(entry.size);
    if (entry.size === 0) return out;
    const chain = this.chain(entry.cluster);
    if (chain.length * this.clusterBytes < entry.size)
      throw fail(DiskErrorCode.BAD_ENTRY, entry.at + 28, "file size beyond its cluster chain", { path });
    for (let i = 0; i * this.clusterBytes < entry.size; i++) {
      const n = Math.min(this.clusterBytes, entry.size - i * this.clusterBytes);
      await this.disk.readInto(
        this.clusterOffset(chain[i]!),
        out.subarray(i * this.clusterBytes, i * this.clusterBytes + n),
      );
    }
    return out;
  }

  /** Creates or replaces a file: data clusters, then the FAT chain, then the directory entry. */
  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const { parent, entry, name } = await this.lookup(path);
    if (entry?.directory) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "is a directory", { path });
    const chain = await this.allocChain(Math.ceil(data.length / this.clusterBytes));
    for (let i = 0; i < chain.length; i++) {
      const part = data.subarray(i * this.clusterBytes, (i + 1) * this.clusterBytes);
      const buf = new Uint8Array(this.clusterBytes);
      buf.set(part);
      await this.disk.write(this.clusterOffset(chain[i]!), buf);
    }
    if (entry) {
      const e = new Uint8Array(32);
      const old = await this.disk.read(entry.at, 32);
      e.set(old);
      const dv = new DataView(e.buffer);
      dv.setUint16(26, chain[0] ?? 0, true);
      dv.setUint32(28, data.length, true);
      await this.disk.write(entry.at, e);
      await this.freeChain(entry.cluster);
      return;
    }
    await this.addEntry(parent, name, ATTR_ARCHIVE, chain[0] ?? 0, data.length);
  }

  async mkdir(path: string): Promise<void> {
    const { parent, entry, name } = await this.lookup(path);
    if (entry) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "already exists", { path });
    const [c] = await this.allocChain(1);
    const buf = new Uint8Array(this.clusterBytes);
    buf.set(shortEntry(".          ", ATTR_DIR, c!, 0), 0);
    buf.set(shortEntry("..         ", ATTR_DIR, parent, 0), 32);
    await this.disk.write(this.clusterOffset(c!), buf);
    await this.addEntry(parent, name, ATTR_DIR, c!, 0);
  }

  private async addEntry(dir: number, name: string, attr: number, cluster: number, size: number): Promise<void> {
    const { entries, free } = await this.readDir(dir);
    const short = shortNameFor(name, new Set(entries.map((e) => e.shortName)));
    const needLfn = short.display !== name;
    const lfn = needLfn ? lfnEntries(name, short.raw) : [];
    const need = lfn.length + 1;
    // Contiguous free slots (a run in `free`).
    let slots: number[] | null = null;
    for (let i = 0; i + need <= free.length; i++) {
      const run = free.slice(i, i + need);
      if (run.every((a, k) => k === 0 || a === run[k - 1]! + 32)) {
        slots = run;
        break;
      }
    }
    if (!slots) {
      if (dir === 0) throw fail(DiskErrorCode.TOO_LARGE, undefined, "root directory full");
      // The unused tail slots become "deleted" so that the end marker does not hide the new cluster.
      for (const at of free) await this.disk.write(at, new Uint8Array([0xe5]));
      const [c] = await this.allocChain(1);
      const last = this.chain(dir).at(-1)!;
      const [lo, hi] = this.set(last, c!);
      await this.writeFatRange(lo, hi);
      await this.disk.write(this.clusterOffset(c!), new Uint8Array(this.clusterBytes));
      return this.addEntry(dir, name, attr, cluster, size);
    }
    const block = new Uint8Array(need * 32);
    for (const [i, e] of lfn.entries()) block.set(e, i * 32);
    block.set(shortEntry(short.raw, attr, cluster, size), lfn.length * 32);
    await this.disk.write(slots[0]!, block);
  }
}

/** An 8.3 name: the upper-cased name when it fits, else BASIS~N (fatgen103 "Basis-Name Generation"). */
function shortNameFor(name: string, taken: Set<string>): { raw: string; display: string } {
  const up = name.toUpperCase();
  const dot = up.lastIndexOf(".");
  const base = dot > 0 ? up.slice(0, dot) : up;
  const ext = dot > 0 ? up.slice(dot + 1) : "";
  const valid = (s: string) => !/[^A-Z0-9!#$%&'()@^_`{}~-]/.test(s);
  if (base.length > 0 && base.length <= 8 && ext.length <= 3 && valid(base) && valid(ext) && !taken.has(up))
    return { raw: base.padEnd(8) + ext.padEnd(3), display: up };
  const b = base.replace(/[^A-Z0-9!#$%&'()@^_`{}~-]/g, "_") || "_";
  const e = ext.replace(/[^A-Z0-9!#$%&'()@^_`{}~-]/g, "_").slice(0, 3);
  for (let n = 1; n < 1000000; n++) {
    const tail = `~${n}`;
    const cand = b.slice(0, 8 - tail.length) + tail;
    const display = cand + (e ? `.${e}` : "");
    if (!taken.has(display)) return { raw: cand.padEnd(8) + e.padEnd(3), display };
  }
  throw fail(DiskErrorCode.TOO_LARGE, undefined, "no free short name");
}

function shortEntry(raw11: string, attr: number, cluster: number, size: number): Uint8Array {
  const e = new Uint8Array(32);
  e.set(new TextEncoder().encode(raw11.slice(0, 11)));
  e[11] = attr;
  const dv = new DataView(e.buffer);
  const now = new Date();
  const time = (now.getHours() << 11) | (now.getMinutes() << 5) | Math.floor(now.getSeconds() / 2);
  const date = ((Math.max(1980, now.getFullYear()) - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  dv.setUint16(14, time, true);
  dv.setUint16(16, date, true);
  dv.setUint16(18, date, true);
  dv.setUint16(22, time, true);
  dv.setUint16(24, date, true);
  dv.setUint16(26, cluster, true);
  dv.setUint32(28, size, true);
  return e;
}

/** VFAT long-name entries, last part first, each carrying the short name's checksum. */
function lfnEntries(name: string, raw11: string): Uint8Array[] {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + raw11.charCodeAt(i)) & 0xff;
  const chars = [...name].map((c) => c.charCodeAt(0));
  const parts = Math.ceil(chars.length / 13);
  if (parts > 20) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "name longer than 255 characters");
  const out: Uint8Array[] = [];
  for (let p = parts; p >= 1; p--) {
    const e = new Uint8Array(32);
    const dv = new DataView(e.buffer);
    e[0] = p | (p === parts ? 0x40 : 0);
    e[11] = ATTR_LFN;
    e[13] = sum;
    const offs = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    for (let k = 0; k < 13; k++) {
      const idx = (p - 1) * 13 + k;
      const v = idx < chars.length ? chars[idx]! : idx === chars.length ? 0 : 0xffff;
      dv.setUint16(offs[k]!, v, true);
    }
    out.push(e);
  }
  return out;
}
