// VHDX against qemu-img: dynamic and fixed both ways, > 4 GiB sparse, block-crossing data; hostile headers.
import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { crc32c, VhdxImage } from "./vhdx.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

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

describe("crc32c", () => {
  it("matches the Castagnoli check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  /** The definition: one table step per byte, the skipped field's four bytes read as zeros. */
  const reference = (b: Uint8Array, skip: number): number => {
    const table = Array.from({ length: 256 }, (_, i) => {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      return c >>> 0;
    });
    let c = 0xffffffff;
    for (let i = 0; i < b.length; i++) {
      const v = skip >= 0 && i >= skip && i < skip + 4 ? 0 : b[i]!;
      c = table[(c ^ v) & 0xff]! ^ (c >>> 8);
    }
    return (c ^ 0xffffffff) >>> 0;
  };

  it("equals the byte-by-byte definition on data with zero runs, at any alignment and skip", () => {
    // Zero runs folded in at once (crcZeros) and found by 32-bit words: buffers that start and end
    // off a word boundary, runs of zeros around the skipped field, all-zero and empty buffers.
    const piece = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      fc.integer({ min: 0, max: 3000 }).map((n) => new Uint8Array(n)),
    );
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 6 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: -1, max: 400 }),
        (pieces, shift, skip) => {
          const len = pieces.reduce((n, p) => n + p.length, 0);
          const store = new Uint8Array(len + shift);
          let at = shift;
          for (const p of pieces) {
            store.set(p, at);
            at += p.length;
          }
          const b = store.subarray(shift);
          expect(crc32c(b, skip)).toBe(reference(b, skip));
        },
      ),
      { numRuns: 500 },
    );
    const region = new Uint8Array(64 * 1024);
    region.set([0x72, 0x65, 0x67, 0x69, 1, 2, 3, 4, 5, 6, 7, 8], 0);
    region[65535] = 9;
    expect(crc32c(region, 4)).toBe(reference(region, 4));
    expect(crc32c(new Uint8Array(64 * 1024), 4)).toBe(reference(new Uint8Array(64 * 1024), 4));
  });
});

describe.skipIf(!HAVE_QEMU)("VHDX interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vhdx-");
  });
  afterAll(() => t.cleanup());

  it("a new block past the end of the file: only the written bytes go out, the file reaches the block's end", async () => {
    const f = t.path("tail.vhdx");
    const img = await createImage(host, f, { format: "vhdx", size: 64 * MiB });
    // mid-block writes: the block is allocated by a write that neither starts nor ends it
    await img.write(40 * MiB + 100, pattern(5000, 7));
    await img.write(MiB, pattern(3000, 8));
    await img.close();
    expect(qemuImg(["check", f], { allowFail: true }).status).toBe(0); // a present block past EOF would be a corruption
    const raw = t.path("tail.raw");
    qemuImg(["convert", "-O", "raw", f, raw]);
    const back = readRange(raw, 0, 64 * MiB);
    expect(firstDiff(back.subarray(40 * MiB + 100, 40 * MiB + 5100), pattern(5000, 7))).toBe(-1);
    expect(firstDiff(back.subarray(MiB, MiB + 3000), pattern(3000, 8))).toBe(-1);
    back.fill(0, 40 * MiB + 100, 40 * MiB + 5100);
    back.fill(0, MiB, MiB + 3000);
    expect(back.every((x) => x === 0)).toBe(true);
  });

  it("reads what qemu-io wrote (dynamic and fixed, 6 GiB sparse, block-crossing)", async () => {
    const f = t.path("q.vhdx");
    qemuImg(["create", "-f", "vhdx", f, "6G"]);
    qemuIo(f, ["write -P 0xab 0 4k", "write -P 0xcd 16775000 4000", "write -P 0x11 5G 70000"], "vhdx");
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("vhdx");
    expect(img.size()).toBe(6 * GiB);
    expect((await img.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
    expect((await img.read(16775000, 4000)).every((b) => b === 0xcd)).toBe(true);
    expect((await img.read(5 * GiB, 70000)).every((b) => b === 0x11)).toBe(true);
    expect((await img.read(3 * GiB, 100)).every((b) => b === 0)).toBe(true);
    expect((await allocationMap(img)).filter((e) => e.kind === "data").length).toBe(2); // blocks 0 and 1 are adjacent on the host
    await img.close();
    const src = t.path("src.raw");
    const data = pattern(5 * MiB, 2);
    writeFileSync(src, data);
    const fixed = t.path("fixed.vhdx");
    qemuImg(["convert", "-O", "vhdx", "-o", "subformat=fixed", src, fixed]);
    const fi = await openImage(host, fixed, { readOnly: true });
    expect(firstDiff(await fi.read(0, data.length), data)).toBe(-1);
    await fi.close();
  });

  for (const fixed of [false, true]) {
    it(`writes ${fixed ? "fixed" : "dynamic"} images qemu-img reads back identical and checks clean`, async () => {
      const f = t.path(`w-${fixed}.vhdx`);
      const size = fixed ? 20 * MiB : 5 * GiB;
      const img = await createImage(host, f, {
        format: "vhdx",
        size,
        vhdx: { fixed, blockSize: fixed ? MiB : undefined },
      });
      const writes: Array<[number, number]> = [
        [0, 1000],
        [8 * MiB - 100, 300],
        [3 * MiB + 7, 150000],
        [size - 777, 777],
      ];
      if (!fixed) writes.push([4 * GiB - 4096, 8192]);
      for (const [i, [off, len]] of writes.entries()) await img.write(off, pattern(len, i + 1));
      await img.close();
      expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
      expect(JSON.parse(qemuImg(["info", "--output", "json", f]).stdout)["virtual-size"]).toBe(size);
      const raw = t.path("out.raw");
      qemuImg(["convert", "-O", "raw", f, raw]);
      for (const [i, [off, len]] of writes.entries())
        expect(firstDiff(readRange(raw, off, len), pattern(len, i + 1))).toBe(-1);
    });
  }
});

async function sample(): Promise<Uint8Array> {
  const s = new MemoryStore("s.vhdx");
  const img = await VhdxImage.create(s, { size: 4 * MiB, blockSize: MiB });
  await img.write(MiB + 5, new Uint8Array(100).fill(3));
  await img.close();
  return s.bytes();
}

describe("hostile VHDX", () => {
  const open = (b: Uint8Array) => VhdxImage.open(new MemoryStore("h.vhdx", false, b), { readOnly: true });
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  /** Rewrites a header's checksum after a change. */
  const fixHeader = (b: Uint8Array, at: number) => dv(b).setUint32(at + 4, crc32c(b.subarray(at, at + 4096), 4), true);
  const fixRegion = (b: Uint8Array, at: number) => dv(b).setUint32(at + 4, crc32c(b.subarray(at, at + 65536), 4), true);

  it("identifier, headers and region tables", async () => {
    const b = await sample();
    const c = b.slice();
    c.fill(0, 0, 8);
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.BAD_MAGIC, context: { offset: 0 } });
    const d = b.slice();
    d[65536 + 100] ^= 1;
    d[131072 + 100] ^= 1;
    await expect(open(d)).rejects.toMatchObject({ code: DiskErrorCode.INVALID_HEADER });
    // one corrupt header: the other one is used
    const e = b.slice();
    e[65536 + 100] ^= 1;
    expect((await open(e)).size()).toBe(4 * MiB);
    // a non-empty log
    const f = b.slice();
    for (const at of [65536, 131072]) {
      f[at + 48] = 1;
      fixHeader(f, at);
    }
    expect((await open(f)).size()).toBe(4 * MiB); // a LogGuid without any valid entry: nothing to replay (as QEMU)
    // region pointing outside the file
    const g = b.slice();
    for (const at of [196608, 262144]) {
      dv(g).setBigUint64(at + 32, 1n << 40n, true);
      fixRegion(g, at);
    }
    await expect(open(g)).rejects.toMatchObject({
      code: DiskErrorCode.OUT_OF_BOUNDS,
      context: { offset: 196608 + 32 },
    });
  });

  it("BAT entries outside the file, into metadata, or reused", async () => {
    const b = await sample();
    const bat = 2 * MiB;
    const c = b.slice();
    dv(c).setBigUint64(bat, (1000n << 20n) | 6n, true);
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS, context: { offset: bat } });
    dv(c).setBigUint64(bat, (2n << 20n) | 6n, true); // the BAT itself
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.METADATA_OVERLAP, context: { offset: bat } });
    const used = dv(b).getBigUint64(bat + 8, true);
    expect(Number(used & 7n)).toBe(6);
    dv(c).setBigUint64(bat, used, true);
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.BAD_ENTRY, context: { offset: bat + 8 } });
    dv(c).setBigUint64(bat, 7n, true);
    await expect(open(c)).rejects.toMatchObject({ code: DiskErrorCode.UNSUPPORTED, context: { offset: bat } });
  });

  it("property: mutated headers, regions, metadata and BAT give a DiskError or a working image", async () => {
    const base = await sample();
    const areas = [0, 65536, 131072, 196608, 2 * MiB, 3 * MiB, 3 * MiB + 65536];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...areas), fc.nat(127), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.boolean(),
        async (muts, fixSums) => {
          const b = base.slice();
          for (const [a, o, v] of muts) b[a + o] = v;
          if (fixSums) {
            fixHeader(b, 65536);
            fixHeader(b, 131072);
            fixRegion(b, 196608);
          }
          try {
            const img = await VhdxImage.open(new MemoryStore("p", false, b), { readOnly: false });
            const n = Math.min(img.size(), 2 * MiB);
            await img.read(0, n);
            await allocationMap(img, 0, n);
            if (n > 0) await img.write(0, new Uint8Array(Math.min(n, 4096)).fill(1));
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("vhdx");
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
