// Byte helpers shared by the formats.

/** True if every byte is zero (word-at-a-time when aligned). */
export function isZero(b: Uint8Array): boolean {
  const n8 = b.byteOffset % 8 === 0 ? b.length >> 3 : 0;
  if (n8 > 0) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, n8);
    for (let i = 0; i < n8; i++) if (w[i] !== 0n) return false;
  }
  for (let i = n8 * 8; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
