// A FIFO of byte chunks with random-access reads, used for TCP send buffers.

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // bytes already consumed from chunks[0]
  private len = 0;

  get length(): number {
    return this.len;
  }

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.len += b.length;
  }

  /** Copies `n` bytes starting `off` bytes into the queue (clamped to what is there). */
  peek(off: number, n: number): Uint8Array {
    n = Math.max(0, Math.min(n, this.len - off));
    const out = new Uint8Array(n);
    let skip = off + this.head;
    let w = 0;
    for (let i = 0; i < this.chunks.length && w < n; i++) {
      const c = this.chunks[i]!;
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const take = Math.min(c.length - skip, n - w);
      out.set(c.subarray(skip, skip + take), w);
      w += take;
      skip = 0;
    }
    return out;
  }

  /** Discards the first `n` bytes. */
  drop(n: number): void {
    n = Math.min(n, this.len);
    this.len -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const avail = c.length - this.head;
      if (n < avail) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.len = 0;
  }
}
