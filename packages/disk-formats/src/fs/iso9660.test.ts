// ISO 9660 with Rock Ridge and Joliet against isoinfo (genisoimage) and xorriso: both ways.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskError, DiskErrorCode } from "../errors.js";
import { RawImage } from "../formats/raw.js";
import { MemoryStore } from "../io/memory.js";
import { firstDiff, pattern, tempDir } from "../testing-internal/qemu.js";
import { buildIso, IsoFs } from "./iso9660.js";

const HAVE_TOOLS = ["isoinfo", "xorriso"].every((c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0);
if (!HAVE_TOOLS && process.env.CI)
  throw new Error("isoinfo (genisoimage) and xorriso are required in CI (scripts/setup.sh)");

function run(cmd: string, args: string[]): { status: number; out: string; bytes: Buffer } {
  const r = spawnSync(cmd, args);
  return { status: r.status ?? -1, out: `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}`, bytes: r.stdout };
}

const FILES = [
  { path: "readme.txt", data: new TextEncoder().encode("hello iso\n") },
  { path: "docs/A long file name.md", data: pattern(5000, 1) },
  { path: "docs/sub/deep.bin", data: pattern(70000, 2) },
  { path: "docs/sub/another long name with spaces.bin", data: pattern(100, 3) },
  { path: "empty", data: new Uint8Array(0) },
  { path: "UPPER.TXT", data: new TextEncoder().encode("X") },
];

async function openIso(bytes: Uint8Array): Promise<IsoFs> {
  return IsoFs.open(await RawImage.open(new MemoryStore("i.iso", true, bytes)));
}

describe.skipIf(!HAVE_TOOLS)("ISO 9660 against isoinfo and xorriso", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-iso-");
  });
  afterAll(() => t.cleanup());

  it("builds images isoinfo and xorriso read with Rock Ridge and Joliet names, byte-identical files", async () => {
    const iso = t.path("built.iso");
    writeFileSync(iso, buildIso(FILES, { volumeId: "RZVOL" }));
    const d = run("isoinfo", ["-d", "-i", iso]).out;
    expect(d).toContain("Volume id: RZVOL");
    expect(d).toContain("Joliet with UCS level 3 found");
    expect(d).toContain("Rock Ridge signatures version 1 found");
    const found = run("xorriso", ["-indev", iso, "-find", "/", "-type", "f"]).out;
    for (const f of FILES) expect(found).toContain(`'/${f.path}'`);
    const joliet = run("isoinfo", ["-J", "-f", "-i", iso]).out;
    expect(joliet).toContain("/docs/sub/another long name with spaces.bin");
    for (const f of FILES) {
      const x = run("isoinfo", ["-R", "-x", `/${f.path}`, "-i", iso]);
      expect([f.path, firstDiff(new Uint8Array(x.bytes), f.data)]).toEqual([f.path, -1]);
    }
    const media = run("xorriso", ["-indev", iso, "-check_media", "--"]);
    expect(media.out).toMatch(/Media region : +0 , +\d+ , \+ good/);
  });

  for (const [label, flags, names] of [
    ["Rock Ridge", ["-R", "-J"], "rockridge"],
    ["Joliet only", ["--norock", "-J"], "joliet"],
    ["plain ISO 9660", ["--norock"], "iso"],
  ] as const) {
    it(`reads an image xorriso built (${label})`, async () => {
      const dir = t.path(`src-${names}`);
      for (const f of FILES) {
        mkdirSync(dirname(`${dir}/${f.path}`), { recursive: true });
        writeFileSync(`${dir}/${f.path}`, f.data);
      }
      const iso = t.path(`x-${names}.iso`);
      const r = run("xorriso", ["-as", "mkisofs", ...flags, "-o", iso, dir]);
      expect(r.status).toBe(0);
      const fs = await openIso(new Uint8Array(readFileSync(iso)));
      expect(fs.names).toBe(names);
      if (names === "iso") {
        // Plain ISO names are upper-case 8.3 (or level-1 mangled); contents still match.
        expect(firstDiff(await fs.readFile("/README.TXT"), FILES[0]!.data)).toBe(-1);
        return;
      }
      for (const f of FILES) expect([f.path, firstDiff(await fs.readFile(`/${f.path}`), f.data)]).toEqual([f.path, -1]);
      expect((await fs.list("/docs")).map((e) => e.name).sort()).toEqual(["A long file name.md", "sub"]);
    });
  }
});

describe("hostile ISO 9660", () => {
  it("reads back what it builds", async () => {
    const fs = await openIso(buildIso(FILES));
    expect(fs.names).toBe("rockridge");
    expect(firstDiff(await fs.readFile("/docs/sub/deep.bin"), FILES[2]!.data)).toBe(-1);
  });

  it("bad descriptors, extents beyond the image, broken records", async () => {
    const b = buildIso(FILES);
    const c = b.slice();
    c[16 * 2048 + 1] = 0x58;
    await expect(openIso(c)).rejects.toMatchObject({ code: DiskErrorCode.BAD_MAGIC, context: { format: "iso9660" } });
    await expect(openIso(b.slice(0, 17 * 2048))).rejects.toMatchObject({ code: DiskErrorCode.TRUNCATED });
    const d = b.slice();
    new DataView(d.buffer).setUint32(16 * 2048 + 156 + 2, 1 << 24, true); // root extent far away
    await expect(openIso(d)).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS });
    const fs = await openIso(b);
    const root = (await fs.list("/")).find((e) => e.name === "docs")!;
    const e = b.slice();
    e[root.extent * 2048 + 34 * 0 + 0] = 5; // "." record length below the minimum
    await expect((await openIso(e)).list("/docs")).rejects.toMatchObject({ code: DiskErrorCode.BAD_ENTRY });
  });

  it("property: mutated descriptors and directories give a DiskError or work", async () => {
    const base = buildIso(FILES);
    const fs = await openIso(base);
    const dirs = [16 * 2048, 17 * 2048, ...(await fs.list("/")).filter((x) => x.directory).map((x) => x.extent * 2048)];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...dirs), fc.nat(300), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        async (muts) => {
          const b = base.slice();
          for (const [a, o, v] of muts) b[a + o] = v;
          try {
            const f = await openIso(b);
            const walk = async (p: string, depth: number): Promise<void> => {
              if (depth > 4) return;
              for (const x of await f.list(p)) {
                const child = `${p === "/" ? "" : p}/${x.name}`;
                if (x.directory) await walk(child, depth + 1);
                else await f.readFile(child);
              }
            };
            await walk("/", 0);
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
