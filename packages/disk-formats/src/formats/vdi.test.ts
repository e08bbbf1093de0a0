// VDI against qemu-img: dynamic and fixed images both ways, > 4 GiB sparse, block-crossing data; hostile headers.
import { readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
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
