import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { decodeGpaDirectHeader, encodeGpaDirectHeader, encodeGpaRanges, type GpaRange, pagesSpanned } from "./gpa.js";

const rangeArb: fc.Arbitrary<GpaRange> = fc
  .record({ byteOffset: fc.integer({ min: 0, max: 4095 }), byteCount: fc.integer({ min: 1, max: 40_000 }) })
  .chain(({ byteOffset, byteCount }) =>
    fc
      .array(fc.oneof(fc.integer({ min: 0, max: 0xfffff }), fc.constant(2 ** 53 - 1)), {
        minLength: pagesSpanned(byteOffset, byteCount),
        maxLength: pagesSpanned(byteOffset, byteCount),
      })
      .map((pfns) => ({ byteOffset, byteCount, pfns })),
  );

describe("GPA ranges (vmbus.md §2.4, §2.6)", () => {
  it("encodes the Linux gpa_range layout behind {reserved, range_count}", () => {
    const h = encodeGpaDirectHeader([
      { byteCount: 4096, byteOffset: 0, pfns: [0x12345] },
      { byteCount: 10, byteOffset: 4090, pfns: [1, 2] },
    ]);
    const dv = new DataView(h.buffer);
    expect(h.length).toBe(8 + 16 + 24);
    expect(dv.getUint32(0, true)).toBe(0);
    expect(dv.getUint32(4, true)).toBe(2);
    expect(dv.getUint32(8, true)).toBe(4096);
    expect(dv.getUint32(12, true)).toBe(0);
    expect(dv.getBigUint64(16, true)).toBe(0x12345n);
    expect(dv.getUint32(24, true)).toBe(10);
    expect(dv.getUint32(28, true)).toBe(4090);
    expect(dv.getBigUint64(40, true)).toBe(2n);
  });

  it("pages spanned counts the partial first and last page", () => {
    expect(pagesSpanned(0, 4096)).toBe(1);
    expect(pagesSpanned(1, 4096)).toBe(2);
    expect(pagesSpanned(4095, 1)).toBe(1);
    expect(pagesSpanned(4095, 2)).toBe(2);
  });

  it("round-trips random range lists", () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { minLength: 1, maxLength: 5 }), (ranges) => {
        expect(decodeGpaDirectHeader(encodeGpaDirectHeader(ranges))).toEqual(ranges);
      }),
    );
  });

  it("rejects zero ranges, bad offsets, wrong PFN counts and trailing bytes", () => {
    const code = (h: Uint8Array) => (decodeGpaDirectHeader(h) as VmbusError).code;
    expect(code(new Uint8Array(8))).toBe(VmbusErrorCode.GPA_RANGE_INVALID); // range_count 0
    expect(code(new Uint8Array(4))).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    const good = encodeGpaDirectHeader([{ byteCount: 100, byteOffset: 0, pfns: [5] }]);
    const dv = new DataView(good.buffer);
    const withTrailing = new Uint8Array(good.length + 8);
    withTrailing.set(good);
    expect(code(withTrailing)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    const g2 = good.slice();
    new DataView(g2.buffer).setUint32(12, 4096, true); // byte_offset beyond page
    expect(code(g2)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    const g3 = good.slice();
    new DataView(g3.buffer).setUint32(8, 4097, true); // spans 2 pages, only 1 PFN present
    expect(code(g3)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    const g4 = good.slice();
    new DataView(g4.buffer).setUint32(8, 0, true); // empty range
    expect(code(g4)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    const g5 = good.slice();
    new DataView(g5.buffer).setUint32(20, 0x20_0000, true); // pfn >= 2^53
    expect(code(g5)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    dv.setUint32(4, 0xffff_ffff, true);
    expect(code(good)).toBe(VmbusErrorCode.GPA_RANGE_INVALID);
    expect(() => encodeGpaDirectHeader([])).toThrow(VmbusError);
    expect(() => encodeGpaRanges([{ byteCount: 8193, byteOffset: 0, pfns: [1, 2] }])).toThrow(VmbusError);
  });

  it("decoding random bytes never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 12 }), (bytes, count) => {
        if (bytes.length >= 8) new DataView(bytes.buffer).setUint32(4, count, true);
        const r = decodeGpaDirectHeader(bytes);
        if (!(r instanceof VmbusError)) expect(r.length).toBe(count);
      }),
      { numRuns: 2000 },
    );
  });
});
