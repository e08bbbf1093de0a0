// Byte helpers shared by the formats.

/** True if every byte is zero (32-bit words when aligned: no BigInt allocation per word). */
export function isZero(b: Uint8Array): boolean {
  const n4 = b.byteOffset % 4 === 0 ? b.length >> 2 : 0;
  if (n4 > 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset, n4);
    for (let i = 0; i < n4; i++) if (w[i] !== 0) return false;
  }
  for (let i = n4 * 4; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
