// Vectored reads: ByteStore.readv (NodeFileStore: node:fs readv, a preadv) and readFullv, which
// reads a run of the store into several buffers as if they were one, zeros past the end.
import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { pattern, tempDir } from "../testing-internal/qemu.js";
import { scatterRead } from "../testing-internal/scatter-read.js";
import { MemoryStore } from "./memory.js";
import { NodeFileStore } from "./node-file.js";
import { type ByteStore, readFull, readFullv } from "./store.js";

/** Buffers of `sizes`, each filled with 0xee (bytes a read must not touch show as 0xee). */
const marked = (sizes: number[]) => sizes.map((n) => new Uint8Array(n).fill(0xee));
const concat = (bufs: Uint8Array[]) => {
  const out = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bufs) {
    out.set(b, at);
    at += b.length;
  }
  return out;
};

/** A memory store with a readv that reads at most `cap` bytes per call (short counts mid-store). */
function cappedReadv(data: Uint8Array, cap: number): ByteStore & { calls: number[][] } {
  const inner = new MemoryStore("capped", true, data);
  const calls: number[][] = [];
  return Object.assign(inner, {
    calls,
    async readv(offset: number, bufs: readonly Uint8Array[]): Promise<number> {
      calls.push([offset, ...bufs.map((b) => b.length)]);
      return scatterRead((o, b) => inner.read(o, b), offset, bufs, cap);
    },
  });
}

describe("readFullv", () => {
  const data = pattern(10_000, 7);
  const sizes = [300, 1, 0, 999, 4097, 50];

  for (const cap of [1, 7, 1000, 1_000_000])
    it(`fills the buffers in turn as one read (readv of at most ${cap} bytes a call)`, async () => {
      const s = cappedReadv(data, cap);
      const bufs = marked(sizes);
      expect(await readFullv(s, 123, bufs)).toBe(5447);
      expect(concat(bufs)).toEqual(data.subarray(123, 123 + 5447));
      if (cap >= 5447) expect(s.calls).toEqual([[123, ...sizes]]);
      else expect(s.calls.length).toBeGreaterThan(1);
      // each call starts where the last one stopped, with the unread rest of the buffers
      for (const c of s.calls) expect(c.slice(1).reduce((n, b) => n + b, 0) + c[0]!).toBe(123 + 5447);
    });

  for (const cap of [3, 1_000_000])
    it(`zero-fills past the end of the store, as readFull (cap ${cap})`, async () => {
      const s = cappedReadv(data, cap);
      const bufs = marked(sizes);
      expect(await readFullv(s, 9000, bufs)).toBe(1000);
      const want = new Uint8Array(5447);
      want.set(data.subarray(9000));
      expect(concat(bufs)).toEqual(want);
      const one = new Uint8Array(5447).fill(0xee);
      expect(await readFull(s, 9000, one)).toBe(1000);
      expect(one).toEqual(want);
    });

  it("without readv reads each buffer in turn, with the same result", async () => {
    const s = new MemoryStore("plain", true, data);
    const bufs = marked(sizes);
    expect(await readFullv(s, 8000, bufs)).toBe(2000);
    const want = new Uint8Array(5447);
    want.set(data.subarray(8000));
    expect(concat(bufs)).toEqual(want);
    expect(s.stats.reads).toBe(6); // one per buffer (none for the empty one), one more for the one the end cuts, which reads nothing
  });
});

describe("NodeFileStore.readv", () => {
  const t = tempDir("rz-readv-");
  afterAll(() => t.cleanup());
  const data = pattern(10_000, 11);
  const f = t.path("f");
  writeFileSync(f, data);

  for (const blocking of [false, true]) {
    it(`reads a run of the file into buffers in turn, short at the end${blocking ? " (blocking)" : ""}`, async () => {
      const s = await NodeFileStore.open(f, { readOnly: true, blocking });
      try {
        const bufs = marked([300, 1, 999, 50]);
        expect(await s.readv(9000, bufs)).toBe(1000);
        expect(bufs[0]).toEqual(data.subarray(9000, 9300));
        expect(bufs[1]).toEqual(data.subarray(9300, 9301));
        expect(bufs[2]!.subarray(0, 699)).toEqual(data.subarray(9301));
        expect(bufs[2]!.subarray(699).every((b) => b === 0xee)).toBe(true); // untouched past the end
        expect(bufs[3]!.every((b) => b === 0xee)).toBe(true);
        // more buffers than IOV_MAX: one call reads the first 1024, readFullv the rest
        const many = marked(Array.from({ length: 1500 }, () => 3));
        expect(await s.readv(17, many)).toBe(1024 * 3);
        const again = marked(Array.from({ length: 1500 }, () => 3));
        expect(await readFullv(s, 17, again)).toBe(4500);
        expect(concat(again)).toEqual(data.subarray(17, 4517));
      } finally {
        await s.close();
      }
    });
  }
});
