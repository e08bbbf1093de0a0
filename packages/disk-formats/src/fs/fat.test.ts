// FAT12/16 against dosfstools (mkfs.fat, fsck.fat) and mtools (mcopy, mdir, mmd): both ways.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskError, DiskErrorCode } from "../errors.js";
import { RawImage } from "../formats/raw.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, pattern, tempDir } from "../testing-internal/qemu.js";
import { FatFs, FLOPPY } from "./fat.js";

const HAVE_TOOLS = ["mkfs.fat", "fsck.fat", "mcopy", "mdir", "mmd"].every(
  (c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0,
);
if (!HAVE_TOOLS && process.env.CI) throw new Error("dosfstools and mtools are required in CI (scripts/setup.sh)");

function run(cmd: string, args: string[], input?: Uint8Array): { status: number; out: string; bytes: Buffer } {
  const r = spawnSync(cmd, args, { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" }, ...(input ? { input } : {}) });
  return { status: r.status ?? -1, out: `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}`, bytes: r.stdout };
}

const host = new NodeFileHost();

describe.skipIf(!HAVE_TOOLS)("FAT against dosfstools and mtools", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-fat-");
  });
  afterAll(() => t.cleanup());

  for (const floppy of Object.keys(FLOPPY) as Array<keyof typeof FLOPPY>) {
    it(`formats a ${floppy} floppy, writes files and directories that fsck.fat and mtools accept`, async () => {
      const f = t.path(`f-${floppy}.img`);
      const disk = await createImage(host, f, { format: "raw", size: FLOPPY[floppy].sectors * 512 });
      const fs = await FatFs.format(disk, { floppy, label: "RZTEST" });
      expect(fs.fatType).toBe(12);
      const big = pattern(100000, 1);
      await fs.writeFile("/BIG.BIN", big);
      await fs.writeFile("/hello.txt", new TextEncoder().encode("hello, fat\n"));
      await fs.mkdir("/SUB");
      await fs.writeFile("/SUB/A Long File Name.dat", pattern(3000, 2));
      for (let i = 0; i < 20; i++) await fs.writeFile(`/SUB/f${i}.txt`, new TextEncoder().encode(`file ${i}`)); // grows the directory
      await fs.writeFile("/BIG.BIN", pattern(5000, 3)); // replace: the old chain is freed
      await disk.close();
      const chk = run("fsck.fat", ["-n", f]);
      expect([chk.status, chk.out]).toEqual([
        0,
        expect.not.stringMatching(/differ|lost|invalid|bad|wrong|mismatch|free cluster/i),
      ]);
      expect(run("mdir", ["-i", f, "::/SUB"]).out).toContain("A Long File Name.dat");
      expect(firstDiff(new Uint8Array(run("mcopy", ["-i", f, "::/BIG.BIN", "-"]).bytes), pattern(5000, 3))).toBe(-1);
      expect(run("mcopy", ["-i", f, "::/hello.txt", "-"]).bytes.toString()).toBe("hello, fat\n");
      expect(
        firstDiff(new Uint8Array(run("mcopy", ["-i", f, "::/SUB/A Long File Name.dat", "-"]).bytes), pattern(3000, 2)),
      ).toBe(-1);
      expect(run("mcopy", ["-i", f, "::/SUB/f19.txt", "-"]).bytes.toString()).toBe("file 19");
    });
  }

  it("formats a 32 MiB disk as FAT16 that fsck.fat and mtools accept", async () => {
    const f = t.path("fat16.img");
    const disk = await createImage(host, f, { format: "raw", size: 32 * 1024 * 1024 });
    const fs = await FatFs.format(disk, { label: "BIG" });
    expect(fs.fatType).toBe(16);
    await fs.mkdir("/deep");
    await fs.mkdir("/deep/er");
    await fs.writeFile("/deep/er/file.bin", pattern(200000, 9));
    await disk.close();
    const chk = run("fsck.fat", ["-n", f]);
    expect([chk.status, chk.out]).toEqual([0, expect.not.stringMatching(/differ|lost|invalid|bad|wrong|mismatch/i)]);
    expect(
      firstDiff(new Uint8Array(run("mcopy", ["-i", f, "::/deep/er/file.bin", "-"]).bytes), pattern(200000, 9)),
    ).toBe(-1);
  });

  it("reads what mkfs.fat and mcopy wrote (FAT12 floppy and a FAT16 disk)", async () => {
    for (const [size, args] of [
      [1474560, ["-C", "-F", "12"]],
      [32 * 1024 * 1024, ["-C", "-F", "16"]],
    ] as const) {
      const f = t.path(`m-${size}.img`);
      const r = run("mkfs.fat", [...args, f, String(size / 1024)]);
      expect(r.status).toBe(0);
      const src = t.path("src.bin");
      writeFileSync(src, pattern(70000, 5));
      expect(run("mmd", ["-i", f, "::/dir"]).status).toBe(0);
      expect(run("mcopy", ["-i", f, src, "::/dir/Some File.bin"]).status).toBe(0);
      expect(run("mcopy", ["-i", f, src, "::/X.BIN"]).status).toBe(0);
      const disk = await openImage(host, f, { format: "raw" });
      const fs = await FatFs.open(disk);
      expect(fs.fatType).toBe(size > 2 * 1024 * 1024 ? 16 : 12);
      expect((await fs.list("/")).map((e) => e.name).sort()).toEqual(["X.BIN", "dir"]);
      expect(firstDiff(await fs.readFile("/dir/Some File.bin"), pattern(70000, 5))).toBe(-1);
      expect(firstDiff(await fs.readFile("/x.bin"), pattern(70000, 5))).toBe(-1);
      await fs.writeFile("/dir/new.txt", new TextEncoder().encode("added"));
      await disk.close();
      expect(run("fsck.fat", ["-n", f]).status).toBe(0);
      expect(run("mcopy", ["-i", f, "::/dir/new.txt", "-"]).bytes.toString()).toBe("added");
      expect(readFileSync(f).length).toBe(size);
    }
  });
});

describe("hostile FAT", () => {
  async function sample(): Promise<MemoryStore> {
    const s = new MemoryStore("f.img");
    const d = await RawImage.create(s, { size: 1474560 });
    const fs = await FatFs.format(d, { floppy: "1.44M" });
    await fs.writeFile("/A.BIN", pattern(3000, 1));
    await fs.mkdir("/D");
    return s;
  }

  it("loops, out-of-range chains and lying sizes are typed errors", async () => {
    const s = await sample();
    const b = s.bytes();
    // FAT12 entry 2 (the file's first cluster) points to itself: a loop
    b[512 + 3] = 0x02;
    b[512 + 4] = (b[512 + 4]! & 0xf0) | 0x00;
    const fs = await FatFs.open(await RawImage.open(new MemoryStore("x", false, b)));
    await expect(fs.readFile("/A.BIN")).rejects.toMatchObject({
      code: DiskErrorCode.BAD_ENTRY,
      context: { format: "fat" },
    });
    const c = s.bytes();
    c[512 + 3] = 0x00;
    c[512 + 4] = (c[512 + 4]! & 0xf0) | 0x0f; // -> cluster 0xf00: beyond the data area
    const fs2 = await FatFs.open(await RawImage.open(new MemoryStore("y", false, c)));
    await expect(fs2.readFile("/A.BIN")).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS });
  });

  it("property: mutated boot sector, FAT and root directory give a DiskError or work", async () => {
    const base = (await sample()).bytes();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(0, 512, 19 * 512), fc.nat(95), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        async (muts) => {
          const b = base.slice();
          for (const [a, o, v] of muts) b[a + o] = v;
          try {
            const fs = await FatFs.open(await RawImage.open(new MemoryStore("p", false, b)));
            for (const e of await fs.list("/")) if (!e.directory) await fs.readFile(`/${e.name}`);
            await fs.writeFile("/NEW.TXT", new Uint8Array(700).fill(1));
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
