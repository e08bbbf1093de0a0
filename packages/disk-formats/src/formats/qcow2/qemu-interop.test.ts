// qcow2 against the real qemu-img / qemu-io: both directions, sparse, > 4 GiB,
// cluster-crossing data, compressed clusters, backing chains, map output.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allocationMap } from "../../backend.js";
import { NodeFileHost } from "../../io/node-file.js";
import { createImage, openImage } from "../../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuCheck, qemuImg, qemuIo, tempDir } from "../../testing-internal/qemu.js";
import type { Qcow2Image } from "./image.js";

const host = new NodeFileHost();
const GiB = 1024 ** 3;

describe.skipIf(!HAVE_QEMU)("qcow2 interop with qemu-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir();
  });
  afterAll(() => t.cleanup());

  it("reads what qemu-io wrote: patterns, zero clusters, cluster-crossing data, beyond 4 GiB", async () => {
    const f = t.path("q1.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "6G"]);
    qemuIo(f, [
      "write -P 0xab 0 64k",
      "write -P 0xcd 65024 1024", // crosses the first cluster boundary
      "write -P 0x11 5G 70000",
      "write -z 1M 128k",
      "write -P 0x22 4294967040 512", // crosses 4 GiB
    ]);
    const img = await openImage(host, f, { readOnly: true });
    expect(img.format).toBe("qcow2");
    expect(img.size()).toBe(6 * GiB);
    const a = await img.read(0, 66048);
    expect(a.subarray(0, 65024).every((b) => b === 0xab)).toBe(true);
    expect(a.subarray(65024, 66048).every((b) => b === 0xcd)).toBe(true);
    const b = await img.read(5 * GiB - 10, 70020);
    expect(b.subarray(0, 10).every((x) => x === 0)).toBe(true);
    expect(b.subarray(10, 70010).every((x) => x === 0x11)).toBe(true);
    expect(b.subarray(70010).every((x) => x === 0)).toBe(true);
    expect((await img.read(1024 * 1024, 128 * 1024)).every((x) => x === 0)).toBe(true);
    const c = await img.read(4294967040, 512);
    expect(c.every((x) => x === 0x22)).toBe(true);
    await img.close();
  });

  it("reads and writes host offsets above 2 and 4 GiB (preallocation=metadata, sparse)", async () => {
    const f = t.path("prealloc.qcow2");
    qemuImg(["create", "-f", "qcow2", "-o", "preallocation=metadata", f, "5G"]);
    qemuIo(f, ["write -P 0x5a 4700M 64k"]);
    const img = await openImage(host, f);
    const st = await img.blockStatus(4700 * 1024 * 1024, 65536);
    expect(st.hostOffset).toBeGreaterThan(4 * GiB);
    expect((await img.read(4700 * 1024 * 1024, 65536)).every((x) => x === 0x5a)).toBe(true);
    await img.write(3 * GiB, pattern(70000, 4));
    await img.close();
    expect(qemuCheck(f).status).toBe(0);
    qemuIo(f, ["read -P 0x5a 4700M 64k"]);
    const back = await openImage(host, f, { readOnly: true });
    expect(firstDiff(await back.read(3 * GiB, 70000), pattern(70000, 4))).toBe(-1);
    await back.close();
  });

  it("reads extended L2 images (subclusters) over a backing file", async () => {
    const base = t.path("xbase.raw");
    writeFileSync(base, pattern(2 * 1024 * 1024, 21));
    const f = t.path("xl2.qcow2");
    qemuImg(["create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", "-b", "xbase.raw", "-F", "raw", f]);
    qemuIo(f, ["write -P 0xab 4k 8k", "write -z 64k 4k", "write -P 0xcd 1M 200k"]);
    const out = t.path("xl2.raw");
    qemuImg(["convert", "-O", "raw", f, out]);
    const img = await openImage(host, f, { readOnly: true });
    expect(firstDiff(await img.read(0, img.size()), new Uint8Array(readFileSync(out)))).toBe(-1);
    const ours = (await allocationMap(img))
      .filter((e) => e.kind === "data" && e.depth === 0)
      .map((e) => [e.start, e.length]);
    const theirs = JSON.parse(qemuImg(["map", "--output", "json", f]).stdout)
      .filter((e: { data: boolean; depth: number }) => e.data && e.depth === 0)
      .map((e: { start: number; length: number }) => [e.start, e.length]);
    expect(ours).toEqual(theirs);
    await img.close();
  });

  it("writes images with internal snapshots copy-on-write: the snapshot keeps its data", async () => {
    const f = t.path("snapw.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "8M"]);
    qemuIo(f, ["write -P 0x11 0 3M", "write -c -P 0x33 4M 64k"]);
    const before = t.path("snapw-before.raw");
    qemuImg(["convert", "-O", "raw", f, before]);
    qemuImg(["snapshot", "-c", "s1", f]);
    const img = await openImage(host, f);
    await img.write(100, pattern(1000, 1)); // partial write into a shared cluster
    await img.write(2 * 1024 * 1024, pattern(200000, 2)); // whole shared clusters
    await img.write(6 * 1024 * 1024, pattern(5000, 3)); // fresh cluster
    await img.writeZeroes(65536 * 10, 65536); // zero a shared cluster
    await img.write(4 * 1024 * 1024 + 10, pattern(10, 4)); // into a shared compressed cluster
    const expected = new Uint8Array(readFileSync(before));
    expected.set(pattern(1000, 1), 100);
    expected.set(pattern(200000, 2), 2 * 1024 * 1024);
    expected.set(pattern(5000, 3), 6 * 1024 * 1024);
    expected.fill(0, 65536 * 10, 65536 * 11);
    expected.set(pattern(10, 4), 4 * 1024 * 1024 + 10);
    await img.close();
    const chk = qemuCheck(f, "qcow2", true);
    expect(chk.text).toContain("No errors were found on the image.");
    const now = t.path("snapw-now.raw");
    qemuImg(["convert", "-O", "raw", f, now]);
    expect(firstDiff(new Uint8Array(readFileSync(now)), expected)).toBe(-1);
    qemuImg(["snapshot", "-a", "s1", f]);
    const applied = t.path("snapw-applied.raw");
    qemuImg(["convert", "-O", "raw", f, applied]);
    expect(firstDiff(new Uint8Array(readFileSync(applied)), new Uint8Array(readFileSync(before)))).toBe(-1);
    expect(qemuCheck(f).status).toBe(0);
  });

  it("matches qemu-img map --output json", async () => {
    const f = t.path("map.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "1G"]);
    qemuIo(f, ["write -P 0xab 0 64k", "write -z 1M 64k", "write -P 1 3M 200k"]);
    const theirs = JSON.parse(qemuImg(["map", "--output", "json", f]).stdout);
    const img = await openImage(host, f, { readOnly: true });
    const ours = (await allocationMap(img)).map((e) => ({
      start: e.start,
      length: e.length,
      depth: e.depth,
      present: e.kind !== "unallocated",
      zero: e.kind !== "data",
      data: e.kind === "data",
      ...(e.hostOffset !== undefined ? { offset: e.hostOffset } : {}),
    }));
    await img.close();
    expect(ours).toEqual(theirs);
  });

  for (const [version, clusterBits] of [
    [3, 16],
    [2, 16],
    [3, 9],
    [3, 21],
  ] as const) {
    it(`writes a v${version} image with ${2 ** clusterBits}-byte clusters that qemu-img reads back identical and checks clean`, async () => {
      const f = t.path(`w${version}-${clusterBits}.qcow2`);
      const r = t.path(`w${version}-${clusterBits}.raw`);
      const size = 5 * GiB + 12345 * 512;
      const img = await createImage(host, f, { format: "qcow2", size, qcow2: { version, clusterBits } });
      const raw = await createImage(host, r, { format: "raw", size });
      const writes: Array<[number, number, number]> = [
        [0, 1000, 1],
        [65536 - 100, 300, 2],
        [3 * 1024 * 1024 + 7, 150000, 3],
        [4 * GiB - 4096, 8192, 4],
        [size - 777, 777, 5],
        [2 * 1024 * 1024, 4096, 6],
      ];
      for (const [off, len, seed] of writes) {
        const d = pattern(len, seed);
        await img.write(off, d);
        await raw.write(off, d);
      }
      // overwrite part of an allocated cluster, and zero a range crossing clusters
      await img.write(10, pattern(50, 9));
      await raw.write(10, pattern(50, 9));
      await img.writeZeroes(3 * 1024 * 1024, 70000);
      await raw.writeZeroes(3 * 1024 * 1024, 70000);
      expect(firstDiff(await img.read(0, 2000), await raw.read(0, 2000))).toBe(-1);
      await img.close();
      await raw.close();
      const chk = qemuCheck(f, "qcow2", true);
      expect(chk.text).toContain("No errors were found on the image.");
      expect(chk.status).toBe(0);
      expect(qemuImg(["compare", "-f", "qcow2", "-F", "raw", f, r], { allowFail: true }).stdout).toContain(
        "Images are identical.",
      );
      const info = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);
      expect(info["virtual-size"]).toBe(size);
      expect(info["cluster-size"]).toBe(2 ** clusterBits);
      expect(info["format-specific"].data.compat).toBe(version === 3 ? "1.1" : "0.10");
    });
  }

  it("grows refcount structures: many clusters with 512-byte clusters", async () => {
    const f = t.path("grow.qcow2");
    const img = (await createImage(host, f, {
      format: "qcow2",
      size: 64 * 1024 * 1024,
      qcow2: { clusterBits: 9, refcountOrder: 6 },
    })) as Qcow2Image;
    const d = pattern(3 * 1024 * 1024, 77); // 64-bit refcounts: one 512-byte table covers 2 MiB
    await img.write(0, d);
    expect(img.header.refcountTableClusters).toBeGreaterThan(1);
    await img.close();
    expect(qemuCheck(f).status).toBe(0);
    const out = t.path("grow.raw");
    qemuImg(["convert", "-O", "raw", f, out]);
    expect(firstDiff(new Uint8Array(readFileSync(out).subarray(0, d.length)), d)).toBe(-1);
  });

  it("reads compressed clusters written by qemu-img convert -c", async () => {
    const src = t.path("c.raw");
    const data = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251 < 40 ? i & 0xff : 0x55;
    data.fill(0, 1024 * 1024, 1024 * 1024 + 200000);
    writeFileSync(src, data);
    const f = t.path("c.qcow2");
    qemuImg(["convert", "-c", "-f", "raw", "-O", "qcow2", src, f]);
    const img = await openImage(host, f, { readOnly: true });
    expect(firstDiff(await img.read(0, data.length), data)).toBe(-1);
    const map = await allocationMap(img);
    expect(map.some((e) => e.compressed)).toBe(true);
    await img.close();
  });

  it("writes compressed clusters that qemu-img reads and checks clean", async () => {
    const f = t.path("wc.qcow2");
    const img = (await createImage(host, f, { format: "qcow2", size: 4 * 1024 * 1024 })) as Qcow2Image;
    const data = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i >> 9) % 3 === 0 ? i & 0xff : 0x41;
    data.set(pattern(65536, 3), 2 * 65536); // incompressible cluster: stored plain
    for (let off = 0; off < data.length; off += 65536) await img.writeCompressed(off, data.subarray(off, off + 65536));
    await img.write(100, pattern(10, 1)); // rewrite inside a compressed cluster
    data.set(pattern(10, 1), 100);
    await img.close();
    expect(qemuCheck(f).status).toBe(0);
    const out = t.path("wc.raw");
    qemuImg(["convert", "-O", "raw", f, out]);
    expect(firstDiff(new Uint8Array(readFileSync(out)), data)).toBe(-1);
    const info = qemuImg(["check", f]).stdout;
    expect(info).toMatch(/compressed clusters/);
  });

  it("follows backing chains written by qemu-img, and writes overlays qemu-img reads", async () => {
    const base = t.path("base.raw");
    const baseData = pattern(2 * 1024 * 1024, 5);
    writeFileSync(base, baseData);
    const mid = t.path("mid.qcow2");
    qemuImg(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid]);
    qemuIo(mid, ["write -P 0x77 65536 4096"]);
    const top = t.path("top.qcow2");
    const img = await createImage(host, top, { format: "qcow2", backingFile: "mid.qcow2", backingFormat: "qcow2" });
    expect(img.size()).toBe(baseData.length);
    await img.write(1000, pattern(200000, 8));
    const expected = baseData.slice();
    expected.fill(0x77, 65536, 65536 + 4096);
    expected.set(pattern(200000, 8), 1000);
    expect(firstDiff(await img.read(0, expected.length), expected)).toBe(-1);
    await img.close();
    expect(qemuCheck(top).status).toBe(0);
    const out = t.path("top.raw");
    qemuImg(["convert", "-O", "raw", top, out]);
    expect(firstDiff(new Uint8Array(readFileSync(out)), expected)).toBe(-1);
    const info = JSON.parse(qemuImg(["info", "--output", "json", top]).stdout);
    expect(info["backing-filename"]).toBe("mid.qcow2");
    expect(info["backing-filename-format"]).toBe("qcow2");
  });

  it("reads images with 1-bit and 64-bit refcounts and keeps them consistent when writing", async () => {
    for (const bits of [1, 2, 8, 64]) {
      const f = t.path(`rc${bits}.qcow2`);
      qemuImg(["create", "-f", "qcow2", "-o", `refcount_bits=${bits}`, f, "16M"]);
      qemuIo(f, ["write -P 0x42 0 100k"]);
      const img = await openImage(host, f);
      await img.write(5 * 1024 * 1024, pattern(300000, bits));
      expect((await img.read(0, 100 * 1024)).every((x) => x === 0x42)).toBe(true);
      await img.close();
      const chk = qemuCheck(f, "qcow2", true);
      expect(chk.text).toContain("No errors");
      expect(chk.status).toBe(0);
    }
  });
});
