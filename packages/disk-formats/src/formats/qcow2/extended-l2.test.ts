// qcow2 extended L2 entries (qcow2.txt "Extended L2 Entries"): 32 subclusters
// per cluster. Against qemu-img / qemu-io both ways, property tests over
// subcluster boundaries and odd offsets, inconsistent bitmaps refused as QEMU does.
import { readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../../backend.js";
import { DiskError } from "../../errors.js";
import { MemoryHost } from "../../io/memory.js";
import { NodeFileHost } from "../../io/node-file.js";
import { createImage, openImage } from "../../open.js";
import { rz } from "../../testing-internal/cli.js";
import { type FaultStore, runUntilKilled } from "../../testing-internal/fault-store.js";
import { firstDiff, HAVE_QEMU, pattern, qemuCheck, qemuImg, qemuIo, tempDir } from "../../testing-internal/qemu.js";
import { Qcow2Image } from "./image.js";

const host = new NodeFileHost();
const KiB = 1024;

/** A guest operation and the reference model it is checked against. */
type Op =
  | { op: "write"; off: number; len: number; seed: number }
  | { op: "zero"; off: number; len: number }
  | { op: "discard"; off: number; len: number };

function apply(model: Uint8Array, o: Op): void {
  if (o.op === "write") model.set(pattern(o.len, o.seed), o.off);
  else if (o.op === "zero") model.fill(0, o.off, o.off + o.len);
}

/** Offsets near subcluster (4 KiB with 128 KiB clusters) and cluster boundaries, or anywhere. */
function opArb(size: number, cs: number): fc.Arbitrary<Op> {
  const us = cs / 32;
  const off = fc.oneof(
    fc.integer({ min: 0, max: size - 1 }),
    fc
      .tuple(fc.integer({ min: 0, max: Math.floor(size / us) }), fc.integer({ min: -3, max: 3 }))
      .map(([u, d]) => Math.min(size - 1, Math.max(0, u * us + d))),
  );
  const len = fc.oneof(
    fc.integer({ min: 1, max: 3 * us }),
    fc.integer({ min: 1, max: 3 * cs }),
    fc.constantFrom(us, 2 * us, cs, 2 * cs),
  );
  return fc
    .tuple(fc.constantFrom("write", "write", "zero", "discard"), off, len, fc.integer({ min: 1, max: 1e6 }))
    .map(([op, o, l, seed]) => {
      const n = Math.max(1, Math.min(l, size - o));
      return op === "write"
        ? { op: "write" as const, off: o, len: n, seed }
        : { op: op as "zero" | "discard", off: o, len: n };
    });
}

describe("qcow2 extended L2 entries (in memory)", () => {
  it("create refuses v2 and clusters below 16 KiB, and sets incompatible feature bit 4", async () => {
    const mh = new MemoryHost();
    await expect(
      createImage(mh, "a.qcow2", { format: "qcow2", size: 1 << 20, qcow2: { extendedL2: true, clusterBits: 13 } }),
    ).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    await expect(
      createImage(mh, "b.qcow2", { format: "qcow2", size: 1 << 20, qcow2: { extendedL2: true, version: 2 } }),
    ).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    const img = (await createImage(mh, "c.qcow2", {
      format: "qcow2",
      size: 1 << 30,
      qcow2: { extendedL2: true },
    })) as Qcow2Image;
    expect(img.header.incompatibleFeatures).toBe(16n);
    // 16-byte entries: 4096 per 64 KiB L2 table, so 1 GiB needs 4 L1 entries.
    expect(img.header.l1Size).toBe(4);
    await img.close();
  });

  it("property: writes, zeroes and discards at subcluster edges read back as the model (with and without backing)", async () => {
    const size = 3 * 128 * KiB + 5 * 512; // a partial last cluster
    const cs = 128 * KiB;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(opArb(size, cs), { minLength: 1, maxLength: 25 }),
        async (backed, ops) => {
          const mh = new MemoryHost();
          const base = pattern(size, 99);
          if (backed) {
            const b = await createImage(mh, "base.raw", { format: "raw", size });
            await b.write(0, base);
            await b.close();
          }
          const img = (await createImage(mh, "x.qcow2", {
            format: "qcow2",
            size,
            qcow2: { extendedL2: true, clusterBits: 17 },
            ...(backed ? { backingFile: "base.raw", backingFormat: "raw" as const } : {}),
          })) as Qcow2Image;
          const model = backed ? base.slice() : new Uint8Array(size);
          for (const o of ops) {
            if (o.op === "write") await img.write(o.off, pattern(o.len, o.seed));
            else if (o.op === "zero") await img.writeZeroes(o.off, o.len);
            else {
              await img.discard(o.off, o.len);
              // Discard unmaps whole clusters only: those read from the backing file (or zeros) again.
              const first = Math.ceil(o.off / cs) * cs;
              const end = o.off + o.len === size ? size : Math.floor((o.off + o.len) / cs) * cs;
              if (end > first) model.set((backed ? base : new Uint8Array(size)).subarray(first, end), first);
            }
            apply(model, o);
          }
          expect(firstDiff(await img.read(0, size), model)).toBe(-1);
          const chk = await img.check();
          expect(chk.messages).toEqual([]);
          await img.close();
          const again = await openImage(mh, "x.qcow2", { readOnly: true });
          expect(firstDiff(await again.read(0, size), model)).toBe(-1);
          await again.close();
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a write into one subcluster allocates only that subcluster; zeroing whole subclusters sets zero bits", async () => {
    const mh = new MemoryHost();
    const img = await createImage(mh, "s.qcow2", { format: "qcow2", size: 1 << 20, qcow2: { extendedL2: true } });
    await img.write(2048 + 3, pattern(100, 1)); // subcluster 1 of 2 KiB ones (64 KiB clusters)
    const map = (await allocationMap(img)).filter((e) => e.kind === "data");
    expect(map.map((e) => [e.start, e.length])).toEqual([[2048, 2048]]);
    await img.write(0, pattern(64 * KiB, 2));
    await img.writeZeroes(4096, 8192); // subclusters 2..5
    const zeros = (await allocationMap(img)).filter((e) => e.kind === "zero");
    expect(zeros.map((e) => [e.start, e.length])).toEqual([[4096, 8192]]);
    const expected = pattern(64 * KiB, 2);
    expected.fill(0, 4096, 12288);
    expect(firstDiff(await img.read(0, 64 * KiB), expected)).toBe(-1);
    await img.close();
  });
});

describe("property: mutated extended L2 metadata never escapes as anything but a DiskError", () => {
  it("random byte mutations in the header, tables and bitmaps, then reads, writes, zeroes and check", async () => {
    const cs = 16 * KiB;
    const mh = new MemoryHost();
    const img = (await createImage(mh, "m.qcow2", {
      format: "qcow2",
      size: 2 << 20,
      qcow2: { extendedL2: true, clusterBits: 14 },
    })) as Qcow2Image;
    await img.write(1000, pattern(30000, 1));
    await img.writeZeroes(cs + 2048, 4096);
    await img.writeCompressed(4 * cs, pattern(cs, 2).fill(0, 100));
    await img.write(1 << 20, pattern(5 * cs, 3));
    await img.close();
    const store = await mh.open("m.qcow2", { readOnly: true });
    const base = new Uint8Array(await store.size());
    await store.read(0, base);
    await store.close();
    const metaEnd = Math.min(base.length, 8 * cs);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(metaEnd - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: (2 << 20) - 9000 }),
        async (muts, off) => {
          const h = new MemoryHost();
          const b = base.slice();
          for (const [o, v] of muts) b[o] = v;
          const st = await h.create("x.qcow2");
          await st.write(0, b);
          await st.close();
          try {
            const x = (await openImage(h, "x.qcow2", { format: "qcow2" })) as Qcow2Image;
            await x.read(0, Math.min(x.size(), 64 * KiB));
            await allocationMap(x);
            if (x.size() >= off + 9000) {
              await x.write(off, pattern(9000, 4));
              await x.writeZeroes(off + 100, 5000);
              await x.discard(0, Math.min(x.size(), 4 * cs));
            }
            await x.check();
            await x.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe.skipIf(!HAVE_QEMU)("qcow2 extended L2 entries against qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir();
  });
  afterAll(() => t.cleanup());

  it("we write (over a backing file, odd offsets, zeroes, discards); qemu-img check and compare agree", async () => {
    const size = 4 * 1024 * KiB;
    const base = t.path("b.raw");
    const baseData = pattern(size, 7);
    writeFileSync(base, baseData);
    const f = t.path("ours.qcow2");
    const c = await rz(
      "create",
      "-q",
      "-f",
      "qcow2",
      "-o",
      "extended_l2=on,cluster_size=128k",
      "-b",
      "b.raw",
      "-F",
      "raw",
      f,
    );
    expect(c.code).toBe(0);
    const img = await openImage(host, f);
    const model = baseData.slice();
    const ops: Op[] = [
      { op: "write", off: 4096 + 17, len: 100, seed: 1 }, // partial subcluster: copy-on-write from backing
      { op: "write", off: 128 * KiB - 10, len: 20, seed: 2 }, // crosses a cluster boundary
      { op: "write", off: 300 * KiB, len: 300 * KiB, seed: 3 }, // whole clusters and partial ones
      { op: "zero", off: 8 * KiB, len: 16 * KiB }, // whole subclusters
      { op: "zero", off: 1024 * KiB + 5, len: 9000 }, // partial subclusters over backing data
      { op: "zero", off: 2 * 1024 * KiB, len: 256 * KiB }, // whole clusters
      { op: "write", off: 8 * KiB + 512, len: 512, seed: 4 }, // into a zero subcluster
      { op: "write", off: size - 3000, len: 3000, seed: 5 },
    ];
    for (const o of ops) {
      if (o.op === "write") await img.write(o.off, pattern(o.len, o.seed));
      else await img.writeZeroes(o.off, o.len);
      apply(model, o);
    }
    await img.close();
    const chk = qemuCheck(f, "qcow2", true);
    expect(chk.status).toBe(0);
    expect(chk.text).toContain("No errors were found");
    const want = t.path("want.raw");
    writeFileSync(want, model);
    expect(qemuImg(["compare", "-f", "qcow2", "-F", "raw", f, want], { allowFail: true }).status).toBe(0);
    // qemu sees our subclusters: subcluster 0 of cluster 0 still comes from the backing file, 1 and 2 are ours.
    const m = JSON.parse(qemuImg(["map", "--output", "json", f]).stdout) as Array<{
      start: number;
      length: number;
      depth: number;
      data: boolean;
    }>;
    expect(m.find((e) => e.start === 0)).toMatchObject({ length: 4096, depth: 1, data: true });
    expect(m.find((e) => e.start === 4096)).toMatchObject({ length: 8192, depth: 0, data: true });
    // And qemu-io can go on writing to it.
    qemuIo(f, ["write -P 0x66 4100 8000", "read -P 0x66 4100 8000"]);
    expect(qemuCheck(f).status).toBe(0);
  });

  it("property: random operations on a file, then a shrink; qemu-img check and compare agree", async () => {
    const cs = 32 * KiB;
    const size = 9 * cs + 1536;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(size, cs), { minLength: 1, maxLength: 20 }), async (ops) => {
        const f = t.path(`prop-${run}.qcow2`);
        const want = t.path(`prop-${run++}.raw`);
        const img = (await createImage(host, f, {
          format: "qcow2",
          size,
          qcow2: { extendedL2: true, clusterBits: 15 },
        })) as Qcow2Image;
        const model = new Uint8Array(size);
        for (const o of ops) {
          if (o.op === "write") await img.write(o.off, pattern(o.len, o.seed));
          else if (o.op === "zero") await img.writeZeroes(o.off, o.len);
          else {
            await img.discard(o.off, o.len);
            const first = Math.ceil(o.off / cs) * cs;
            const end = o.off + o.len === size ? size : Math.floor((o.off + o.len) / cs) * cs;
            if (end > first) model.fill(0, first, end);
          }
          apply(model, o);
        }
        const newSize = 5 * cs + 512;
        await img.resize(newSize, { shrink: true });
        await img.close();
        expect(qemuCheck(f).status).toBe(0);
        writeFileSync(want, model.subarray(0, newSize));
        expect(qemuImg(["compare", "-f", "qcow2", "-F", "raw", f, want], { allowFail: true }).status).toBe(0);
      }),
      { numRuns: 12 },
    );
  });

  it("a writer stopped before any write (fault injection by write index) leaves at most leaks", async () => {
    const mh = new MemoryHost();
    const cs = 16 * KiB;
    const c = (await createImage(mh, "k.qcow2", {
      format: "qcow2",
      size: 4 << 20,
      qcow2: { extendedL2: true, clusterBits: 14 },
    })) as Qcow2Image;
    await c.write(0, pattern(3 * cs, 1));
    await c.writeCompressed(8 * cs, pattern(cs, 2).fill(0, 50));
    await c.close();
    const st = await mh.open("k.qcow2", { readOnly: true });
    const base = new Uint8Array(await st.size());
    await st.read(0, base);
    await st.close();
    const workload = async (store: FaultStore) => {
      const img = await Qcow2Image.open(store);
      await img.write(100, pattern(700, 3)); // inside allocated subclusters
      await img.write(20 * cs + 1000, pattern(3000, 4)); // new cluster, partial subclusters
      await img.write(8 * cs + 5, pattern(10, 5)); // the compressed cluster
      await img.write(30 * cs, pattern(5 * cs, 6)); // whole clusters in one run
      await img.writeZeroes(cs + 2048, 4096); // zero subclusters
      await img.writeZeroes(2 * cs, cs); // a whole cluster
      await img.discard(30 * cs, 2 * cs);
      await img.resize(40 * cs + 512, { shrink: true });
      await img.close();
    };
    const full = await runUntilKilled(base, Number.POSITIVE_INFINITY, workload);
    const total = full.store.writes;
    expect(total).toBeGreaterThan(15);
    let leaky = 0;
    for (let k = 0; k < total; k++) {
      const { store, killed } = await runUntilKilled(base, k, workload);
      expect(killed).toBe(true);
      const f = t.path(`kill-${k}.qcow2`);
      writeFileSync(f, await store.persisted("prefix"));
      const chk = qemuCheck(f);
      if (chk.status === 3) leaky++;
      expect([k, chk.json.corruptions ?? 0, [0, 3].includes(chk.status)]).toEqual([k, 0, true]);
    }
    expect(leaky).toBeGreaterThan(0);
  });

  it("qemu-io writes (patterns, zeroes, compressed, snapshots); we read, write, and qemu-img check agrees", async () => {
    const f = t.path("theirs.qcow2");
    qemuImg(["create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", f, "2M"]);
    qemuIo(f, ["write -P 0x11 0 1M", "write -z 70000 20000", "write -c -P 0x22 1M 64k", "write -P 0x33 1200k 3k"]);
    const snap = t.path("theirs-before.raw");
    qemuImg(["convert", "-O", "raw", f, snap]);
    qemuImg(["snapshot", "-c", "s1", f]); // clusters shared: refcount 2, COPIED clear
    const expected = new Uint8Array(readFileSync(snap));
    const img = await openImage(host, f, { readOnly: true });
    expect(firstDiff(await img.read(0, img.size()), expected)).toBe(-1);
    await img.close();
    const w = await openImage(host, f);
    const ops: Array<[number, Uint8Array]> = [
      [100, pattern(50, 1)], // shared cluster: copy-on-write keeps the other allocated subclusters
      [1024 * KiB + 7, pattern(9, 2)], // compressed cluster
      [1200 * KiB + 2048, pattern(4096, 3)], // allocated and unallocated subclusters
    ];
    for (const [off, d] of ops) {
      await w.write(off, d);
      expected.set(d, off);
    }
    await w.writeZeroes(64 * KiB, 2 * KiB);
    expected.fill(0, 64 * KiB, 66 * KiB);
    await w.close();
    const chk = qemuCheck(f, "qcow2", true);
    expect(chk.text).toContain("No errors were found");
    const now = t.path("theirs-now.raw");
    qemuImg(["convert", "-O", "raw", f, now]);
    expect(firstDiff(new Uint8Array(readFileSync(now)), expected)).toBe(-1);
    // The snapshot kept the old data.
    qemuImg(["snapshot", "-a", "s1", f]);
    qemuImg(["convert", "-O", "raw", f, now]);
    expect(firstDiff(new Uint8Array(readFileSync(now)), new Uint8Array(readFileSync(snap)))).toBe(-1);
  });

  it("info shows it; convert to and from extended L2 images matches qemu-img", async () => {
    const src = t.path("src.qcow2");
    qemuImg(["create", "-f", "qcow2", src, "3M"]);
    qemuIo(src, ["write -P 0x44 5000 70000", "write -P 0x55 2M 4k"]);
    const x = t.path("conv-x.qcow2");
    expect((await rz("convert", "-O", "qcow2", "-o", "extended_l2=on,cluster_size=32k", src, x)).code).toBe(0);
    expect(qemuCheck(x).status).toBe(0);
    expect(qemuImg(["compare", src, x], { allowFail: true }).status).toBe(0);
    const info = JSON.parse((await rz("info", "--output", "json", x)).out);
    expect(info["format-specific"].data["extended-l2"]).toBe(true);
    expect(info["cluster-size"]).toBe(32768);
    expect((await rz("info", x)).out).toContain("extended l2: true");
    const q = t.path("conv-q.qcow2");
    qemuImg(["convert", "-O", "qcow2", "-o", "extended_l2=on", src, q]);
    const back = t.path("back.qcow2");
    expect((await rz("convert", "-O", "qcow2", q, back)).code).toBe(0);
    expect(qemuImg(["compare", src, back], { allowFail: true }).status).toBe(0);
    expect(
      (await rz("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=8k", t.path("n.qcow2"), "1M")).code,
    ).toBe(1);
  });

  it("inconsistent subcluster bitmaps: refused on read, reported by check as qemu-img check does", async () => {
    const cases: Array<[string, (entry: DataView) => void, RegExp]> = [
      ["allocated and zero", (e) => e.setUint32(8, e.getUint32(12) & 1 ? 1 : 2), /Allocated cluster has corrupted/],
      [
        "unallocated with allocation bits",
        (e) => {
          e.setBigUint64(0, 0n);
          e.setUint32(12, 1);
        },
        /Unallocated cluster has non-zero subcluster allocation map/,
      ],
    ];
    for (const [name, mutate, msg] of cases) {
      const f = t.path(`bad-${name.replace(/ /g, "-")}.qcow2`);
      qemuImg(["create", "-f", "qcow2", "-o", "extended_l2=on", f, "1M"]);
      qemuIo(f, ["write -P 0x11 0 4k"]);
      const bytes = new Uint8Array(readFileSync(f));
      const hdr = new DataView(bytes.buffer);
      const l1 = Number(hdr.getBigUint64(40));
      const l2 = Number(new DataView(bytes.buffer).getBigUint64(l1) & 0x00fffffffffffe00n);
      mutate(new DataView(bytes.buffer, l2, 16));
      writeFileSync(f, bytes);
      const img = await openImage(host, f, { readOnly: true });
      await expect(img.read(0, 512), name).rejects.toMatchObject({ code: "BAD_ENTRY" });
      const mine = await (img as Qcow2Image).check();
      await img.close();
      const theirs = qemuCheck(f, "qcow2");
      expect(mine.corruptions, name).toBe((theirs.json as { corruptions: number }).corruptions);
      expect(mine.messages.join("\n"), name).toMatch(msg);
      const cli = await rz("check", f);
      expect(cli.code, name).toBe(2);
      const qread = qemuImg(["convert", "-O", "raw", f, t.path("bad.raw")], { allowFail: true });
      expect(qread.status, name).not.toBe(0);
    }
  });
});
