// qcow2 semantics in memory (no qemu needed): zero/discard over chains, v2 vs v3, writes into compressed
// clusters, the dirty bit repair, header rewrite preserving unknown extensions.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allocationMap } from "../../backend.js";
import { MemoryHost, MemoryStore } from "../../io/memory.js";
import { createImage, openImage } from "../../open.js";
import { firstDiff } from "../../testing-internal/qemu.js";
import { Qcow2Image } from "./image.js";

describe("qcow2 in memory", () => {
  it("writeZeroes and discard over a backing file (v3 zero flag, v2 stored zeros)", async () => {
    for (const version of [2, 3] as const) {
      const h = new MemoryHost();
      const base = await createImage(h, "b.qcow2", { format: "qcow2", size: 1 << 20 });
      await base.write(0, new Uint8Array(1 << 20).fill(0xee));
      await base.close();
      const top = (await createImage(h, "t.qcow2", {
        format: "qcow2",
        backingFile: "b.qcow2",
        qcow2: { version },
      })) as Qcow2Image;
      await top.writeZeroes(65536, 2 * 65536);
      expect((await top.read(65536, 2 * 65536)).every((b) => b === 0)).toBe(true);
      expect((await top.read(0, 65536)).every((b) => b === 0xee)).toBe(true);
      await top.writeZeroes(10, 20); // partial cluster: copy-on-write from the backing file
      const r = await top.read(0, 40);
      expect([r[9], r[10], r[29], r[30]]).toEqual([0xee, 0, 0, 0xee]);
      await top.discard(65536, 65536); // discard: the backing file shows through again
      expect((await top.read(65536, 10)).every((b) => b === 0xee)).toBe(true);
      const map = await allocationMap(top);
      expect(map[0]).toMatchObject({ start: 0, length: 65536, kind: "data", depth: 0 });
      expect(map[1]).toMatchObject({ start: 65536, length: 65536, kind: "data", depth: 1 });
      expect(map[2]).toMatchObject({ start: 131072, kind: version === 3 ? "zero" : "data", depth: 0 });
      const c = await top.check();
      expect([c.corruptions, c.leaks]).toEqual([0, 0]);
      await top.close();
    }
  });

  it("rewriting part of a compressed cluster decompresses, reallocates and frees it", async () => {
    const s = new MemoryStore("c.qcow2");
    const img = await Qcow2Image.create(s, { size: 1 << 20, clusterBits: 12 });
    for (let i = 0; i < 8; i++) await img.writeCompressed(i * 4096, new Uint8Array(4096).fill(i + 1));
    expect((await img.check()).compressedClusters).toBe(8);
    await img.write(4096 * 3 + 5, new Uint8Array([99]));
    const r = await img.read(4096 * 3, 4096);
    expect(r[4]).toBe(4);
    expect(r[5]).toBe(99);
    expect((await img.read(4096 * 7, 4096)).every((b) => b === 8)).toBe(true);
    const c = await img.check();
    expect([c.corruptions, c.leaks, c.compressedClusters]).toEqual([0, 0, 7]);
  });

  it("opening a dirty image read-write rebuilds refcounts and clears the bit", async () => {
    const s = new MemoryStore("d.qcow2");
    const img = await Qcow2Image.create(s, { size: 1 << 20, lazyRefcounts: true });
    await img.write(0, new Uint8Array(200000).fill(1));
    await img.close();
    const b = s.bytes();
    const dv = new DataView(b.buffer);
    dv.setBigUint64(72, 1n); // dirty
    dv.setUint16(2 * 65536 + 2 * 5, 0); // a lost refcount update, as lazy refcounts allow
    const ro = await Qcow2Image.open(new MemoryStore("ro", true, b));
    expect(ro.dirty).toBe(true);
    expect((await ro.check()).corruptions).toBeGreaterThan(0);
    const rw = await Qcow2Image.open(new MemoryStore("rw", false, b), { readOnly: false });
    expect(rw.dirty).toBe(false);
    expect((await rw.check()).corruptions).toBe(0);
    expect((await rw.read(0, 200000)).every((x) => x === 1)).toBe(true);
  });

  it("header rewrites keep unknown extensions and clear autoclear bits", async () => {
    const h = new MemoryHost();
    await (await createImage(h, "x.qcow2", { format: "qcow2", size: 1 << 20 })).close();
    const f = h.files.get("x.qcow2")!;
    const b = f.bytes();
    // insert an unknown extension before the end marker: after the feature table at 112
    const dv = new DataView(b.buffer);
    const ftLen = dv.getUint32(116);
    const at = 112 + 8 + Math.ceil(ftLen / 8) * 8;
    dv.setUint32(at, 0x12345678);
    dv.setUint32(at + 4, 3);
    b.set([1, 2, 3], at + 8);
    dv.setBigUint64(88, 1n); // autoclear: bitmaps
    h.files.set("x.qcow2", new MemoryStore("x.qcow2", false, b));
    const img = (await openImage(h, "x.qcow2")) as Qcow2Image;
    expect(img.header.autoclearFeatures).toBe(0n);
    await img.setBackingFile("base.raw", "raw");
    await img.close();
    const again = (await openImage(h, "x.qcow2", { noBacking: true, readOnly: true })) as Qcow2Image;
    expect(again.backingFile).toBe("base.raw");
    expect(again.header.otherExtensions).toEqual([{ type: 0x12345678, data: new Uint8Array([1, 2, 3]) }]);
  });

  it("read-only reads and block status by runs of a table equal the cluster-by-cluster lookups", async () => {
    // A read-only image looks whole runs of a cached L2 table up at once (plainRun); a writable one
    // cluster by cluster. 4 KiB clusters, 512 entries per table, 4 tables: data written out of
    // order (runs broken on the host), zeroed with and without their clusters, discarded,
    // compressed (its table is then looked up cluster by cluster), across table boundaries.
    const CS = 4096;
    const SIZE = 2048 * CS;
    const op = fc.record({
      kind: fc.constantFrom("write", "write", "zero", "zeroUnmap", "discard", "compressed"),
      first: fc.integer({ min: 0, max: 2047 }),
      count: fc.integer({ min: 1, max: 700 }),
    });
    const range = fc.record({
      start: fc.integer({ min: 0, max: SIZE - 1 }),
      len: fc.integer({ min: 1, max: 900 * CS }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 12 }),
        fc.array(range, { minLength: 1, maxLength: 6 }),
        async (ops, ranges) => {
          const s = new MemoryStore("r.qcow2");
          const img = await Qcow2Image.create(s, { size: SIZE, clusterBits: 12 });
          let fill = 1;
          for (const o of ops) {
            const at = o.first * CS;
            const len = Math.min(o.count, 2048 - o.first) * CS;
            if (o.kind === "write") await img.write(at, new Uint8Array(len).fill(fill++));
            else if (o.kind === "zero") await img.writeZeroes(at, len);
            else if (o.kind === "zeroUnmap") await img.writeZeroes(at, len, { mayUnmap: true });
            else if (o.kind === "discard") await img.discard(at, len);
            // Compressed writes go to unallocated clusters only; elsewhere the op is skipped.
            else await img.writeCompressed(at, new Uint8Array(CS).fill(fill++)).catch(() => {});
          }
          await img.close();
          const bytes = s.bytes();
          const ro = await Qcow2Image.open(new MemoryStore("ro", true, bytes), { readOnly: true });
          const rw = await Qcow2Image.open(new MemoryStore("rw", false, bytes), { readOnly: false });
          for (const { start, len } of ranges) {
            const n = Math.min(len, SIZE - start);
            expect(firstDiff(await ro.read(start, n), await rw.read(start, n))).toBe(-1);
            expect(await ro.blockStatus(start, n)).toEqual(await rw.blockStatus(start, n));
          }
          expect(await allocationMap(ro)).toEqual(await allocationMap(rw));
          await ro.close();
          await rw.close();
        },
      ),
      { numRuns: 60 },
    );
  });
});
