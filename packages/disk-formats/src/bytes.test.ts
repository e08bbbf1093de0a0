import { describe, expect, it } from "vitest";
import { isZero } from "./bytes.js";

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
