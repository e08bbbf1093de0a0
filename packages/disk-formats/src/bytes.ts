// Byte helpers shared by the formats.

/**
 * True if every byte is zero: 32-bit words when aligned (no BigInt per word), eight OR-ed per
 * test (about twice the speed of one branch per word on the bench's 4 KiB granules).
 */
export function isZero(b: Uint8Array): boolean {
  const n4 = b.byteOffset % 4 === 0 ? b.length >> 2 : 0;
  if (n4 > 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset, n4);
    let i = 0;
    for (; i + 8 <= n4; i += 8)
      if ((w[i]! | w[i + 1]! | w[i + 2]! | w[i + 3]! | w[i + 4]! | w[i + 5]! | w[i + 6]! | w[i + 7]!) !== 0)
        return false;
    for (; i < n4; i++) if (w[i] !== 0) return false;
  }
  for (let i = n4 * 4; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** WebAssembly's page: a Memory grows in these. */
const WASM_PAGE = 64 * 1024;

/**
 * A zeroed byte array of `length` bytes that starts on a page boundary: the
 * memory of a WebAssembly.Memory, which V8 (and browsers) map page-aligned.
 * A plain ArrayBuffer of megabytes comes from malloc, which puts it 16 bytes
 * past a page (glibc's mmap chunks), and the kernel's copies to and from such
 * a buffer (read() out of and write() into the page cache) ran at half speed
 * on this machine (AMD EPYC, `rep movsb`): 1 GiB read into a 4 MiB buffer in
 * 135 ms of system time against 70 ms page-aligned, or 64- or 32-byte aligned
 * (8 bytes off: 325 ms). For buffers that large I/O goes through over and over
 * (convert's windows). Falls back to a plain Uint8Array where WebAssembly is
 * missing or the mapping fails (a small address-space limit).
 */
export function alignedBytes(length: number): Uint8Array {
  const W = (globalThis as { WebAssembly?: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } })
    .WebAssembly;
  const pages = Math.ceil(length / WASM_PAGE);
  if (W && length > 0)
    try {
      return new Uint8Array(new W.Memory({ initial: pages }).buffer, 0, length);
    } catch {
      // fall through: ordinary memory, only slower to copy
    }
  return new Uint8Array(length);
}

/** Node's Buffer (when present): its compare() is a memcmp over ranges, no view per call. */
interface NodeBuffer extends Uint8Array {
  compare(target: Uint8Array, targetStart: number, targetEnd: number, sourceStart: number, sourceEnd: number): number;
}
const NodeBufferAlloc = (globalThis as { Buffer?: { alloc(n: number): NodeBuffer } }).Buffer?.alloc;
let zeros: NodeBuffer | null = null;
/** Zero spans tried in one memcmp before granule by granule: holes are usually longer. */
const SPAN = 64 * 1024;

/**
 * Finds the runs of granules of `buf[0, length)` that hold a non-zero byte,
 * as [start, end) pairs appended to `out` (cleared first); returns the count of
 * runs. A granule whose first 32-bit word is not zero is data at once (random
 * data: one load). Where Node's Buffer exists, the others are compared with
 * zeros by memcmp (Buffer#compare on ranges, no view allocated), a span of up
 * to 64 KiB at a time first, then granule by granule if the span is not all
 * zero; elsewhere (browsers) eight 32-bit words are OR-ed per test. `native:
 * false` forces the JS path (tests).
 */
export function nonZeroRuns(
  buf: Uint8Array,
  length: number,
  gran: number,
  out: number[],
  native = NodeBufferAlloc !== undefined,
): number {
  out.length = 0;
  const aligned = buf.byteOffset % 4 === 0 && gran % 32 === 0;
  const w = aligned ? new Int32Array(buf.buffer, buf.byteOffset, length >> 2) : null;
  if (native && NodeBufferAlloc) return nativeRuns(buf, length, gran, out, w, NodeBufferAlloc);
  let run = -1;
  for (let o = 0; o < length; o += gran) {
    const e = Math.min(o + gran, length);
    let zero = true;
    if (w && e - o >= 4 && w[o >> 2] !== 0) zero = false;
    else if (w) {
      let i = o >> 2;
      const we = e >> 2;
      for (; i + 8 <= we; i += 8)
        if ((w[i]! | w[i + 1]! | w[i + 2]! | w[i + 3]! | w[i + 4]! | w[i + 5]! | w[i + 6]! | w[i + 7]!) !== 0) {
          zero = false;
          break;
        }
      if (zero) for (; i < we; i++) if (w[i] !== 0) zero = false;
      if (zero) for (let b = we << 2; b < e; b++) if (buf[b] !== 0) zero = false;
    } else zero = isZero(buf.subarray(o, e));
    if (!zero && run < 0) run = o;
    if (zero && run >= 0) {
      out.push(run, o);
      run = -1;
    }
  }
  if (run >= 0) out.push(run, length);
  return out.length / 2;
}

function nativeRuns(
  buf: Uint8Array,
  length: number,
  gran: number,
  out: number[],
  w: Int32Array | null,
  alloc: (n: number) => NodeBuffer,
): number {
  const span = Math.max(1, Math.floor(SPAN / gran)) * gran;
  if (!zeros || zeros.length < span) zeros = alloc(span);
  const z = zeros;
  let run = -1;
  let o = 0;
  while (o < length) {
    const e = Math.min(o + gran, length);
    let zeroEnd = o; // end of the zero granules found at o (o: none)
    if (!(w && e - o >= 4 && w[o >> 2] !== 0)) {
      const se = Math.min(o + span, length);
      if (se > e && z.compare(buf, o, se, 0, se - o) === 0) zeroEnd = se;
      else if (z.compare(buf, o, e, 0, e - o) === 0) zeroEnd = e;
    }
    if (zeroEnd === o) {
      if (run < 0) run = o;
      o = e;
      continue;
    }
    if (run >= 0) {
      out.push(run, o);
      run = -1;
    }
    o = zeroEnd;
  }
  if (run >= 0) out.push(run, length);
  return out.length / 2;
}
