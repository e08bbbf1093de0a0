// Parallels against qemu-img: both ways, > 4 GiB sparse, cluster-crossing data; hostile headers.
import { writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { ParallelsImage } from "./parallels.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe.skipIf(!HAVE_QEMU)("Parallels interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-hdd-");
  });
  afterAll(() => t.cleanup());

  it("reads what qemu-io wrote and matches qemu-img map", async () => {
    const f = t.path("q.hdd");
    qemuImg(["create", "-f", "parallels", f, "6G"]);
    qemuIo(f, ["write -P 0xab 3M 4k", "write -P 0xcd 1048000 2000", "write -P 0x11 5G 70000"], "parallels");
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("parallels");
    expect(img.size()).toBe(6 * GiB);
    expect((await img.read(3 * MiB, 4096)).every((b) => b === 0xab)).toBe(true);
    expect((await img.read(1048000, 2000)).every((b) => b === 0xcd)).toBe(true);
    expect((await img.read(5 * GiB, 70000)).every((b) => b === 0x11)).toBe(true);
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

  it("writes images qemu-img reads back identical and checks clean", async () => {
    const src = t.path("src.raw");
    const data = pattern(5 * MiB + 3000, 4);
    data.fill(0, MiB, 3 * MiB);
    writeFileSync(src, data);
    const f = t.path("w.hdd");
    const img = await createImage(host, f, { format: "parallels", size: data.length });
    for (let off = 0; off < data.length; off += 300000) await img.write(off, data.subarray(off, off + 300000));
    await img.close();
    expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
    expect(qemuImg(["compare", "-f", "raw", "-F", "parallels", src, f]).stdout).toContain("Images are identical.");
    const big = t.path("big.hdd");
    const b = await createImage(host, big, { format: "parallels", size: 5 * GiB });
    await b.write(4 * GiB - 10, pattern(100, 1));
    await b.close();
    qemuIo(big, ["read -P 0 0 4k"], "parallels");
    const back = await openImage(host, big, { readOnly: true });
    expect(firstDiff(await back.read(4 * GiB - 10, 100), pattern(100, 1))).toBe(-1);
    await back.close();
    expect(qemuImg(["check", big]).stdout).toContain("No errors");
  });
});

async function sample(): Promise<Uint8Array> {
  const s = new MemoryStore("s.hdd");
  const img = await ParallelsImage.create(s, { size: 4 * MiB, clusterSize: 64 * 1024 });
  await img.write(MiB + 5, new Uint8Array(100).fill(3));
  await img.close();
  return s.bytes();
}

describe("hostile Parallels", () => {
  const open = (b: Uint8Array) => ParallelsImage.open(new MemoryStore("h.hdd", false, b), { readOnly: true });
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const cases: Array<[string, (b: Uint8Array) => void, DiskErrorCode, number]> = [
    ["magic", (b) => b.fill(0x41, 0, 4), DiskErrorCode.BAD_MAGIC, 0],
    ["version", (b) => dv(b).setUint32(16, 3, true), DiskErrorCode.INVALID_HEADER, 16],
    ["tracks 0", (b) => dv(b).setUint32(28, 0, true), DiskErrorCode.INVALID_HEADER, 28],
    ["size beyond the BAT", (b) => dv(b).setBigUint64(36, 1n << 40n, true), DiskErrorCode.INVALID_HEADER, 32],
    [
      "BAT beyond file",
      (b) => {
        dv(b).setUint32(32, 1 << 29, true);
        dv(b).setBigUint64(36, 1n << 35n, true);
      },
      DiskErrorCode.OUT_OF_BOUNDS,
      32,
    ],
    ["entry beyond file", (b) => dv(b).setUint32(64, 1000, true), DiskErrorCode.OUT_OF_BOUNDS, 64],
  ];
  for (const [name, mutate, code, offset] of cases) {
    it(name, async () => {
      const b = await sample();
      mutate(b);
      await expect(open(b)).rejects.toMatchObject({ code, context: { format: "parallels", offset } });
    });
  }

  it("entry into the header/BAT area and duplicate entries", async () => {
    const b = await sample();
    const first = dv(b).getUint32(64 + 16 * 4, true); // cluster 16 (1 MiB) is the allocated one
    expect(first).toBeGreaterThan(0);
    // old format: entries count sectors; sector 1 is inside the header and BAT
    const c = b.slice();
    c.set(new TextEncoder().encode("WithoutFreeSpace"));
    dv(c).setUint32(64 + 16 * 4, 0, true);
    dv(c).setUint32(64, 1, true);
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.METADATA_OVERLAP, context: { offset: 64 } });
    const d = b.slice();
    dv(d).setUint32(64, first, true);
    await expect(open(d)).rejects.toMatchObject({ code: DiskErrorCode.BAD_ENTRY, context: { offset: 64 + 16 * 4 } });
  });

  it("property: mutated header and BAT bytes give a DiskError or a working image", async () => {
    const base = await sample();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(64 + 64 * 4), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        async (muts) => {
          const b = base.slice();
          for (const [o, v] of muts) b[o] = v;
          try {
            const img = await ParallelsImage.open(new MemoryStore("p", false, b), { readOnly: false });
            const n = Math.min(img.size(), 2 * MiB);
            await img.read(0, n);
            await allocationMap(img, 0, n);
            if (n > 0) await img.write(0, new Uint8Array(Math.min(n, 4096)).fill(1));
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("parallels");
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
