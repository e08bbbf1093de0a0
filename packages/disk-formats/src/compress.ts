// Deflate codec for compressed clusters and grains, portable (no node:zlib):
// pako is a line-by-line port of zlib, so the window size can be set as QEMU
// sets it. qcow2 compressed clusters are raw deflate with a 4 KiB window
// (QEMU's qcow2_compress: deflateInit2(..., -12, 9, ...)); QEMU inflates them
// with the same 4 KiB window, so a deflater with a 32 KiB window (fflate, for
// one) writes clusters qemu-img cannot read. VMDK streamOptimized grains are
// zlib (RFC 1950) streams.
import {
  deflate,
  deflateRaw as pakoDeflateRaw,
  Z_FINISH,
  Z_OK,
  Z_STREAM_END,
  ZStream,
  zlibInflate as zInflate,
  zlibInflateEnd,
  zlibInflateInit2,
} from "pako";

/**
 * Inflates `data` into a buffer of at most `limit` bytes; returns the bytes
 * written, or null if the stream is bad, ends early, or would be longer than
 * `limit`. One spare byte in the buffer detects "longer" without inflating the
 * rest (a bomb costs at most `limit + 1` bytes). Bytes after the end of the
 * stream are ignored, as zlib does (qcow2 rounds compressed data up to a sector).
 */
function inflateInto(data: Uint8Array, limit: number, windowBits: number): Uint8Array | null {
  const strm = new ZStream();
  if (zlibInflateInit2(strm, windowBits) !== Z_OK) return null;
  strm.input = data;
  strm.next_in = 0;
  strm.avail_in = data.length;
  strm.output = new Uint8Array(limit + 1);
  strm.next_out = 0;
  strm.avail_out = limit + 1;
  let status: number;
  try {
    status = zInflate(strm, Z_FINISH);
  } catch {
    return null;
  } finally {
    zlibInflateEnd(strm);
  }
  if (status !== Z_STREAM_END || strm.total_out > limit) return null;
  return strm.output.subarray(0, strm.total_out);
}

/** Inflates raw deflate data to exactly `outLength` bytes, or returns null if the data is bad or the size differs. */
export function inflateExact(data: Uint8Array, outLength: number): Uint8Array | null {
  const out = inflateInto(data, outLength, -15);
  return out !== null && out.length === outLength ? out : null;
}

/** Raw deflate with the parameters QEMU's qcow2 uses (window bits 12, memory level 9, default level). */
export function deflateRaw(data: Uint8Array): Uint8Array {
  return pakoDeflateRaw(data, { windowBits: 12, memLevel: 9 });
}

/** Inflates zlib (RFC 1950) data to at most `maxLength` bytes; null if the data is bad or larger. */
export function zlibInflate(data: Uint8Array, maxLength: number): Uint8Array | null {
  return inflateInto(data, maxLength, 15);
}

/** zlib (RFC 1950) deflate, as VMDK streamOptimized grains use. */
export function zlibDeflate(data: Uint8Array): Uint8Array {
  return deflate(data);
}

/** What a compressed cluster or grain holds: qcow2's raw deflate (4 KiB window) or VMDK's zlib stream. */
export type CompressKind = "qcow2" | "zlib";

/**
 * Compresses clusters and grains, possibly elsewhere (worker threads:
 * WorkerCompressor from the "./node" entry), with deflateRaw's / zlibDeflate's
 * parameters (qcow2: a window of at most 4 KiB, which QEMU inflates with).
 * Requests may complete out of order; the caller writes in its own order, so
 * an image's layout does not depend on how many threads compressed it.
 */
export interface Compressor {
  /** Compresses `data` (copied or consumed at once: the caller may reuse the buffer when this returns). */
  compress(kind: CompressKind, data: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** The same compression on the calling thread (browsers, one core). */
export const inlineCompressor: Compressor = {
  compress: async (kind, data) => (kind === "zlib" ? zlibDeflate(data) : deflateRaw(data)),
  close: async () => {},
};
