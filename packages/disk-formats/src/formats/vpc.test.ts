// VHD (vpc) against qemu-img: dynamic and fixed both ways, CHS sizing, > 4 GiB sparse; hostile footers and BATs.
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryHost, MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { VpcImage, vhdGeometry } from "./vpc.js";

const host = new NodeFileHost();

function readRange(file: string, off: number, len: number): Uint8Array {
  const fd = openSync(file, "r");
  try {
    const b = new Uint8Array(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
}
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function mapOf(extents: Awaited<ReturnType<typeof allocationMap>>) {
  return extents.map((e) => ({
    start: e.start,
    length: e.length,
    depth: e.depth,
    present: e.kind !== "unallocated",
    zero: e.kind !== "data",
    data: e.kind === "data",
    ...(e.hostOffset !== undefined ? { offset: e.hostOffset } : {}),
  }));
}

describe("VHD geometry", () => {
  it("follows the spec's CHS algorithm", () => {
    expect(vhdGeometry(20480)).toEqual({ cylinders: 301, heads: 4, sectors: 17 });
    expect(vhdGeometry(20536)).toEqual({ cylinders: 302, heads: 4, sectors: 17 });
    expect(vhdGeometry(65535 * 16 * 255 + 5)).toEqual({ cylinders: 65535, heads: 16, sectors: 255 });
  });
});

describe.skipIf(!HAVE_QEMU)("VHD interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vpc-");
  });
  afterAll(() => t.cleanup());

  it("reads what qemu-io wrote (dynamic, 6 GiB sparse) with qemu-img's size and map", async () => {
    const f = t.path("q.vhd");
    qemuImg(["create", "-f", "vpc", f, "6G"]);
    qemuIo(f, ["write -P 0xab 0 4k", "write -P 0xcd 2096000 4000", "write -P 0x11 5G 70000"], "vpc");
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("vpc");
    const info = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);
    expect(img.size()).toBe(info["virtual-size"]);
    expect((await img.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
    expect((await img.read(2096000, 4000)).every((b) => b === 0xcd)).toBe(true);
    expect((await img.read(5 * GiB, 70000)).every((b) => b === 0x11)).toBe(true);
    expect(mapOf(await allocationMap(img))).toEqual(JSON.parse(qemuImg(["map", "--output", "json", f]).stdout));
    await img.close();
  });

  it("creates images with qemu-img's sizes and layout", async () => {
    for (const size of ["10M", "1G", "3G"]) {
      const ours = t.path(`c-${size}.vhd`);
      const theirs = t.path(`q-${size}.vhd`);
      qemuImg(["create", "-f", "vpc", theirs, size]);
      await (
        await createImage(host, ours, {
          format: "vpc",
          size: Number.parseInt(size, 10) * (size.endsWith("G") ? GiB : MiB),
        })
      ).close();
      const a = JSON.parse(qemuImg(["info", "--output", "json", ours]).stdout);
      const b = JSON.parse(qemuImg(["info", "--output", "json", theirs]).stdout);
      expect(a["virtual-size"]).toBe(b["virtual-size"]);
      expect(readFileSync(ours).length).toBe(readFileSync(theirs).length);
    }
  });

  for (const fixed of [false, true]) {
    it(`writes ${fixed ? "fixed" : "dynamic"} images qemu-img reads back identical`, async () => {
      const f = t.path(`w-${fixed}.vhd`);
      const size = fixed ? 8 * MiB : 5 * GiB;
      const img = await createImage(host, f, { format: "vpc", size, vpc: { fixed } });
      const real = img.size();
      const data = new Map<number, Uint8Array>();
      const writes: Array<[number, number]> = [
        [0, 1000],
        [2 * MiB - 100, 300],
        [3 * MiB + 7, 150000],
        [real - 777, 777],
      ];
      if (!fixed) writes.push([4 * GiB - 4096, 8192]);
      for (const [i, [off, len]] of writes.entries()) {
        const d = pattern(len, i + 1);
        await img.write(off, d);
        data.set(off, d);
      }
      await img.writeZeroes(3 * MiB + 100, 1000);
      data.get(3 * MiB + 7)!.fill(0, 93, 1093);
      await img.close();
      const info = JSON.parse(qemuImg(["info", "-f", "vpc", "--output", "json", f]).stdout);
      expect(info["virtual-size"]).toBe(real);
      const raw = t.path("out.raw");
      qemuImg(["convert", "-f", "vpc", "-O", "raw", f, raw]);
      for (const [off, d] of data) expect(firstDiff(readRange(raw, off, d.length), d)).toBe(-1);
    });
  }

  it("converts both ways through qemu-img byte-identical", async () => {
    const src = t.path("src.raw");
    const data = pattern(5 * MiB, 3);
    data.fill(0, 2 * MiB, 4 * MiB);
    writeFileSync(src, data);
    const theirs = t.path("theirs.vhd");
    qemuImg(["convert", "-O", "vpc", "-o", "force_size=on", src, theirs]);
    const img = await openImage(host, theirs, { readOnly: true });
    expect(img.size()).toBe(data.length);
    expect(firstDiff(await img.read(0, data.length), data)).toBe(-1);
    await img.close();
    const ours = t.path("ours.vhd");
    const w = await createImage(host, ours, { format: "vpc", size: data.length, vpc: { forceSize: true } });
    expect(w.size()).toBe(data.length);
    await w.write(0, data);
    await w.close();
    expect(qemuImg(["compare", "-f", "raw", "-F", "vpc", src, ours]).stdout).toContain("Images are identical.");
  });
});

async function sample(): Promise<Uint8Array> {
  const s = new MemoryStore("s.vhd");
  const img = await VpcImage.create(s, { size: 8 * MiB });
  await img.write(3 * MiB, new Uint8Array(100).fill(3));
  await img.close();
  return s.bytes();
}

describe("VHD differencing", () => {
  it("reads through the parent per sector, writes partial sectors, and reports the map by depth", async () => {
    const h = new MemoryHost();
    const parent = await createImage(h, "dir/base.vhd", { format: "vpc", size: 8 * MiB });
    const pdata = pattern(3 * MiB, 1);
    await parent.write(0, pdata);
    await parent.close();
    const child = await createImage(h, "dir/child.vhd", { format: "vpc", backingFile: "base.vhd" });
    expect(child.size()).toBe(parent.size());
    expect(firstDiff(await child.read(0, pdata.length), pdata)).toBe(-1);
    const w = pattern(1000, 2);
    await child.write(2 * MiB - 300, w); // crosses a block boundary, partial sectors at both ends
    const exp = pdata.slice();
    exp.set(w, 2 * MiB - 300);
    await child.writeZeroes(100, 10);
    exp.fill(0, 100, 110);
    expect(firstDiff(await child.read(0, pdata.length), exp)).toBe(-1);
    const map = await allocationMap(child, 0, 3 * MiB);
    expect(map[0]).toMatchObject({ start: 0, length: 512, kind: "data", depth: 0 });
    expect(map[1]).toMatchObject({ start: 512, kind: "data", depth: 1 });
    expect(map.some((e) => e.start === 2 * MiB - 512 && e.depth === 0)).toBe(true);
    await child.close();
    // reopened from the file names in the locators
    const again = (await openImage(h, "dir/child.vhd", { readOnly: true })) as VpcImage;
    expect(again.differencing).toBe(true);
    expect(again.backingFile).toBe("base.vhd");
    expect(firstDiff(await again.read(0, pdata.length), exp)).toBe(-1);
    await again.close();
    // a parent with another unique id is refused
    await (await createImage(h, "dir/base.vhd", { format: "vpc", size: 8 * MiB })).close();
    await expect(openImage(h, "dir/child.vhd")).rejects.toMatchObject({ code: DiskErrorCode.BAD_ENTRY });
  });
});

describe("hostile VHD", () => {
  const open = (b: Uint8Array) => VpcImage.open(new MemoryStore("h.vhd", false, b), { readOnly: true });
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const cases: Array<[string, (b: Uint8Array) => void, DiskErrorCode, number]> = [
    [
      "no footer",
      (b) => {
        b.fill(0, 0, 8);
        b.fill(0, b.length - 512, b.length - 504);
      },
      DiskErrorCode.BAD_MAGIC,
      0,
    ],
    ["footer checksum", (b) => dv(b).setUint32(24, 1234), DiskErrorCode.INVALID_HEADER, 64],
    [
      "dynamic header offset beyond file",
      (b) => sealed(b, () => dv(b).setBigUint64(16, 1n << 40n)),
      DiskErrorCode.OUT_OF_BOUNDS,
      16,
    ],
    ["bad dynamic header cookie", (b) => b.fill(0, 512, 520), DiskErrorCode.BAD_MAGIC, 512],
    ["disk type 9", (b) => sealed(b, () => dv(b).setUint32(60, 9)), DiskErrorCode.INVALID_HEADER, 60],
    ["block size 3000", (b) => dv(b).setUint32(512 + 32, 3000), DiskErrorCode.INVALID_HEADER, 512 + 32],
    ["BAT too small for the size", (b) => dv(b).setUint32(512 + 28, 1), DiskErrorCode.INVALID_HEADER, 512 + 28],
    ["BAT entries absurd", (b) => dv(b).setUint32(512 + 28, 1 << 30), DiskErrorCode.OUT_OF_BOUNDS, 512 + 16],
    ["BAT entry beyond file", (b) => dv(b).setUint32(1536, 1 << 30), DiskErrorCode.OUT_OF_BOUNDS, 1536],
    ["BAT entry into the headers", (b) => dv(b).setUint32(1536, 1), DiskErrorCode.METADATA_OVERLAP, 1536],
    [
      "differencing without a parent",
      (b) => sealed(b, () => dv(b).setUint32(60, 4)),
      DiskErrorCode.INVALID_HEADER,
      512 + 64,
    ],
  ];
  /** Applies a footer change (copy at offset 0) and recomputes the footer checksum, so the field itself is checked. */
  function sealed(b: Uint8Array, change: () => void): void {
    change();
    dv(b).setUint32(64, 0);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += b[i]!;
    dv(b).setUint32(64, ~sum >>> 0);
  }
  for (const [name, mutate, code, offset] of cases) {
    it(name, async () => {
      const b = await sample();
      mutate(b);
      await expect(open(b)).rejects.toMatchObject({ code, context: { format: "vpc", offset } });
    });
  }

  it("truncated", async () => {
    const b = await sample();
    await expect(open(b.slice(0, 100))).rejects.toMatchObject({ code: DiskErrorCode.TRUNCATED });
    await expect(open(b.slice(0, 1200))).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS });
  });

  it("property: mutated footer, header and BAT bytes give a DiskError or a working image", async () => {
    const base = await sample();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(2047), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        async (muts) => {
          const b = base.slice();
          for (const [o, v] of muts) b[o] = v;
          try {
            const img = await VpcImage.open(new MemoryStore("p", false, b), { readOnly: false });
            const n = Math.min(img.size(), 4 * MiB);
            await img.read(0, n);
            await allocationMap(img, 0, n);
            if (n > 0) await img.write(0, new Uint8Array(Math.min(n, 4096)).fill(1));
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("vpc");
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
