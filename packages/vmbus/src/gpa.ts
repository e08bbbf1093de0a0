// GPA ranges as carried by GPA-direct packets (vmbus.md §2.6) and GPADLs (§2.4).
// Wire form of one range (Linux hyperv.h struct gpa_range):
//   byte_count u32, byte_offset u32, pfn_array u64[n]
// where n = the number of 4 KiB pages spanned by [byte_offset, byte_offset + byte_count).
import { VmbusError, VmbusErrorCode } from "./errors.js";

export const PAGE_SIZE = 4096;

export interface GpaRange {
  /** Bytes described by the range (> 0). */
  byteCount: number;
  /** Offset into the first page (< 4096). */
  byteOffset: number;
  /** Guest page frame numbers (4 KiB pages), one per page spanned. */
  pfns: readonly number[];
}

/** Pages spanned by [byteOffset, byteOffset + byteCount) — Linux NUM_PAGES_SPANNED. */
export function pagesSpanned(byteOffset: number, byteCount: number): number {
  return Math.ceil((byteOffset + byteCount) / PAGE_SIZE);
}

/** Encoded size of one range: 8 + 8 per PFN. */
export function gpaRangeSize(r: GpaRange): number {
  return 8 + 8 * r.pfns.length;
}

function checkRange(r: GpaRange, i: number): VmbusError | undefined {
  const ok =
    Number.isInteger(r.byteCount) &&
    Number.isInteger(r.byteOffset) &&
    r.byteCount > 0 &&
    r.byteCount <= 0xffff_ffff &&
    r.byteOffset >= 0 &&
    r.byteOffset < PAGE_SIZE &&
    r.pfns.length === pagesSpanned(r.byteOffset, r.byteCount) &&
    r.pfns.every((p) => Number.isSafeInteger(p) && p >= 0);
  return ok
    ? undefined
    : new VmbusError(
        VmbusErrorCode.GPA_RANGE_INVALID,
        { index: i, byteCount: r.byteCount, byteOffset: r.byteOffset, pfns: r.pfns.length },
        "range inconsistent",
      );
}

/** Encodes ranges back to back (no prefix); throws VmbusError for an inconsistent range (caller bug). */
export function encodeGpaRanges(ranges: readonly GpaRange[]): Uint8Array {
  let size = 0;
  for (let i = 0; i < ranges.length; i++) {
    const e = checkRange(ranges[i], i);
    if (e) throw e;
    size += gpaRangeSize(ranges[i]);
  }
  const out = new Uint8Array(size);
  writeRanges(new DataView(out.buffer), 0, ranges);
  return out;
}

function writeRanges(dv: DataView, pos: number, ranges: readonly GpaRange[]): number {
  for (const r of ranges) {
    dv.setUint32(pos, r.byteCount, true);
    dv.setUint32(pos + 4, r.byteOffset, true);
    pos += 8;
    for (const pfn of r.pfns) {
      dv.setBigUint64(pos, BigInt(pfn), true);
      pos += 8;
    }
  }
  return pos;
}

/**
 * Decodes `count` ranges from `bytes` starting at `offset`. Returns the ranges and
 * the offset after them, or a GPA_RANGE_INVALID error. Never reads outside `bytes`.
 */
export function decodeGpaRanges(
  bytes: Uint8Array,
  offset: number,
  count: number,
): { ranges: GpaRange[]; end: number } | VmbusError {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ranges: GpaRange[] = [];
  let pos = offset;
  for (let i = 0; i < count; i++) {
    if (pos + 8 > bytes.length) return bad("range header truncated", { index: i, offset: pos });
    const byteCount = dv.getUint32(pos, true);
    const byteOffset = dv.getUint32(pos + 4, true);
    pos += 8;
    if (byteCount === 0 || byteOffset >= PAGE_SIZE)
      return bad("empty range or offset beyond page", { index: i, byteCount, byteOffset });
    const n = pagesSpanned(byteOffset, byteCount);
    if (pos + 8 * n > bytes.length) return bad("pfn array truncated", { index: i, pfns: n });
    const pfns: number[] = new Array(n);
    for (let k = 0; k < n; k++) {
      const lo = dv.getUint32(pos, true);
      const hi = dv.getUint32(pos + 4, true);
      // PFNs above 2^53 cannot be represented as numbers (and no guest has that much RAM).
      if (hi > 0x1f_ffff) return bad("pfn beyond 2^53", { index: i, page: k });
      pfns[k] = hi * 0x1_0000_0000 + lo;
      pos += 8;
    }
    ranges.push({ byteCount, byteOffset, pfns });
  }
  return { ranges, end: pos };
}

function bad(detail: string, context: Record<string, unknown>): VmbusError {
  return new VmbusError(VmbusErrorCode.GPA_RANGE_INVALID, context, detail);
}

/**
 * GPA-direct packet header (Linux hyperv.h struct vmbus_packet_mpb_array after the
 * descriptor): reserved u32, range_count u32, then the ranges. Always 8-aligned.
 */
export function encodeGpaDirectHeader(ranges: readonly GpaRange[]): Uint8Array {
  if (ranges.length === 0) throw bad("GPA-direct needs at least one range", {}); // vmbus.md §2.6: range_count > 0
  let size = 8;
  for (let i = 0; i < ranges.length; i++) {
    const e = checkRange(ranges[i], i);
    if (e) throw e;
    size += gpaRangeSize(ranges[i]);
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(4, ranges.length, true);
  writeRanges(dv, 8, ranges);
  return out;
}

/** Validates and decodes a GPA-direct header: range_count > 0, every range consistent, no trailing bytes. */
export function decodeGpaDirectHeader(header: Uint8Array): GpaRange[] | VmbusError {
  if (header.length < 8) return bad("header shorter than 8 bytes", { length: header.length });
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const count = dv.getUint32(4, true);
  if (count === 0) return bad("range_count is 0", {}); // OpenVMM vmbus_ring: zero GPA range count rejected
  // Every range takes at least 16 bytes: reject absurd counts before looping.
  if (count > (header.length - 8) / 16) return bad("range_count exceeds header", { count, length: header.length });
  const r = decodeGpaRanges(header, 8, count);
  if (r instanceof VmbusError) return r;
  if (r.end !== header.length) return bad("trailing bytes after ranges", { end: r.end, length: header.length });
  return r.ranges;
}
