// The Internet checksum (RFC 1071): one's-complement sum of 16-bit words.

/** Adds bytes [off, off+len) to a running 32-bit sum (not folded). */
export function sumBytes(b: Uint8Array, off: number, len: number, sum = 0): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  // Fold periodically callers do not need: JS numbers hold 2^53, frames are < 2^17 words.
  return sum;
}

export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function checksum(b: Uint8Array, off: number, len: number): number {
  return foldChecksum(sumBytes(b, off, len));
}

/** Sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768) for a transport checksum. */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}
