// Creating twoGbMaxExtentSparse / twoGbMaxExtentFlat VMDKs against qemu-img 7.2: the same files and
// descriptor as `qemu-img create -o subformat=...`, data across the 2 GiB extent boundaries read back
// identical both ways, and descriptors naming missing or mis-sized extents refused with typed errors.
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryHost, MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { VmdkImage } from "./vmdk.js";

const host = new NodeFileHost();
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SPLIT = 2 * GiB; // QEMU block/vmdk.c: split_size = 0x80000000
const SIZE = 5 * GiB; // three extents: 2 GiB, 2 GiB, 1 GiB
const SUBS = ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] as const;

/** Writes at and around both extent boundaries (2 GiB - 64 KiB, 2 GiB, 4 GiB), unaligned ones included. */
const WRITES: Array<[number, number]> = [
  [0, 512],
  [SPLIT - 64 * KiB - 4 * KiB, 8 * KiB],
  [SPLIT - 64 * KiB + 3 * KiB + 7, 5000],
  [SPLIT - 4 * KiB, 8 * KiB],
  [SPLIT - 100, 200],
  [2 * SPLIT - 3 * KiB, 70000],
  [SIZE - 8 * KiB, 8 * KiB],
];

function readRange(file: string, off: number, len: number): Uint8Array {
  const fd = openSync(file, "r");
  try {
    const b = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const n = readSync(fd, b, done, len - done, off + done);
      if (n <= 0) break;
      done += n;
    }
    return b;
  } finally {
    closeSync(fd);
  }
}

/** Real bytes on the host, summed over the files of a directory. */
function realBytes(dir: string): number {
  return readdirSync(dir).reduce((s, f) => s + statSync(`${dir}/${f}`).blocks * 512, 0);
}

describe.skipIf(!HAVE_QEMU)("VMDK twoGbMaxExtent* creation against qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vmdk-split-");
  });
  afterAll(() => t.cleanup());

  for (const sub of SUBS) {
    it(`creates ${sub} as qemu-img does: same extent files, sizes, sparse headers and descriptor`, async () => {
      const q = t.path(`q-${sub}`);
      const o = t.path(`o-${sub}`);
      mkdirSync(q);
      mkdirSync(o);
      qemuImg(["create", "-q", "-f", "vmdk", "-o", `subformat=${sub}`, `${q}/d.vmdk`, "5G"]);
      const img = await createImage(host, `${o}/d.vmdk`, { format: "vmdk", size: SIZE, vmdk: { subformat: sub } });
      expect(img.size()).toBe(SIZE);
      await img.close();
      const names = readdirSync(q).sort();
      const x = sub === "twoGbMaxExtentFlat" ? "f" : "s";
      expect(names).toEqual(["d.vmdk", `d-${x}001.vmdk`, `d-${x}002.vmdk`, `d-${x}003.vmdk`].sort());
      expect(readdirSync(o).sort()).toEqual(names);
      const noCid = (f: string) => readFileSync(f, "latin1").replace(/^CID=\w+$/m, "CID=");
      expect(noCid(`${o}/d.vmdk`)).toBe(noCid(`${q}/d.vmdk`));
      for (const n of names.filter((n) => n !== "d.vmdk")) {
        expect([n, statSync(`${o}/${n}`).size]).toEqual([n, statSync(`${q}/${n}`).size]);
        // Sparse extents: header, empty descriptor area, directories and tables byte for byte.
        if (x === "s") expect(firstDiff(readFileSync(`${o}/${n}`), readFileSync(`${q}/${n}`))).toBe(-1);
      }
      expect(realBytes(o)).toBeLessThan(256 * KiB);
      expect(qemuImg(["check", `${o}/d.vmdk`]).stdout).toContain("No errors were found on the image.");
      const info = JSON.parse(qemuImg(["info", "--output", "json", `${o}/d.vmdk`]).stdout);
      expect(info["format-specific"].data["create-type"]).toBe(sub);
      expect(info["format-specific"].data.extents.map((e: { "virtual-size": number }) => e["virtual-size"])).toEqual([
        SPLIT,
        SPLIT,
        GiB,
      ]);
    });

    it(`writes ${sub} (5 GiB) across the extent boundaries; qemu-img reads it back identical`, async () => {
      const dir = t.path(`w-${sub}`);
      mkdirSync(dir);
      const f = `${dir}/w.vmdk`;
      const ref = t.path(`ref-${sub}.raw`);
      const fd = openSync(ref, "w");
      ftruncateSync(fd, SIZE);
      const img = await createImage(host, f, { format: "vmdk", size: SIZE, vmdk: { subformat: sub } });
      for (const [i, [off, len]] of WRITES.entries()) {
        const d = pattern(len, 100 + i); // overlapping on purpose: later writes win
        await img.write(off, d);
        writeSync(fd, d, 0, len, off);
      }
      closeSync(fd);
      await img.close();
      expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
      expect(qemuImg(["compare", "-f", "raw", "-F", "vmdk", ref, f]).stdout).toBe("Images are identical.\n");
      const raw = t.path(`out-${sub}.raw`);
      qemuImg(["convert", "-O", "raw", f, raw]);
      expect(statSync(raw).size).toBe(SIZE);
      // The writes overlap: compare with the reference file, which got them in the same order.
      for (const [off, len] of WRITES)
        expect([off, firstDiff(readRange(raw, off, len), readRange(ref, off, len))]).toEqual([off, -1]);
      // Read back here too, after a reopen.
      const back = await openImage(host, f, { readOnly: true });
      for (const [off, len] of WRITES)
        expect([off, firstDiff(await back.read(off, len), readRange(ref, off, len))]).toEqual([off, -1]);
      await back.close();
      expect(realBytes(dir)).toBeLessThan(4 * MiB);
    });

    it(`reads ${sub} made by qemu-img create and written by qemu-io across the extent boundaries`, async () => {
      const dir = t.path(`r-${sub}`);
      mkdirSync(dir);
      const f = `${dir}/r.vmdk`;
      qemuImg(["create", "-q", "-f", "vmdk", "-o", `subformat=${sub}`, f, "5G"]);
      const writes: Array<[number, number, number]> = [
        [0xab, SPLIT - 64 * KiB - 4 * KiB, 8 * KiB],
        [0xcd, SPLIT - 2 * KiB, 4 * KiB],
        [0x5a, 2 * SPLIT - KiB - 3, 3000],
        [0x11, SIZE - 4 * KiB, 4 * KiB],
      ];
      qemuIo(
        f,
        writes.map(([p, off, len]) => `write -P 0x${p.toString(16)} ${off} ${len}`),
        "vmdk",
      );
      const img = await openImage(host, f, { readOnly: true });
      expect(img.size()).toBe(SIZE);
      for (const [p, off, len] of writes) {
        // The written range plus 4 KiB of zeros either side (clipped to the disk).
        const lo = Math.max(0, off - 4 * KiB);
        const hi = Math.min(SIZE, off + len + 4 * KiB);
        const want = new Uint8Array(hi - lo);
        want.fill(p, off - lo, off - lo + len);
        expect([off, firstDiff(await img.read(lo, hi - lo), want)]).toEqual([off, -1]);
      }
      await img.close();
    });
  }
});

describe("VMDK twoGbMaxExtent* descriptors with missing or mis-sized extents", () => {
  async function split(sub: (typeof SUBS)[number], size = 3 * GiB): Promise<MemoryHost> {
    const h = new MemoryHost();
    const img = await createImage(h, "d.vmdk", { format: "vmdk", size, vmdk: { subformat: sub } });
    await img.close();
    return h;
  }
  const descriptor = (h: MemoryHost) => new TextDecoder().decode(h.files.get("d.vmdk")!.bytes());
  const setDescriptor = (h: MemoryHost, text: string) =>
    h.files.set("d.vmdk", new MemoryStore("d.vmdk", false, new TextEncoder().encode(text)));
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: unknown) => e,
    );

  it("creates the extent files through the host, and refuses what it cannot lay out", async () => {
    const h = await split("twoGbMaxExtentSparse");
    expect([...h.files.keys()].sort()).toEqual(["d-s001.vmdk", "d-s002.vmdk", "d.vmdk"]);
    expect(descriptor(h)).toContain('RW 4194304 SPARSE "d-s001.vmdk"\nRW 2097152 SPARSE "d-s002.vmdk"\n\n');
    const f = await split("twoGbMaxExtentFlat", 3000); // rounded up to sectors, as qemu-img does
    expect(descriptor(f)).toContain('RW 6 FLAT "d-f001.vmdk" 0\n');
    expect(await f.files.get("d-f001.vmdk")!.reopen(true).size()).toBe(3072);
    await expect(split("twoGbMaxExtentSparse", 0)).rejects.toMatchObject({ code: DiskErrorCode.INVALID_OPTIONS });
    await expect(
      VmdkImage.create(new MemoryStore("x.vmdk"), { size: MiB, subformat: "twoGbMaxExtentFlat" }),
    ).rejects.toMatchObject({ code: DiskErrorCode.INVALID_OPTIONS, context: { format: "vmdk" } });
  });

  for (const sub of SUBS) {
    it(`${sub}: a missing extent file is NOT_FOUND`, async () => {
      const h = await split(sub);
      const x = sub === "twoGbMaxExtentFlat" ? "f" : "s";
      h.files.delete(`d-${x}002.vmdk`);
      const e = await failure(openImage(h, "d.vmdk"));
      expect(e).toBeInstanceOf(DiskError);
      expect(e).toMatchObject({ code: DiskErrorCode.NOT_FOUND, context: { format: "vmdk", file: `d-${x}002.vmdk` } });
    });

    it(`${sub}: an absurd extent size is TOO_LARGE`, async () => {
      const h = await split(sub);
      setDescriptor(h, descriptor(h).replace("RW 2097152 ", "RW 99999999999999999 "));
      const e = await failure(openImage(h, "d.vmdk"));
      expect(e).toBeInstanceOf(DiskError);
      expect(e).toMatchObject({ code: DiskErrorCode.TOO_LARGE, context: { format: "vmdk" } });
    });
  }

  it("twoGbMaxExtentSparse: an extent's size is its header's capacity, not its descriptor line's (QEMU's rule)", async () => {
    const h = await split("twoGbMaxExtentSparse");
    const first = await openImage(h, "d.vmdk", { readOnly: true });
    const size = first.size();
    await first.close();
    setDescriptor(h, descriptor(h).replace('RW 2097152 SPARSE "d-s002.vmdk"', 'RW 4194304 SPARSE "d-s002.vmdk"'));
    const img = await openImage(h, "d.vmdk", { readOnly: true });
    expect(img.size()).toBe(size);
    await img.close();
  });

  it("twoGbMaxExtentFlat: an extent file shorter than the descriptor says reads as zeros past its end, as in QEMU", async () => {
    const h = await split("twoGbMaxExtentFlat");
    const img = await openImage(h, "d.vmdk");
    await img.write(SPLIT - 10, pattern(20, 9));
    await img.close();
    await h.files.get("d-f002.vmdk")!.reopen(false).truncate(MiB);
    const back = await openImage(h, "d.vmdk", { readOnly: true });
    expect(firstDiff(await back.read(SPLIT - 10, 20), pattern(20, 9))).toBe(-1);
    expect((await back.read(SPLIT + 2 * MiB, 4096)).every((b) => b === 0)).toBe(true);
    await back.close();
  });
});
