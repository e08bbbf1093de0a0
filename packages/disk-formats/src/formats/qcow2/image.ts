// qcow2 v2/v3 read and write (QEMU docs/interop/qcow2.txt).
//
// Write ordering (crash consistency, qcow2.txt "Host cluster management"):
// a cluster's refcount is raised before anything references it, its content
// is written before the L2 entry that maps it, and a new L2 table is filled
// before the L1 entry points to it. References are dropped before refcounts
// are lowered. A writer killed at any point leaves at worst leaked clusters.
// New clusters are allocated at the end of the file; freed ones are not reused.

import type { BlockBackend, Extent, ReadPart } from "../../backend.js";
import { deflateRaw, inflateExact } from "../../compress.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../../errors.js";
import { type ByteStore, readFull, readFullv } from "../../io/store.js";
import {
  bit,
  Compat,
  Incompat,
  MAX_L1_BYTES,
  MAX_REFTABLE_BYTES,
  parseHeader,
  type Qcow2Header,
  QEMU_FEATURE_NAMES,
  serializeHeader,
  V2_HEADER_LENGTH,
  V3_HEADER_LENGTH,
} from "./header.js";
import { MAX_SNAPSHOT_TABLE, parseSnapshots, type Qcow2Snapshot, serializeSnapshots } from "./snapshots.js";

const F = "qcow2";
const COPIED_HI = 0x80000000; // bit 63: refcount is exactly one
const COMPRESSED_HI = 0x40000000; // bit 62 (L2)
const ZERO_LO = 1; // bit 0 (L2, v3): reads as zeros
/** Extended L2 bitmap halves (qcow2.txt "Extended L2 Entries"): all 32 subclusters. */
const ALL_SUB = 0xffffffff;
const L2_TABLE_CACHE = 256;
const REFBLOCK_CACHE = 256;

/** A copy-on-write metadata transaction (snapshot create/delete/apply). */
interface MetaTxn {
  /** Refcount changes by cluster index, relative to the current refcounts. */
  readonly delta: Map<number, number>;
  /** Contents to write into newly allocated clusters (host offset -> bytes). */
  readonly fresh: Map<number, Uint8Array>;
}

type L2Entry =
  | { kind: "unallocated" }
  | { kind: "zero"; host: number; copied: boolean }
  | { kind: "normal"; host: number; copied: boolean }
  | { kind: "compressed"; host: number; bytes: number };

export interface Qcow2CreateOptions {
  size: number;
  /** 2 (compat=0.10) or 3 (compat=1.1, the default). */
  version?: 2 | 3;
  /** 9..21; default 16 (64 KiB clusters). */
  clusterBits?: number;
  /** log2 of the refcount width, 0..6; default 4 (16 bits). v2 requires 4. */
  refcountOrder?: number;
  backingFile?: string;
  backingFormat?: string;
  lazyRefcounts?: boolean;
  /** Extended L2 entries (32 subclusters per cluster; v3 and clusters of 16 KiB or more). */
  extendedL2?: boolean;
}

export interface Qcow2CheckResult {
  corruptions: number;
  leaks: number;
  /** Messages in qemu-img's wording, one per problem. */
  messages: string[];
  allocatedClusters: number;
  totalClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
  imageEndOffset: number;
  /** References per host cluster, as counted by the walk (for repair). */
  references: Map<number, number>;
}

/** The big-endian 32-bit word at `at` (an L2 entry half, qcow2.txt: big-endian throughout). */
function be32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function u64hi(v: number): number {
  return Math.floor(v / 2 ** 32);
}

function setEntry(dv: DataView, byteOff: number, hi: number, lo: number): void {
  dv.setUint32(byteOff, hi >>> 0);
  dv.setUint32(byteOff + 4, lo >>> 0);
}

/** Encodes an L1/L2 entry: a cluster-aligned offset plus flag bits. */
function encodeOffset(host: number, hiFlags: number, loFlags = 0): [number, number] {
  return [(u64hi(host) | hiFlags) >>> 0, ((host % 2 ** 32) | loFlags) >>> 0];
}

export class Qcow2Image implements BlockBackend {
  readonly format = "qcow2" as const;
  private readonly cs: number;
  private readonly cb: number;
  private readonly l2Entries: number;
  /** Extended L2 entries: 16 bytes, 32 subclusters per cluster. */
  private readonly ext: boolean;
  private readonly stride: number;
  /** Allocation granularity for reads and status: a subcluster with extended L2, else a cluster. */
  private readonly unit: number;
  private readonly refBits: number;
  private readonly rbEntries: number;
  private l1: Uint8Array;
  private l1dv: DataView;
  private reftable: Uint8Array;
  private rtdv: DataView;
  private readonly l2Cache = new Map<number, Uint8Array>();
  /** plainRuns' result per cached L2 table (dropped with the table when the cache lets it go). */
  private readonly l2Runs = new WeakMap<Uint8Array, Uint32Array | false>();
  private readonly rbCache = new Map<number, Uint8Array>();
  /**
   * Lazy refcounts (qcow2.txt compatible feature bit 0), on read-write opens
   * of images that have them: refcount block updates stay here (pinned, never
   * evicted) instead of being written; the dirty bit is set and flushed
   * before the first deferred update, and cleared at close after the blocks
   * are written. null when refcounts are written through.
   */
  private lazyPending: Map<number, Uint8Array> | null = null;
  /**
   * Metadata write-behind (deferMetadata(), for bulk writes such as
   * convert's): the byte ranges of refcount blocks, the refcount table, L2
   * tables and the L1 table that changed, written by drainMetadata() in that
   * order (see there). The tables named stay in their caches, never evicted.
   */
  private wb: {
    rb: Map<number, [number, number]>;
    l2: Map<number, [number, number]>;
    rt: [number, number] | null;
    l1: [number, number] | null;
  } | null = null;
  /** Host cluster indexes holding L2 tables / refcount blocks (overlap checks). */
  private readonly l2Clusters = new Set<number>();
  private readonly rbClusters = new Set<number>();
  private fileSize: number;
  /** First cluster index where allocation searches for free clusters. */
  private nextFree: number;
  /** Byte offset just after the last compressed cluster written (packing of compressed data). */
  private compTail = 0;
  private backing: BlockBackend | null = null;
  private closed = false;
  private snapshotTableBytes = 0;
  snapshots: Qcow2Snapshot[] = [];

  private constructor(
    private readonly store: ByteStore,
    private hdr: Qcow2Header,
    readonly readOnly: boolean,
    fileSize: number,
    l1: Uint8Array,
    reftable: Uint8Array,
  ) {
    this.cb = hdr.clusterBits;
    this.cs = 2 ** hdr.clusterBits;
    this.ext = bit(hdr.incompatibleFeatures, Incompat.EXTL2);
    this.stride = this.ext ? 16 : 8;
    this.l2Entries = this.cs / this.stride;
    this.unit = this.ext ? this.cs / 32 : this.cs;
    this.refBits = 2 ** hdr.refcountOrder;
    this.rbEntries = (this.cs * 8) / this.refBits;
    this.l1 = l1;
    this.l1dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    this.reftable = reftable;
    this.rtdv = new DataView(reftable.buffer, reftable.byteOffset, reftable.byteLength);
    this.fileSize = fileSize;
    this.nextFree = Math.ceil(fileSize / this.cs);
  }

  /** The parsed header (read-only view). */
  get header(): Readonly<Qcow2Header> {
    return this.hdr;
  }
  get clusterSize(): number {
    return this.cs;
  }
  get backingFile(): string | null {
    return this.hdr.backingFile;
  }
  get backingFormat(): string | null {
    return this.hdr.backingFormat;
  }
  get backingImage(): BlockBackend | null {
    return this.backing;
  }
  get dirty(): boolean {
    return bit(this.hdr.incompatibleFeatures, Incompat.DIRTY);
  }
  get corrupt(): boolean {
    return bit(this.hdr.incompatibleFeatures, Incompat.CORRUPT);
  }
  get lazyRefcounts(): boolean {
    return bit(this.hdr.compatibleFeatures, Compat.LAZY_REFCOUNTS);
  }

  size(): number {
    return this.hdr.size;
  }

  /** Attaches the opened backing image (the opener resolves and opens it). */
  attachBacking(b: BlockBackend | null): void {
    this.backing = b;
  }

  // ---------------------------------------------------------------- open

  static async open(store: ByteStore, options: { readOnly?: boolean } = {}): Promise<Qcow2Image> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    // The header lies in the first cluster, which is at most 2 MiB (cluster_bits <= 21).
    const probe = new Uint8Array(Math.min(fileSize, 112));
    await readFull(store, 0, probe);
    if (probe.length < 72)
      throw new DiskError(
        DiskErrorCode.TRUNCATED,
        { format: F, offset: 0, fileSize },
        "file shorter than a qcow2 header",
      );
    const cbRaw = new DataView(probe.buffer).getUint32(20);
    const cb = cbRaw >= 9 && cbRaw <= 21 ? cbRaw : 16;
    const first = new Uint8Array(Math.min(fileSize, 2 ** cb));
    await readFull(store, 0, first);
    const hdr = parseHeader(first, fileSize);
    const cs = 2 ** hdr.clusterBits;

    // Feature bits (qcow2.txt "incompatible_features"): refuse what we cannot honour.
    const known = (1n << 5n) - 1n;
    const unknown = hdr.incompatibleFeatures & ~known;
    if (unknown !== 0n) {
      const names = hdr.featureNames
        .filter((f) => f.type === 0 && bit(unknown, f.bit))
        .map((f) => f.name)
        .join(", ");
      throw new DiskError(
        DiskErrorCode.UNSUPPORTED,
        { format: F, offset: 72, features: `0x${unknown.toString(16)}` },
        `unknown incompatible features${names ? `: ${names}` : ""}`,
      );
    }
    if (bit(hdr.incompatibleFeatures, Incompat.DATA_FILE))
      throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F, offset: 72 }, "external data file");
    if (hdr.compressionType !== 0)
      throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F, offset: 104 }, "zstd compression type");
    if (!readOnly && bit(hdr.incompatibleFeatures, Incompat.CORRUPT))
      throw new DiskError(DiskErrorCode.CORRUPT, { format: F, offset: 72 }, "image is marked corrupt; open read-only");

    const l1 = new Uint8Array(hdr.l1Size * 8);
    await readFull(store, hdr.l1TableOffset, l1);
    const reftable = new Uint8Array(hdr.refcountTableClusters * cs);
    await readFull(store, hdr.refcountTableOffset, reftable);
    // QEMU's qcow2_do_open: total_sectors = size / 512, so a size that is not a multiple of 512 reads rounded down.
    const img = new Qcow2Image(store, { ...hdr, size: hdr.size - (hdr.size % 512) }, readOnly, fileSize, l1, reftable);
    await img.loadSnapshots();
    img.validateTables();
    if (!readOnly) {
      let rewrite = false;
      if (hdr.autoclearFeatures !== 0n) {
        // Autoclear features (bitmaps...) are not maintained here: clear them (qcow2.txt "autoclear_features").
        img.hdr = { ...img.hdr, autoclearFeatures: 0n };
        rewrite = true;
      }
      if (img.dirty) {
        // A dirty image (lazy refcounts, writer died) has stale refcounts: rebuild them, as QEMU does on open.
        await img.repairRefcounts();
        await img.repairCopiedFlags();
        img.hdr = { ...img.hdr, incompatibleFeatures: img.hdr.incompatibleFeatures & ~(1n << BigInt(Incompat.DIRTY)) };
        rewrite = true;
      }
      if (rewrite) await img.writeHeader();
      if (img.lazyRefcounts) img.lazyPending = new Map();
    }
    return img;
  }

  private async loadSnapshots(): Promise<void> {
    const h = this.hdr;
    if (h.nbSnapshots === 0) return;
    const avail = Math.min(this.fileSize - h.snapshotsOffset, MAX_SNAPSHOT_TABLE);
    const buf = new Uint8Array(Math.max(0, avail));
    await readFull(this.store, h.snapshotsOffset, buf);
    const { snapshots, bytes } = parseSnapshots(buf, h.snapshotsOffset, h.nbSnapshots);
    this.snapshots = snapshots;
    this.snapshotTableBytes = bytes;
  }

  /** staticMeta() for one header and snapshot table size (it is asked for every cluster decoded or allocated). */
  private metaMemo: { hdr: Qcow2Header; bytes: number; ranges: Array<[number, number, string]> } | null = null;

  /** Static metadata ranges as [firstCluster, lastCluster] pairs. */
  private staticMeta(): Array<[number, number, string]> {
    const m = this.metaMemo;
    if (m && m.hdr === this.hdr && m.bytes === this.snapshotTableBytes) return m.ranges;
    const ranges = this.computeStaticMeta();
    this.metaMemo = { hdr: this.hdr, bytes: this.snapshotTableBytes, ranges };
    return ranges;
  }

  private computeStaticMeta(): Array<[number, number, string]> {
    const h = this.hdr;
    const cs = this.cs;
    const r: Array<[number, number, string]> = [[0, 0, "header"]];
    if (h.l1Size > 0) r.push([h.l1TableOffset / cs, Math.floor((h.l1TableOffset + h.l1Size * 8 - 1) / cs), "L1 table"]);
    r.push([h.refcountTableOffset / cs, h.refcountTableOffset / cs + h.refcountTableClusters - 1, "refcount table"]);
    if (h.nbSnapshots > 0)
      r.push([
        h.snapshotsOffset / cs,
        Math.floor((h.snapshotsOffset + Math.max(this.snapshotTableBytes, 1) - 1) / cs),
        "snapshot table",
      ]);
    return r;
  }

  private metaName(cluster: number): string | null {
    // Called for every data cluster looked up (checkData): an indexed loop, no iterator or destructuring.
    const ranges = this.staticMeta();
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i]!;
      if (cluster >= r[0] && cluster <= r[1]) return r[2];
    }
    if (this.l2Clusters.has(cluster)) return "L2 table";
    if (this.rbClusters.has(cluster)) return "refcount block";
    return null;
  }

  /** Checks every L1 and refcount table entry: aligned, inside the file, not on other metadata. */
  private validateTables(): void {
    const check = (
      what: string,
      entryOffset: number,
      host: number,
      lo: number,
      reservedHi: number,
      set: Set<number>,
    ) => {
      if ((lo & 0x1ff) !== 0 || reservedHi !== 0)
        throw new DiskError(
          DiskErrorCode.BAD_ENTRY,
          { format: F, offset: entryOffset, reservedHigh: reservedHi, low: lo },
          `${what} entry has reserved bits set`,
        );
      if (host % this.cs !== 0)
        throw new DiskError(
          DiskErrorCode.BAD_ENTRY,
          { format: F, offset: entryOffset, host },
          `${what} offset not cluster aligned`,
        );
      if (host + this.cs > this.fileSize)
        throw new DiskError(
          DiskErrorCode.OUT_OF_BOUNDS,
          { format: F, offset: entryOffset, host, fileSize: this.fileSize },
          `${what} beyond end of file`,
        );
      const c = host / this.cs;
      const meta = this.metaName(c);
      if (meta !== null)
        throw new DiskError(
          DiskErrorCode.METADATA_OVERLAP,
          { format: F, offset: entryOffset, host, overlaps: meta },
          `${what} overlaps the ${meta}`,
        );
      set.add(c);
    };
    const rtEntries = this.reftable.length / 8;
    for (let i = 0; i < rtEntries; i++) {
      const hi = this.rtdv.getUint32(i * 8);
      const lo = this.rtdv.getUint32(i * 8 + 4);
      if (hi === 0 && lo === 0) continue;
      const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      // refcount table entries have no flag bits: all of 0-8 and 56-63 reserved
      // Refcount table entries carry no flags: bit 63 is reserved too.
      check("refcount block", this.hdr.refcountTableOffset + i * 8, host, lo, hi & 0xff000000, this.rbClusters);
    }
    for (let i = 0; i < this.hdr.l1Size; i++) {
      const hi = this.l1dv.getUint32(i * 8);
      const lo = this.l1dv.getUint32(i * 8 + 4);
      const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      if (host === 0) continue;
      check("L2 table", this.hdr.l1TableOffset + i * 8, host, lo, hi & 0x7f000000, this.l2Clusters);
      if (this.rbClusters.has(host / this.cs))
        throw new DiskError(
          DiskErrorCode.METADATA_OVERLAP,
          { format: F, offset: this.hdr.l1TableOffset + i * 8, host, overlaps: "refcount block" },
          "L2 table overlaps a refcount block",
        );
    }
  }

  // -------------------------------------------------------------- tables

  private async loadCached(cache: Map<number, Uint8Array>, limit: number, host: number): Promise<Uint8Array> {
    const hit = cache.get(host);
    if (hit) {
      cache.delete(host);
      cache.set(host, hit);
      return hit;
    }
    const t = new Uint8Array(this.cs);
    await readFull(this.store, host, t);
    if (cache.size >= limit)
      for (const k of cache.keys())
        if (!this.wb?.rb.has(k) && !this.wb?.l2.has(k)) {
          cache.delete(k);
          break;
        }
    cache.set(host, t);
    return t;
  }

  private l1Offset(i: number): number {
    const hi = this.l1dv.getUint32(i * 8);
    const lo = this.l1dv.getUint32(i * 8 + 4);
    return (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
  }

  private l1Copied(i: number): boolean {
    return (this.l1dv.getUint32(i * 8) & COPIED_HI) !== 0;
  }

  private rtOffset(i: number): number {
    const hi = this.rtdv.getUint32(i * 8);
    const lo = this.rtdv.getUint32(i * 8 + 4);
    return (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
  }

  /** Decodes and validates the L2 entry of guest cluster `gc`. */
  private async l2Entry(gc: number): Promise<L2Entry> {
    // No promise per cluster when the table is cached (runs of clusters in convert).
    const hit = this.l2EntryCached(gc);
    if (hit) return hit;
    const l1i = Math.floor(gc / this.l2Entries);
    const l2 = this.l1Offset(l1i);
    const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
    return this.decodeL2(table, gc % this.l2Entries, l2);
  }

  /** l2Entry without I/O: null when the L2 table is not in the cache. */
  private l2EntryCached(gc: number): L2Entry | null {
    const l1i = Math.floor(gc / this.l2Entries);
    if (l1i >= this.hdr.l1Size) return { kind: "unallocated" };
    const l2 = this.l1Offset(l1i);
    if (l2 === 0) return { kind: "unallocated" };
    const table = this.l2Cache.get(l2);
    return table ? this.decodeL2(table, gc % this.l2Entries, l2) : null;
  }

  /**
   * For a read-only image without extended L2 entries, whose L2 table of guest cluster `gc` is
   * cached and "plain" (every entry valid, as decodeL2 checks it, and none compressed): how many
   * clusters from `gc` to the end of its table continue its run (the same kind; data clusters
   * contiguous on the host; zero clusters all with or all without a host cluster), itself included.
   * 0 otherwise: the caller looks up cluster by cluster. readInto and blockStatus cover a window
   * of 4 MiB with one lookup per run instead of decoding and checking each of its 64 clusters
   * twice. The table's entries are checked once, when it is first asked for; a table with one bad
   * entry is never plain, so the errors (and which lookups raise them) are decodeL2's.
   */
  private plainRun(gc: number): number {
    if (!this.readOnly || this.ext) return 0;
    const l1i = Math.floor(gc / this.l2Entries);
    if (l1i >= this.hdr.l1Size) return 0;
    const l2 = this.l1Offset(l1i);
    const table = l2 === 0 ? undefined : this.l2Cache.get(l2);
    if (table === undefined) return 0;
    let runs = this.l2Runs.get(table);
    if (runs === undefined) {
      runs = this.plainRuns(table);
      this.l2Runs.set(table, runs);
    }
    return runs === false ? 0 : runs[gc % this.l2Entries]!;
  }

  /** plainRun's counts for a whole table (see there), or false when one of its entries is not plain. */
  private plainRuns(table: Uint8Array): Uint32Array | false {
    const n = this.l2Entries;
    const cs = this.cs;
    // Per entry: its kind (0 unallocated, 1 zero without host, 2 zero with host, 3 data), its host.
    const kind = new Uint8Array(n);
    const host = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const hi = be32(table, i * 8);
      const lo = be32(table, i * 8 + 4);
      // decodeL2's checks, in the same terms (qcow2.txt "Standard Cluster Descriptor").
      if ((hi & COMPRESSED_HI) !== 0 || (lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0) return false;
      const h = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      if (h !== 0 && (h % cs !== 0 || h >= this.fileSize || this.metaName(h / cs) !== null)) return false;
      kind[i] = (lo & ZERO_LO) !== 0 ? (h === 0 ? 1 : 2) : h === 0 ? 0 : 3;
      host[i] = h;
    }
    const runs = new Uint32Array(n);
    runs[n - 1] = 1;
    for (let i = n - 2; i >= 0; i--)
      runs[i] = kind[i] === kind[i + 1] && (kind[i] !== 3 || host[i + 1] === host[i]! + cs) ? runs[i + 1]! + 1 : 1;
    return runs;
  }

  /**
   * The entry for allocation unit `u` (a cluster, or with extended L2 a
   * subcluster whose state comes from the entry's bitmap: bit x allocated,
   * bit 32+x reads as zero).
   */
  /**
   * unitEntry without a promise when it can: a cluster whose L2 table is cached (no extended L2).
   * readInto and blockStatus look up every cluster they cover, 16,384 per GiB of 64 KiB clusters;
   * an await per cluster is a microtask turn each.
   */
  private unitEntryNow(u: number): L2Entry | Promise<L2Entry> {
    return (this.ext ? null : this.l2EntryCached(u)) ?? this.unitEntry(u);
  }

  private async unitEntry(u: number): Promise<L2Entry> {
    if (!this.ext) return this.l2Entry(u);
    const gc = Math.floor(u / 32);
    const sc = u % 32;
    const e = await this.l2Entry(gc);
    if (e.kind === "compressed") return e;
    const [alloc, zero] = await this.extBitmap(gc);
    // decodeL2 has refused allocated subclusters without a host cluster.
    if ((alloc >>> sc) & 1 && e.kind === "normal")
      return { kind: "normal", host: e.host + sc * this.unit, copied: e.copied };
    return (zero >>> sc) & 1 ? { kind: "zero", host: 0, copied: false } : { kind: "unallocated" };
  }

  /** Extended L2: the [allocation, reads-as-zero] bitmap halves of guest cluster `gc` ([0, 0] when unmapped). */
  private async extBitmap(gc: number): Promise<[number, number]> {
    const l1i = Math.floor(gc / this.l2Entries);
    if (l1i >= this.hdr.l1Size) return [0, 0];
    const l2 = this.l1Offset(l1i);
    if (l2 === 0) return [0, 0];
    const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
    const idx = (gc % this.l2Entries) * 16 + 8;
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    return [dv.getUint32(idx + 4), dv.getUint32(idx)];
  }

  private decodeL2(table: Uint8Array, idx: number, l2: number, checkBitmap = true): L2Entry {
    const e8 = idx * this.stride;
    // Called per cluster looked up: the entry's words read from the bytes, a DataView only on the
    // rarer paths (extended L2 bitmaps, compressed descriptors).
    const hi = be32(table, e8);
    // With extended L2 entries bit 0 has no meaning (qcow2.txt "Extended L2 Entries").
    const lo = this.ext ? be32(table, e8 + 4) & ~ZERO_LO : be32(table, e8 + 4);
    const where = l2 + e8;
    const dv =
      this.ext || (hi & COMPRESSED_HI) !== 0 ? new DataView(table.buffer, table.byteOffset, table.byteLength) : null;
    if (dv && this.ext && checkBitmap) {
      const problem = bitmapProblem(hi, lo, dv.getUint32(e8 + 12), dv.getUint32(e8 + 8));
      if (problem !== null)
        throw new DiskError(
          DiskErrorCode.BAD_ENTRY,
          {
            format: F,
            offset: where + 8,
            entry: hex(hi, lo),
            bitmap: hex(dv.getUint32(e8 + 8), dv.getUint32(e8 + 12)),
          },
          problem,
        );
    }
    if (dv && (hi & COMPRESSED_HI) !== 0) {
      // Compressed cluster descriptor (qcow2.txt): x = 62 - (cluster_bits - 8).
      const v = dv.getBigUint64(e8);
      const x = BigInt(62 - (this.cb - 8));
      const host = Number(v & ((1n << x) - 1n));
      const sectors = Number((v >> x) & ((1n << BigInt(this.cb - 8)) - 1n)) + 1;
      const bytes = sectors * 512 - (host % 512);
      if (host === 0 || host >= this.fileSize)
        throw new DiskError(
          DiskErrorCode.OUT_OF_BOUNDS,
          { format: F, offset: where, host, fileSize: this.fileSize },
          "compressed cluster beyond end of file",
        );
      this.checkData(Math.floor(host / this.cs), Math.floor((host + bytes - 1) / this.cs), where);
      return { kind: "compressed", host, bytes };
    }
    const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
    const copied = (hi & COPIED_HI) !== 0;
    if ((lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0)
      throw new DiskError(
        DiskErrorCode.BAD_ENTRY,
        { format: F, offset: where, entry: hex(hi, lo) },
        "L2 entry has reserved bits set",
      );
    if (host !== 0) {
      if (host % this.cs !== 0)
        throw new DiskError(
          DiskErrorCode.BAD_ENTRY,
          { format: F, offset: where, host },
          "data cluster offset not cluster aligned",
        );
      if (host >= this.fileSize)
        throw new DiskError(
          DiskErrorCode.OUT_OF_BOUNDS,
          { format: F, offset: where, host, fileSize: this.fileSize },
          "data cluster beyond end of file",
        );
      this.checkData(host / this.cs, host / this.cs, where);
    }
    if ((lo & ZERO_LO) !== 0) return { kind: "zero", host, copied };
    if (host === 0) return { kind: "unallocated" };
    return { kind: "normal", host, copied };
  }

  private checkData(first: number, last: number, where: number): void {
    for (let c = first; c <= last; c++) {
      const meta = this.metaName(c);
      if (meta !== null)
        throw new DiskError(
          DiskErrorCode.METADATA_OVERLAP,
          { format: F, offset: where, host: c * this.cs, overlaps: meta },
          `data cluster overlaps the ${meta}`,
        );
    }
  }

  /** Writes the L2 entry of `gc`; with extended L2 also its bitmap (`sub` = [alloc, zero]; kept when absent). */
  private async writeL2Entry(gc: number, l2: number, hi: number, lo: number, sub?: [number, number]): Promise<void> {
    const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
    const off = (gc % this.l2Entries) * this.stride;
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    setEntry(dv, off, hi, lo);
    if (this.ext && sub) setEntry(dv, off + 8, sub[1], sub[0]);
    await this.tableWrite("l2", l2, table, off, off + this.stride);
  }

  /**
   * Writes bytes [s, e) of a table (an L2 table, a refcount block, the L1 or
   * refcount table) at host offset `host`, or records them for drainMetadata().
   */
  private async tableWrite(kind: "l2" | "rb" | "l1" | "rt", host: number, table: Uint8Array, s: number, e: number) {
    const wb = this.wb;
    if (!wb) return this.metaWrite(host + s, table.subarray(s, e));
    const widen = (r: [number, number] | null | undefined): [number, number] =>
      r ? [Math.min(r[0], s), Math.max(r[1], e)] : [s, e];
    if (kind === "l2") wb.l2.set(host, widen(wb.l2.get(host)));
    else if (kind === "rb") wb.rb.set(host, widen(wb.rb.get(host)));
    else if (kind === "l1") wb.l1 = widen(wb.l1);
    else wb.rt = widen(wb.rt);
    if (host + e > this.fileSize) this.fileSize = host + e;
    // Bounded memory: the pinned tables are written out (in order) past 256 of them.
    if (wb.l2.size + wb.rb.size > 256) await this.drainMetadata();
  }

  /**
   * Turns metadata write-behind on for an image being filled with new data
   * (convert's target): table updates stay in memory and flush() or close()
   * writes them once, each changed range in one write, instead of a few
   * small writes per data write. A process killed before that leaves only
   * data clusters nothing references (qemu-img check: clean); the order of
   * drainMetadata() keeps every stop after it to leaks at most. Refcount
   * decrements, snapshots, resize and check write what is pending first.
   */
  deferMetadata(): void {
    this.checkWritable();
    this.wb ??= { rb: new Map(), l2: new Map(), rt: null, l1: null };
  }

  /** Runs `fn` with write-behind off (pending tables written first), for operations that order their own writes. */
  private async writeThrough<T>(fn: () => Promise<T>): Promise<T> {
    await this.drainMetadata();
    const wb = this.wb;
    this.wb = null;
    try {
      return await fn();
    } finally {
      this.wb = wb;
    }
  }

  /**
   * Writes the pending table ranges: refcount blocks (new clusters counted),
   * then the refcount table (new blocks hooked in), then L2 tables, then the
   * L1 table, a flush between the groups. A stop anywhere leaves references
   * only to clusters whose refcount is on disk, and refcounts without a
   * reference at worst (leaks), the order QEMU's metadata caches keep
   * (qcow2-cache.c: a cache's dependency is flushed first).
   */
  private async drainMetadata(): Promise<void> {
    const wb = this.wb;
    if (!wb || (wb.rb.size === 0 && wb.l2.size === 0 && !wb.rt && !wb.l1)) return;
    const write = async (m: Map<number, [number, number]>, cache: Map<number, Uint8Array>) => {
      for (const [host, [s, e]] of [...m].sort((a, b) => a[0] - b[0]))
        await this.metaWrite(host + s, (this.lazyPending?.get(host) ?? cache.get(host)!).subarray(s, e));
      m.clear();
    };
    if (wb.rb.size > 0) {
      await write(wb.rb, this.rbCache);
      await this.store.flush();
    }
    if (wb.rt) {
      await this.metaWrite(this.hdr.refcountTableOffset + wb.rt[0], this.reftable.subarray(wb.rt[0], wb.rt[1]));
      wb.rt = null;
      await this.store.flush();
    }
    if (wb.l2.size > 0) {
      await write(wb.l2, this.l2Cache);
      await this.store.flush();
    }
    if (wb.l1) {
      await this.metaWrite(this.hdr.l1TableOffset + wb.l1[0], this.l1.subarray(wb.l1[0], wb.l1[1]));
      wb.l1 = null;
    }
  }

  private async metaWrite(off: number, data: Uint8Array): Promise<void> {
    await this.store.write(off, data);
    if (off + data.length > this.fileSize) this.fileSize = off + data.length;
  }

  // ----------------------------------------------------------- refcounts

  private readRc(block: Uint8Array, i: number): number {
    const bits = this.refBits;
    if (bits < 8) {
      const bitPos = i * bits;
      return (block[bitPos >> 3]! >> (bitPos & 7)) & ((1 << bits) - 1);
    }
    // Read per cluster allocated or looked up (findFree, incRefcounts): the common widths from the
    // bytes (big-endian, qcow2.txt "Host cluster management"), a DataView only for 64-bit entries.
    if (bits === 8) return block[i]!;
    if (bits === 16) return (block[2 * i]! << 8) | block[2 * i + 1]!;
    if (bits === 32) return be32(block, 4 * i);
    const v = new DataView(block.buffer, block.byteOffset, block.byteLength).getBigUint64(i * 8);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  /** Sets entry `i` and returns the [start, end) byte range that changed. */
  private writeRc(block: Uint8Array, i: number, v: number): [number, number] {
    const bits = this.refBits;
    if (bits < 8) {
      const bitPos = i * bits;
      const mask = ((1 << bits) - 1) << (bitPos & 7);
      const b = bitPos >> 3;
      block[b] = (block[b]! & ~mask) | ((v << (bitPos & 7)) & mask);
      return [b, b + 1];
    }
    const w = bits / 8;
    if (bits === 8) block[i] = v;
    else if (bits === 16) {
      block[2 * i] = v >>> 8;
      block[2 * i + 1] = v;
    } else if (bits === 32) {
      block[4 * i] = v >>> 24;
      block[4 * i + 1] = v >>> 16;
      block[4 * i + 2] = v >>> 8;
      block[4 * i + 3] = v;
    } else new DataView(block.buffer, block.byteOffset, block.byteLength).setBigUint64(i * 8, BigInt(v));
    return [i * w, i * w + w];
  }

  private maxRefcount(): number {
    return this.refBits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.refBits - 1;
  }

  async getRefcount(cluster: number): Promise<number> {
    return this.refcountCached(cluster) ?? this.getRefcountSlow(cluster);
  }

  /** getRefcount without I/O: undefined when the refcount block is not in memory. */
  private refcountCached(cluster: number): number | undefined {
    const ti = Math.floor(cluster / this.rbEntries);
    if (ti >= this.reftable.length / 8) return 0;
    const b = this.rtOffset(ti);
    if (b === 0) return 0;
    const block = this.lazyPending?.get(b) ?? this.rbCache.get(b);
    return block ? this.readRc(block, cluster % this.rbEntries) : undefined;
  }

  private async getRefcountSlow(cluster: number): Promise<number> {
    const ti = Math.floor(cluster / this.rbEntries);
    if (ti >= this.reftable.length / 8) return 0;
    const b = this.rtOffset(ti);
    if (b === 0) return 0;
    const block = await this.loadRb(b);
    return this.readRc(block, cluster % this.rbEntries);
  }

  private async updateRefcount(cluster: number, delta: number): Promise<void> {
    // Write-behind writes refcounts before references: a decrement must follow the reference's removal.
    if (delta < 0) await this.drainMetadata();
    const ti = Math.floor(cluster / this.rbEntries);
    if (ti >= this.reftable.length / 8) await this.growReftable(ti);
    let b = this.rtOffset(ti);
    if (b === 0) b = await this.allocRefblock(ti);
    const block = await this.loadRb(b);
    const i = cluster % this.rbEntries;
    const v = this.readRc(block, i) + delta;
    if (v < 0)
      throw new DiskError(DiskErrorCode.CORRUPT, { format: F, offset: b, cluster }, "refcount would drop below zero");
    if (v > this.maxRefcount())
      throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: b, cluster }, "refcount overflow");
    const [s, e] = this.writeRc(block, i, v);
    await this.rcWrite(b, block, s, e);
  }

  private async loadRb(host: number): Promise<Uint8Array> {
    return this.lazyPending?.get(host) ?? (await this.loadCached(this.rbCache, REFBLOCK_CACHE, host));
  }

  /** Writes bytes [s, e) of the refcount block at `host`, or defers them (lazy refcounts: dirty bit first). */
  private async rcWrite(host: number, block: Uint8Array, s: number, e: number): Promise<void> {
    if (!this.lazyPending) return this.tableWrite("rb", host, block, s, e);
    if (!this.dirty) {
      this.hdr = { ...this.hdr, incompatibleFeatures: this.hdr.incompatibleFeatures | (1n << BigInt(Incompat.DIRTY)) };
      await this.writeHeader();
      await this.store.flush();
    }
    this.lazyPending.set(host, block);
  }

  /** Lazy refcounts: writes the deferred refcount blocks, then clears the dirty bit (QEMU's qcow2_mark_clean). */
  private async markClean(): Promise<void> {
    if (!this.lazyPending || !this.dirty) return;
    for (const [host, block] of this.lazyPending) await this.metaWrite(host, block);
    this.lazyPending.clear();
    await this.store.flush();
    this.hdr = { ...this.hdr, incompatibleFeatures: this.hdr.incompatibleFeatures & ~(1n << BigInt(Incompat.DIRTY)) };
    await this.writeHeader();
    await this.store.flush();
  }

  /** Finds `n` contiguous clusters with refcount zero at or after nextFree. */
  private async findFree(n: number): Promise<number> {
    let start = this.nextFree;
    for (let i = 0; i < n; ) {
      const rc = this.refcountCached(start + i) ?? (await this.getRefcountSlow(start + i));
      if (rc !== 0 || this.metaName(start + i) !== null) {
        start = start + i + 1;
        i = 0;
      } else i++;
    }
    return start;
  }

  /** Allocates `n` contiguous clusters (refcount 1 each, written before use). Returns the host byte offset. */
  private async allocClusters(n: number): Promise<number> {
    const start = await this.findFree(n);
    this.nextFree = start + n;
    await this.incRefcounts(start, n);
    return start * this.cs;
  }

  /** Raises the refcounts of clusters [start, start+n) by one, one write per refcount block. */
  private async incRefcounts(start: number, n: number): Promise<void> {
    let c = start;
    const end = start + n;
    while (c < end) {
      const ti = Math.floor(c / this.rbEntries);
      if (ti >= this.reftable.length / 8) await this.growReftable(ti);
      let b = this.rtOffset(ti);
      if (b === 0) b = await this.allocRefblock(ti);
      const block = await this.loadRb(b);
      const stop = Math.min(end, (ti + 1) * this.rbEntries);
      let lo = Number.POSITIVE_INFINITY;
      let hi = 0;
      for (; c < stop; c++) {
        const i = c % this.rbEntries;
        const v = this.readRc(block, i) + 1;
        if (v > this.maxRefcount())
          throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: b, cluster: c }, "refcount overflow");
        const [s, e] = this.writeRc(block, i, v);
        lo = Math.min(lo, s);
        hi = Math.max(hi, e);
      }
      await this.rcWrite(b, block, lo, hi);
    }
  }

  /** Creates the refcount block for reftable index `ti`. */
  private async allocRefblock(ti: number): Promise<number> {
    const c = await this.findFree(1);
    this.nextFree = c + 1;
    const selfCovered = Math.floor(c / this.rbEntries) === ti;
    // The block's own refcount is recorded before the table references it.
    if (!selfCovered) await this.updateRefcount(c, 1);
    const block = new Uint8Array(this.cs);
    if (selfCovered) this.writeRc(block, c % this.rbEntries, 1);
    this.rbCache.set(c * this.cs, block);
    await this.tableWrite("rb", c * this.cs, block, 0, this.cs);
    // The block must be on disk before the table entry naming it (QEMU's alloc_refcount_block flushes
    // here too): a disk that reorders the two writes would otherwise leave an entry past the end of the file.
    if (!this.wb) await this.store.flush();
    this.rbClusters.add(c);
    const [hi, lo] = encodeOffset(c * this.cs, 0);
    setEntry(this.rtdv, ti * 8, hi, lo);
    await this.tableWrite("rt", this.hdr.refcountTableOffset, this.reftable, ti * 8, ti * 8 + 8);
    return c * this.cs;
  }

  /** Replaces the refcount table by a larger one covering index `needed`. */
  private async growReftable(needed: number): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.growReftable(needed));
    const cs = this.cs;
    const perCluster = cs / 8;
    const oldEntries = this.reftable.length / 8;
    let newEntries = Math.max(needed + 1, oldEntries * 2);
    for (;;) {
      const clusters = Math.ceil(newEntries / perCluster);
      if (clusters * cs > MAX_REFTABLE_BYTES)
        throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: 56 }, "refcount table would exceed 8 MiB");
      newEntries = clusters * perCluster;
      const start = await this.findFree(clusters);
      const table = new Uint8Array(clusters * cs);
      table.set(this.reftable);
      const tdv = new DataView(table.buffer);
      const newBlocks = new Map<number, Uint8Array>(); // ti -> block content
      const blockAt = new Map<number, number>(); // ti -> cluster
      const allocated: number[] = [];
      for (let i = 0; i < clusters; i++) allocated.push(start + i);
      let next = start + clusters;
      let tooSmall = false;
      for (let k = 0; k < allocated.length; k++) {
        const c = allocated[k]!;
        const t = Math.floor(c / this.rbEntries);
        if (t >= newEntries) {
          tooSmall = true;
          break;
        }
        const hasOld = t < oldEntries && this.rtOffset(t) !== 0;
        if (!hasOld && !blockAt.has(t)) {
          while ((await this.getRefcount(next)) !== 0 || this.metaName(next) !== null) next++;
          blockAt.set(t, next);
          newBlocks.set(t, new Uint8Array(cs));
          allocated.push(next);
          next++;
        }
      }
      if (tooSmall) {
        newEntries *= 2;
        continue;
      }
      this.nextFree = next;
      // Refcounts of the new clusters: in new blocks (written whole) or in existing blocks (written through).
      for (const c of allocated) {
        const t = Math.floor(c / this.rbEntries);
        const nb = newBlocks.get(t);
        if (nb) this.writeRc(nb, c % this.rbEntries, 1);
        else await this.updateRefcount(c, 1);
      }
      for (const [t, content] of newBlocks) {
        const c = blockAt.get(t)!;
        await this.metaWrite(c * cs, content);
        this.rbClusters.add(c);
        this.rbCache.set(c * cs, content);
        const [hi, lo] = encodeOffset(c * cs, 0);
        setEntry(tdv, t * 8, hi, lo);
      }
      await this.metaWrite(start * cs, table);
      await this.store.flush();
      const oldOffset = this.hdr.refcountTableOffset;
      const oldClusters = this.hdr.refcountTableClusters;
      this.reftable = table;
      this.rtdv = tdv;
      this.hdr = { ...this.hdr, refcountTableOffset: start * cs, refcountTableClusters: clusters };
      await this.writeHeader();
      await this.store.flush();
      for (let i = 0; i < oldClusters; i++) await this.updateRefcount(oldOffset / cs + i, -1);
      return;
    }
  }

  // ---------------------------------------------------------------- read

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(F, offset, length, this.hdr.size);
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen();
    checkRange(F, offset, buf.length, this.hdr.size);
    const us = this.unit;
    let pos = 0;
    while (pos < buf.length) {
      const guest = offset + pos;
      const u = Math.floor(guest / us);
      const inOff = guest - u * us;
      let n = Math.min(us - inOff, buf.length - pos);
      const e0 = this.unitEntryNow(u);
      const e = e0 instanceof Promise ? await e0 : e0;
      if (e.kind === "normal") {
        const h = this.hostRun(u, e.host, inOff, buf.length - pos);
        n = typeof h === "number" ? h : await h;
        await readFull(this.store, e.host + inOff, buf.subarray(pos, pos + n));
      } else if (e.kind === "compressed") {
        const data = await this.decompress(e);
        const inCluster = guest - Math.floor(guest / this.cs) * this.cs;
        buf.set(data.subarray(inCluster, inCluster + n), pos);
      } else {
        await this.readCluster(e, guest, inOff, buf.subarray(pos, pos + n));
      }
      pos += n;
    }
  }

  /**
   * readInto for several ranges: the runs of normal clusters are looked up first (convert's block
   * status has just loaded their tables), then those that follow each other in the file, in file
   * order, are read with one vectored read each (readFullv: a `preadv`), whatever their guest order;
   * the rest (compressed, zero, unallocated) through readInto. A qemu-img-written image stores
   * clusters in guest order, so a convert window's extents with holes between are one run of the file.
   */
  async readIntoMany(parts: readonly ReadPart[]): Promise<void> {
    this.checkOpen();
    for (const p of parts) checkRange(F, p.offset, p.buf.length, this.hdr.size);
    const us = this.unit;
    const runs: { host: number; buf: Uint8Array }[] = [];
    const rest: ReadPart[] = [];
    for (const { offset, buf } of parts) {
      let pos = 0;
      let restFrom = -1;
      while (pos < buf.length) {
        const guest = offset + pos;
        const u = Math.floor(guest / us);
        const inOff = guest - u * us;
        let n = Math.min(us - inOff, buf.length - pos);
        const e0 = this.unitEntryNow(u);
        const e = e0 instanceof Promise ? await e0 : e0;
        if (e.kind === "normal") {
          const h = this.hostRun(u, e.host, inOff, buf.length - pos);
          n = typeof h === "number" ? h : await h;
          runs.push({ host: e.host + inOff, buf: buf.subarray(pos, pos + n) });
        } else {
          // Non-normal units up to the next normal one: one readInto.
          if (restFrom < 0) restFrom = pos;
          pos += n;
          continue;
        }
        if (restFrom >= 0) rest.push({ offset: offset + restFrom, buf: buf.subarray(restFrom, pos) });
        restFrom = -1;
        pos += n;
      }
      if (restFrom >= 0) rest.push({ offset: offset + restFrom, buf: buf.subarray(restFrom) });
    }
    runs.sort((a, b) => a.host - b.host);
    const reads: Promise<unknown>[] = [];
    for (let i = 0; i < runs.length; ) {
      const group = [runs[i]!.buf];
      let end = runs[i]!.host + runs[i]!.buf.length;
      let j = i + 1;
      // Without a vectored read in the store, each run is read on its own, all at once (as readInto's).
      for (; this.store.readv && j < runs.length && runs[j]!.host === end; j++) {
        group.push(runs[j]!.buf);
        end += runs[j]!.buf.length;
      }
      reads.push(readFullv(this.store, runs[i]!.host, group));
      i = j;
    }
    for (const p of rest) reads.push(this.readInto(p.offset, p.buf));
    await Promise.all(reads);
  }

  /**
   * Bytes from `inOff` into unit `u` (a normal entry at `host`), at most `max`, that follow each
   * other on the host: a plain table's run at once, then across tables one lookup per run
   * (plainRun). readInto and readIntoMany read them in one piece. A number when every table it
   * needs is cached (no promise hop: convert starts a window's reads before it writes the last
   * one), else once the next table is loaded.
   */
  private hostRun(u: number, host: number, inOff: number, max: number): number | Promise<number> {
    const r = this.plainRun(u);
    const us = this.unit;
    return this.hostRunOn(u, host, u + Math.max(r, 1), Math.min(us - inOff + Math.max(r - 1, 0) * us, max), max);
  }

  /** hostRun from unit `next` on, `n` bytes found so far (`known`: next's entry, once loaded). */
  private hostRunOn(
    u: number,
    host: number,
    next: number,
    n: number,
    max: number,
    known?: L2Entry,
  ): number | Promise<number> {
    const us = this.unit;
    let entry = known;
    while (n < max) {
      const f = entry ?? this.unitEntryNow(next);
      entry = undefined;
      if (f instanceof Promise) return f.then((e) => this.hostRunOn(u, host, next, n, max, e));
      if (f.kind !== "normal" || f.host !== host + (next - u) * us) break;
      const fr = Math.max(this.plainRun(next), 1);
      n = Math.min(n + fr * us, max);
      next += fr;
    }
    return n;
  }

  /** Fills `dst` with the content of one guest cluster from `inOff`, for a non-normal entry. */
  private async readCluster(e: L2Entry, guest: number, inOff: number, dst: Uint8Array): Promise<void> {
    switch (e.kind) {
      case "unallocated":
        return this.readBacking(guest, dst);
      case "zero":
        dst.fill(0);
        return;
      case "compressed": {
        const data = await this.decompress(e);
        dst.set(data.subarray(inOff, inOff + dst.length));
        return;
      }
      case "normal":
        await readFull(this.store, e.host + inOff, dst);
    }
  }

  private async readBacking(guest: number, dst: Uint8Array): Promise<void> {
    const b = this.backing;
    if (!b || guest >= b.size()) {
      dst.fill(0);
      return;
    }
    const n = Math.min(dst.length, b.size() - guest);
    await b.readInto(guest, dst.subarray(0, n));
    dst.fill(0, n);
  }

  private async decompress(e: { host: number; bytes: number }): Promise<Uint8Array> {
    const avail = Math.min(e.bytes, this.fileSize - e.host);
    const comp = new Uint8Array(avail);
    await readFull(this.store, e.host, comp);
    const out = inflateExact(comp, this.cs);
    if (!out)
      throw new DiskError(
        DiskErrorCode.BAD_COMPRESSED_DATA,
        { format: F, offset: e.host, bytes: e.bytes },
        "compressed cluster does not inflate to one cluster",
      );
    return out;
  }

  private async clusterContent(e: L2Entry, gc: number): Promise<Uint8Array> {
    const buf = new Uint8Array(this.cs);
    const guest = gc * this.cs;
    const n = Math.min(this.cs, this.hdr.size - guest);
    await this.readCluster(e, guest, 0, buf.subarray(0, n));
    return buf;
  }

  // --------------------------------------------------------------- write

  private checkOpen(): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  /** Returns the host offset of the (exclusively owned) L2 table for L1 index `l1i`, allocating it if needed. */
  private async writableL2(l1i: number): Promise<number> {
    const cur = this.l1Offset(l1i);
    if (cur !== 0) {
      if (this.l1Copied(l1i)) return cur;
      const rc = await this.getRefcount(cur / this.cs);
      if (rc === 1) {
        await this.writeL1Entry(l1i, cur);
        return cur;
      }
      return this.copyL2(l1i, cur);
    }
    const host = await this.allocClusters(1);
    const table = new Uint8Array(this.cs);
    this.l2Cache.set(host, table);
    await this.tableWrite("l2", host, table, 0, this.cs);
    this.l2Clusters.add(host / this.cs);
    await this.writeL1Entry(l1i, host);
    return host;
  }

  /**
   * Copy-on-write of an L2 table shared with an internal snapshot. Refcounts
   * count the L1 tables that reach a cluster (as QEMU's snapshot code keeps
   * them), so the data clusters keep theirs: only the table moves. The copy
   * is written, the L1 entry points to it, then the old table loses the
   * active L1's reference.
   */
  private async copyL2(l1i: number, old: number): Promise<number> {
    const table = (await this.loadCached(this.l2Cache, L2_TABLE_CACHE, old)).slice();
    const host = await this.allocClusters(1);
    await this.metaWrite(host, table);
    this.l2Clusters.add(host / this.cs);
    this.l2Cache.set(host, table);
    await this.writeL1Entry(l1i, host);
    await this.updateRefcount(old / this.cs, -1);
    return host;
  }

  private async writeL1Entry(l1i: number, host: number): Promise<void> {
    const [hi, lo] = encodeOffset(host, host === 0 ? 0 : COPIED_HI);
    setEntry(this.l1dv, l1i * 8, hi, lo);
    await this.tableWrite("l1", this.hdr.l1TableOffset, this.l1, l1i * 8, l1i * 8 + 8);
  }

  /** Drops the reference an old L2 entry held (after the entry was replaced). */
  private async release(e: L2Entry): Promise<void> {
    if (e.kind === "normal" || (e.kind === "zero" && e.host !== 0)) await this.updateRefcount(e.host / this.cs, -1);
    else if (e.kind === "compressed") {
      const first = Math.floor(e.host / this.cs);
      const last = Math.floor((e.host + e.bytes - 1) / this.cs);
      for (let c = first; c <= last; c++) await this.updateRefcount(c, -1);
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(F, offset, data.length, this.hdr.size);
    let pos = 0;
    while (pos < data.length) {
      const guest = offset + pos;
      const gc = Math.floor(guest / this.cs);
      const inOff = guest - gc * this.cs;
      if (inOff === 0 && data.length - pos >= 2 * this.cs) {
        const k = await this.runLength(gc, Math.floor((data.length - pos) / this.cs));
        if (k.count >= 2) {
          const bytes = k.count * this.cs;
          if (k.fresh) await this.writeFreshRun(gc, k.count, data.subarray(pos, pos + bytes));
          else await this.metaWrite(k.host, data.subarray(pos, pos + bytes));
          pos += bytes;
          continue;
        }
      }
      const n = Math.min(this.cs - inOff, data.length - pos);
      await this.writeCluster(gc, inOff, data.subarray(pos, pos + n));
      pos += n;
    }
  }

  /**
   * Counts whole clusters from `gc` (at most `max`, within one L2 table) that can be written
   * in one piece: either all unmapped (fresh allocation) or all mapped in place, contiguously.
   */
  private async runLength(gc: number, max: number): Promise<{ count: number; fresh: boolean; host: number }> {
    const first = this.l2EntryCached(gc) ?? (await this.l2Entry(gc));
    const fresh = first.kind === "unallocated" || (first.kind === "zero" && first.host === 0);
    const inPlace = first.kind === "normal" && first.copied;
    // Extended L2: in place only when every subcluster is allocated already (the bitmap stays as it is).
    const whole = async (g: number) => !this.ext || (await this.extBitmap(g))[0] === ALL_SUB;
    if ((!fresh && !inPlace) || (inPlace && !(await whole(gc)))) return { count: 0, fresh, host: 0 };
    const host = inPlace ? (first as { host: number }).host : 0;
    const limit = Math.min(max, this.l2Entries - (gc % this.l2Entries), 512);
    let k = 1;
    for (; k < limit; k++) {
      // No promise per cluster when the table is cached (the whole run is in one table).
      const e = this.l2EntryCached(gc + k) ?? (await this.l2Entry(gc + k));
      if (fresh && !(e.kind === "unallocated" || (e.kind === "zero" && e.host === 0))) break;
      if (inPlace && !(e.kind === "normal" && e.copied && e.host === host + k * this.cs && (await whole(gc + k))))
        break;
    }
    return { count: k, fresh, host };
  }

  /** Writes `count` whole unmapped clusters: allocate, write data, then map them with one L2 write. */
  private async writeFreshRun(gc: number, count: number, data: Uint8Array): Promise<void> {
    const l2 = await this.writableL2(Math.floor(gc / this.l2Entries));
    const host = await this.allocClusters(count);
    await this.metaWrite(host, data);
    const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const idx = gc % this.l2Entries;
    const st = this.stride;
    for (let i = 0; i < count; i++) {
      const [hi, lo] = encodeOffset(host + i * this.cs, COPIED_HI);
      setEntry(dv, (idx + i) * st, hi, lo);
      if (this.ext) setEntry(dv, (idx + i) * st + 8, 0, ALL_SUB);
    }
    await this.tableWrite("l2", l2, table, idx * st, (idx + count) * st);
  }

  private async writeCluster(gc: number, inOff: number, data: Uint8Array): Promise<void> {
    if (this.ext) return this.writeClusterExt(gc, inOff, data);
    const e = await this.l2Entry(gc);
    if (e.kind === "normal" && e.copied) {
      await this.metaWrite(e.host + inOff, data);
      return;
    }
    let content: Uint8Array;
    if (data.length === this.cs) content = data;
    else {
      content = await this.clusterContent(e, gc);
      content.set(data, inOff);
    }
    const l1i = Math.floor(gc / this.l2Entries);
    const l2 = await this.writableL2(l1i);
    if (e.kind === "zero" && e.host !== 0 && e.copied) {
      // Preallocated zero cluster: fill it in place, then clear the zero flag.
      await this.metaWrite(e.host, content);
      const [hi, lo] = encodeOffset(e.host, COPIED_HI);
      await this.writeL2Entry(gc, l2, hi, lo);
      return;
    }
    const host = await this.allocClusters(1);
    await this.metaWrite(host, content);
    const [hi, lo] = encodeOffset(host, COPIED_HI);
    await this.writeL2Entry(gc, l2, hi, lo);
    await this.release(e);
  }

  /**
   * Extended L2 write into one guest cluster (qcow2.txt "Extended L2
   * Entries"): only the subclusters touched are written and marked allocated
   * (their zero bits cleared); a partly written subcluster that was not
   * allocated is completed from what it read as before (backing file or
   * zeros), as QEMU's copy-on-write does. The cluster is written in place
   * when owned (COPIED), else a new one is allocated: a compressed cluster
   * becomes a normal one with every subcluster allocated, a shared one has
   * its allocated subclusters copied. Data before the entry, entry before
   * the old cluster is released.
   */
  private async writeClusterExt(gc: number, inOff: number, data: Uint8Array): Promise<void> {
    const e = await this.l2Entry(gc);
    const cs = this.cs;
    const us = this.unit;
    const l2 = await this.writableL2(Math.floor(gc / this.l2Entries));
    if (e.kind === "compressed") {
      const content = await this.clusterContent(e, gc);
      content.set(data, inOff);
      const host = await this.allocClusters(1);
      await this.metaWrite(host, content);
      const [hi, lo] = encodeOffset(host, COPIED_HI);
      await this.writeL2Entry(gc, l2, hi, lo, [ALL_SUB, 0]);
      await this.release(e);
      return;
    }
    const [alloc, zero] = await this.extBitmap(gc);
    const s0 = Math.floor(inOff / us);
    const s1 = Math.floor((inOff + data.length - 1) / us);
    const touched = subMask(s0, s1);
    const old = e.kind === "normal" ? e.host : 0;
    const inPlace = e.kind === "normal" && e.copied;
    const edgeOk = (s: number, covered: boolean) => covered || (inPlace && ((alloc >>> s) & 1) === 1);
    if (inPlace && edgeOk(s0, inOff % us === 0) && edgeOk(s1, (inOff + data.length) % us === 0)) {
      await this.metaWrite(old + inOff, data);
    } else {
      // The touched subclusters, whole: old content where the write does not cover them.
      const a = s0 * us;
      const span = new Uint8Array((s1 - s0 + 1) * us);
      for (const s of s0 === s1 ? [s0] : [s0, s1]) {
        const from = s * us;
        if (from >= inOff && from + us <= inOff + data.length) continue;
        const dst = span.subarray(from - a, from - a + us);
        if ((alloc >>> s) & 1) await readFull(this.store, old + from, dst);
        else if (!((zero >>> s) & 1)) await this.readBacking(gc * cs + from, dst);
      }
      span.set(data, inOff - a);
      let host = old;
      if (!inPlace) {
        host = await this.allocClusters(1);
        // A shared cluster: its other allocated subclusters move along.
        for (let s = 0; s < 32 && old !== 0; s++) {
          if (!((alloc >>> s) & 1) || (s >= s0 && s <= s1)) continue;
          const buf = new Uint8Array(us);
          await readFull(this.store, old + s * us, buf);
          await this.metaWrite(host + s * us, buf);
        }
      }
      await this.metaWrite(host + a, span);
      if (!inPlace || (alloc & touched) >>> 0 !== touched) {
        const [hi, lo] = encodeOffset(host, COPIED_HI);
        await this.writeL2Entry(gc, l2, hi, lo, [(alloc | touched) >>> 0, (zero & ~touched) >>> 0]);
      }
      if (!inPlace) await this.release(e);
      return;
    }
    if ((alloc & touched) >>> 0 !== touched) {
      const [hi, lo] = encodeOffset(old, COPIED_HI);
      await this.writeL2Entry(gc, l2, hi, lo, [(alloc | touched) >>> 0, (zero & ~touched) >>> 0]);
    }
  }

  /** Does the cluster read as all zeros without looking at data (zero flag, or unallocated without backing)? */
  private readsZero(e: L2Entry): boolean {
    return e.kind === "zero" || (e.kind === "unallocated" && this.backing === null);
  }

  async writeZeroes(offset: number, length: number, _options: { mayUnmap?: boolean } = {}): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.writeZeroes(offset, length, _options));
    this.checkWritable();
    checkRange(F, offset, length, this.hdr.size);
    await this.zeroOrDiscard(offset, length, "zero");
  }

  async discard(offset: number, length: number): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.discard(offset, length));
    this.checkWritable();
    checkRange(F, offset, length, this.hdr.size);
    await this.zeroOrDiscard(offset, length, "discard");
  }

  private async zeroOrDiscard(offset: number, length: number, mode: "zero" | "discard"): Promise<void> {
    if (this.ext) return this.zeroOrDiscardExt(offset, length, mode);
    const v3 = this.hdr.version === 3;
    for (const { gc, inOff, n, whole } of this.clusterSpans(offset, length)) {
      const e = await this.l2Entry(gc);
      if (!whole) {
        // Partial cluster: discard does nothing; zeroing writes zeros unless it already reads as zero.
        if (mode === "zero" && !this.readsZero(e)) await this.writeCluster(gc, inOff, new Uint8Array(n));
      } else if (mode === "discard" || (!v3 && this.backing === null)) {
        // Unmap: the cluster becomes unallocated (backing data or zeros show through).
        if (e.kind !== "unallocated") await this.setEntryAndRelease(gc, e, 0);
      } else if (v3) {
        // v3 zero flag (qcow2.txt "Standard Cluster Descriptor" bit 0).
        if (!(e.kind === "zero" && e.host === 0) && !(e.kind === "unallocated" && this.backing === null))
          await this.setEntryAndRelease(gc, e, ZERO_LO);
      } else if (!this.readsZero(e)) {
        // v2 over a backing file: zeros must be stored.
        await this.writeCluster(gc, 0, new Uint8Array(this.cs));
      }
    }
  }

  /** [offset, offset+length) cut at guest cluster boundaries (the last cluster ends at the disk's size). */
  private *clusterSpans(
    offset: number,
    length: number,
  ): Generator<{ gc: number; inOff: number; n: number; whole: boolean }> {
    const end = offset + length;
    for (let pos = offset; pos < end; ) {
      const gc = Math.floor(pos / this.cs);
      const inOff = pos - gc * this.cs;
      const clusterEnd = Math.min((gc + 1) * this.cs, this.hdr.size);
      const n = Math.min(clusterEnd, end) - pos;
      yield { gc, inOff, n, whole: inOff === 0 && pos + n === clusterEnd };
      pos += n;
    }
  }

  /**
   * Extended L2 zero/discard. A whole cluster: discard unmaps it (entry and
   * bitmap cleared), zeroing unmaps it with every zero bit set. Within a
   * cluster, zeroing sets the zero bits of the whole subclusters covered
   * (clearing their allocation bits; the host cluster stays) and writes
   * zeros into partly covered ones; discard leaves partial clusters alone.
   */
  private async zeroOrDiscardExt(offset: number, length: number, mode: "zero" | "discard"): Promise<void> {
    const us = this.unit;
    for (const { gc, inOff, n, whole } of this.clusterSpans(offset, length)) {
      const e = await this.l2Entry(gc);
      const [alloc, zero] = await this.extBitmap(gc);
      const l2i = Math.floor(gc / this.l2Entries);
      if (whole) {
        const want: [number, number] = mode === "zero" && this.backing !== null ? [0, ALL_SUB] : [0, 0];
        if (e.kind !== "unallocated" || alloc !== want[0] || zero !== want[1]) {
          if (!(mode === "zero" && e.kind === "unallocated" && alloc === 0 && this.backing === null)) {
            await this.writeL2Entry(gc, await this.writableL2(l2i), 0, 0, want);
            await this.release(e);
          }
        }
      } else if (mode === "zero") {
        const endOff = inOff + n;
        const s0 = Math.ceil(inOff / us);
        const s1 = Math.floor(endOff / us) - 1; // whole subclusters s0..s1
        const readsZero = (s: number) =>
          e.kind !== "compressed" && (((zero >>> s) & 1) === 1 || (((alloc >>> s) & 1) === 0 && this.backing === null));
        if (e.kind === "compressed") await this.writeCluster(gc, inOff, new Uint8Array(n));
        else {
          // Partly covered subclusters at either edge get zeros written.
          const headEnd = Math.min(endOff, s0 * us);
          if (headEnd > inOff && !readsZero(Math.floor(inOff / us)))
            await this.writeClusterExt(gc, inOff, new Uint8Array(headEnd - inOff));
          const tailStart = Math.max(headEnd, (s1 + 1) * us);
          if (endOff > tailStart && !readsZero(s1 + 1))
            await this.writeClusterExt(gc, tailStart, new Uint8Array(endOff - tailStart));
          if (s1 >= s0) {
            const m = subMask(s0, s1);
            const [a, z] = await this.extBitmap(gc);
            if ((z & m) >>> 0 !== m) {
              const e2 = await this.l2Entry(gc);
              const host = e2.kind === "normal" ? e2.host : 0;
              const [hi, lo] =
                host === 0 ? [0, 0] : encodeOffset(host, e2.kind === "normal" && e2.copied ? COPIED_HI : 0);
              await this.writeL2Entry(gc, await this.writableL2(l2i), hi, lo, [(a & ~m) >>> 0, (z | m) >>> 0]);
            }
          }
        }
      }
    }
  }

  private async setEntryAndRelease(gc: number, e: L2Entry, lo: number): Promise<void> {
    const l2 = await this.writableL2(Math.floor(gc / this.l2Entries));
    await this.writeL2Entry(gc, l2, 0, lo);
    await this.release(e);
  }

  /**
   * Writes one whole guest cluster compressed (the cluster must be
   * unallocated). Data that does not compress below one cluster is written
   * uncompressed, as QEMU does. `deflated`, when given, is what a Compressor
   * returned for kind "qcow2" and this cluster (zero-padded to a whole
   * cluster when the last one is short), used instead of compressing here.
   */
  async writeCompressed(offset: number, data: Uint8Array, deflated?: Uint8Array): Promise<void> {
    this.checkWritable();
    const gc = offset / this.cs;
    const lastPartial = offset + data.length === this.hdr.size && data.length < this.cs;
    if (!Number.isInteger(gc) || (data.length !== this.cs && !lastPartial))
      throw new DiskError(
        DiskErrorCode.INVALID_REQUEST,
        { format: F, offset, length: data.length },
        "compressed writes cover one whole cluster",
      );
    checkRange(F, offset, data.length, this.hdr.size);
    const e = await this.l2Entry(gc);
    if (e.kind !== "unallocated" && !(e.kind === "zero" && e.host === 0))
      throw new DiskError(
        DiskErrorCode.INVALID_REQUEST,
        { format: F, offset },
        "compressed writes go to unallocated clusters only",
      );
    let full = data;
    if (data.length < this.cs) {
      full = new Uint8Array(this.cs);
      full.set(data);
    }
    const comp = deflated ?? deflateRaw(full);
    if (comp.length >= this.cs) {
      await this.writeCluster(gc, 0, full);
      return;
    }
    const l2 = await this.writableL2(Math.floor(gc / this.l2Entries));
    const host = await this.allocBytes(comp.length);
    await this.metaWrite(host, comp);
    // Descriptor: host offset in bits 0..x-1, additional 512-byte sectors in bits x..61 (qcow2.txt).
    const x = BigInt(62 - (this.cb - 8));
    const extra = BigInt(Math.floor((host + comp.length - 1) / 512) - Math.floor(host / 512));
    const v = (1n << 62n) | (extra << x) | BigInt(host);
    await this.writeL2Entry(gc, l2, Number(v >> 32n), Number(v & 0xffffffffn), [0, 0]);
  }

  /** Allocates `len` bytes for compressed data, packing into the cluster of the previous compressed write. */
  private async allocBytes(len: number): Promise<number> {
    const cs = this.cs;
    const tail = this.compTail;
    if (tail % cs !== 0) {
      const tc = Math.floor(tail / cs);
      const endCluster = Math.floor((tail + len - 1) / cs);
      const extra = endCluster - tc;
      // Continue in the tail cluster when the following clusters are free and next in line.
      let ok = extra === 0 || tc === this.nextFree - 1;
      if (ok && extra > 0)
        for (let i = 1; i <= extra && ok; i++)
          ok = (await this.getRefcount(tc + i)) === 0 && this.metaName(tc + i) === null;
      if (ok) {
        await this.updateRefcount(tc, 1);
        if (extra > 0) {
          this.nextFree = tc + 1 + extra;
          for (let i = 1; i <= extra; i++) await this.updateRefcount(tc + i, 1);
        }
        this.compTail = tail + len;
        return tail;
      }
    }
    const host = await this.allocClusters(Math.ceil(len / cs));
    this.compTail = host + len;
    return host;
  }

  async flush(): Promise<void> {
    this.checkOpen();
    if (this.readOnly) return;
    await this.drainMetadata();
    await this.store.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.readOnly) await this.drainMetadata();
    if (!this.readOnly) await this.markClean();
    this.closed = true;
    if (!this.readOnly) await this.store.flush();
    await this.store.close();
    if (this.backing) await this.backing.close();
  }

  // ------------------------------------------------------------ status

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen();
    checkRange(F, offset, length, this.hdr.size);
    if (length === 0) throw new DiskError(DiskErrorCode.INVALID_REQUEST, { format: F, offset }, "empty status request");
    const end = offset + length;
    const us = this.unit;
    const gc = Math.floor(offset / us);
    const e0 = this.unitEntryNow(gc);
    const e = e0 instanceof Promise ? await e0 : e0;
    const inOff = offset - gc * us;
    let n = Math.min((gc + 1) * us, end) - offset;
    const same = (f: L2Entry, k: number): boolean => {
      if (f.kind !== e.kind) return false;
      if (e.kind === "normal") return (f as { host: number }).host === e.host + k * us;
      if (e.kind === "zero") return ((f as { host: number }).host === 0) === (e.host === 0);
      return true;
    };
    // The rest of e's run in a plain table at once, then one lookup per run (plainRun).
    let k = Math.max(this.plainRun(gc), 1);
    n = Math.min((gc + k) * us, end) - offset;
    while (offset + n < end) {
      const f0 = this.unitEntryNow(gc + k);
      const f = f0 instanceof Promise ? await f0 : f0;
      if (!same(f, k)) break;
      k += Math.max(this.plainRun(gc + k), 1);
      n = Math.min((gc + k) * us, end) - offset;
    }
    switch (e.kind) {
      case "normal":
        return { start: offset, length: n, kind: "data", depth: 0, hostOffset: e.host + inOff };
      case "compressed":
        return { start: offset, length: n, kind: "data", depth: 0, compressed: true };
      case "zero":
        return { start: offset, length: n, kind: "zero", depth: 0 };
      case "unallocated": {
        const b = this.backing;
        if (!b) return { start: offset, length: n, kind: "unallocated", depth: 0 };
        if (offset >= b.size()) return { start: offset, length: n, kind: "unallocated", depth: 1 };
        const s = await b.blockStatus(offset, Math.min(n, b.size() - offset));
        return { ...s, depth: s.depth + 1 };
      }
    }
  }

  // ------------------------------------------------------------ header

  private async writeHeader(): Promise<void> {
    const bytes = serializeHeader(this.hdr);
    // Overwrite the whole previously used header area so stale extension bytes do not survive.
    const old = new Uint8Array(Math.min(this.cs, this.fileSize));
    await readFull(this.store, 0, old);
    const out = new Uint8Array(Math.max(bytes.length, usedHeaderBytes(old)));
    out.set(bytes);
    await this.metaWrite(0, out);
    const dv = new DataView(bytes.buffer);
    this.hdr = {
      ...this.hdr,
      backingFileOffset: Number(dv.getBigUint64(8)),
      backingFileSize: dv.getUint32(16),
      headerLength: this.hdr.version === 3 ? dv.getUint32(100) : V2_HEADER_LENGTH,
    };
  }

  /** Changes the backing file recorded in the header (no data is copied: see rebase in the CLI). */
  async setBackingFile(name: string | null, format: string | null): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.setBackingFile(name, format));
    this.checkWritable();
    this.hdr = { ...this.hdr, backingFile: name, backingFormat: name === null ? null : format };
    await this.writeHeader();
  }

  // ------------------------------------------------------- snapshots
  //
  // qcow2.txt "Snapshots": a snapshot is an L1 table plus an entry in the
  // snapshot table; a cluster's refcount counts every path (L1 -> L2 -> data)
  // reaching it, and the COPIED flag (bit 63 of L1/L2 entries) must be set
  // exactly when the refcount is 1 ("Cluster mapping": "1 for clusters whose
  // refcount is exactly one"). Creating, deleting or applying a snapshot
  // changes refcounts and COPIED flags together, and no order of in-place
  // writes keeps them in step: raising a refcount before clearing the flag is
  // an OFLAG_COPIED error, clearing the flag first is one too (refcount 1
  // without the flag). So these operations are copy-on-write transactions:
  // every structure they change (active L1 table, L2 tables whose flags
  // change, snapshot table, refcount blocks, refcount table) is written anew
  // into free clusters, flushed, and one write of header bytes 36..71
  // (l1_size, l1_table_offset, refcount_table_offset,
  // refcount_table_clusters, nb_snapshots, snapshots_offset: qcow2.txt
  // "Header") switches the image to them, then flushed. A kill before that
  // write leaves the old image (plus unreferenced clusters past its end), a
  // kill after it the new one; the old structures are freed by the new
  // refcounts themselves, so nothing leaks.

  /**
   * Creates an internal snapshot of the current disk state (`qemu-img
   * snapshot -c`, QEMU's qcow2_snapshot_create). The snapshot takes over the
   * current L1 table and L2 tables; the active disk gets a new L1 table and
   * copies of the L2 tables with COPIED flags cleared (their data clusters
   * are now shared), all in one transaction.
   */
  async createSnapshot(name: string): Promise<Qcow2Snapshot> {
    if (this.wb) return this.writeThrough(() => this.createSnapshot(name));
    this.checkWritable();
    if (this.ext) throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "snapshots of extended L2 images");
    if (this.snapshots.some((x) => x.name === name))
      throw new DiskError(DiskErrorCode.INVALID_REQUEST, { format: F, name }, "a snapshot with this name exists");
    await this.markClean();
    const t = this.newTxn();
    const l1 = this.l1.slice();
    // every active path is duplicated: the L2 tables and clusters reached from the active L1 gain a reference
    await this.txnTree(t, l1, 1);
    const ids = this.snapshots.map((x) => Number.parseInt(x.id, 10)).filter((n) => Number.isFinite(n));
    const now = Date.now();
    const snap: Qcow2Snapshot = {
      id: String(ids.length ? Math.max(...ids) + 1 : 1),
      name,
      // the current L1 table (already counted once, by the header) becomes the snapshot's
      l1TableOffset: this.hdr.l1Size > 0 ? this.hdr.l1TableOffset : 0,
      l1Size: this.hdr.l1Size,
      dateSec: Math.floor(now / 1000),
      dateNsec: (now % 1000) * 1e6,
      vmClockNsec: 0,
      vmStateSize: 0,
      diskSize: this.hdr.size,
      icount: 0,
    };
    await this.commitTxn(t, l1, [...this.snapshots, snap], false);
    return snap;
  }

  /**
   * Reverts the disk to a snapshot (`qemu-img snapshot -a`, QEMU's
   * qcow2_snapshot_goto): the active disk gets a new L1 table copied from the
   * snapshot's (its tree gains a reference), the old active tree and L1 table
   * lose theirs, in one transaction.
   */
  async applySnapshot(nameOrId: string): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.applySnapshot(nameOrId));
    this.checkWritable();
    if (this.ext) throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "snapshots of extended L2 images");
    const snap = this.findSnapshot(nameOrId);
    if (snap.diskSize !== null && snap.diskSize !== this.hdr.size)
      throw new DiskError(
        DiskErrorCode.UNSUPPORTED,
        { format: F, snapshot: snap.id, snapshotSize: snap.diskSize, size: this.hdr.size },
        "snapshot of a different disk size",
      );
    const snapL1 = await this.snapshotL1(snap);
    await this.markClean();
    const t = this.newTxn();
    const l1 = new Uint8Array(Math.max(snap.l1Size, this.hdr.l1Size) * 8);
    l1.set(snapL1);
    await this.txnTree(t, l1, 1);
    await this.txnTree(t, this.l1, -1);
    await this.commitTxn(t, l1, null, true);
  }

  /**
   * Deletes a snapshot (`qemu-img snapshot -d`, QEMU's qcow2_snapshot_delete):
   * a snapshot table without it, its tree and L1 table losing their
   * references, and the active tables whose COPIED flags change (clusters
   * no longer shared) rewritten, in one transaction.
   */
  async deleteSnapshot(nameOrId: string): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.deleteSnapshot(nameOrId));
    this.checkWritable();
    if (this.ext) throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "snapshots of extended L2 images");
    const snap = this.findSnapshot(nameOrId);
    const snapL1 = await this.snapshotL1(snap);
    await this.markClean();
    const t = this.newTxn();
    await this.txnTree(t, snapL1, -1);
    this.txnRange(t, snap.l1TableOffset, snap.l1Size * 8, -1);
    await this.commitTxn(
      t,
      this.l1.slice(),
      this.snapshots.filter((x) => x !== snap),
      true,
    );
  }

  /** Reads and validates a snapshot's L1 table (entries aligned, inside the file, off static metadata). */
  private async snapshotL1(snap: Qcow2Snapshot): Promise<Uint8Array> {
    const cs = this.cs;
    if (
      snap.l1Size * 8 > MAX_L1_BYTES ||
      snap.l1TableOffset % cs !== 0 ||
      snap.l1TableOffset + snap.l1Size * 8 > this.fileSize
    )
      throw new DiskError(DiskErrorCode.BAD_ENTRY, { format: F, snapshot: snap.id }, "snapshot L1 table invalid");
    const l1 = new Uint8Array(snap.l1Size * 8);
    await readFull(this.store, snap.l1TableOffset, l1);
    const dv = new DataView(l1.buffer);
    for (let i = 0; i < snap.l1Size; i++) {
      const hi = dv.getUint32(i * 8);
      const lo = dv.getUint32(i * 8 + 4);
      const l2 = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      if (l2 === 0) continue;
      if ((lo & 0x1ff) !== 0 || (hi & 0x7f000000) !== 0 || l2 % cs !== 0 || l2 + cs > this.fileSize)
        throw new DiskError(
          DiskErrorCode.BAD_ENTRY,
          { format: F, offset: snap.l1TableOffset + i * 8, snapshot: snap.id },
          "snapshot L1 entry invalid",
        );
      const meta = this.metaName(l2 / cs);
      if (meta !== null && meta !== "L2 table")
        throw new DiskError(
          DiskErrorCode.METADATA_OVERLAP,
          { format: F, offset: snap.l1TableOffset + i * 8, overlaps: meta },
          `snapshot L2 table overlaps the ${meta}`,
        );
      this.l2Clusters.add(l2 / cs);
    }
    return l1;
  }

  private findSnapshot(nameOrId: string): Qcow2Snapshot {
    const snap = this.snapshots.find((x) => x.id === nameOrId) ?? this.snapshots.find((x) => x.name === nameOrId);
    if (!snap) throw new DiskError(DiskErrorCode.NOT_FOUND, { format: F, snapshot: nameOrId }, "no such snapshot");
    return snap;
  }

  private newTxn(): MetaTxn {
    return { delta: new Map(), fresh: new Map() };
  }

  private txnRef(t: MetaTxn, cluster: number, d: number): void {
    const v = (t.delta.get(cluster) ?? 0) + d;
    if (v === 0) t.delta.delete(cluster);
    else t.delta.set(cluster, v);
  }

  /** Adds `d` to the refcount of every cluster of the byte range [off, off+bytes). */
  private txnRange(t: MetaTxn, off: number, bytes: number, d: number): void {
    if (bytes <= 0) return;
    for (let c = Math.floor(off / this.cs); c <= Math.floor((off + bytes - 1) / this.cs); c++) this.txnRef(t, c, d);
  }

  /** Allocates `n` free clusters for the transaction (refcount 1 in the new refcounts; nothing written yet). */
  private async txnAlloc(t: MetaTxn, n: number): Promise<number> {
    const start = await this.findFree(n);
    this.nextFree = start + n;
    for (let c = start; c < start + n; c++) this.txnRef(t, c, 1);
    return start * this.cs;
  }

  /**
   * Adds `d` to every L2 table and cluster reachable from `l1` (QEMU's
   * qcow2_update_snapshot_refcount): a table reached twice counts twice, and
   * so do its clusters, as qemu-img check counts them.
   */
  private async txnTree(t: MetaTxn, l1: Uint8Array, d: number): Promise<void> {
    const dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    for (let i = 0; i < l1.length / 8; i++) {
      const l2 = (dv.getUint32(i * 8) & 0x00ffffff) * 2 ** 32 + ((dv.getUint32(i * 8 + 4) & 0xfffffe00) >>> 0);
      if (l2 === 0) continue;
      this.txnRef(t, l2 / this.cs, d);
      const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
      for (let j = 0; j < this.l2Entries; j++) {
        const e = this.decodeL2(table, j, l2);
        if (e.kind === "normal" || (e.kind === "zero" && e.host !== 0)) this.txnRef(t, e.host / this.cs, d);
        else if (e.kind === "compressed") this.txnRange(t, e.host, e.bytes, d);
      }
    }
  }

  private async txnRc(t: MetaTxn, c: number): Promise<number> {
    return (await this.getRefcount(c)) + (t.delta.get(c) ?? 0);
  }

  /**
   * Commits a snapshot transaction: `l1` becomes the active L1 table (in new
   * clusters; `freeOldL1`: the current one loses its reference), `snapshots`
   * the snapshot table (null: unchanged). COPIED flags of the new active tree
   * are set from the new refcounts, copying the L2 tables whose flags change;
   * the refcount blocks that change and the refcount table are copied; then
   * the header switch (see "snapshots" above).
   */
  private async commitTxn(
    t: MetaTxn,
    l1: Uint8Array,
    snapshots: Qcow2Snapshot[] | null,
    freeOldL1: boolean,
  ): Promise<void> {
    const cs = this.cs;
    const l1dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    if (freeOldL1) this.txnRange(t, this.hdr.l1TableOffset, this.hdr.l1Size * 8, -1);
    // COPIED flags of the new active tree: data entries first (copying an L2 table moves one
    // reference from the old table to the copy, so data refcounts do not depend on it) ...
    for (let i = 0; i < l1.length / 8; i++) {
      const l2 = (l1dv.getUint32(i * 8) & 0x00ffffff) * 2 ** 32 + ((l1dv.getUint32(i * 8 + 4) & 0xfffffe00) >>> 0);
      if (l2 === 0) continue;
      const table = (await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2)).slice();
      const tdv = new DataView(table.buffer);
      let changed = false;
      for (let j = 0; j < this.l2Entries; j++) {
        const e = this.decodeL2(table, j, l2);
        if (!(e.kind === "normal" || (e.kind === "zero" && e.host !== 0))) continue;
        const want = (await this.txnRc(t, e.host / cs)) === 1;
        if (e.copied === want) continue;
        const hi = tdv.getUint32(j * 8);
        tdv.setUint32(j * 8, want ? (hi | COPIED_HI) >>> 0 : hi & ~COPIED_HI);
        changed = true;
      }
      if (!changed) continue;
      const copy = await this.txnAlloc(t, 1);
      t.fresh.set(copy, table);
      this.txnRef(t, l2 / cs, -1);
      const [hi, lo] = encodeOffset(copy, 0);
      setEntry(l1dv, i * 8, hi, lo);
    }
    // ... then the L1 entries, from the L2 tables' new refcounts.
    for (let i = 0; i < l1.length / 8; i++) {
      const l2 = (l1dv.getUint32(i * 8) & 0x00ffffff) * 2 ** 32 + ((l1dv.getUint32(i * 8 + 4) & 0xfffffe00) >>> 0);
      if (l2 === 0) continue;
      const [hi, lo] = encodeOffset(l2, (await this.txnRc(t, l2 / cs)) === 1 ? COPIED_HI : 0);
      setEntry(l1dv, i * 8, hi, lo);
    }
    const l1At = l1.length > 0 ? await this.txnAlloc(t, Math.ceil(l1.length / cs)) : 0;
    if (l1At) t.fresh.set(l1At, l1);
    let snapAt = this.hdr.snapshotsOffset;
    let snapBytes = this.snapshotTableBytes;
    if (snapshots !== null) {
      if (this.hdr.nbSnapshots > 0) this.txnRange(t, this.hdr.snapshotsOffset, this.snapshotTableBytes, -1);
      const table = serializeSnapshots(snapshots);
      snapAt = snapshots.length > 0 ? await this.txnAlloc(t, Math.ceil(table.length / cs)) : 0;
      if (snapAt) t.fresh.set(snapAt, table);
      snapBytes = snapshots.length > 0 ? table.length : 0;
    }
    // Refcount blocks and table: every block holding a changed refcount is copied into a new
    // cluster (whose own refcount may land in yet another block: repeated until stable), the
    // table is copied (grown if a block index lies past it), and the old ones lose their reference.
    const oldEntries = this.reftable.length / 8;
    const blockAt = new Map<number, number>(); // reftable index -> new block's host offset
    let rtAt = 0;
    let rtClusters = 0;
    for (;;) {
      let grew = false;
      for (const c of [...t.delta.keys()]) {
        const ti = Math.floor(c / this.rbEntries);
        if (blockAt.has(ti)) continue;
        blockAt.set(ti, await this.txnAlloc(t, 1));
        if (ti < oldEntries && this.rtOffset(ti) !== 0) this.txnRef(t, this.rtOffset(ti) / cs, -1);
        grew = true;
      }
      const entries = Math.max(oldEntries, ...[...blockAt.keys()].map((ti) => ti + 1));
      const need = Math.ceil((entries * 8) / cs);
      if (need * cs > MAX_REFTABLE_BYTES)
        throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: 56 }, "refcount table would exceed 8 MiB");
      if (need > rtClusters) {
        if (rtAt === 0) this.txnRange(t, this.hdr.refcountTableOffset, this.hdr.refcountTableClusters * cs, -1);
        else this.txnRange(t, rtAt, rtClusters * cs, -1); // a too small table allocated on a previous pass: unused
        rtClusters = need;
        rtAt = await this.txnAlloc(t, need);
        grew = true;
      }
      if (!grew) break;
    }
    // New block contents (checked before anything is written: a refcount below zero means the
    // image was already inconsistent, and the operation stops with nothing changed).
    const table = new Uint8Array(rtClusters * cs);
    table.set(this.reftable.subarray(0, Math.min(this.reftable.length, table.length)));
    const rtdv = new DataView(table.buffer);
    const blocks = new Map<number, Uint8Array>(); // host -> content
    for (const [ti, at] of blockAt) {
      const old = ti < oldEntries ? this.rtOffset(ti) : 0;
      const block = old !== 0 ? (await this.loadRb(old)).slice() : new Uint8Array(cs);
      for (let i = 0; i < this.rbEntries; i++) {
        const c = ti * this.rbEntries + i;
        const d = t.delta.get(c);
        if (d === undefined) continue;
        const v = this.readRc(block, i) + d;
        if (v < 0)
          throw new DiskError(
            DiskErrorCode.CORRUPT,
            { format: F, offset: old, cluster: c },
            "refcount would drop below zero",
          );
        if (v > this.maxRefcount())
          throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: old, cluster: c }, "refcount overflow");
        this.writeRc(block, i, v);
      }
      blocks.set(at, block);
      const [hi, lo] = encodeOffset(at, 0);
      setEntry(rtdv, ti * 8, hi, lo);
    }
    // Write everything new, flush, switch, flush.
    for (const [at, bytes] of t.fresh) await this.metaWrite(at, bytes);
    for (const [at, bytes] of blocks) await this.metaWrite(at, bytes);
    await this.metaWrite(rtAt, table);
    await this.store.flush();
    const nbSnapshots = snapshots === null ? this.hdr.nbSnapshots : snapshots.length;
    const hb = new Uint8Array(36);
    const hdv = new DataView(hb.buffer);
    hdv.setUint32(0, l1.length / 8); // l1_size (header offset 36)
    hdv.setBigUint64(4, BigInt(l1At)); // l1_table_offset (40)
    hdv.setBigUint64(12, BigInt(rtAt)); // refcount_table_offset (48)
    hdv.setUint32(20, rtClusters); // refcount_table_clusters (56)
    hdv.setUint32(24, nbSnapshots); // nb_snapshots (60)
    hdv.setBigUint64(28, BigInt(snapAt)); // snapshots_offset (64)
    await this.metaWrite(36, hb);
    await this.store.flush();
    // The in-memory view follows.
    for (const [ti, at] of blockAt) {
      const old = ti < oldEntries ? this.rtOffset(ti) : 0;
      if (old !== 0) {
        this.rbCache.delete(old);
        this.rbClusters.delete(old / cs);
      }
      this.rbCache.set(at, blocks.get(at)!);
      this.rbClusters.add(at / cs);
    }
    this.reftable = table;
    this.rtdv = rtdv;
    for (const [c, d] of t.delta)
      if (d < 0 && this.l2Clusters.has(c) && (await this.getRefcount(c)) === 0) {
        this.l2Clusters.delete(c);
        this.l2Cache.delete(c * cs);
      }
    for (const [at, bytes] of t.fresh)
      if (at !== l1At && at !== snapAt) {
        this.l2Clusters.add(at / cs);
        this.l2Cache.set(at, bytes);
      }
    this.l1 = l1;
    this.l1dv = l1dv;
    this.hdr = {
      ...this.hdr,
      l1Size: l1.length / 8,
      l1TableOffset: l1At,
      refcountTableOffset: rtAt,
      refcountTableClusters: rtClusters,
      nbSnapshots,
      snapshotsOffset: snapAt,
    };
    if (snapshots !== null) this.snapshots = snapshots;
    this.snapshotTableBytes = snapBytes;
    this.compTail = 0;
  }

  /**
   * Changes the virtual size. Growing writes a larger L1 table when needed.
   * Shrinking drops the guest clusters past the new end (see shrink());
   * allocated ones are dropped only with `shrink: true` (qemu-img resize
   * --shrink), else the call is refused with INVALID_REQUEST.
   */
  async resize(newSize: number, options: { shrink?: boolean } = {}): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.resize(newSize, options));
    this.checkWritable();
    checkSize(F, newSize);
    // QEMU's qcow2_co_truncate: "The new size must be a multiple of 512".
    if (newSize % 512 !== 0)
      throw new DiskError(
        DiskErrorCode.INVALID_REQUEST,
        { format: F, newSize },
        "the new size must be a multiple of 512",
      );
    if (newSize < this.hdr.size) return this.shrink(newSize, options.shrink === true);
    const need = Math.ceil(newSize / this.cs / this.l2Entries);
    if (need * 8 > MAX_L1_BYTES)
      throw new DiskError(
        DiskErrorCode.TOO_LARGE,
        { format: F, newSize },
        "virtual size needs an L1 table above 32 MiB",
      );
    if (need > this.hdr.l1Size) {
      const clusters = Math.ceil((need * 8) / this.cs);
      const host = await this.allocClusters(clusters);
      const l1 = new Uint8Array(need * 8);
      l1.set(this.l1);
      await this.metaWrite(host, l1);
      await this.store.flush();
      const oldOff = this.hdr.l1TableOffset;
      const oldClusters = Math.ceil((this.hdr.l1Size * 8) / this.cs);
      this.l1 = l1;
      this.l1dv = new DataView(l1.buffer);
      this.hdr = { ...this.hdr, l1TableOffset: host, l1Size: need, size: newSize };
      await this.writeHeader();
      await this.store.flush();
      for (let i = 0; i < oldClusters && oldOff !== 0; i++) await this.updateRefcount(oldOff / this.cs + i, -1);
    } else {
      this.hdr = { ...this.hdr, size: newSize };
      await this.writeHeader();
    }
  }

  /**
   * Shrinks the disk as QEMU's qcow2_co_truncate does: the clusters past the
   * new end are freed (L2 tables wholly past it are unhooked from the L1
   * table and a table straddling it has its entries past the end cleared,
   * flushed, then the refcounts they held drop), the tail of a partial last
   * cluster is zeroed (a later growth reads zeros there), the header's size is written
   * and flushed, and the file is cut after its last cluster in use. The L1
   * table keeps its size (qcow2.txt "Header": l1_size need only be large
   * enough). References are removed before refcounts drop, so a kill at any
   * point leaves at worst leaks; before the header write the disk keeps its
   * old size with the tail already dropped (as in QEMU).
   */
  private async shrink(newSize: number, dropData: boolean): Promise<void> {
    const cs = this.cs;
    const cut = Math.ceil(newSize / cs) * cs; // first byte of the clusters dropped whole
    const firstGc = cut / cs;
    if (!dropData) {
      for (let i = Math.floor(firstGc / this.l2Entries); i < this.hdr.l1Size; i++) {
        const l2 = this.l1Offset(i);
        if (l2 === 0) continue;
        const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
        for (let j = 0; j < this.l2Entries; j++) {
          const gc = i * this.l2Entries + j;
          if (gc < firstGc) continue;
          const e = this.decodeL2(table, j, l2);
          if (e.kind === "normal" || e.kind === "compressed" || (e.kind === "zero" && e.host !== 0))
            throw new DiskError(
              DiskErrorCode.INVALID_REQUEST,
              { format: F, size: this.hdr.size, newSize, guestOffset: gc * cs },
              "shrinking would drop allocated clusters (pass shrink: true, as qemu-img resize --shrink)",
            );
        }
      }
    }
    // References go first: the L1 entries of the L2 tables wholly past the cut (one write), and the
    // entries past the cut of the table straddling it (one write, into a copy if it is shared);
    // flushed; then the refcounts they held drop, one write per refcount block.
    const drops = new Map<number, number>();
    const firstWhole = Math.ceil(firstGc / this.l2Entries);
    const straddling = Math.floor(firstGc / this.l2Entries);
    if (straddling < firstWhole && straddling < this.hdr.l1Size && this.l1Offset(straddling) !== 0) {
      const l2 = await this.writableL2(straddling);
      const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
      const j0 = firstGc % this.l2Entries;
      const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
      for (let j = j0; j < this.l2Entries; j++) {
        this.dropsOf(drops, this.decodeL2(table, j, l2));
        setEntry(dv, j * this.stride, 0, 0);
        if (this.ext) setEntry(dv, j * this.stride + 8, 0, 0);
      }
      await this.metaWrite(l2 + j0 * this.stride, table.subarray(j0 * this.stride));
    }
    const unhooked: number[] = [];
    for (let i = firstWhole; i < this.hdr.l1Size; i++) {
      const l2 = this.l1Offset(i);
      if (l2 === 0) continue;
      // A table shared with a snapshot loses this path's reference, and so do its clusters
      // (refcounts count the L1 tables reaching a cluster; see copyL2).
      const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
      for (let j = 0; j < this.l2Entries; j++) this.dropsOf(drops, this.decodeL2(table, j, l2));
      drops.set(l2 / cs, (drops.get(l2 / cs) ?? 0) + 1);
      unhooked.push(l2);
      setEntry(this.l1dv, i * 8, 0, 0);
    }
    if (unhooked.length > 0) {
      const a = firstWhole * 8;
      await this.metaWrite(this.hdr.l1TableOffset + a, this.l1.subarray(a, this.hdr.l1Size * 8));
    }
    await this.store.flush();
    await this.dropRefcounts(drops);
    for (const l2 of unhooked)
      if ((await this.getRefcount(l2 / cs)) === 0) {
        this.l2Clusters.delete(l2 / cs);
        this.l2Cache.delete(l2);
      }
    if (newSize < cut && newSize < this.hdr.size)
      await this.zeroOrDiscard(newSize, Math.min(cut, this.hdr.size) - newSize, "zero");
    await this.store.flush();
    this.hdr = { ...this.hdr, size: newSize };
    await this.writeHeader();
    await this.store.flush();
    // The file ends after its last cluster in use (QEMU's qcow2_get_last_cluster).
    let last = Math.ceil(this.fileSize / cs) - 1;
    while (last > 0 && (await this.getRefcount(last)) === 0 && this.metaName(last) === null) last--;
    if ((last + 1) * cs < this.fileSize) {
      await this.store.truncate((last + 1) * cs);
      this.fileSize = (last + 1) * cs;
      if (this.compTail > this.fileSize) this.compTail = 0;
    }
  }

  /** Adds the references an L2 entry holds to `drops` (cluster -> count), as release() drops them. */
  private dropsOf(drops: Map<number, number>, e: L2Entry): void {
    const add = (c: number) => drops.set(c, (drops.get(c) ?? 0) + 1);
    if (e.kind === "normal" || (e.kind === "zero" && e.host !== 0)) add(e.host / this.cs);
    else if (e.kind === "compressed")
      for (let c = Math.floor(e.host / this.cs); c <= Math.floor((e.host + e.bytes - 1) / this.cs); c++) add(c);
  }

  /** Lowers refcounts by `drops` (cluster -> count), one write per refcount block; all checked before any is changed. */
  private async dropRefcounts(drops: Map<number, number>): Promise<void> {
    const byBlock = new Map<number, number[]>();
    for (const [c, n] of drops) {
      if ((await this.getRefcount(c)) < n)
        throw new DiskError(DiskErrorCode.CORRUPT, { format: F, cluster: c }, "refcount would drop below zero");
      const ti = Math.floor(c / this.rbEntries);
      const list = byBlock.get(ti);
      if (list) list.push(c);
      else byBlock.set(ti, [c]);
    }
    for (const [ti, clusters] of byBlock) {
      const b = this.rtOffset(ti);
      const block = await this.loadRb(b);
      let lo = Number.POSITIVE_INFINITY;
      let hi = 0;
      for (const c of clusters) {
        const i = c % this.rbEntries;
        const [s, e] = this.writeRc(block, i, this.readRc(block, i) - drops.get(c)!);
        lo = Math.min(lo, s);
        hi = Math.max(hi, e);
      }
      await this.rcWrite(b, block, lo, hi);
    }
  }

  // ------------------------------------------------------------- check

  /** Walks all metadata and compares reference counts with refcounts, as `qemu-img check` does. */
  async check(): Promise<Qcow2CheckResult> {
    if (this.wb) return this.writeThrough(() => this.check());
    this.checkOpen();
    const cs = this.cs;
    const refs = new Map<number, number>();
    const messages: string[] = [];
    let corruptions = 0;
    const fileClusters = Math.ceil(this.fileSize / cs);
    const ref = (c: number, n = 1) => refs.set(c, (refs.get(c) ?? 0) + n);
    const refRange = (off: number, bytes: number) => {
      for (let c = Math.floor(off / cs); c <= Math.floor((off + bytes - 1) / cs); c++) ref(c);
    };
    refRange(0, cs);
    if (this.hdr.l1Size > 0) refRange(this.hdr.l1TableOffset, this.hdr.l1Size * 8);
    refRange(this.hdr.refcountTableOffset, this.hdr.refcountTableClusters * cs);
    if (this.hdr.nbSnapshots > 0) refRange(this.hdr.snapshotsOffset, Math.max(this.snapshotTableBytes, 1));
    let allocated = 0;
    let compressed = 0;
    let fragmented = 0;
    let lastHost = -1;
    const walkL1 = async (l1: DataView, l1Size: number, active: boolean) => {
      for (let i = 0; i < l1Size; i++) {
        const hi = l1.getUint32(i * 8);
        const lo = l1.getUint32(i * 8 + 4);
        const l2 = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
        if (l2 === 0) continue;
        if (l2 % cs !== 0 || l2 >= this.fileSize) {
          messages.push(`ERROR l2_offset=${l2.toString(16)}: Table is not cluster aligned or beyond end of file`);
          corruptions++;
          continue;
        }
        ref(l2 / cs);
        if (active) {
          const rc = await this.getRefcount(l2 / cs);
          if (((hi & COPIED_HI) !== 0) !== (rc === 1)) {
            messages.push(`ERROR OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${hex(hi, lo)} refcount=${rc}`);
            corruptions++;
          }
        }
        const table = new Uint8Array(cs);
        await readFull(this.store, l2, table);
        const tdv = new DataView(table.buffer);
        for (let j = 0; j < this.l2Entries; j++) {
          let e: L2Entry;
          if (this.ext) {
            // Subcluster bitmaps, reported in qemu-img check's words (QEMU's check_refcounts_l2).
            const [hi, lo] = [tdv.getUint32(j * 16), tdv.getUint32(j * 16 + 4)];
            const alloc = tdv.getUint32(j * 16 + 12);
            const problem = bitmapProblem(hi, lo, alloc, tdv.getUint32(j * 16 + 8));
            const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
            if (problem !== null) {
              corruptions++;
              if ((hi & COMPRESSED_HI) !== 0) {
                // QEMU counts no reference for it (the cluster then also shows as leaked).
                messages.push(
                  `ERROR compressed cluster ${j} with non-zero subcluster allocation bitmap, entry=${hex(hi, lo)}`,
                );
                continue;
              } else if (host === 0) messages.push("ERROR: Unallocated cluster has non-zero subcluster allocation map");
              else
                messages.push(
                  `ERROR offset=${host.toString(16)}: Allocated cluster has corrupted subcluster allocation bitmap`,
                );
            }
          }
          try {
            e = this.decodeL2(table, j, l2, false);
          } catch (err) {
            messages.push(`ERROR ${(err as Error).message}`);
            corruptions++;
            continue;
          }
          if (e.kind === "compressed") {
            refRange(e.host, e.bytes);
            if (active) {
              allocated++;
              compressed++;
            }
          } else if (e.kind === "normal" || (e.kind === "zero" && e.host !== 0)) {
            ref(e.host / cs);
            if (active) {
              allocated++;
              if (lastHost >= 0 && e.host !== lastHost + cs) fragmented++;
              lastHost = e.host;
              const rc = await this.getRefcount(e.host / cs);
              if (e.copied !== (rc === 1)) {
                const dv = new DataView(table.buffer);
                messages.push(
                  `ERROR OFLAG_COPIED data cluster: l2_entry=${hex(dv.getUint32(j * this.stride), dv.getUint32(j * this.stride + 4))} refcount=${rc}`,
                );
                corruptions++;
              }
            }
          }
        }
      }
    };
    await walkL1(this.l1dv, this.hdr.l1Size, true);
    for (const s of this.snapshots) {
      if (s.l1TableOffset % cs !== 0 || s.l1TableOffset + s.l1Size * 8 > this.fileSize || s.l1Size * 8 > MAX_L1_BYTES) {
        messages.push(`ERROR snapshot ${s.id} L1 table invalid`);
        corruptions++;
        continue;
      }
      refRange(s.l1TableOffset, Math.max(1, s.l1Size * 8));
      const l1 = new Uint8Array(s.l1Size * 8);
      await readFull(this.store, s.l1TableOffset, l1);
      await walkL1(new DataView(l1.buffer), s.l1Size, false);
    }
    for (let i = 0; i < this.reftable.length / 8; i++) {
      const b = this.rtOffset(i);
      if (b !== 0) ref(b / cs);
    }
    // Compare with the stored refcounts: every entry of every refcount block, and every referenced cluster.
    let leaks = 0;
    let maxUsed = 0;
    await this.forEachRefcount(async (c, rc) => {
      const r = refs.get(c) ?? 0;
      // Like QEMU, refcounts of clusters past the end of the file are not examined unless referenced.
      if (c >= fileClusters && r === 0) return;
      if (rc > 0 || r > 0) maxUsed = Math.max(maxUsed, c + 1);
      if (rc < r) {
        messages.push(`ERROR cluster ${c} refcount=${rc} reference=${r}`);
        corruptions++;
      } else if (rc > r) {
        messages.push(`Leaked cluster ${c} refcount=${rc} reference=${r}`);
        leaks++;
      }
    });
    for (const [c, r] of refs) {
      if (!this.hasRefblockFor(c)) {
        messages.push(`ERROR cluster ${c} refcount=0 reference=${r}`);
        corruptions++;
        maxUsed = Math.max(maxUsed, c + 1);
      }
    }
    return {
      corruptions,
      leaks,
      messages,
      allocatedClusters: allocated,
      totalClusters: Math.ceil(this.hdr.size / cs),
      fragmentedClusters: fragmented,
      compressedClusters: compressed,
      imageEndOffset: maxUsed * cs,
      references: refs,
    };
  }

  private hasRefblockFor(c: number): boolean {
    const ti = Math.floor(c / this.rbEntries);
    return ti < this.reftable.length / 8 && this.rtOffset(ti) !== 0;
  }

  /** Calls `fn` for every entry of every refcount block present. */
  private async forEachRefcount(fn: (cluster: number, refcount: number) => Promise<void> | void): Promise<void> {
    const n = this.reftable.length / 8;
    for (let i = 0; i < n; i++) {
      const b = this.rtOffset(i);
      if (b === 0) continue;
      const block = await this.loadRb(b);
      for (let j = 0; j < this.rbEntries; j++) await fn(i * this.rbEntries + j, this.readRc(block, j));
    }
  }

  /** Sets every refcount to the number of references found (fixes leaks and lazy-refcount damage). */
  async repairRefcounts(): Promise<void> {
    if (this.wb) return this.writeThrough(() => this.repairRefcounts());
    this.checkWritable();
    const r = await this.check();
    const fixes: Array<[number, number]> = [];
    await this.forEachRefcount(async (c, rc) => {
      const want = r.references.get(c) ?? 0;
      if (rc !== want) fixes.push([c, want - rc]);
    });
    for (const [c, n] of r.references) if (!this.hasRefblockFor(c)) fixes.push([c, n]);
    for (const [c, delta] of fixes) await this.updateRefcount(c, delta);
    await this.store.flush();
  }

  /**
   * Sets the COPIED flag (bit 63) of every active L1 and L2 entry to
   * "refcount is exactly one" (what QEMU's check -r all repairs as
   * OFLAG_COPIED; a writer killed inside snapshot creation leaves them
   * wrong). Run after repairRefcounts.
   */
  async repairCopiedFlags(): Promise<number> {
    if (this.wb) return this.writeThrough(() => this.repairCopiedFlags());
    this.checkWritable();
    let fixed = 0;
    for (let i = 0; i < this.hdr.l1Size; i++) {
      const l2 = this.l1Offset(i);
      if (l2 === 0) continue;
      const want = (await this.getRefcount(l2 / this.cs)) === 1;
      if (this.l1Copied(i) !== want) {
        const [hi, lo] = encodeOffset(l2, want ? COPIED_HI : 0);
        setEntry(this.l1dv, i * 8, hi, lo);
        await this.metaWrite(this.hdr.l1TableOffset + i * 8, this.l1.subarray(i * 8, i * 8 + 8));
        fixed++;
      }
      const table = await this.loadCached(this.l2Cache, L2_TABLE_CACHE, l2);
      const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
      for (let j = 0; j < this.l2Entries; j++) {
        const e = this.decodeL2(table, j, l2);
        if (!(e.kind === "normal" || (e.kind === "zero" && e.host !== 0))) continue;
        const copied = (await this.getRefcount(e.host / this.cs)) === 1;
        if (e.copied === copied) continue;
        const hi = dv.getUint32(j * this.stride);
        await this.writeL2Entry(
          i * this.l2Entries + j,
          l2,
          copied ? (hi | COPIED_HI) >>> 0 : hi & ~COPIED_HI,
          dv.getUint32(j * this.stride + 4),
        );
        fixed++;
      }
    }
    if (fixed > 0) await this.store.flush();
    return fixed;
  }

  // ------------------------------------------------------------ create

  /** Creates an empty image in `store` (which is truncated) and opens it read-write. */
  static async create(store: ByteStore, options: Qcow2CreateOptions): Promise<Qcow2Image> {
    const version = options.version ?? 3;
    const cb = options.clusterBits ?? 16;
    const order = options.refcountOrder ?? 4;
    checkSize(F, options.size);
    // qemu-img create rounds the size up to whole sectors.
    options = { ...options, size: Math.ceil(options.size / 512) * 512 };
    if (!Number.isInteger(cb) || cb < 9 || cb > 21)
      throw new DiskError(
        DiskErrorCode.INVALID_OPTIONS,
        { format: F, clusterBits: cb },
        "cluster size must be 512 B .. 2 MiB",
      );
    if (!Number.isInteger(order) || order < 0 || order > 6 || (version === 2 && order !== 4))
      throw new DiskError(
        DiskErrorCode.INVALID_OPTIONS,
        { format: F, refcountOrder: order },
        "refcount width must be 1..64 bits (16 for v2)",
      );
    if (version === 2 && options.lazyRefcounts)
      throw new DiskError(DiskErrorCode.INVALID_OPTIONS, { format: F }, "lazy refcounts need compat=1.1 (v3)");
    const ext = options.extendedL2 === true;
    // QEMU's qcow2_co_create: extended L2 entries need compat=1.1 and clusters of 16 KiB or more.
    if (ext && version === 2)
      throw new DiskError(DiskErrorCode.INVALID_OPTIONS, { format: F }, "extended L2 entries need compat=1.1 (v3)");
    if (ext && cb < 14)
      throw new DiskError(
        DiskErrorCode.INVALID_OPTIONS,
        { format: F, clusterBits: cb },
        "extended L2 entries need clusters of at least 16 KiB",
      );
    const cs = 2 ** cb;
    const l1Size = Math.ceil(options.size / cs / (cs / (ext ? 16 : 8)));
    if (l1Size * 8 > MAX_L1_BYTES)
      throw new DiskError(
        DiskErrorCode.TOO_LARGE,
        { format: F, size: options.size },
        "virtual size needs an L1 table above 32 MiB",
      );
    // Layout as QEMU creates it: header, refcount table, first refcount block, L1 table.
    await store.truncate(0);
    const hdr: Qcow2Header = {
      magic: 0x514649fb,
      version,
      backingFileOffset: 0,
      backingFileSize: 0,
      clusterBits: cb,
      size: options.size,
      cryptMethod: 0,
      l1Size: 0,
      l1TableOffset: 0,
      refcountTableOffset: cs,
      refcountTableClusters: 1,
      nbSnapshots: 0,
      snapshotsOffset: 0,
      incompatibleFeatures: ext ? 1n << BigInt(Incompat.EXTL2) : 0n,
      compatibleFeatures: options.lazyRefcounts ? 1n : 0n,
      autoclearFeatures: 0n,
      refcountOrder: order,
      headerLength: version === 3 ? V3_HEADER_LENGTH : V2_HEADER_LENGTH,
      compressionType: 0,
      otherExtensions: [],
      backingFile: options.backingFile ?? null,
      backingFormat: options.backingFile !== undefined ? (options.backingFormat ?? null) : null,
      featureNames: version === 3 ? QEMU_FEATURE_NAMES : [],
    };
    const l1Clusters = Math.ceil((l1Size * 8) / cs);
    const rbEntries = (cs * 8) / 2 ** order;
    if (3 + l1Clusters <= rbEntries) {
      // Common case, written in one piece: header, refcount table, block, L1 table (clusters 3..).
      const full: Qcow2Header = { ...hdr, l1Size, l1TableOffset: l1Size > 0 ? 3 * cs : 0 };
      const head = serializeHeader(full);
      const layout = new Uint8Array((3 + l1Clusters) * cs);
      layout.set(head);
      new DataView(layout.buffer).setBigUint64(cs, BigInt(2 * cs));
      for (let c = 0; c < 3 + l1Clusters; c++) writeRcRaw(layout.subarray(2 * cs, 3 * cs), c, 1, 2 ** order);
      await store.write(0, layout);
      await store.flush();
      return Qcow2Image.open(store, { readOnly: false });
    }
    const head = serializeHeader(hdr);
    const first = new Uint8Array(3 * cs);
    first.set(head);
    new DataView(first.buffer).setBigUint64(cs, BigInt(2 * cs)); // reftable[0] -> block at cluster 2
    for (let c = 0; c < 3; c++) writeRcRaw(first.subarray(2 * cs), c, 1, 2 ** order);
    await store.write(0, first);
    const reftable = first.slice(cs, 2 * cs);
    const img = new Qcow2Image(store, { ...parseHeaderLoose(head, hdr) }, false, 3 * cs, new Uint8Array(0), reftable);
    img.rbClusters.add(2);
    img.rbCache.set(2 * cs, first.slice(2 * cs));
    if (l1Size > 0) {
      const host = await img.allocClusters(l1Clusters);
      await img.metaWrite(host, new Uint8Array(l1Clusters * cs));
      img.l1 = new Uint8Array(l1Size * 8);
      img.l1dv = new DataView(img.l1.buffer);
      img.hdr = { ...img.hdr, l1Size, l1TableOffset: host };
    }
    await img.writeHeader();
    await store.flush();
    if (img.lazyRefcounts) img.lazyPending = new Map();
    return img;
  }
}

/** The header as written by create (backing name offset filled in from the serialized bytes). */
function parseHeaderLoose(bytes: Uint8Array, h: Qcow2Header): Qcow2Header {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { ...h, backingFileOffset: Number(dv.getBigUint64(8)), backingFileSize: dv.getUint32(16) };
}

function writeRcRaw(block: Uint8Array, i: number, v: number, bits: number): void {
  if (bits < 8) {
    const bitPos = i * bits;
    block[bitPos >> 3] = block[bitPos >> 3]! | (v << (bitPos & 7));
    return;
  }
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  if (bits === 8) block[i] = v;
  else if (bits === 16) dv.setUint16(i * 2, v);
  else if (bits === 32) dv.setUint32(i * 4, v);
  else dv.setBigUint64(i * 8, BigInt(v));
}

/**
 * Why an extended L2 entry's subcluster bitmap is inconsistent, or null (QEMU's
 * qcow2_get_subcluster_type: a compressed cluster has no bitmap, an unmapped one
 * no allocated subclusters, and no subcluster is both allocated and zero).
 */
function bitmapProblem(hi: number, lo: number, alloc: number, zero: number): string | null {
  if ((hi & COMPRESSED_HI) !== 0)
    return alloc !== 0 || zero !== 0 ? "compressed cluster with a subcluster bitmap" : null;
  const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
  if (host === 0) return alloc !== 0 ? "unallocated cluster with allocated subclusters" : null;
  return (alloc & zero) !== 0 ? "subcluster both allocated and zero" : null;
}

/** Bits s0..s1 of a 32-bit mask. */
function subMask(s0: number, s1: number): number {
  return s1 - s0 === 31 ? ALL_SUB : (((1 << (s1 - s0 + 1)) - 1) << s0) >>> 0;
}

function hex(hi: number, lo: number): string {
  return `0x${(hi >>> 0).toString(16)}${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** Length of the header area in use: up to the last non-zero byte. */
function usedHeaderBytes(first: Uint8Array): number {
  let n = first.length;
  while (n > 0 && first[n - 1] === 0) n--;
  return n;
}
