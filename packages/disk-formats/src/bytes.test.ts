import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alignedBytes, hasWasmScan, isZero, nonZeroRuns } from "./bytes.js";

describe("isZero", () => {
  it("finds a single non-zero byte at any position, any length and alignment", () => {
    const backing = new Uint8Array(200);
    for (let off = 0; off < 4; off++)
      for (let len = 0; len <= 130; len++) {
        const b = backing.subarray(off, off + len);
        expect(isZero(b)).toBe(true);
        for (let i = 0; i < len; i++)
          for (const v of [1, 0x80]) {
            b[i] = v;
            expect([off, len, i, isZero(b)]).toEqual([off, len, i, false]);
            b[i] = 0;
          }
      }
    // bytes around the view do not count
    backing.fill(9);
    backing.fill(0, 8, 72);
    expect(isZero(backing.subarray(8, 72))).toBe(true);
  });
});

/** The runs as a granule-by-granule isZero walk finds them. */
function naiveRuns(buf: Uint8Array, length: number, gran: number): number[] {
  const out: number[] = [];
  let run = -1;
  for (let o = 0; o < length; o += gran) {
    const zero = isZero(buf.subarray(o, Math.min(o + gran, length)));
    if (!zero && run < 0) run = o;
    if (zero && run >= 0) {
      out.push(run, o);
      run = -1;
    }
  }
  if (run >= 0) out.push(run, length);
  return out;
}

describe("nonZeroRuns", () => {
  it("property: the same runs as isZero per granule, for any bytes set, length, granule and view offset (memcmp and JS paths)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64, 512, 4096, 100),
        fc.integer({ min: 0, max: 20000 }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 12 }),
        (gran, length, off, sets) => {
          const backing = new Uint8Array(length + off + 8).fill(7); // bytes outside the view are not zero
          const buf = backing.subarray(off, off + length + 8);
          buf.fill(0, 0, length);
          for (const [i, v] of sets) if (length > 0) buf[i % length] = v;
          for (const path of ["memcmp", "js"] as const) {
            const out = [99];
            const n = nonZeroRuns(buf, length, gran, out, path);
            expect(out).toEqual(naiveRuns(buf, length, gran));
            expect(n).toBe(out.length / 2);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe("nonZeroRuns on alignedBytes memory (the WebAssembly scan)", () => {
  it("property: the same runs as isZero per granule, at view offsets of 64 bytes and others, granules of 64 bytes and others", () => {
    const MEM = 256 * 1024;
    const mem = alignedBytes(MEM);
    fc.assert(
      fc.property(
        fc.constantFrom(64, 128, 512, 4096, 65536, 100, 32),
        fc.integer({ min: 0, max: 3 * 65536 }),
        fc.constantFrom(0, 64, 4096, 65536 - 64, 8, 100),
        // runs of non-zero bytes (position, length, value), some long, so that zeros and data both span granules
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 1, max: 255 })), {
          maxLength: 10,
        }),
        (gran, length, off, sets) => {
          mem.fill(7); // bytes outside the view are not zero: a scan past `length` would see them
          const buf = mem.subarray(off, off + length);
          buf.fill(0);
          for (const [i, n, v] of sets) if (length > 0) buf.fill(v, i % length, Math.min(length, (i % length) + n));
          const want = naiveRuns(buf, length, gran);
          for (const path of [undefined, "wasm", "memcmp", "js"] as const) {
            const out = [99];
            const n = nonZeroRuns(buf, length, gran, out, path);
            expect([path, out]).toEqual([path, want]);
            expect(n).toBe(out.length / 2);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("is the path taken in Node (WebAssembly with SIMD), and finds one non-zero byte anywhere in a zero span", () => {
    const mem = alignedBytes(64 * 1024);
    expect(hasWasmScan(mem)).toBe(true);
    expect(hasWasmScan(new Uint8Array(64 * 1024))).toBe(false);
    for (let i = 0; i < mem.length; i += 61) {
      mem[i] = 1;
      const out: number[] = [];
      nonZeroRuns(mem, mem.length, 4096, out, "wasm");
      const g = i - (i % 4096);
      expect([i, out]).toEqual([i, [g, g + 4096]]);
      mem[i] = 0;
    }
  });
});

describe("alignedBytes", () => {
  it("gives zeroed, writable, independent arrays of exactly the length asked, odd sizes included", () => {
    for (const n of [1, 4095, 64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024 + 17]) {
      const a = alignedBytes(n);
      const b = alignedBytes(n);
      expect(a.length).toBe(n);
      expect(a.byteOffset).toBe(0);
      expect(isZero(a)).toBe(true);
      a.fill(0xa5);
      expect(a[n - 1]).toBe(0xa5);
      expect(isZero(b)).toBe(true);
    }
    expect(alignedBytes(0).length).toBe(0);
  });

  it("is a WebAssembly memory where WebAssembly exists (page-aligned), so views of it line up with the file's pages", () => {
    const a = alignedBytes(5 * 64 * 1024 + 3);
    expect(a.buffer.byteLength).toBe(6 * 64 * 1024); // whole WebAssembly pages: not a plain ArrayBuffer of the length
    expect(a.length).toBe(5 * 64 * 1024 + 3);
    // subarrays at 4 KiB multiples keep the alignment the kernel's copies want
    expect(a.subarray(4096).byteOffset % 4096).toBe(0);
  });
});
