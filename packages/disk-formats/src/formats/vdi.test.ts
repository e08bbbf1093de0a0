// VDI against qemu-img: dynamic and fixed images both ways, > 4 GiB sparse, block-crossing data; hostile headers.
import { readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { runUntilKilled } from "../testing-internal/fault-store.js";
import { firstDiff, HAVE_QEMU, pattern, qemuCheck, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { VdiImage } from "./vdi.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe.skipIf(!HAVE_QEMU)("VDI interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vdi-");
  });
  afterAll(() => t.cleanup());

  it("reads what qemu-io wrote (dynamic, 6 GiB sparse, block-crossing) and matches qemu-img map", async () => {
    const f = t.path("q.vdi");
    qemuImg(["create", "-f", "vdi", f, "6G"]);
    qemuIo(f, ["write -P 0xab 0 4k", "write -P 0xcd 1048000 2000", "write -P 0x11 5G 70000"], "vdi");
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("vdi");
    expect(img.size()).toBe(6 * GiB);
    expect((await img.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
    const c = await img.read(1048000, 2000);
    expect(c.every((b) => b === 0xcd)).toBe(true);
    expect((await img.read(5 * GiB, 70000)).every((b) => b === 0x11)).toBe(true);
    expect((await img.read(3 * GiB, 100)).every((b) => b === 0)).toBe(true);
    const ours = (await allocationMap(img)).map((e) => ({
      start: e.start,
      length: e.length,
      depth: e.depth,
      present: e.kind !== "unallocated",
      zero: e.kind !== "data",
      data: e.kind === "data",
      ...(e.hostOffset !== undefined ? { offset: e.hostOffset } : {}),
    }));
    expect(ours).toEqual(JSON.parse(qemuImg(["map", "--output", "json", f]).stdout));
    await img.close();
  });

  for (const fixed of [false, true]) {
    it(`writes ${fixed ? "fixed" : "dynamic"} images qemu-img reads back identical and checks clean`, async () => {
      const f = t.path(`w-${fixed}.vdi`);
      const size = fixed ? 5 * MiB + 512 : 5 * GiB + 3 * MiB;
      const img = await createImage(host, f, { format: "vdi", size, vdi: { fixed } });
      const expected = new Map<number, Uint8Array>();
      const writes: Array<[number, number]> = [
        [0, 1000],
        [MiB - 100, 300],
        [3 * MiB + 7, 150000],
        [size - 777, 777],
      ];
      if (!fixed) writes.push([4 * GiB - 4096, 8192]);
      for (const [i, [off, len]] of writes.entries()) {
        const d = pattern(len, i + 1);
        await img.write(off, d);
        expected.set(off, d);
      }
      await img.writeZeroes(3 * MiB + 100, 1000);
      expected.get(3 * MiB + 7)!.fill(0, 93, 1093);
      await img.close();
      expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
      const info = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);
      expect(info["virtual-size"]).toBe(size);
      for (const [off, d] of expected) {
        const out = qemuIo(f, [`read -v ${off} ${Math.min(d.length, 64)}`], "vdi");
        const bytes = [...out.matchAll(/^[0-9a-f]+:\s+((?:[0-9a-f]{2}\s)+)/gm)].flatMap((m) =>
          m[1]!
            .trim()
            .split(/\s+/)
            .map((h) => Number.parseInt(h, 16)),
        );
        expect(bytes).toEqual([...d.subarray(0, Math.min(d.length, 64))]);
      }
      if (fixed) {
        const raw = t.path("fixed.raw");
        qemuImg(["convert", "-O", "raw", f, raw]);
        const all = new Uint8Array(readFileSync(raw));
        for (const [off, d] of expected) expect(firstDiff(all.subarray(off, off + d.length), d)).toBe(-1);
      }
    });
  }

  it("qemu-img converts our VDI to raw byte-identical, and we convert qemu's VDI", async () => {
    const src = t.path("src.raw");
    const data = pattern(3 * MiB, 9);
    data.fill(0, MiB, 2 * MiB);
    writeFileSync(src, data);
    const theirs = t.path("theirs.vdi");
    qemuImg(["convert", "-O", "vdi", src, theirs]);
    const img = await openImage(host, theirs, { readOnly: true });
    expect(firstDiff(await img.read(0, data.length), data)).toBe(-1);
    expect((await allocationMap(img)).map((e) => e.kind)).toEqual(["data", "zero", "data"]);
    await img.close();
    const ours = t.path("ours.vdi");
    const w = await createImage(host, ours, { format: "vdi", size: data.length });
    await w.write(0, data);
    await w.close();
    expect(qemuImg(["compare", "-f", "raw", "-F", "vdi", src, ours]).stdout).toContain("Images are identical.");
    expect(readFileSync(ours).length).toBe(1024 + 2 * MiB); // the zero block is not allocated
  });
});

async function sample(): Promise<Uint8Array> {
  const s = new MemoryStore("s.vdi");
  const img = await VdiImage.create(s, { size: 4 * MiB });
  await img.write(MiB + 5, new Uint8Array(100).fill(3));
  await img.write(3 * MiB, new Uint8Array(10).fill(4));
  await img.close();
  return s.bytes();
}

describe.skipIf(!HAVE_QEMU)("VDI writes killed at every write index", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vdi-kill-");
  });
  afterAll(() => t.cleanup());

  // Ordinary (not deferred) writes: each new block's data, then the allocated count and its map
  // entries in one write while they lie within 64 KiB of the header (images up to 16 GiB), so a stop
  // before any write leaves an image qemu-img check finds clean, holding every finished guest write
  // and none of the later ones. Map entries farther out go in two writes (entries, then count): a stop
  // between those two is the one place the count is short by the new blocks, which open() repairs.
  for (const [name, size, far] of [
    ["map next to the header: every stop checks clean", 40 * MiB, 30 * MiB],
    ["map entries past 64 KiB: only stops between entries and count leave it short", 20 * GiB, 20 * GiB - 3 * MiB],
  ] as const)
    it(name, async () => {
      const f = t.path("base.vdi");
      qemuImg(["create", "-f", "vdi", f, String(size)]);
      qemuIo(f, ["write -P 0x22 1M 4k"], "vdi"); // one block qemu allocated
      const base = new Uint8Array(readFileSync(f));
      const writes: Array<[number, Uint8Array]> = [
        [5 * MiB + 100, pattern(3000, 1)], // a new block, partial
        [MiB + 10, pattern(100, 2)], // into qemu's block
        [8 * MiB - 700, pattern(2 * MiB, 3)], // across three new blocks, the middle one whole
        [far, pattern(MiB + 5, 4)], // two new blocks, far out in the map
        [0, pattern(512, 5)],
      ];
      const old = (o: number, n: number) => {
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) if (o + i >= MiB && o + i < MiB + 4096) b[i] = 0x22;
        return b;
      };
      let short = 0;
      for (let k = 1; ; k++) {
        let done = 0;
        const { store, killed } = await runUntilKilled(base, k, async (st) => {
          const img = await VdiImage.open(st);
          for (const [o, d] of writes) {
            await img.write(o, d);
            done++;
          }
          await img.close();
        });
        const bytes = await store.persisted("prefix");
        const out = t.path(`k${k}.vdi`);
        writeFileSync(out, bytes);
        const chk = qemuCheck(out, "vdi", true);
        if (chk.status !== 0) {
          // the header's count (0x184) short of the map's allocated entries (the map at 0x200)
          const dv = new DataView(bytes.buffer, bytes.byteOffset);
          const blocks = dv.getUint32(0x180, true); // blocks in image
          let mapped = 0;
          for (let i = 0; i < blocks; i++) if (dv.getUint32(0x200 + 4 * i, true) < 0xfffffffe) mapped++;
          expect([k, size > 16 * GiB, chk.json.corruptions, dv.getUint32(0x184, true) < mapped]).toEqual([
            k,
            true,
            1,
            true,
          ]);
          short++;
        } else expect(chk.text).toContain("No errors were found");
        // finished writes read back whole, later ones not at all (the one cut short: either, by block)
        const img = await VdiImage.open(new MemoryStore("k", true, bytes));
        for (const [i, [o, d]] of writes.entries()) {
          const got = await img.read(o, d.length);
          if (i < done) expect([k, i, firstDiff(got, d)]).toEqual([k, i, -1]);
          if (i > done) expect([k, i, firstDiff(got, old(o, d.length))]).toEqual([k, i, -1]);
        }
        await img.close();
        if (!killed) break;
      }
      // the far write allocates two blocks, in one data write then entries, count
      expect(short).toBe(size > 16 * GiB ? 1 : 0);
    });
});

describe("hostile VDI", () => {
  const open = (b: Uint8Array) => VdiImage.open(new MemoryStore("h.vdi", false, b), { readOnly: true });
  const put32 = (b: Uint8Array, off: number, v: number) => new DataView(b.buffer).setUint32(off, v, true);
  const cases: Array<[string, (b: Uint8Array) => void, DiskErrorCode, number]> = [
    ["signature", (b) => put32(b, 0x40, 1), DiskErrorCode.BAD_MAGIC, 0x40],
    ["version 2", (b) => put32(b, 0x44, 0x00020000), DiskErrorCode.UNSUPPORTED, 0x44],
    ["differencing", (b) => put32(b, 0x4c, 4), DiskErrorCode.UNSUPPORTED, 0x4c],
    ["block size 3000", (b) => put32(b, 0x178, 3000), DiskErrorCode.INVALID_HEADER, 0x178],
    ["sector size", (b) => put32(b, 0x168, 4096), DiskErrorCode.INVALID_HEADER, 0x168],
    ["blocks absurd", (b) => put32(b, 0x180, 0x3fffffff), DiskErrorCode.INVALID_HEADER, 0x158],
    [
      "disk size lies",
      (b) => new DataView(b.buffer).setBigUint64(0x170, 1n << 50n, true),
      DiskErrorCode.INVALID_HEADER,
      0x180,
    ],
    ["map entry out of range", (b) => put32(b, 0x200, 1000), DiskErrorCode.OUT_OF_BOUNDS, 0x200],
    ["map entry used twice", (b) => put32(b, 0x200, 0), DiskErrorCode.BAD_ENTRY, 0x204],
  ];
  for (const [name, mutate, code, offset] of cases) {
    it(name, async () => {
      const b = await sample();
      mutate(b);
      const e = await open(b).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(DiskError);
      expect(e).toMatchObject({ code, context: { format: "vdi", offset } });
    });
  }

  it("truncated", async () => {
    const b = await sample();
    await expect(open(b.slice(0, 0x100))).rejects.toMatchObject({ code: DiskErrorCode.TRUNCATED });
    await expect(open(b.slice(0, 0x202))).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS });
    await expect(open(b.slice(0, 1500))).rejects.toMatchObject({
      code: DiskErrorCode.OUT_OF_BOUNDS,
      context: { offset: 0x20c },
    });
  });

  it("salvage open (read-only): a block past the end of the file fails only when read", async () => {
    const b = await sample();
    const dataOffset = new DataView(b.buffer).getUint32(0x158, true);
    const cut = b.slice(0, dataOffset + MiB); // the second allocated block (disk block 3) starts at the end
    const mapEntry = 0x200 + 3 * 4; // block map at 512 (qemu layout), entry of disk block 3
    await expect(open(cut)).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS, context: { offset: mapEntry } });
    const store = () => new MemoryStore("h.vdi", false, cut);
    // a read-write open ignores salvage: the damage still refuses it
    await expect(VdiImage.open(store(), { readOnly: false, salvage: true })).rejects.toMatchObject({
      code: DiskErrorCode.OUT_OF_BOUNDS,
    });
    const img = await VdiImage.open(store(), { readOnly: true, salvage: true });
    expect((await img.read(MiB + 5, 100)).every((x) => x === 3)).toBe(true);
    expect((await img.read(2 * MiB, 4096)).every((x) => x === 0)).toBe(true);
    await expect(img.read(3 * MiB, 10)).rejects.toMatchObject({
      code: DiskErrorCode.OUT_OF_BOUNDS,
      context: { format: "vdi", offset: mapEntry },
    });
    await expect(img.read(3 * MiB - 512, 1024)).rejects.toBeInstanceOf(DiskError);
  });

  it("property: mutated header and map bytes give a DiskError or a consistent image", async () => {
    const base = await sample();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(0x220), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        async (muts) => {
          const b = base.slice();
          for (const [o, v] of muts) b[o] = v;
          try {
            const img = await VdiImage.open(new MemoryStore("p", false, b), { readOnly: false });
            const n = Math.min(img.size(), 2 * MiB);
            await img.read(0, n);
            await allocationMap(img, 0, n);
            if (n > 0) await img.write(0, new Uint8Array(Math.min(n, 4096)).fill(1));
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("vdi");
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
