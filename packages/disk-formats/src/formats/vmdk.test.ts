// VMDK against qemu-img: monolithicSparse, monolithicFlat and streamOptimized both ways; hostile headers and tables.
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryHost, MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { VmdkImage } from "./vmdk.js";

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

describe.skipIf(!HAVE_QEMU)("VMDK interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vmdk-");
  });
  afterAll(() => t.cleanup());

  it("reads monolithicSparse written by qemu-io (6 GiB sparse, grain-crossing) and matches qemu-img map", async () => {
    const f = t.path("q.vmdk");
    qemuImg(["create", "-f", "vmdk", f, "6G"]);
    qemuIo(f, ["write -P 0xab 0 4k", "write -P 0xcd 65000 2000", "write -P 0x11 5G 70000"], "vmdk");
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("vmdk");
    expect(img.size()).toBe(6 * GiB);
    expect((await img.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
    expect((await img.read(65000, 2000)).every((b) => b === 0xcd)).toBe(true);
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

  for (const sub of ["monolithicSparse", "monolithicFlat", "streamOptimized"] as const) {
    it(`reads ${sub} converted by qemu-img, and writes ${sub} qemu-img reads back identical`, async () => {
      const src = t.path(`${sub}.raw`);
      const data = pattern(3 * MiB + 4096, 7);
      data.fill(0, MiB, 2 * MiB);
      for (let i = 2 * MiB; i < 3 * MiB; i++) data[i] = i % 13 === 0 ? 1 : 0x42; // compressible
      writeFileSync(src, data);
      const theirs = t.path(`theirs-${sub}.vmdk`);
      qemuImg(["convert", "-O", "vmdk", "-o", `subformat=${sub}`, src, theirs]);
      const img = await openImage(host, theirs, { readOnly: true });
      expect(firstDiff(await img.read(0, data.length), data)).toBe(-1);
      await img.close();
      const ours = t.path(`ours-${sub}.vmdk`);
      const w = await createImage(host, ours, { format: "vmdk", size: data.length, vmdk: { subformat: sub } });
      for (let off = 0; off < data.length; off += 65536) await w.write(off, data.subarray(off, off + 65536));
      await w.close();
      expect(qemuImg(["compare", "-f", "raw", "-F", "vmdk", src, ours]).stdout).toContain("Images are identical.");
      expect(qemuImg(["check", "-f", "vmdk", ours]).stdout).toContain("No errors were found on the image.");
      const info = JSON.parse(qemuImg(["info", "--output", "json", ours]).stdout);
      expect(info["format-specific"].data["create-type"]).toBe(sub);
    });
  }

  for (const sub of ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] as const) {
    it(`reads and writes ${sub} images across extent boundaries`, async () => {
      const f = t.path(`${sub}.vmdk`);
      qemuImg(["create", "-f", "vmdk", "-o", `subformat=${sub}`, f, "3G"]);
      qemuIo(f, ["write -P 0xab 2047M 2M"], "vmdk");
      const img = await openImage(host, f);
      expect(img.size()).toBe(3 * GiB);
      expect((await img.read(2047 * MiB, 2 * MiB)).every((b) => b === 0xab)).toBe(true);
      await img.write(2 * GiB - 100, pattern(200, 5)); // spans the two extents
      await img.close();
      expect(qemuImg(["check", f]).stdout).toContain("No errors");
      const out = qemuIo(f, [`read -v ${2 * GiB - 100} 200`], "vmdk");
      const bytes = [...out.matchAll(/^[0-9a-f]+:\s+((?:[0-9a-f]{2}\s)+)/gm)].flatMap((m) =>
        m[1]!
          .trim()
          .split(/\s+/)
          .map((h) => Number.parseInt(h, 16)),
      );
      expect(bytes).toEqual([...pattern(200, 5)]);
    });
  }

  it("monolithicSparse: runs of whole grains written in one piece, across grain tables and allocated grains", async () => {
    const f = t.path("runs.vmdk");
    const size = 40 * MiB; // a grain table covers 32 MiB
    const w = await createImage(host, f, { format: "vmdk", size });
    const expected = new Uint8Array(size);
    const writes: Array<[number, number]> = [
      [2 * 65536, 65536], // one grain, allocated first
      [0, 5 * 65536], // fresh, allocated, fresh grains
      [32 * MiB - 3 * 65536, 6 * 65536], // across the first grain table's end
      [10 * MiB + 100, 4 * 65536], // not grain aligned
      [39 * MiB, MiB], // up to the end
    ];
    for (const [i, [off, len]] of writes.entries()) {
      const d = pattern(len, i + 1);
      await w.write(off, d);
      expected.set(d, off);
    }
    await w.close();
    expect(qemuImg(["check", "-f", "vmdk", f]).stdout).toContain("No errors were found on the image.");
    const want = t.path("runs.raw");
    writeFileSync(want, expected);
    expect(qemuImg(["compare", "-f", "vmdk", "-F", "raw", f, want]).stdout).toContain("Images are identical.");
    const r = await openImage(host, f, { readOnly: true });
    expect(firstDiff(await r.read(0, size), expected)).toBe(-1);
    await r.close();
  });

  it("streamOptimized written both ways across sessions: new grains appended, compressed grains rewritten", async () => {
    const q = t.path("stream-q.vmdk");
    qemuImg(["create", "-f", "vmdk", "-o", "subformat=streamOptimized", q, "4M"]);
    qemuIo(q, ["write -P 0x11 0 64k"], "vmdk");
    const expected = new Uint8Array(4 * MiB);
    expected.fill(0x11, 0, 65536);
    const w = await openImage(host, q);
    const writes: Array<[number, Uint8Array]> = [
      [MiB, pattern(65536, 1)], // a new whole grain, appended
      [2 * MiB + 100, pattern(200, 2)], // a new partial grain
      [5, pattern(10, 3)], // rewrites qemu's compressed grain
      [2 * MiB + 150, pattern(20, 4)], // rewrites ours
      [65536 - 8, pattern(16, 5)], // across two grains, one compressed, one new
    ];
    for (const [off, d] of writes) {
      await w.write(off, d);
      expected.set(d, off);
    }
    await w.close();
    expect(qemuImg(["check", "-f", "vmdk", q]).stdout).toContain("No errors were found on the image.");
    const want = t.path("stream-want.raw");
    writeFileSync(want, expected);
    expect(qemuImg(["compare", "-f", "vmdk", "-F", "raw", q, want]).stdout).toContain("Images are identical.");
    // qemu-io appends a whole grain after ours (it refuses rewrites: "Could not write to allocated cluster").
    qemuIo(q, ["write -P 0x77 3M 64k"], "vmdk");
    expect(() => qemuIo(q, ["write -P 0x78 0 64k"], "vmdk")).toThrow();
    expected.fill(0x77, 3 * MiB, 3 * MiB + 65536);
    const r = await openImage(host, q, { readOnly: true });
    expect(firstDiff(await r.read(0, 4 * MiB), expected)).toBe(-1);
    await r.close();
    // Ours, reopened: more grains appended after the end-of-stream marker, then qemu-io appends too.
    const o = t.path("stream-o.vmdk");
    const c = await createImage(host, o, { format: "vmdk", size: 4 * MiB, vmdk: { subformat: "streamOptimized" } });
    await c.write(0, pattern(65536, 6));
    await c.close();
    const c2 = await openImage(host, o);
    await c2.write(MiB, pattern(65536, 7));
    await c2.write(1000, pattern(3, 8));
    await c2.close();
    qemuIo(o, ["write -P 0x55 2M 64k"], "vmdk");
    const e2 = new Uint8Array(4 * MiB);
    e2.set(pattern(65536, 6), 0);
    e2.set(pattern(65536, 7), MiB);
    e2.set(pattern(3, 8), 1000);
    e2.fill(0x55, 2 * MiB, 2 * MiB + 65536);
    writeFileSync(want, e2);
    expect(qemuImg(["check", "-f", "vmdk", o]).stdout).toContain("No errors were found on the image.");
    expect(qemuImg(["compare", "-f", "vmdk", "-F", "raw", o, want]).stdout).toContain("Images are identical.");
  });

  it("streamOptimized with the grain directory in a footer: read, but not written", async () => {
    const q = t.path("stream-footer.vmdk");
    qemuImg(["create", "-f", "vmdk", "-o", "subformat=streamOptimized", q, "1M"]);
    qemuIo(q, ["write -P 0x21 0 64k"], "vmdk");
    const bytes = new Uint8Array(readFileSync(q));
    const header = bytes.slice(0, 512);
    new DataView(bytes.buffer).setBigUint64(56, 0xffffffffffffffffn, true); // gdOffset: in the footer
    const withFooter = new Uint8Array(bytes.length + 1024);
    withFooter.set(bytes);
    withFooter.set(header, bytes.length); // the footer, then an end-of-stream marker
    writeFileSync(q, withFooter);
    const img = await openImage(host, q);
    expect((await img.read(0, 65536)).every((b) => b === 0x21)).toBe(true);
    await expect(img.write(MiB - 65536, pattern(10, 1))).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await img.close();
  });

  it("writes a sparse image above 4 GiB that qemu-img reads", async () => {
    const f = t.path("big.vmdk");
    const w = await createImage(host, f, { format: "vmdk", size: 5 * GiB });
    await w.write(4 * GiB - 100, pattern(70000, 3));
    await w.write(100, pattern(100, 4));
    await w.close();
    expect(qemuImg(["check", f]).stdout).toContain("No errors");
    const raw = t.path("big.raw");
    qemuImg(["convert", "-O", "raw", f, raw]);
    expect(firstDiff(readRange(raw, 4 * GiB - 100, 70000), pattern(70000, 3))).toBe(-1);
    expect(firstDiff(readRange(raw, 100, 100), pattern(100, 4))).toBe(-1);
  });
});

async function sample(): Promise<Uint8Array> {
  const s = new MemoryStore("s.vmdk");
  const img = await VmdkImage.create(s, { size: 4 * MiB }, { name: "s.vmdk" });
  await img.write(MiB + 5, new Uint8Array(100).fill(3));
  await img.close();
  return s.bytes();
}

describe("hostile VMDK", () => {
  const open = (b: Uint8Array) => VmdkImage.open(new MemoryStore("h.vmdk", false, b), { readOnly: true });
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const cases: Array<[string, (b: Uint8Array) => void, DiskErrorCode, number | undefined]> = [
    ["version 9", (b) => dv(b).setUint32(4, 9, true), DiskErrorCode.UNSUPPORTED, 4],
    ["grain size 0", (b) => dv(b).setBigUint64(20, 0n, true), DiskErrorCode.INVALID_HEADER, 20],
    ["grain table entries 100000", (b) => dv(b).setUint32(44, 100000, true), DiskErrorCode.INVALID_HEADER, 44],
    ["capacity 2^60 sectors", (b) => dv(b).setBigUint64(12, 1n << 60n, true), DiskErrorCode.TOO_LARGE, 12],
    ["descriptor 1 GiB", (b) => dv(b).setBigUint64(36, 1n << 21n, true), DiskErrorCode.TOO_LARGE, 36],
    ["grain directory beyond file", (b) => dv(b).setBigUint64(56, 1n << 30n, true), DiskErrorCode.OUT_OF_BOUNDS, 56],
    ["grain table beyond file", (b) => dv(b).setUint32(26 * 512, 1 << 28, true), DiskErrorCode.OUT_OF_BOUNDS, 26 * 512],
    [
      "unknown extent type",
      (b) => b.set(new TextEncoder().encode("VMFSRDM"), b.indexOf(0x53, 600)),
      DiskErrorCode.UNSUPPORTED,
      undefined,
    ],
    [
      "compression algorithm 7",
      (b) => {
        dv(b).setUint32(8, 3 | (1 << 16), true);
        dv(b).setUint16(77, 7, true);
      },
      DiskErrorCode.UNSUPPORTED,
      77,
    ],
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
      expect(e).toMatchObject({ code, context: { format: "vmdk" } });
      if (offset !== undefined) expect((e as DiskError).offset).toBe(offset);
    });
  }

  it("grain table entries pointing into metadata or past the end fail on read", async () => {
    const b = await sample();
    const gt = 27 * 512; // first grain table (qemu layout for small disks)
    dv(b).setUint32(gt + 16 * 4, 5, true); // grain 16 (1 MiB) -> inside the descriptor
    let img = await open(b);
    await expect(img.read(MiB, 10)).rejects.toMatchObject({
      code: DiskErrorCode.METADATA_OVERLAP,
      context: { offset: gt + 64 },
    });
    dv(b).setUint32(gt + 16 * 4, 1 << 30, true);
    img = await open(b);
    await expect(img.read(MiB, 10)).rejects.toMatchObject({
      code: DiskErrorCode.OUT_OF_BOUNDS,
      context: { offset: gt + 64 },
    });
  });

  it("descriptor files with missing extents and delta links", async () => {
    const h = new MemoryHost();
    const text = (extra: string) =>
      new TextEncoder().encode(
        `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n${extra}`,
      );
    h.files.set("a.vmdk", new MemoryStore("a.vmdk", false, text('RW 2048 FLAT "a-flat.vmdk" 0\n')));
    await expect(openImage(h, "a.vmdk")).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
    h.files.set(
      "b.vmdk",
      new MemoryStore("b.vmdk", false, text('parentFileNameHint="x.vmdk"\nRW 2048 FLAT "a-flat.vmdk" 0\n')),
    );
    await expect(openImage(h, "b.vmdk")).rejects.toMatchObject({ code: DiskErrorCode.UNSUPPORTED });
    h.files.set("c.vmdk", new MemoryStore("c.vmdk", false, text("")));
    await expect(openImage(h, "c.vmdk")).rejects.toMatchObject({ code: DiskErrorCode.INVALID_HEADER });
    h.files.set("z.vmdk", new MemoryStore("z.vmdk", false, text("RW 2048 ZERO\n")));
    const z = await openImage(h, "z.vmdk");
    expect(z.size()).toBe(2048 * 512);
    expect((await z.read(0, 512)).every((x) => x === 0)).toBe(true);
  });

  it("property: mutated header, descriptor and table bytes give a DiskError or a working image", async () => {
    const base = await sample();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(31 * 512), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        async (muts) => {
          const b = base.slice();
          for (const [o, v] of muts) b[o] = v;
          try {
            const img = await VmdkImage.open(new MemoryStore("p", false, b), { readOnly: false });
            const n = Math.min(img.size(), 2 * MiB);
            await img.read(0, n);
            await allocationMap(img, 0, n);
            if (n > 0) await img.write(0, new Uint8Array(Math.min(n, 4096)).fill(1));
            await img.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("vmdk");
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
