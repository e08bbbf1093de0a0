// VHDX log ([MS-VHDX] 2.3): finding the active sequence and replaying it.
// The log is a circular buffer of entries. An entry is one or more 4 KiB
// descriptor sectors (a 64-byte header, then 32-byte zero/data descriptors)
// followed by one 4 KiB data sector per data descriptor; a CRC-32C covers the
// whole entry and the sequence number is repeated in every descriptor and
// data sector, so torn or misdirected writes are detected.
import { DiskError, DiskErrorCode } from "../errors.js";
import { type ByteStore, readFull } from "../io/store.js";

const F = "vhdx";
const SECTOR = 4096;
const MiB = 1024 * 1024;
/** The log is read whole: refuse absurd log regions (Hyper-V and qemu-img use 1 MiB). */
export const MAX_LOG_LENGTH = 64 * MiB;
/** Bytes hashed while scanning; a hostile log of overlapping "valid-looking" headers cannot make the scan quadratic forever. */
const MAX_SCAN_BYTES = 16 * MAX_LOG_LENGTH;
/** Replayed writes stay below this file offset (64 TiB of payload plus metadata). */
const MAX_FILE_OFFSET = 2 ** 46 + 2 ** 40;

export type LogDescriptor =
  | { kind: "data"; fileOffset: number; sector: Uint8Array }
  | { kind: "zero"; fileOffset: number; length: number };

export interface LogEntry {
  /** Offset of the entry inside the log. */
  at: number;
  length: number;
  tail: number;
  seq: bigint;
  flushedFileOffset: number;
  lastFileOffset: number;
  descriptors: LogDescriptor[];
}

const latin1 = new TextDecoder("latin1");
const sig = (b: Uint8Array, at: number) => latin1.decode(b.subarray(at, at + 4));

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Number of descriptor sectors for `count` descriptors (the header takes the room of two). */
export function descriptorSectors(count: number): number {
  return Math.ceil((count + 2) / 128);
}

/**
 * Parses the entry starting at `at` in `log` (wrapping at its end). Returns
 * null when it is not a valid entry for `logGuid` (2.3.1: signature, lengths,
 * checksum, sequence numbers in every descriptor and data sector, log GUID).
 */
export function parseEntry(
  log: Uint8Array,
  at: number,
  logGuid: Uint8Array,
  crc: (b: Uint8Array, skip: number) => number,
  budget: { bytes: number },
): LogEntry | null {
  const len = log.length;
  const bytes = (off: number, n: number): Uint8Array => {
    const s = (at + off) % len;
    if (s + n <= len) return log.subarray(s, s + n);
    const out = new Uint8Array(n);
    out.set(log.subarray(s));
    out.set(log.subarray(0, n - (len - s)), len - s);
    return out;
  };
  const h = bytes(0, 64);
  const dv = new DataView(h.buffer, h.byteOffset, 64);
  if (sig(h, 0) !== "loge") return null;
  const length = dv.getUint32(8, true);
  const tail = dv.getUint32(12, true);
  const seq = dv.getBigUint64(16, true);
  const count = dv.getUint32(24, true);
  if (length === 0 || length % SECTOR !== 0 || length > len) return null;
  if (tail % SECTOR !== 0 || tail >= len || seq === 0n) return null;
  if (!equal(h.subarray(32, 48), logGuid)) return null;
  const flushedFileOffset = Number(dv.getBigUint64(48, true));
  const lastFileOffset = Number(dv.getBigUint64(56, true));
  if (flushedFileOffset % MiB !== 0 || lastFileOffset % MiB !== 0 || lastFileOffset > MAX_FILE_OFFSET) return null;
  const sectors = length / SECTOR;
  const dsec = descriptorSectors(count);
  if (dsec > sectors) return null;
  budget.bytes -= length;
  if (budget.bytes < 0)
    throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F }, "log scan exceeds its work limit (hostile log)");
  const entry = bytes(0, length);
  if (dv.getUint32(4, true) !== crc(entry, 4)) return null;
  const edv = new DataView(entry.buffer, entry.byteOffset, length);
  const descriptors: LogDescriptor[] = [];
  let dataSector = dsec;
  for (let i = 0; i < count; i++) {
    const d = 64 + i * 32;
    const kind = sig(entry, d);
    const fileOffset = Number(edv.getBigUint64(d + 16, true));
    if (edv.getBigUint64(d + 24, true) !== seq || fileOffset % SECTOR !== 0) return null;
    if (kind === "zero") {
      const zl = Number(edv.getBigUint64(d + 8, true));
      if (zl % SECTOR !== 0 || fileOffset + zl > MAX_FILE_OFFSET) return null;
      descriptors.push({ kind: "zero", fileOffset, length: zl });
    } else if (kind === "desc") {
      if (dataSector >= sectors || fileOffset + SECTOR > MAX_FILE_OFFSET) return null;
      const s = dataSector * SECTOR;
      // 2.3.1.4: "data", sequence high, 4084 bytes, sequence low.
      if (sig(entry, s) !== "data") return null;
      const sseq = (BigInt(edv.getUint32(s + 4, true)) << 32n) | BigInt(edv.getUint32(s + 4092, true));
      if (sseq !== seq) return null;
      const sector = new Uint8Array(SECTOR);
      sector.set(entry.subarray(d + 8, d + 16), 0); // LeadingBytes
      sector.set(entry.subarray(s + 8, s + 4092), 8);
      sector.set(entry.subarray(d + 4, d + 8), 4092); // TrailingBytes
      descriptors.push({ kind: "data", fileOffset, sector });
      dataSector++;
    } else return null;
  }
  // Every sector of the entry is accounted for: one data sector per data descriptor.
  if (dataSector !== sectors) return null;
  return { at, length, tail, seq, flushedFileOffset, lastFileOffset, descriptors };
}

/**
 * Finds the active sequence (2.3.3): chains of valid entries with sequence
 * numbers increasing by one; a chain counts only when its head's Tail points
 * at one of its entries; the chain whose head has the highest sequence number
 * wins. Returns the entries from the tail to the head, or null (no valid
 * sequence: nothing to replay).
 */
export function findActiveSequence(
  log: Uint8Array,
  logGuid: Uint8Array,
  crc: (b: Uint8Array, skip: number) => number,
): LogEntry[] | null {
  const len = log.length;
  const budget = { bytes: MAX_SCAN_BYTES };
  const memo = new Map<number, LogEntry | null>();
  const entryAt = (p: number) => {
    if (!memo.has(p)) memo.set(p, parseEntry(log, p, logGuid, crc, budget));
    return memo.get(p) ?? null;
  };
  let best: LogEntry[] | null = null;
  let tail = 0;
  for (;;) {
    const chain: LogEntry[] = [];
    let p = tail;
    let used = 0;
    for (;;) {
      const e = entryAt(p);
      if (!e) break;
      const prev = chain[chain.length - 1];
      if (prev && e.seq !== prev.seq + 1n) break;
      if (used + e.length > len) break; // a chain never covers more than the whole log
      chain.push(e);
      used += e.length;
      p = (p + e.length) % len;
    }
    const head = chain[chain.length - 1];
    if (head) {
      const from = chain.findIndex((e) => e.at === head.tail);
      if (from >= 0 && (!best || head.seq > best[best.length - 1]!.seq)) best = chain.slice(from);
    }
    const next = head ? p : (tail + SECTOR) % len;
    if (next <= tail) break; // wrapped: the whole log has been scanned
    tail = next;
  }
  return best;
}

/** Reads the log region, or throws when it lies outside the file. */
export async function readLog(store: ByteStore, logOffset: number, logLength: number, at: number): Promise<Uint8Array> {
  const fileSize = await store.size();
  if (logOffset < MiB || logOffset % MiB !== 0 || logLength % MiB !== 0)
    throw new DiskError(DiskErrorCode.INVALID_HEADER, { format: F, offset: at }, "log offset/length not 1 MiB aligned");
  if (logLength > MAX_LOG_LENGTH)
    throw new DiskError(DiskErrorCode.TOO_LARGE, { format: F, offset: at, logLength }, "log region too large");
  if (logOffset + logLength > fileSize)
    throw new DiskError(DiskErrorCode.OUT_OF_BOUNDS, { format: F, offset: at, logOffset }, "log beyond end of file");
  const log = new Uint8Array(logLength);
  await readFull(store, logOffset, log);
  return log;
}

/**
 * Replays `entries` into the file (2.3.3): data sectors and zero ranges in
 * order from the tail, then the file is grown to the head's LastFileOffset
 * and flushed. Descriptors must not touch the header section or the log.
 */
export async function replay(
  store: ByteStore,
  entries: LogEntry[],
  logOffset: number,
  logLength: number,
): Promise<void> {
  const head = entries[entries.length - 1]!;
  const fileSize = await store.size();
  if (fileSize < head.flushedFileOffset)
    throw new DiskError(
      DiskErrorCode.TRUNCATED,
      { format: F, offset: logOffset + head.at + 48, flushedFileOffset: head.flushedFileOffset, fileSize },
      "file shorter than the log's FlushedFileOffset (truncated)",
    );
  for (const e of entries)
    for (const d of e.descriptors) {
      const end = d.fileOffset + (d.kind === "data" ? SECTOR : d.length);
      if (d.fileOffset < MiB || (d.fileOffset < logOffset + logLength && end > logOffset))
        throw new DiskError(
          DiskErrorCode.METADATA_OVERLAP,
          { format: F, offset: logOffset + e.at, fileOffset: d.fileOffset },
          "log descriptor targets the header section or the log",
        );
    }
  for (const e of entries)
    for (const d of e.descriptors) {
      if (d.kind === "data") {
        await store.write(d.fileOffset, d.sector);
        continue;
      }
      // Zeroes: written where the file has bytes, the rest is growth (reads as zero).
      const size = await store.size();
      const end = d.fileOffset + d.length;
      for (let p = d.fileOffset; p < Math.min(end, size); p += MiB)
        await store.write(p, new Uint8Array(Math.min(MiB, Math.min(end, size) - p)));
      if (end > size) await store.truncate(end);
    }
  if ((await store.size()) < head.lastFileOffset) await store.truncate(head.lastFileOffset);
  await store.flush();
}
