// Qcow2Image.readIntoMany (convert's window read): runs of clusters that follow each other in the
// file are read with one vectored read, whatever their guest order; every byte must land where
// readInto puts it. Clusters are written out of guest order, so the file holds them in write order.
import { describe, expect, it } from "vitest";
import type { ReadPart } from "../../backend.js";
import { MemoryStore } from "../../io/memory.js";
import type { ByteStore } from "../../io/store.js";
import { pattern } from "../../testing-internal/qemu.js";
import { scatterRead } from "../../testing-internal/scatter-read.js";
import { Qcow2Image } from "./image.js";

const CS = 4096;
/** Guest clusters in the order written: host order. 10 → 3, 4 → 20, 20 → 11 and 12 → 40 are adjacent in the file only. */
const ORDER = [10, 3, 4, 20, 11, 12, 40, 5];

/** A read-only view of `mem` whose readv copies at most `cap` bytes a call, its calls logged. */
function logged(mem: MemoryStore, cap: number): ByteStore & { readvs: number[][]; reads: number } {
  const s = mem.reopen(true);
  const out = {
    name: s.name,
    readOnly: true,
    readvs: [] as number[][],
    reads: 0,
    size: () => s.size(),
    read(offset: number, buf: Uint8Array): Promise<number> {
      out.reads++;
      return s.read(offset, buf);
    },
    async readv(offset: number, bufs: readonly Uint8Array[]): Promise<number> {
      out.readvs.push([offset, ...bufs.map((b) => b.length)]);
      return scatterRead((o, b) => s.read(o, b), offset, bufs, cap);
    },
    write: (offset: number, data: Uint8Array) => s.write(offset, data),
    truncate: (n: number) => s.truncate(n),
    flush: () => s.flush(),
    close: () => s.close(),
  };
  return out;
}

async function build(): Promise<{ mem: MemoryStore; hostOf: Map<number, number> }> {
  const mem = new MemoryStore("img.qcow2");
  const img = await Qcow2Image.create(mem, { size: 64 * CS, clusterBits: 12 });
  for (const c of ORDER) await img.write(c * CS, pattern(CS, c + 1));
  await img.writeCompressed(30 * CS, pattern(CS, 31)); // compressed: read through readInto
  await img.write(31 * CS, pattern(CS, 32));
  await img.writeZeroes(31 * CS, CS); // a zero cluster
  const hostOf = new Map<number, number>();
  for (const c of ORDER) hostOf.set(c, (await img.blockStatus(c * CS, CS)).hostOffset!);
  await img.close();
  return { mem, hostOf };
}

/**
 * Parts in one buffer with gaps between them (as convert's window), cut so that the file's run
 * 10 (from byte 513), 3, 4, 20, 11, 12, 40, 5 (to CS - 3) is read whole; their other ends are odd
 * (into unallocated 13 and 41), and one part is unallocated, compressed, zero, unallocated.
 */
const PARTS_RUN: [number, number][] = [
  [3 * CS, 6 * CS - 3],
  [10 * CS + 513, 13 * CS + 77],
  [20 * CS, 21 * CS],
  [29 * CS + 5, 33 * CS],
  [40 * CS, 41 * CS + 1],
];
/** The same with odd ends that break the file's run: 3 from byte 1, 20 to its last byte but one, 40's last byte only. */
const PARTS_ODD: [number, number][] = [
  [3 * CS + 1, 6 * CS - 3],
  [10 * CS + 513, 13 * CS + 77],
  [20 * CS, 21 * CS - 1],
  [29 * CS + 5, 33 * CS],
  [40 * CS + 4095, 41 * CS + 1],
];

/** readIntoMany of `parts` against readInto of each; returns the store's plain reads during readIntoMany. */
async function check(img: Qcow2Image, parts: [number, number][], s: { reads: number }): Promise<number> {
  const base = parts[0]![0];
  const whole = new Uint8Array(parts[parts.length - 1]![1] - base).fill(0xee);
  const rp: ReadPart[] = parts.map(([a, b]) => ({ offset: a, buf: whole.subarray(a - base, b - base) }));
  const before = s.reads;
  await img.readIntoMany(rp);
  const reads = s.reads - before;
  let at = 0;
  for (const [a, b] of parts) {
    // untouched between the parts
    expect(whole.subarray(at, a - base).every((x) => x === 0xee)).toBe(true);
    const want = new Uint8Array(b - a);
    await img.readInto(a, want);
    expect(whole.subarray(a - base, b - base)).toEqual(want);
    at = b - base;
  }
  return reads;
}

describe("qcow2 readIntoMany", () => {
  for (const cap of [1 << 30, 1000])
    it(`puts every byte where readInto does, with runs adjacent only in the file coalesced (readv cap ${cap})`, async () => {
      const { mem, hostOf } = await build();
      // the writes above allocated the clusters one after another in the file
      for (let i = 1; i < ORDER.length; i++) expect(hostOf.get(ORDER[i]!)).toBe(hostOf.get(ORDER[i - 1]!)! + CS);
      const s = logged(mem, cap);
      const img = await Qcow2Image.open(s, { readOnly: true });
      const reads = await check(img, PARTS_RUN, s);
      const start = hostOf.get(10)! + 513;
      if (cap > 1e6) {
        // One vectored read over the file's run, in file order: 10 (from 513), 3 and 4 (one guest
        // run), 20, 11 and 12 (12 whole: the part ends in unallocated 13), 40, 5 (to CS - 3).
        expect(s.readvs).toEqual([[start, CS - 513, 2 * CS, CS, 2 * CS, CS, CS - 3]]);
      } else {
        // short counts: each call goes on where the last stopped, over the same run
        expect(s.readvs.length).toBe(Math.ceil((8 * CS - 516) / 1000));
        for (let i = 0; i < s.readvs.length; i++) expect(s.readvs[i]![0]).toBe(start + 1000 * i);
      }
      // plain reads: the L2 table and the compressed cluster
      expect(reads).toBe(2);
      await img.close();
    });

  it("odd ends break the file's run: each piece lands where readInto puts it", async () => {
    const { mem, hostOf } = await build();
    const s = logged(mem, 1 << 30);
    const img = await Qcow2Image.open(s, { readOnly: true });
    const reads = await check(img, PARTS_ODD, s);
    expect(s.readvs).toEqual([
      [hostOf.get(3)! + 1, 2 * CS - 1, CS - 1], // 3 from byte 1 and 4 (one guest run), 20 but its last byte
      [hostOf.get(40)! + CS - 1, 1, CS - 3], // 40's last byte, 5 to CS - 3
    ]);
    // plain reads: the L2 table, the compressed cluster, 10 alone, 11 and 12 (one run)
    expect(reads).toBe(4);
    await img.close();
  });

  it("a short read at the end of the file: the missing bytes read as zeros, as readInto", async () => {
    const { mem, hostOf } = await build();
    // 5 is the last data cluster written uncompressed: cut the file 1000 bytes into it (the
    // compressed cluster after it goes too: its part is left out)
    await mem.reopen(false).truncate(hostOf.get(5)! + 1000);
    const s = logged(mem, 1 << 30);
    const img = await Qcow2Image.open(s, { readOnly: true });
    await check(
      img,
      PARTS_RUN.filter(([a]) => a !== 29 * CS + 5),
      s,
    );
    // the file's run, short (1,000 bytes of 5), then the rest of 5 asked for once more: nothing, zeros
    expect(s.readvs).toEqual([
      [hostOf.get(10)! + 513, CS - 513, 2 * CS, CS, 2 * CS, CS, CS - 3],
      [hostOf.get(5)! + 1000, CS - 3 - 1000],
    ]);
    const got = new Uint8Array(CS).fill(0xee);
    await img.readIntoMany([{ offset: 5 * CS, buf: got }]);
    const want = new Uint8Array(CS);
    want.set(pattern(CS, 6).subarray(0, 1000));
    expect(got).toEqual(want);
    await img.close();
  });

  it("parts given out of guest order, one cluster each", async () => {
    const { mem } = await build();
    const img = await Qcow2Image.open(logged(mem, 1 << 30), { readOnly: true });
    const bufs = ORDER.map(() => new Uint8Array(CS).fill(0xee));
    const parts = [...ORDER].reverse().map((c, i) => ({ offset: c * CS, buf: bufs[i]! }));
    await img.readIntoMany(parts);
    for (const p of parts) expect(p.buf).toEqual(pattern(CS, p.offset / CS + 1));
    await img.close();
  });
});
