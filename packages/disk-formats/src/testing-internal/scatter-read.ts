// A `ByteStore.readv` for test stores: one `read` of the buffers' total length (at most `cap`)
// into a scratch buffer, scattered into the buffers in turn (the bytes a preadv would fill).
/** Reads at `offset` into `bufs` as if they were one buffer, at most `cap` bytes; returns the count read. */
export async function scatterRead(
  read: (offset: number, buf: Uint8Array) => Promise<number>,
  offset: number,
  bufs: readonly Uint8Array[],
  cap = Number.POSITIVE_INFINITY,
): Promise<number> {
  const tmp = new Uint8Array(
    Math.min(
      cap,
      bufs.reduce((n, b) => n + b.length, 0),
    ),
  );
  const n = await read(offset, tmp);
  let at = 0;
  for (const b of bufs) {
    if (at >= n) break;
    b.set(tmp.subarray(at, Math.min(n, at + b.length)));
    at += b.length;
  }
  return n;
}
