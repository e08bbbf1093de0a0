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
      const memory = new W.Memory({ initial: pages });
      const scan = scanFor(memory);
      if (scan) scans.set(memory.buffer, scan);
      return new Uint8Array(memory.buffer, 0, length);
    } catch {
      // fall through: ordinary memory, only slower to copy
    }
  return new Uint8Array(length);
}

/**
 * The zero scan in WebAssembly SIMD (128-bit loads, `v128.any_true`), run on the memories
 * alignedBytes makes, which it imports (no copy). Assembled with wabt's wat2wasm from:
 *
 *     (module (import "m" "mem" (memory 0))
 *       ;; zg(p, end, gran): the first granule p + k*gran < end whose bytes are all zero, or end
 *       ;; (end - p a multiple of gran, gran of 64). A granule whose first 16 bytes are not all
 *       ;; zero is data at once; the others are OR-ed 64 bytes at a time.
 *       (func (export "zg") (param $p i32) (param $end i32) (param $gran i32) (result i32)
 *         (local $q i32) (local $ge i32)
 *         (block $out (loop $next
 *           (br_if $out (i32.ge_u (local.get $p) (local.get $end)))
 *           (if (i32.eqz (v128.any_true (v128.load (local.get $p)))) (then
 *             (local.set $q (local.get $p))
 *             (local.set $ge (i32.add (local.get $p) (local.get $gran)))
 *             (block $data (loop $scan
 *               (br_if $out (i32.ge_u (local.get $q) (local.get $ge)))
 *               (br_if $data (v128.any_true (v128.or
 *                 (v128.or (v128.load offset=0 (local.get $q)) (v128.load offset=16 (local.get $q)))
 *                 (v128.or (v128.load offset=32 (local.get $q)) (v128.load offset=48 (local.get $q))))))
 *               (local.set $q (i32.add (local.get $q) (i32.const 64)))
 *               (br $scan)))))
 *           (local.set $p (i32.add (local.get $p) (local.get $gran)))
 *           (br $next)))
 *         (local.get $p))
 *       ;; nz(p, end): the first 64-byte block at or after p with a non-zero byte, or end
 *       ;; (end - p a multiple of 64)
 *       (func (export "nz") (param $p i32) (param $end i32) (result i32)
 *         (block $out (loop $next
 *           (br_if $out (i32.ge_u (local.get $p) (local.get $end)))
 *           (br_if $out (v128.any_true (v128.or
 *             (v128.or (v128.load offset=0 (local.get $p)) (v128.load offset=16 (local.get $p)))
 *             (v128.or (v128.load offset=32 (local.get $p)) (v128.load offset=48 (local.get $p))))))
 *           (local.set $p (i32.add (local.get $p) (i32.const 64)))
 *           (br $next)))
 *         (local.get $p)))
 *
 * Against memcmp with a 64 KiB zero buffer (nonZeroRuns' Node path), on the bench's 1 GiB raw
 * image in 4 MiB windows: 13 ms → 7.4 ms warm, 19 → 10 ms on a first pass; and one call per run
 * of data or zeros instead of a JavaScript step per granule.
 */
const SCAN_WASM =
  "0061736d01000000010e0260037f7f7f017f60027f7f017f020a01016d036d656d0200000303020001070b02027a670000026e7a00010aac01026c01027f02400340200020014f0d012000fd000400fd5345044020002103200020026a210402400340200320044f0d042003fd0004002003fd000410fd502003fd0004202003fd000430fd50fd50fd530d01200341c0006a21030c000b0b0b200020026a21000c000b0b20000b3d0002400340200020014f0d012000fd0004002000fd000410fd502000fd0004202000fd000430fd50fd50fd530d01200041c0006a21000c000b0b20000b";

interface Scan {
  zg(p: number, end: number, gran: number): number;
  nz(p: number, end: number): number;
}
type WasmApi = {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Scan };
};
/** The compiled scan: undefined until first asked, null where WebAssembly or its SIMD is missing. */
let scanModule: object | null | undefined;
/** The scan of each memory alignedBytes made, by its buffer (a memory that never grows keeps it). */
const scans = new WeakMap<ArrayBufferLike, Scan>();

/** Whether nonZeroRuns takes the WebAssembly scan for views of `buf`'s memory (tests). */
export function hasWasmScan(buf: Uint8Array): boolean {
  return scans.has(buf.buffer);
}

function scanFor(memory: object): Scan | null {
  const W = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (!W) return null;
  if (scanModule === undefined)
    try {
      const bytes = new Uint8Array(SCAN_WASM.length / 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(SCAN_WASM.slice(2 * i, 2 * i + 2), 16);
      scanModule = new W.Module(bytes);
    } catch {
      scanModule = null; // no SIMD (an old engine): the other paths
    }
  if (scanModule === null) return null;
  try {
    return new W.Instance(scanModule, { m: { mem: memory } }).exports;
  } catch {
    return null;
  }
}

/** Node's Buffer (when present): its compare() is a memcmp over ranges, no view per call. */
interface NodeBuffer extends Uint8Array {
  compare(target: Uint8Array, targetStart: number, targetEnd: number, sourceStart: number, sourceEnd: number): number;
}
const NodeBufferAlloc = (globalThis as { Buffer?: { alloc(n: number): NodeBuffer } }).Buffer?.alloc;
let zeros: NodeBuffer | null = null;
/** Zero spans tried in one memcmp before granule by granule: holes are usually longer. */
const SPAN = 64 * 1024;

/** nonZeroRuns' implementations: the default takes the first that applies (tests force one). */
export type ScanPath = "wasm" | "memcmp" | "js";

/**
 * Finds the runs of granules of `buf[0, length)` that hold a non-zero byte,
 * as [start, end) pairs appended to `out` (cleared first); returns the count of
 * runs. In a memory of alignedBytes (convert's windows), at a 64-byte offset,
 * with granules of a multiple of 64 bytes: the WebAssembly SIMD scan (`wasm`,
 * above). Otherwise a granule whose first 32-bit word is not zero is data at
 * once (random data: one load); where Node's Buffer exists, the others are
 * compared with zeros by memcmp (`memcmp`: Buffer#compare on ranges, no view
 * allocated), a span of up to 64 KiB at a time first, then granule by granule
 * if the span is not all zero; elsewhere (browsers) eight 32-bit words are OR-ed
 * per test (`js`). `path` forces one where it applies (tests).
 */
export function nonZeroRuns(buf: Uint8Array, length: number, gran: number, out: number[], path?: ScanPath): number {
  out.length = 0;
  if (path === undefined || path === "wasm") {
    const scan = gran % 64 === 0 && buf.byteOffset % 64 === 0 ? scans.get(buf.buffer) : undefined;
    if (scan) return wasmRuns(buf, length, gran, out, scan);
  }
  const aligned = buf.byteOffset % 4 === 0 && gran % 32 === 0;
  const w = aligned ? new Int32Array(buf.buffer, buf.byteOffset, length >> 2) : null;
  if (path !== "js" && NodeBufferAlloc) return nativeRuns(buf, length, gran, out, w, NodeBufferAlloc);
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

/**
 * nonZeroRuns with the WebAssembly scan (`buf` in a memory of alignedBytes, at a 64-byte offset;
 * granules of a multiple of 64 bytes): one zg call finds the end of a run of data granules, one
 * nz call the end of the zeros after it; a short last granule (the disk's end) by isZero.
 */
function wasmRuns(buf: Uint8Array, length: number, gran: number, out: number[], scan: Scan): number {
  const base = buf.byteOffset;
  const body = length - (length % gran);
  let run = -1;
  let o = 0;
  while (o < body) {
    const z = Math.min(body, (scan.zg(base + o, base + body, gran) >>> 0) - base); // first zero granule
    if (z > o && run < 0) run = o;
    if (z >= body) break;
    if (run >= 0) {
      out.push(run, z);
      run = -1;
    }
    const q = Math.min(body, (scan.nz(base + z + gran, base + body) >>> 0) - base); // zeros end in q's granule
    o = q - (q % gran);
  }
  if (body < length) {
    if (!isZero(buf.subarray(body, length))) {
      if (run < 0) run = body;
    } else if (run >= 0) {
      out.push(run, body);
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
