// Deflate codec for compressed clusters (qcow2: raw deflate, 4 KiB window as QEMU uses).
import { deflateRawSync, deflateSync, inflateRawSync, inflateSync } from "node:zlib";

/** Inflates raw deflate data to exactly `outLength` bytes, or returns null if the data is bad or the size differs. */
export function inflateExact(data: Uint8Array, outLength: number): Uint8Array | null {
  try {
    const out = inflateRawSync(data, { maxOutputLength: outLength });
    return out.length === outLength ? new Uint8Array(out.buffer, out.byteOffset, out.length) : null;
  } catch {
    return null;
  }
}

/** Raw deflate with the parameters QEMU's qcow2 uses (window bits 12, default level). */
export function deflateRaw(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data, { windowBits: 12, memLevel: 9 });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Inflates zlib (RFC 1950) data to at most `maxLength` bytes; null if the data is bad or larger. */
export function zlibInflate(data: Uint8Array, maxLength: number): Uint8Array | null {
  try {
    const out = inflateSync(data, { maxOutputLength: maxLength });
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch {
    return null;
  }
}

/** zlib (RFC 1950) deflate, as VMDK streamOptimized grains use. */
export function zlibDeflate(data: Uint8Array): Uint8Array {
  const out = deflateSync(data);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
