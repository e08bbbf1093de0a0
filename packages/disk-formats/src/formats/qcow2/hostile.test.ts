// Hostile qcow2 images: every malformed header or table gives a typed
// DiskError naming the format and the file offset, never a crash or a hang.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allocationMap } from "../../backend.js";
import { DiskError, DiskErrorCode } from "../../errors.js";
import { MemoryHost, MemoryStore } from "../../io/memory.js";
import { createImage, openImage } from "../../open.js";
import { Qcow2Image } from "./image.js";

const CS = 4096;

/** A small valid v3 image (4 KiB clusters) with data in two L2 tables, and its bytes. */
async function sample(): Promise<Uint8Array> {
  const store = new MemoryStore("s.qcow2");
  const img = await Qcow2Image.create(store, { size: 8 * 1024 * 1024, clusterBits: 12 });
  await img.write(0, new Uint8Array(10000).fill(1));
  await img.write(6 * 1024 * 1024, new Uint8Array(5000).fill(2));
  await img.writeZeroes(8192 * 3, 4096);
  await img.writeCompressed(40960, new Uint8Array(4096).fill(9));
  await img.close();
  return store.bytes();
}

function put64(b: Uint8Array, off: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(off, v);
}
function put32(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(off, v);
}
function get64(b: Uint8Array, off: number): number {
  return Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off) & 0x00fffffffffffe00n);
}

async function openBytes(bytes: Uint8Array, readOnly = true): Promise<Qcow2Image> {
  return Qcow2Image.open(new MemoryStore("h.qcow2", false, bytes), { readOnly });
}

async function expectDiskError(p: Promise<unknown>, code: DiskErrorCode, offset?: number): Promise<DiskError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DiskError);
  const d = e as DiskError;
  expect(d.code).toBe(code);
  expect(d.format).toBe("qcow2");
  if (offset !== undefined) expect(d.offset).toBe(offset);
  return d;
}

describe("hostile qcow2 headers", () => {
  it("the sample image is valid and reads back", async () => {
    const img = await openBytes(await sample());
    expect((await img.read(0, 10000)).every((b) => b === 1)).toBe(true);
    expect((await img.read(40960, 4096)).every((b) => b === 9)).toBe(true);
    const r = await img.check();
    expect(r.corruptions).toBe(0);
    expect(r.leaks).toBe(0);
  });

  it("truncated files", async () => {
    const b = await sample();
    await expectDiskError(openBytes(b.slice(0, 50)), DiskErrorCode.TRUNCATED, 0);
    // cut inside the L1 table (cluster 3)
    await expectDiskError(openBytes(b.slice(0, 3 * CS + 4)), DiskErrorCode.OUT_OF_BOUNDS, 40);
    // cut before the data: the L1/L2 entries point past the end
    await expect(openBytes(b.slice(0, 5 * CS))).rejects.toBeInstanceOf(DiskError);
  });

  const cases: Array<[string, (b: Uint8Array) => void, DiskErrorCode, number]> = [
    ["magic", (b) => put32(b, 0, 0x12345678), DiskErrorCode.BAD_MAGIC, 0],
    ["version 4", (b) => put32(b, 4, 4), DiskErrorCode.UNSUPPORTED, 4],
    ["cluster_bits 30", (b) => put32(b, 20, 30), DiskErrorCode.INVALID_HEADER, 20],
    ["cluster_bits 8", (b) => put32(b, 20, 8), DiskErrorCode.INVALID_HEADER, 20],
    ["size 2^60", (b) => put64(b, 24, 1n << 60n), DiskErrorCode.TOO_LARGE, 24],
    ["size beyond what L1 maps", (b) => put64(b, 24, 1n << 40n), DiskErrorCode.INVALID_HEADER, 36],
    ["encryption", (b) => put32(b, 32, 1), DiskErrorCode.UNSUPPORTED, 32],
    ["l1 size absurd", (b) => put32(b, 36, 0xffffffff), DiskErrorCode.INVALID_HEADER, 36],
    ["l1 offset unaligned", (b) => put64(b, 40, 3n * 4096n + 8n), DiskErrorCode.INVALID_HEADER, 40],
    ["l1 offset beyond file", (b) => put64(b, 40, 1n << 40n), DiskErrorCode.OUT_OF_BOUNDS, 40],
    ["refcount table beyond file", (b) => put64(b, 48, 1n << 30n), DiskErrorCode.OUT_OF_BOUNDS, 48],
    ["refcount table clusters absurd", (b) => put32(b, 56, 1 << 30), DiskErrorCode.INVALID_HEADER, 56],
    ["refcount order 7", (b) => put32(b, 96, 7), DiskErrorCode.INVALID_HEADER, 96],
    ["header length odd", (b) => put32(b, 100, 105), DiskErrorCode.INVALID_HEADER, 100],
    [
      "backing name outside first cluster",
      (b) => {
        put64(b, 8, 4000n);
        put32(b, 16, 500);
      },
      DiskErrorCode.INVALID_HEADER,
      8,
    ],
    [
      "snapshots beyond file",
      (b) => {
        put32(b, 60, 1000);
        put64(b, 64, 1n << 30n);
      },
      DiskErrorCode.OUT_OF_BOUNDS,
      64,
    ],
    ["unknown incompatible feature", (b) => put64(b, 72, 1n << 40n), DiskErrorCode.UNSUPPORTED, 72],
    ["extended L2 with 4 KiB clusters", (b) => put64(b, 72, 1n << 4n), DiskErrorCode.INVALID_HEADER, 20],
    ["external data file", (b) => put64(b, 72, 1n << 2n), DiskErrorCode.UNSUPPORTED, 72],
  ];
  for (const [name, mutate, code, offset] of cases) {
    it(`header that lies: ${name}`, async () => {
      const b = await sample();
      mutate(b);
      await expectDiskError(openBytes(b), code, offset);
    });
  }

  it("header extension running past the cluster", async () => {
    const b = await sample();
    put32(b, 112 + 4, 100000); // length of the first extension (feature table)
    await expectDiskError(openBytes(b), DiskErrorCode.INVALID_HEADER, 112);
  });
});

describe("hostile qcow2 tables", () => {
  it("L1 entry beyond the file, into the header, or unaligned", async () => {
    const b = await sample();
    const l1 = get64(b, 40);
    const e0 = b.slice(l1, l1 + 8);
    put64(b, l1, (1n << 63n) | (1n << 40n));
    await expectDiskError(openBytes(b), DiskErrorCode.OUT_OF_BOUNDS, l1);
    put64(b, l1, 1n << 63n); // offset 0 with COPIED: treated as unallocated
    expect((await openBytes(b)).size()).toBe(8 * 1024 * 1024);
    put64(b, l1, (1n << 63n) | 4096n); // the refcount table
    await expectDiskError(openBytes(b), DiskErrorCode.METADATA_OVERLAP, l1);
    put64(b, l1, (1n << 63n) | 0x10200n);
    await expectDiskError(openBytes(b), DiskErrorCode.BAD_ENTRY, l1);
    b.set(e0, l1);
    expect((await openBytes(b)).size()).toBe(8 * 1024 * 1024);
  });

  it("L2 entry pointing into metadata or outside the file", async () => {
    const b = await sample();
    const l2 = get64(b, get64(b, 40));
    put64(b, l2, (1n << 63n) | BigInt(get64(b, 40))); // data cluster = the L1 table
    let img = await openBytes(b);
    await expectDiskError(img.read(0, 512), DiskErrorCode.METADATA_OVERLAP, l2);
    put64(b, l2, (1n << 63n) | (1n << 45n));
    img = await openBytes(b);
    await expectDiskError(img.read(0, 512), DiskErrorCode.OUT_OF_BOUNDS, l2);
    put64(b, l2, (1n << 63n) | 0x3000n | (1n << 57n)); // reserved bits
    img = await openBytes(b);
    await expectDiskError(img.read(0, 512), DiskErrorCode.BAD_ENTRY, l2);
    // writing through such an entry fails the same way, before touching the file
    img = await openBytes(b, false);
    await expectDiskError(img.write(0, new Uint8Array(10)), DiskErrorCode.BAD_ENTRY, l2);
    const r = await img.check();
    expect(r.corruptions).toBeGreaterThan(0);
  });

  it("refcount table entry outside the file", async () => {
    const b = await sample();
    const rt = get64(b, 48);
    put64(b, rt + 8, 1n << 42n);
    await expectDiskError(openBytes(b), DiskErrorCode.OUT_OF_BOUNDS, rt + 8);
  });

  it("compressed cluster with garbage data", async () => {
    const b = await sample();
    const l2 = get64(b, get64(b, 40));
    const v = new DataView(b.buffer).getBigUint64(l2 + 10 * 8); // guest cluster 10 = 40960
    expect(v >> 62n).toBe(1n);
    const host = Number(v & ((1n << 58n) - 1n));
    b.fill(0xff, host, host + 20);
    const img = await openBytes(b);
    await expectDiskError(img.read(40960, 10), DiskErrorCode.BAD_COMPRESSED_DATA, host);
  });

  it("invalid requests", async () => {
    const img = await openBytes(await sample());
    await expectDiskError(img.read(2 ** 53, 1), DiskErrorCode.INVALID_REQUEST);
    await expectDiskError(img.read(8 * 1024 * 1024 - 1, 2), DiskErrorCode.INVALID_REQUEST);
    await expectDiskError(img.read(-1, 2), DiskErrorCode.INVALID_REQUEST);
    await expectDiskError(img.write(0, new Uint8Array(1)), DiskErrorCode.READ_ONLY);
  });
});

describe("backing chains", () => {
  it("detects cycles, missing files and excessive depth", async () => {
    const host = new MemoryHost();
    await (await createImage(host, "base.raw", { format: "raw", size: 1 << 20 })).close();
    let prev = "base.raw";
    for (let i = 0; i < 5; i++) {
      await (await createImage(host, `l${i}.qcow2`, { format: "qcow2", backingFile: prev })).close();
      prev = `l${i}.qcow2`;
    }
    const ok = await openImage(host, "l4.qcow2");
    expect(ok.size()).toBe(1 << 20);
    await ok.close();
    await expect(openImage(host, "l4.qcow2", { maxChainDepth: 3 })).rejects.toMatchObject({
      code: DiskErrorCode.BACKING_TOO_DEEP,
    });
    // a -> b -> a
    await (await createImage(host, "a.qcow2", { format: "qcow2", size: 1 << 20 })).close();
    await (await createImage(host, "b.qcow2", { format: "qcow2", backingFile: "a.qcow2" })).close();
    const a = await openImage(host, "a.qcow2");
    await (a as Qcow2Image).setBackingFile("b.qcow2", "qcow2");
    await a.close();
    await expect(openImage(host, "a.qcow2")).rejects.toMatchObject({ code: DiskErrorCode.BACKING_CYCLE });
    // self
    const s = await createImage(host, "self.qcow2", { format: "qcow2", size: 1 << 20 });
    await (s as Qcow2Image).setBackingFile("self.qcow2", "qcow2");
    await s.close();
    await expect(openImage(host, "self.qcow2")).rejects.toMatchObject({ code: DiskErrorCode.BACKING_CYCLE });
    const m = await createImage(host, "m.qcow2", { format: "qcow2", size: 1 << 20 });
    await (m as Qcow2Image).setBackingFile("missing.qcow2", "qcow2");
    await m.close();
    await expect(openImage(host, "m.qcow2")).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
  });
});

describe("property: mutated metadata never escapes as anything but a DiskError", () => {
  it("random byte mutations in the metadata clusters", async () => {
    const base = await sample();
    const metaEnd = 8 * CS;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(metaEnd - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (muts, writable) => {
          const b = base.slice();
          for (const [off, v] of muts) b[off] = v;
          try {
            const img = await openBytes(b, !writable);
            const size = img.size();
            const len = Math.min(size, 64 * 1024);
            await img.read(0, len);
            if (size > 6 * 1024 * 1024 + 5000) await img.read(6 * 1024 * 1024, 5000);
            await allocationMap(img, 0, Math.min(size, 8 * 1024 * 1024));
            if (writable && size >= 4096) await img.write(0, new Uint8Array(4096).fill(7));
            await img.check();
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("qcow2");
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
