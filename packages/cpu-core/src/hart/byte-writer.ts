// A growable byte buffer for the WebAssembly back end's code generator (wasm-block.ts): one
// Uint8Array grown by doubling and reused from call to call, so generating a trace allocates
// nothing but its result. LEB128 as in WebAssembly core 2.0 §5.2.2 (the shortest encoding).

/** Bytes of the unsigned LEB128 encoding of `v` (a non-negative integer within 2^53). */
export function ulebSize(v: number): number {
  let n = 1;
  if (v >>> 0 === v) {
    while (v >= 0x80) {
      v >>>= 7;
      n++;
    }
    return n;
  }
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export class ByteWriter {
  buf: Uint8Array;
  /** Bytes written. */
  pos = 0;

  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity);
  }

  reset(): void {
    this.pos = 0;
  }

  /**
   * Room for `n` more bytes. (Every writer checks here, so the growth path has type feedback
   * once any of them grew: a check of their own deoptimized the generator at its first growth.)
   */
  room(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }

  /** Up to eight bytes (each 0..255), in order. */
  push(a: number, b?: number, c?: number, d?: number, e?: number, f?: number, g?: number, h?: number): void {
    this.room(8);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = a;
    if (b !== undefined) {
      buf[p++] = b;
      if (c !== undefined) {
        buf[p++] = c;
        if (d !== undefined) {
          buf[p++] = d;
          if (e !== undefined) {
            buf[p++] = e;
            if (f !== undefined) {
              buf[p++] = f;
              if (g !== undefined) {
                buf[p++] = g;
                if (h !== undefined) buf[p++] = h;
              }
            }
          }
        }
      }
    }
    this.pos = p;
  }

  /** Unsigned LEB128 of a non-negative integer within 2^53. */
  uleb(v: number): void {
    this.room(8);
    const buf = this.buf;
    let p = this.pos;
    if (v >>> 0 === v) {
      // uint32: logical shifts
      while (v >= 0x80) {
        buf[p++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      buf[p++] = v;
      this.pos = p;
      return;
    }
    this.pos = p;
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
  }

  /** Signed LEB128 of a bigint (an i64 beyond ±2^53). */
  slebBig(value: bigint): void {
    let v = value;
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
        this.byte(b);
        return;
      }
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of an integer within ±2^53. */
  sleb(value: number): void {
    let v = value;
    if (v === (v | 0)) {
      // int32: arithmetic shifts (at most 5 bytes)
      this.room(5);
      const buf = this.buf;
      let p = this.pos;
      for (;;) {
        const b = v & 0x7f;
        v >>= 7;
        if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
          buf[p++] = b;
          this.pos = p;
          return;
        }
        buf[p++] = b | 0x80;
      }
    }
    // integers within ±2^53: exact floor division
    for (;;) {
      const b = ((v % 128) + 128) % 128;
      v = (v - b) / 128;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.byte(b);
        return;
      }
      this.byte(b | 0x80);
    }
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** The bytes of `src` (a Uint8Array or an array of bytes). */
  bytes(src: ArrayLike<number>): void {
    const n = src.length;
    this.room(n);
    this.buf.set(src, this.pos);
    this.pos += n;
  }

  /** A copy of the bytes written, exactly sized. */
  copy(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
