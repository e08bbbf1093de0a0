// VHDX, fixed and dynamic, read and write ([MS-VHDX] v1, little endian).
// Layout: file identifier (64 KiB), two headers (64 and 128 KiB, the valid
// one with the higher sequence number wins), two region tables (192 and
// 256 KiB) locating the BAT and the metadata region, the log, then blocks.
// BAT entries: state in bits 0-2, file offset in MiB in bits 20-63; a sector
// bitmap entry follows every `chunkRatio` payload entries.
// A non-empty log (LogGuid set) is replayed on read-write opens (vhdx-log.ts).
// Not supported: differencing (HasParent).
import type { BlockBackend, Extent } from "../backend.js";
import { isZero } from "../bytes.js";
import { checkRange, checkSize, DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";
import { findActiveSequence, readLog, replay } from "./vhdx-log.js";

const F = "vhdx";
const KiB = 1024;
const MiB = 1024 * KiB;
const HEADER1 = 64 * KiB;
const HEADER2 = 128 * KiB;
const REGION1 = 192 * KiB;
const REGION2 = 256 * KiB;
const REGION_SIZE = 64 * KiB;
const HEADER_SIZE = 4 * KiB;
const MAX_SIZE = 64 * 1024 * 1024 * MiB; // 64 TiB (spec limit)

const GUID = {
  BAT: "2dc27766-f623-4200-9d64-115e9bfd4a08",
  METADATA: "8b7ca206-4790-4b9a-b8fe-575f050f886e",
  FILE_PARAMETERS: "caa16737-fa36-4d43-b3b6-33f0aa44e76b",
  VIRTUAL_DISK_SIZE: "2fa54224-cd1b-4876-b211-5dbed83bf4b8",
  PAGE83: "beca12ab-b2e6-4523-93ef-c309e000c746",
  LOGICAL_SECTOR: "8141bf1d-a96f-4709-ba47-f233a8faab5f",
  PHYSICAL_SECTOR: "cda348c7-445d-4471-9cc9-e9885251c556",
  PARENT_LOCATOR: "a8d35f2d-b30b-454d-abf7-d3d84834ab0c",
} as const;

/** BAT entry states (MS-VHDX 2.5.1). */
const State = { NOT_PRESENT: 0, UNDEFINED: 1, ZERO: 2, UNMAPPED: 3, FULLY_PRESENT: 6, PARTIALLY_PRESENT: 7 } as const;

function fail(
  code: DiskErrorCode,
  offset: number | undefined,
  detail: string,
  extra: Record<string, unknown> = {},
): DiskError {
  return new DiskError(code, { format: F, ...(offset !== undefined ? { offset } : {}), ...extra }, detail);
}

// CRC-32C (Castagnoli), the checksum of VHDX headers, region tables and log entries.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/**
 * `a` times `b` modulo the CRC-32C polynomial, bit-reflected as the register is (x^0 is the top
 * bit): zlib's `multmodp` (crc32.c), with the Castagnoli polynomial.
 */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ 0x82f63b78 : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..31 (zlib's `x2n_table`). */
const X2N = (() => {
  const t = new Uint32Array(32);
  let p = 0x40000000; // x^1
  for (let k = 0; k < 32; k++) {
    t[k] = p;
    p = multModP(p, p);
  }
  return t;
})();

/** The register after `n` zero bytes: a CRC register times x^(8n), as zlib's `crc32_combine`. */
function crcZeros(c: number, n: number): number {
  let p = 0x80000000; // x^0
  for (let k = 3; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
  return multModP(p, c >>> 0);
}

/** The index after the last non-zero byte of `b[from, to)` (`from` when all are zero). */
function dataEnd(b: Uint8Array, from: number, to: number): number {
  let e = to;
  // Bytes down to a 32-bit boundary of the buffer, then words, eight OR-ed per test, then bytes.
  while (e > from && (b.byteOffset + e) % 4 !== 0 && b[e - 1] === 0) e--;
  const lo = Math.ceil((b.byteOffset + from) / 4);
  const hi = (b.byteOffset + e) / 4;
  if (Number.isInteger(hi) && hi > lo) {
    const w = new Uint32Array(b.buffer, lo * 4, hi - lo);
    let i = w.length;
    while (
      i >= 8 &&
      (w[i - 1]! | w[i - 2]! | w[i - 3]! | w[i - 4]! | w[i - 5]! | w[i - 6]! | w[i - 7]! | w[i - 8]!) === 0
    )
      i -= 8;
    while (i > 0 && w[i - 1] === 0) i--;
    e = (lo + i) * 4 - b.byteOffset;
  }
  while (e > from && b[e - 1] === 0) e--;
  return e;
}

/** Feeds `b[from, to)` to the register `c`: its data bytes one by one, its trailing zeros at once. */
function crcFeed(c: number, b: Uint8Array, from: number, to: number): number {
  const e = dataEnd(b, from, to);
  for (let i = from; i < e; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return e < to ? crcZeros(c, to - e) : c;
}

export function crc32c(b: Uint8Array, skip = -1): number {
  // Headers (4 KiB) and region tables (64 KiB) are mostly zeros after their first hundred bytes,
  // and the loop per byte runs in the interpreter in a short process (5 ms per conversion to VHDX):
  // trailing zeros are found by words and folded in with one multiplication (crcZeros). The
  // skipped field (the checksum's own, read as zeros) splits the buffer in two.
  let c = 0xffffffff;
  const s = skip >= 0 ? Math.min(skip, b.length) : b.length;
  const e = skip >= 0 ? Math.min(skip + 4, b.length) : b.length;
  c = crcFeed(c, b, 0, s);
  if (e > s) c = crcZeros(c, e - s);
  c = crcFeed(c, b, e, b.length);
  return (c ^ 0xffffffff) >>> 0;
}

/** GUID bytes (mixed endian, as Windows stores them) to the usual text form. */
function guidText(b: Uint8Array): string {
  const h = (i: number, n: number, rev: boolean) => {
    const part = [...b.subarray(i, i + n)];
    if (rev) part.reverse();
    return part.map((x) => x.toString(16).padStart(2, "0")).join("");
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`;
}

function guidBytes(text: string): Uint8Array {
  const hex = text.replace(/-/g, "");
  const raw = Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  return new Uint8Array([
    ...raw.slice(0, 4).reverse(),
    ...raw.slice(4, 6).reverse(),
    ...raw.slice(6, 8).reverse(),
    ...raw.slice(8),
  ]);
}

function randomGuid(): Uint8Array {
  return guidBytes(globalThis.crypto.randomUUID());
}

interface Header {
  at: number;
  seq: bigint;
  logGuid: Uint8Array;
  bytes: Uint8Array;
}

export function isVhdx(head: Uint8Array): boolean {
  return head.length >= 8 && new TextDecoder("latin1").decode(head.subarray(0, 8)) === "vhdxfile";
}

export class VhdxImage implements BlockBackend {
  readonly format = "vhdx" as const;
  private closed = false;
  private headersUpdated = false;
  private replayed = false;
  /** Problems found by an open for check (`forCheck`), reported by check() as corruptions. */
  private problems: string[] = [];
  /** Non-fatal findings of the open (a corrupt first region table), for the caller to show. */
  readonly warnings: string[] = [];
  /** Metadata write-behind (deferMetadata()): the BAT entries [from, to) not written yet. */
  private wb: [number, number] | null = null;
  /** With a deferred BAT: the end of the last new block, to which drainBat() extends the file first. */
  private extendTo = 0;
  /** The file's size once a new block was written (no stat per block). */
  private fileSize: number | undefined;

  private constructor(
    private readonly store: ByteStore,
    private header: Header,
    private readonly bat: BigUint64Array,
    private readonly batOffset: number,
    private readonly blockSize: number,
    private readonly chunkRatio: number,
    private readonly virtSize: number,
    readonly logicalSectorSize: number,
    readonly readOnly: boolean,
    private end: number,
  ) {}

  /** Whether opening replayed a non-empty log into the file (qemu-img check counts it as one corruption fixed). */
  get logReplayed(): boolean {
    return this.replayed;
  }

  get clusterSize(): number {
    return this.blockSize;
  }

  size(): number {
    return this.virtSize;
  }

  /**
   * Opens an image. `forCheck`: BAT entries past the end of the file are
   * recorded for check() instead of refusing the open (QEMU's vhdx_open skips
   * vhdx_check_bat_entries under BDRV_O_CHECK, and vhdx_co_check counts them).
   */
  static async open(store: ByteStore, options: { readOnly?: boolean; forCheck?: boolean } = {}): Promise<VhdxImage> {
    const readOnly = options.readOnly ?? store.readOnly;
    const fileSize = await store.size();
    const problems: string[] = [];
    const warnings: string[] = [];
    if (fileSize < REGION2 + REGION_SIZE)
      throw fail(DiskErrorCode.TRUNCATED, 0, "file shorter than the VHDX headers", { fileSize });
    const id = new Uint8Array(8);
    await readFull(store, 0, id);
    if (!isVhdx(id)) throw fail(DiskErrorCode.BAD_MAGIC, 0, "not a VHDX image (no vhdxfile identifier)");

    // Headers (MS-VHDX 2.2.2): valid = signature + CRC-32C; the higher sequence number is current.
    const headers: Header[] = [];
    for (const at of [HEADER1, HEADER2]) {
      const b = new Uint8Array(HEADER_SIZE);
      await readFull(store, at, b);
      const dv = new DataView(b.buffer);
      if (new TextDecoder("latin1").decode(b.subarray(0, 4)) !== "head") continue;
      if (dv.getUint32(4, true) !== crc32c(b, 4)) continue;
      if (dv.getUint16(66, true) !== 1) continue;
      headers.push({ at, seq: dv.getBigUint64(8, true), logGuid: b.slice(48, 64), bytes: b });
    }
    if (headers.length === 0) throw fail(DiskErrorCode.INVALID_HEADER, HEADER1, "no valid VHDX header");
    const header = headers.reduce((a, b) => (b.seq > a.seq ? b : a));
    if (!isZero(header.logGuid) && (await VhdxImage.replayLog(store, header, readOnly))) {
      const img = await VhdxImage.open(store, options); // the headers now say the log is empty
      img.replayed = true;
      return img;
    }

    // Region table (2.2.3): the first valid copy.
    let regions: Map<string, { offset: number; length: number; at: number }> | null = null;
    for (const at of [REGION1, REGION2]) {
      const b = new Uint8Array(REGION_SIZE);
      await readFull(store, at, b);
      const dv = new DataView(b.buffer);
      if (new TextDecoder("latin1").decode(b.subarray(0, 4)) !== "regi" || dv.getUint32(4, true) !== crc32c(b, 4)) {
        // MS-VHDX 2.2.3: both copies should be identical; QEMU refuses the image when the first is
        // invalid. Here the second is used, and the damage is reported: a warning on every open,
        // a corruption for check.
        if (at === REGION1) {
          const m = "region table 1 is corrupt (signature or CRC-32C): using region table 2";
          warnings.push(m);
          problems.push(`ERROR ${m}`);
        }
        continue;
      }
      const n = dv.getUint32(8, true);
      if (n > 2047) throw fail(DiskErrorCode.INVALID_HEADER, at + 8, "too many region entries");
      regions = new Map();
      for (let i = 0; i < n; i++) {
        const e = 16 + i * 32;
        const guid = guidText(b.subarray(e, e + 16));
        const off = dv.getBigUint64(e + 16, true);
        const len = dv.getUint32(e + 24, true);
        const required = (dv.getUint32(e + 28, true) & 1) !== 0;
        if (off + BigInt(len) > BigInt(fileSize) || Number(off) % MiB !== 0)
          throw fail(DiskErrorCode.OUT_OF_BOUNDS, at + e + 16, "region beyond end of file or unaligned", {
            region: guid,
          });
        if (guid !== GUID.BAT && guid !== GUID.METADATA && required)
          throw fail(DiskErrorCode.UNSUPPORTED, at + e, "unknown required region", { region: guid });
        regions.set(guid, { offset: Number(off), length: len, at: at + e });
      }
      break;
    }
    if (!regions) throw fail(DiskErrorCode.INVALID_HEADER, REGION1, "no valid region table");
    const batR = regions.get(GUID.BAT);
    const metaR = regions.get(GUID.METADATA);
    if (!batR || !metaR) throw fail(DiskErrorCode.INVALID_HEADER, REGION1, "BAT or metadata region missing");

    // Metadata (2.6): the table, then the known items.
    if (metaR.length < 64 * KiB) throw fail(DiskErrorCode.INVALID_HEADER, metaR.at + 24, "metadata region too small");
    const mt = new Uint8Array(64 * KiB);
    await readFull(store, metaR.offset, mt);
    const mdv = new DataView(mt.buffer);
    if (new TextDecoder("latin1").decode(mt.subarray(0, 8)) !== "metadata")
      throw fail(DiskErrorCode.BAD_MAGIC, metaR.offset, "no metadata table");
    const count = mdv.getUint16(10, true);
    if (count > 2047) throw fail(DiskErrorCode.INVALID_HEADER, metaR.offset + 10, "too many metadata entries");
    const items = new Map<string, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const e = 32 + i * 32;
      const guid = guidText(mt.subarray(e, e + 16));
      const off = mdv.getUint32(e + 16, true);
      const len = mdv.getUint32(e + 20, true);
      const flags = mdv.getUint32(e + 24, true);
      if (len > 64 * KiB || off + len > metaR.length)
        throw fail(DiskErrorCode.OUT_OF_BOUNDS, metaR.offset + e + 16, "metadata item outside its region", {
          item: guid,
        });
      if (!Object.values(GUID).includes(guid as never) && (flags & 4) !== 0)
        throw fail(DiskErrorCode.UNSUPPORTED, metaR.offset + e, "unknown required metadata item", { item: guid });
      const v = new Uint8Array(len);
      await readFull(store, metaR.offset + off, v);
      items.set(guid, v);
    }
    const item = (g: string, n: number) => {
      const v = items.get(g);
      if (!v || v.length < n)
        throw fail(DiskErrorCode.INVALID_HEADER, metaR.offset, "required metadata item missing", { item: g });
      return new DataView(v.buffer);
    };
    const fp = item(GUID.FILE_PARAMETERS, 8);
    const blockSize = fp.getUint32(0, true);
    if ((fp.getUint32(4, true) & 2) !== 0 || items.has(GUID.PARENT_LOCATOR))
      throw fail(DiskErrorCode.UNSUPPORTED, metaR.offset, "differencing VHDX images");
    if (blockSize < MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0)
      throw fail(DiskErrorCode.INVALID_HEADER, metaR.offset, "block size must be a power of two, 1..256 MiB", {
        blockSize,
      });
    const size = item(GUID.VIRTUAL_DISK_SIZE, 8).getBigUint64(0, true);
    if (size > BigInt(MAX_SIZE)) throw fail(DiskErrorCode.TOO_LARGE, metaR.offset, "virtual size above 64 TiB");
    const logical = item(GUID.LOGICAL_SECTOR, 4).getUint32(0, true);
    if (logical !== 512 && logical !== 4096)
      throw fail(DiskErrorCode.INVALID_HEADER, metaR.offset, "logical sector size must be 512 or 4096");
    const virtSize = Number(size);
    if (virtSize % logical !== 0)
      throw fail(DiskErrorCode.INVALID_HEADER, metaR.offset, "virtual size not a multiple of the sector size");

    // BAT (2.5): payload entries interleaved with sector bitmap entries.
    const chunkRatio = (2 ** 23 * logical) / blockSize;
    const payload = Math.ceil(virtSize / blockSize);
    const entries = payload === 0 ? 0 : payload + Math.floor((payload - 1) / chunkRatio);
    if (entries * 8 > batR.length)
      throw fail(DiskErrorCode.INVALID_HEADER, batR.at + 24, "BAT region too small", { entries });
    const bb = new Uint8Array(entries * 8);
    await readFull(store, batR.offset, bb);
    const bat = new BigUint64Array(entries);
    const bdv = new DataView(bb.buffer);
    let end = Math.ceil(fileSize / MiB) * MiB;
    const metaRanges: Array<[number, number]> = [
      [0, REGION2 + REGION_SIZE],
      [batR.offset, batR.offset + batR.length],
      [metaR.offset, metaR.offset + metaR.length],
    ];
    const logOff = Number(new DataView(header.bytes.buffer).getBigUint64(72, true));
    const logLen = new DataView(header.bytes.buffer).getUint32(68, true);
    metaRanges.push([logOff, logOff + logLen]);
    const used = new Set<number>();
    for (let i = 0; i < entries; i++) {
      const v = bdv.getBigUint64(i * 8, true);
      bat[i] = v;
      const isBitmap = (i + 1) % (chunkRatio + 1) === 0;
      const state = Number(v & 7n);
      const off = Number(v >> 20n) * MiB;
      const at = batR.offset + i * 8;
      if (state === State.FULLY_PRESENT) {
        // QEMU's vhdx_check_bat_entries: a present block (or sector bitmap block, same state value)
        // must start and end inside the file; the last block may be partial (as QEMU once wrote them).
        const p = i - Math.floor(i / (chunkRatio + 1));
        const length = isBitmap ? MiB : Math.max(0, Math.min(blockSize, virtSize - p * blockSize));
        let m = "";
        if (!Number.isSafeInteger(off) || off >= fileSize)
          m = `VHDX BAT entry ${i} start offset ${off} points after end of file (${fileSize}). Image has probably been truncated.`;
        else if (off + length > fileSize)
          m = `VHDX BAT entry ${i} end offset ${off + length} points after end of file (${fileSize}). Image has probably been truncated.`;
        if (m) {
          if (!options.forCheck)
            throw fail(DiskErrorCode.OUT_OF_BOUNDS, at, "block beyond end of file (truncated image)", {
              entry: i,
              fileOffset: off,
              fileSize,
            });
          problems.push(m);
          continue;
        }
      }
      if (isBitmap) continue;
      if (state === State.PARTIALLY_PRESENT)
        throw fail(DiskErrorCode.UNSUPPORTED, at, "partially present blocks (differencing)");
      if (state !== State.FULLY_PRESENT) {
        if (![State.NOT_PRESENT, State.UNDEFINED, State.ZERO, State.UNMAPPED].includes(state as never))
          throw fail(DiskErrorCode.BAD_ENTRY, at, `BAT state ${state}`);
        continue;
      }
      for (const [a, b] of metaRanges)
        if (off < b && off + blockSize > a)
          throw fail(DiskErrorCode.METADATA_OVERLAP, at, "block overlaps headers, log, BAT or metadata", {
            fileOffset: off,
          });
      if (used.has(off)) throw fail(DiskErrorCode.BAD_ENTRY, at, "block used twice", { fileOffset: off });
      used.add(off);
      end = Math.max(end, off + blockSize);
    }
    for (const [, b] of metaRanges) end = Math.max(end, Math.ceil(b / MiB) * MiB);
    const img = new VhdxImage(store, header, bat, batR.offset, blockSize, chunkRatio, virtSize, logical, readOnly, end);
    img.problems = problems;
    img.warnings.push(...warnings);
    return img;
  }

  /** What an open for check found (BAT entries past the end of the file, a corrupt region table), as qemu-img check counts them. */
  check(): { corruptions: number; messages: string[] } {
    return { corruptions: this.problems.length, messages: [...this.problems] };
  }

  /**
   * MS-VHDX 2.3.3: a header with a LogGuid may have an active log sequence
   * that must be replayed before anything else is read. Read-write opens
   * replay it into the file, flush, then write both headers with an empty
   * LogGuid (as QEMU's vhdx_log_flush does). Read-only opens refuse with
   * NEEDS_REPLAY, as qemu-img does ("qemu-img check -r all" replays). A log
   * without a valid sequence is ignored, as QEMU does (the spec would refuse
   * the file; the writer can only have died before its first entry was
   * durable, so the file is consistent). Returns whether it replayed.
   */
  private static async replayLog(store: ByteStore, header: Header, readOnly: boolean): Promise<boolean> {
    const hdv = new DataView(header.bytes.buffer);
    if (hdv.getUint16(64, true) !== 0)
      throw fail(DiskErrorCode.UNSUPPORTED, header.at + 64, "log version (only 0 is defined)");
    const logLen = hdv.getUint32(68, true);
    const logOff = Number(hdv.getBigUint64(72, true));
    if (logLen === 0) return false;
    const log = await readLog(store, logOff, logLen, header.at + 68);
    const entries = findActiveSequence(log, header.logGuid, crc32c);
    if (!entries) return false;
    if (readOnly)
      throw fail(
        DiskErrorCode.NEEDS_REPLAY,
        header.at + 48,
        "the log holds updates to replay: open the image read-write (ringzero-img check -r all)",
        { entries: entries.length },
      );
    await replay(store, entries, logOff, logLen);
    // Both headers, current one last, with an empty log (2.2.2.1 update order).
    let seq = header.seq;
    const fwg = header.bytes.slice(16, 32);
    const dwg = header.bytes.slice(32, 48);
    for (const at of header.at === HEADER1 ? [HEADER2, HEADER1] : [HEADER1, HEADER2]) {
      seq += 1n;
      await store.write(at, buildHeader(seq, fwg, dwg, logOff, logLen));
      await store.flush();
    }
    return true;
  }

  /** Creates a dynamic (default) or fixed VHDX laid out as qemu-img does (1 MiB log, BAT at 2 MiB, metadata at 3 MiB). */
  static async create(
    store: ByteStore,
    options: { size: number; fixed?: boolean; blockSize?: number },
  ): Promise<VhdxImage> {
    checkSize(F, options.size);
    const size = Math.ceil(options.size / 512) * 512;
    if (size > MAX_SIZE) throw fail(DiskErrorCode.TOO_LARGE, undefined, "virtual size above 64 TiB");
    const bs =
      options.blockSize ??
      (size > 32 * 1024 * 1024 * MiB
        ? 64 * MiB
        : size > 100 * 1024 * MiB
          ? 32 * MiB
          : size > 1024 * MiB
            ? 16 * MiB
            : 8 * MiB);
    if (bs < MiB || bs > 256 * MiB || (bs & (bs - 1)) !== 0)
      throw fail(DiskErrorCode.INVALID_OPTIONS, undefined, "block size must be a power of two, 1..256 MiB");
    const chunkRatio = (2 ** 23 * 512) / bs;
    const payload = Math.ceil(size / bs);
    const entries = payload === 0 ? 0 : payload + Math.floor((payload - 1) / chunkRatio);
    const batLen = Math.max(MiB, Math.ceil((entries * 8) / MiB) * MiB);
    const logOff = MiB;
    const logLen = MiB;
    const batOff = 2 * MiB;
    const metaOff = batOff + batLen;
    const dataStart = metaOff + MiB;
    await store.truncate(0);
    // File identifier.
    const ident = new Uint8Array(64 * KiB);
    ident.set(new TextEncoder().encode("vhdxfile"));
    const creator = "ringzero disk-formats";
    for (let i = 0; i < creator.length; i++)
      new DataView(ident.buffer).setUint16(8 + i * 2, creator.charCodeAt(i), true);
    await store.write(0, ident);
    // Headers (sequence 0 and 1), region tables.
    const fwg = randomGuid();
    const dwg = randomGuid();
    for (const [at, seq] of [
      [HEADER1, 0n],
      [HEADER2, 1n],
    ] as const) {
      await store.write(at, buildHeader(seq, fwg, dwg, logOff, logLen));
    }
    const rt = new Uint8Array(REGION_SIZE);
    const rdv = new DataView(rt.buffer);
    rt.set(new TextEncoder().encode("regi"));
    rdv.setUint32(8, 2, true);
    rt.set(guidBytes(GUID.BAT), 16);
    rdv.setBigUint64(32, BigInt(batOff), true);
    rdv.setUint32(40, batLen, true);
    rdv.setUint32(44, 1, true);
    rt.set(guidBytes(GUID.METADATA), 48);
    rdv.setBigUint64(64, BigInt(metaOff), true);
    rdv.setUint32(72, MiB, true);
    rdv.setUint32(76, 1, true);
    rdv.setUint32(4, crc32c(rt, 4), true);
    await store.write(REGION1, rt);
    await store.write(REGION2, rt);
    // Metadata: table and five items.
    const md = new Uint8Array(64 * KiB + 64);
    const mdv = new DataView(md.buffer);
    md.set(new TextEncoder().encode("metadata"));
    const itemsList: Array<[string, Uint8Array, number]> = [
      [GUID.FILE_PARAMETERS, le32pair(bs, options.fixed ? 1 : 0), 4],
      [GUID.VIRTUAL_DISK_SIZE, le64(size), 6],
      [GUID.PAGE83, randomGuid(), 6],
      [GUID.LOGICAL_SECTOR, le32(512), 6],
      [GUID.PHYSICAL_SECTOR, le32(512), 6],
    ];
    mdv.setUint16(10, itemsList.length, true);
    let itemOff = 64 * KiB;
    itemsList.forEach(([g, v, flags], i) => {
      const e = 32 + i * 32;
      md.set(guidBytes(g), e);
      mdv.setUint32(e + 16, itemOff, true);
      mdv.setUint32(e + 20, v.length, true);
      mdv.setUint32(e + 24, flags, true);
      md.set(v, itemOff);
      itemOff += v.length;
    });
    await store.write(metaOff, md);
    // BAT: fixed disks have every block present, dynamic ones none.
    const bat = new Uint8Array(entries * 8);
    const bdv = new DataView(bat.buffer);
    let next = dataStart;
    for (let i = 0; i < entries; i++) {
      const isBitmap = (i + 1) % (chunkRatio + 1) === 0;
      if (isBitmap) continue;
      if (options.fixed) {
        bdv.setBigUint64(i * 8, (BigInt(next / MiB) << 20n) | BigInt(State.FULLY_PRESENT), true);
        next += bs;
      }
    }
    await store.write(batOff, bat);
    await store.truncate(Math.max(options.fixed ? next : dataStart, metaOff + MiB));
    await store.flush();
    return VhdxImage.open(store, { readOnly: false });
  }

  private checkOpen(write: boolean): void {
    if (this.closed) throw new DiskError(DiskErrorCode.CLOSED, { format: F });
    if (write && this.readOnly) throw new DiskError(DiskErrorCode.READ_ONLY, { format: F });
  }

  private batIndex(block: number): number {
    return block + Math.floor(block / this.chunkRatio);
  }

  private hostOf(block: number): number | null {
    const v = this.bat[this.batIndex(block)]!;
    return Number(v & 7n) === State.FULLY_PRESENT ? Number(v >> 20n) * MiB : null;
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
      const b = Math.floor(g / this.blockSize);
      const inOff = g - b * this.blockSize;
      const n = Math.min(this.blockSize - inOff, buf.length - pos);
      const host = this.hostOf(b);
      if (host === null) buf.fill(0, pos, pos + n);
      else await readFull(this.store, host + inOff, buf.subarray(pos, pos + n));
      pos += n;
    }
  }

  /** Before the first change, both headers get a new sequence number and write GUIDs (MS-VHDX 2.2.2.1). */
  private async touchHeaders(): Promise<void> {
    if (this.headersUpdated) return;
    this.headersUpdated = true;
    const dv = new DataView(this.header.bytes.buffer);
    const logLen = dv.getUint32(68, true);
    const logOff = Number(dv.getBigUint64(72, true));
    const fwg = randomGuid();
    const dwg = randomGuid();
    let seq = this.header.seq;
    for (const at of this.header.at === HEADER1 ? [HEADER2, HEADER1] : [HEADER1, HEADER2]) {
      seq += 1n;
      const b = buildHeader(seq, fwg, dwg, logOff, logLen);
      await this.store.write(at, b);
      this.header = { at, seq, logGuid: new Uint8Array(16), bytes: b };
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, data.length, this.virtSize);
    await this.touchHeaders();
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const b = Math.floor(g / this.blockSize);
      const inOff = g - b * this.blockSize;
      const n = Math.min(this.blockSize - inOff, data.length - pos);
      const part = data.subarray(pos, pos + n);
      const host = this.hostOf(b);
      if (host !== null) await this.store.write(host + inOff, part);
      else if (!isZero(part)) {
        // New block at the end (1 MiB aligned): data first, then the BAT entry. Past the end of
        // the file only `part` is written and the file extended to the block's end (the rest reads
        // as zeros, and a present block must lie inside the file: MS-VHDX 2.5, QEMU's BAT check);
        // over old bytes (a file with a tail past its last block) the whole block is written.
        const at = this.end;
        this.fileSize ??= await this.store.size();
        if (at >= this.fileSize) {
          await this.store.write(at + inOff, part);
          // Deferred BAT (convert): one extension of the file, by drainBat() before the BAT names
          // the blocks, instead of a truncate per new block (132 on the 1 GiB bench image).
          if (this.wb) this.extendTo = Math.max(this.extendTo, at + this.blockSize);
          else if (inOff + n < this.blockSize) await this.store.truncate(at + this.blockSize);
        } else {
          const full = new Uint8Array(this.blockSize);
          full.set(part, inOff);
          await this.store.write(at, full);
        }
        this.fileSize = Math.max(this.fileSize, at + this.blockSize);
        const v = (BigInt(at / MiB) << 20n) | BigInt(State.FULLY_PRESENT);
        const i = this.batIndex(b);
        this.bat[i] = v;
        if (this.wb)
          this.wb = this.wb[1] > this.wb[0] ? [Math.min(this.wb[0], i), Math.max(this.wb[1], i + 1)] : [i, i + 1];
        else await this.store.write(this.batOffset + i * 8, le64big(v));
        this.end = at + this.blockSize;
      }
      pos += n;
    }
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
    for (let pos = offset; pos < offset + length; ) {
      const b = Math.floor(pos / this.blockSize);
      const n = Math.min((b + 1) * this.blockSize, offset + length) - pos;
      const host = this.hostOf(b);
      if (host !== null) {
        await this.touchHeaders();
        for (let p = 0; p < n; p += MiB)
          await this.store.write(host + (pos - b * this.blockSize) + p, new Uint8Array(Math.min(MiB, n - p)));
      }
      pos += n;
    }
  }

  /** Blocks are not freed: discard is a no-op. */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen(true);
    checkRange(F, offset, length, this.virtSize);
  }

  async flush(): Promise<void> {
    this.checkOpen(false);
    if (this.readOnly) return;
    await this.drainBat();
    await this.store.flush();
  }

  /**
   * Turns metadata write-behind on for an image being filled with new data
   * (convert's target): new blocks are written at once, the BAT entries
   * naming them once by flush() or close() (the changed range in one write)
   * instead of one small write per block. A process killed before that
   * leaves blocks no entry names (qemu-img check: clean).
   */
  deferMetadata(): void {
    this.checkOpen(true);
    this.wb ??= [0, 0];
  }

  private async drainBat(): Promise<void> {
    if (!this.wb || this.wb[1] <= this.wb[0]) return;
    // The new blocks lie inside the file before an entry names them (MS-VHDX 2.5; QEMU's BAT check).
    if (this.extendTo > 0) {
      if (this.extendTo > (await this.store.size())) await this.store.truncate(this.extendTo);
      this.extendTo = 0;
    }
    const [from, to] = this.wb;
    this.wb = [0, 0];
    const b = new Uint8Array((to - from) * 8);
    const dv = new DataView(b.buffer);
    for (let i = from; i < to; i++) dv.setBigUint64((i - from) * 8, this.bat[i]!, true);
    await this.store.write(this.batOffset + from * 8, b);
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkOpen(false);
    checkRange(F, offset, length, this.virtSize);
    const end = offset + length;
    const b = Math.floor(offset / this.blockSize);
    const host = this.hostOf(b);
    let n = Math.min((b + 1) * this.blockSize, end) - offset;
    for (let k = b + 1; offset + n < end; k++) {
      const h = this.hostOf(k);
      if (host === null ? h !== null : h !== host + (k - b) * this.blockSize) break;
      n = Math.min((k + 1) * this.blockSize, end) - offset;
    }
    if (host === null) return { start: offset, length: n, kind: "zero", depth: 0 };
    return { start: offset, length: n, kind: "data", depth: 0, hostOffset: host + (offset - b * this.blockSize) };
  }

  async resize(_newSize: number): Promise<void> {
    throw new DiskError(DiskErrorCode.UNSUPPORTED, { format: F }, "resizing VHDX images");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.readOnly) await this.drainBat();
    this.closed = true;
    if (!this.readOnly) await this.store.flush();
    await this.store.close();
  }
}

function buildHeader(seq: bigint, fwg: Uint8Array, dwg: Uint8Array, logOff: number, logLen: number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  const dv = new DataView(b.buffer);
  b.set(new TextEncoder().encode("head"));
  dv.setBigUint64(8, seq, true);
  b.set(fwg, 16);
  b.set(dwg, 32);
  // log GUID (48..63) zero: the log is empty
  dv.setUint16(64, 0, true); // log version
  dv.setUint16(66, 1, true); // version
  dv.setUint32(68, logLen, true);
  dv.setBigUint64(72, BigInt(logOff), true);
  dv.setUint32(4, crc32c(b, 4), true);
  return b;
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}
function le32pair(a: number, c: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, a, true);
  new DataView(b.buffer).setUint32(4, c, true);
  return b;
}
function le64(v: number): Uint8Array {
  return le64big(BigInt(v));
}
function le64big(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}
