// ringzero-img against qemu-img: same verbs, same outputs where qemu-img's are stable, same exit codes.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSize, sizeToStr } from "../sizes.js";
import { rz } from "../testing-internal/cli.js";
import { firstDiff, HAVE_QEMU, pattern, qemuCheck, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";

describe("sizes", () => {
  it("parses qemu-style sizes", () => {
    expect(parseSize("10G")).toBe(10 * 2 ** 30);
    expect(parseSize("512k")).toBe(512 * 1024);
    expect(parseSize("1.5M")).toBe(1.5 * 2 ** 20);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("10Q")).toBeNull();
    expect(parseSize("9E")).toBeNull(); // beyond 2^53
    expect(parseSize("0.3")).toBeNull();
    // qemu_strtosz's suffixes are case-insensitive; B is bytes; KiB/GB spellings as `ringzero --memory` takes them
    expect(parseSize("1.5g")).toBe(1.5 * 2 ** 30);
    expect(parseSize("2t")).toBe(2 * 2 ** 40);
    expect(parseSize("100B")).toBe(100);
    expect(parseSize("256MiB")).toBe(256 * 2 ** 20);
    expect(parseSize("1GB")).toBe(2 ** 30);
    expect(parseSize("1.5")).toBeNull();
    expect(parseSize("-1M")).toBeNull();
    expect(parseSize("1MiBs")).toBeNull();
  });
  it("prints sizes like qemu's size_to_str", () => {
    expect(sizeToStr(0)).toBe("0 B");
    expect(sizeToStr(1073741824)).toBe("1 GiB");
    expect(sizeToStr(200704)).toBe("196 KiB");
    expect(sizeToStr(5377097728)).toBe("5.01 GiB");
    expect(sizeToStr(1000)).toBe("0.977 KiB");
  });
});

describe.skipIf(!HAVE_QEMU)("ringzero-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-cli-");
  });
  afterAll(() => t.cleanup());

  const bin = new URL("../../dist/cli/bin.cjs", import.meta.url).pathname;
  it.skipIf(!existsSync(bin))(
    "the real process: a reader that goes away (| head -1) ends nothing with EPIPE",
    async () => {
      const f = t.path("epipe.qcow2");
      expect((await rz("create", "-f", "qcow2", f, "64M")).code).toBe(0);
      for (const [cmd, reader] of [
        ["map", "head -1"],
        ["info", "true"],
        ["--help", "head -1"],
      ]) {
        const args = cmd === "--help" ? cmd : `${cmd} "${f}"`;
        const r = spawnSync("sh", ["-c", `"${process.execPath}" "${bin}" ${args} | ${reader}; echo "status $?"`], {
          encoding: "utf8",
        });
        expect(r.stderr, `${cmd} | ${reader}`).toBe("");
        expect(r.stdout, `${cmd} | ${reader}`).toMatch(/status 0\n$/);
      }
    },
  );

  it.skipIf(!existsSync(bin))(
    "the real process: the build's code cache is used, and a corrupt, foreign or missing one only costs time",
    () => {
      // The built bin beside a copy of its bundle, so the cache can be spoiled without touching dist.
      const dist = new URL("../../dist/cli/", import.meta.url).pathname;
      const dir = t.path("cli-copy");
      mkdirSync(dir);
      for (const f of ["bin.cjs", "ringzero-img.cjs", "compress-worker.js"]) copyFileSync(dist + f, `${dir}/${f}`);
      const cache = readFileSync(`${dist}ringzero-img.cjs.cache`);
      const src = t.path("cc.qcow2");
      qemuImg(["create", "-f", "qcow2", src, "16M"]);
      qemuIo(src, ["write -P 0x5a 1M 2M"]);
      const convert = (name: string) => {
        const out = t.path(`cc-${name}.vhdx`);
        const r = spawnSync(process.execPath, [`${dir}/bin.cjs`, "convert", "-O", "vhdx", src, out], {
          encoding: "utf8",
          env: { ...process.env, RINGZERO_IMG_REPORT_CODE_CACHE: "1" },
        });
        expect(r.status, `${name}: ${r.stderr}`).toBe(0);
        expect(qemuImg(["compare", "-F", "vhdx", src, out]).status, name).toBe(0);
        return r.stderr;
      };
      writeFileSync(`${dir}/ringzero-img.cjs.cache`, cache);
      expect(convert("built")).toBe("ringzero-img: code cache accepted\n");
      // One byte flipped in the middle of V8's data: node 20 crashed on it (SIGSEGV) until the
      // checksum was verified (v8-flags.ts).
      const flipped = Buffer.from(cache);
      flipped[flipped.length >> 1]! ^= 0xff;
      writeFileSync(`${dir}/ringzero-img.cjs.cache`, flipped);
      expect(convert("flipped")).toBe("ringzero-img: code cache rejected\n");
      writeFileSync(`${dir}/ringzero-img.cjs.cache`, cache.subarray(0, cache.length >> 1));
      expect(convert("truncated")).toBe("ringzero-img: code cache rejected\n");
      const header = Buffer.from(cache);
      for (let i = 0; i < 16; i++) header[i]! ^= 0x5a;
      writeFileSync(`${dir}/ringzero-img.cjs.cache`, header);
      expect(convert("other V8")).toBe("ringzero-img: code cache rejected\n");
      // Another bundle's cache (the source text differs by a comment).
      writeFileSync(`${dir}/ringzero-img.cjs`, `${readFileSync(`${dist}ringzero-img.cjs`, "utf8")}\n// changed\n`);
      writeFileSync(`${dir}/ringzero-img.cjs.cache`, cache);
      expect(convert("stale")).toBe("ringzero-img: code cache rejected\n");
      rmSync(`${dir}/ringzero-img.cjs.cache`);
      expect(convert("missing")).toBe("ringzero-img: code cache missing\n");
    },
  );

  it("create prints qemu-img's Formatting line and makes an image qemu-img accepts", async () => {
    const f = t.path("a.qcow2");
    const r = await rz("create", "-f", "qcow2", f, "10G");
    expect(r.code).toBe(0);
    const q = qemuImg(["create", "-f", "qcow2", t.path("q.qcow2"), "10G"]).stdout;
    expect(r.out).toBe(q.replace(t.path("q.qcow2"), f));
    expect(qemuCheck(f).status).toBe(0);
    const v2 = await rz("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", t.path("v2.qcow2"), "1G");
    expect(v2.code).toBe(0);
    expect(JSON.parse(qemuImg(["info", "--output", "json", t.path("v2.qcow2")]).stdout)).toMatchObject({
      "cluster-size": 4096,
      "format-specific": { data: { compat: "0.10" } },
    });
  });

  it("info --output json has qemu-img's fields and values", async () => {
    const base = t.path("base.raw");
    writeFileSync(base, pattern(1 << 20, 1));
    const f = t.path("ov.qcow2");
    qemuImg(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", f]);
    qemuIo(f, ["write -P 0xab 0 64k"]);
    const ours = JSON.parse((await rz("info", "--output", "json", f)).out);
    const theirs = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);
    expect(ours).toEqual(theirs);
    const human = (await rz("info", f)).out;
    expect(human).toContain("virtual size: 1 MiB (1048576 bytes)");
    expect(human).toContain("backing file format: raw");
  });

  it("map (human and json) matches qemu-img map over a backing chain", async () => {
    const base = t.path("mbase.qcow2");
    qemuImg(["create", "-f", "qcow2", base, "4M"]);
    qemuIo(base, ["write -P 1 0 128k", "write -P 2 1M 64k"]);
    const top = t.path("mtop.qcow2");
    qemuImg(["create", "-f", "qcow2", "-b", base, "-F", "qcow2", top]);
    qemuIo(top, ["write -P 3 64k 128k", "write -z 3M 64k"]);
    expect((await rz("map", "--output", "json", top)).out).toBe(qemuImg(["map", "--output", "json", top]).stdout);
    expect((await rz("map", top)).out).toBe(qemuImg(["map", top]).stdout);
  });

  it("convert: raw -> qcow2 (sparse), qcow2 -c, and back, byte-identical", async () => {
    const src = t.path("src.raw");
    const data = new Uint8Array(6 * 1024 * 1024);
    data.set(pattern(300000, 2), 100000);
    for (let i = 3 * 1024 * 1024; i < 5 * 1024 * 1024; i++) data[i] = i % 17 === 0 ? 9 : 0x20;
    writeFileSync(src, data);
    expect((await rz("convert", "-f", "raw", "-O", "qcow2", src, t.path("c.qcow2"))).code).toBe(0);
    expect(qemuImg(["compare", src, t.path("c.qcow2")]).stdout).toContain("Images are identical.");
    expect(qemuCheck(t.path("c.qcow2")).status).toBe(0);
    // sparse: about 2.3 MiB of data, not 6
    const info = JSON.parse(qemuImg(["info", "--output", "json", t.path("c.qcow2")]).stdout);
    expect(info["actual-size"]).toBeLessThan(3 * 1024 * 1024);
    expect((await rz("convert", "-c", "-O", "qcow2", src, t.path("cc.qcow2"))).code).toBe(0);
    const chk = qemuCheck(t.path("cc.qcow2"));
    expect(chk.status).toBe(0);
    expect(chk.json["compressed-clusters"]).toBeGreaterThan(0);
    expect((await rz("convert", "-O", "raw", t.path("cc.qcow2"), t.path("back.raw"))).code).toBe(0);
    expect(firstDiff(new Uint8Array(readFileSync(t.path("back.raw"))), data)).toBe(-1);
  });

  it("convert from qcow2: holes inside a read window come out as zeros, not as a reused buffer's old bytes", async () => {
    // 4 MiB windows read into two buffers in turn: the window at 8 MiB reuses the buffer that held
    // 0..4 MiB (all data), and only its first and last 64 KiB are data (the rest is unallocated).
    const MiB = 1024 * 1024;
    const data = new Uint8Array(16 * MiB);
    data.set(pattern(8 * MiB, 5));
    for (const at of [8 * MiB, 12 * MiB - 65536, 12 * MiB + 4096, 16 * MiB - 8192])
      data.set(pattern(65536, at).subarray(0, Math.min(65536, 16 * MiB - at)), at);
    const src = t.path("holes.raw");
    writeFileSync(src, data);
    qemuImg(["convert", "-f", "raw", "-O", "qcow2", src, t.path("holes.qcow2")]);
    for (const [fmt, extra] of [
      ["raw", []],
      ["vmdk", []],
      ["qcow2", ["-c"]],
    ] as const) {
      const out = t.path(`holes-out.${fmt}`);
      expect((await rz("convert", "-f", "qcow2", "-O", fmt, ...extra, t.path("holes.qcow2"), out)).code).toBe(0);
      expect([fmt, qemuImg(["compare", "-f", "raw", "-F", fmt, src, out]).stdout]).toEqual([
        fmt,
        "Images are identical.\n",
      ]);
    }
  });

  it("convert from every format with an allocation map: a window's data extents, read at once, land where they belong", async () => {
    // convert reads the data extents of a 4 MiB window concurrently (one readInto each, cold table
    // caches): many short extents per window, extents across L2 table (qcow2 4 KiB clusters: every
    // 2 MiB), block and window edges, compressed clusters, and a short last cluster and sector.
    const KiB = 1024;
    const MiB = 1024 * KiB;
    const size = 9 * MiB + 1536;
    const data = new Uint8Array(size);
    let x = 0x2545f491;
    const next = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    const put = (at: number, len: number) => {
      const end = Math.min(size, at + len);
      data.set(pattern(end - at, at + 1), at);
    };
    for (let i = 0; i < 300; i++) put(next() % size, 512 * (1 + (next() % 40)));
    for (let b = 1; b <= 9; b++) put(b * MiB - 4 * KiB, 8 * KiB); // across every MiB (blocks, L2 tables, windows)
    put(size - 512, 512);
    for (let i = 0; i < size; i += 4096) if (data[i] === 0 && data[i + 1] !== 0) data[i] = 1;
    const raw = t.path("many.raw");
    writeFileSync(raw, data);
    for (const [fmt, opts] of [
      ["qcow2", ["-o", "cluster_size=4096"]],
      ["qcow2", ["-c", "-o", "cluster_size=65536"]],
      ["vmdk", []],
      ["vdi", []],
      ["vhdx", ["-o", "block_size=1M"]],
      ["vpc", ["-o", "force_size=on"]],
      ["parallels", []],
    ] as const) {
      const src = t.path(`many-${fmt}${opts.join("")}.${fmt}`);
      qemuImg(["convert", "-f", "raw", "-O", fmt, ...opts, raw, src]);
      const out = t.path(`many-${fmt}-out.raw`);
      const r = await rz("convert", "-f", fmt, "-O", "raw", src, out);
      expect([fmt, opts, r.code, r.err]).toEqual([fmt, opts, 0, ""]);
      const back = new Uint8Array(readFileSync(out));
      expect([fmt, opts, back.length, firstDiff(back.subarray(0, size), data)]).toEqual([fmt, opts, size, -1]);
    }
  });

  it("convert from raw: zeros at window, cluster and granule edges, no holes at all, an end mid-cluster; same allocation as qemu-img's", async () => {
    // convert reads a raw source in 4 MiB windows into page-aligned buffers and scans 4 KiB granules
    // (a 64 KiB span at a time first): zeros must become holes exactly where qemu-img makes them.
    const MiB = 1024 * 1024;
    const size = 13 * MiB + 1536; // the last cluster and granule are short
    const full = pattern(size, 21);
    for (let i = 0; i < size; i++) if (full[i] === 0) full[i] = 1; // no zero byte anywhere
    const edges = full.slice();
    const zero = (a: number, b: number) => edges.fill(0, a, b);
    zero(4 * MiB - 64 * 1024, 4 * MiB + 64 * 1024); // a hole across the first window edge
    zero(8 * MiB, 8 * MiB + 4096); // one granule, first of a window
    zero(8 * MiB - 4096, 8 * MiB); // and the last of the one before
    zero(2 * MiB + 100, 2 * MiB + 64 * 1024 + 4000); // not granule aligned: partial granules stay data
    zero(5 * MiB, 6 * MiB); // whole clusters, a whole VDI/VHDX block
    zero(6 * MiB + 64 * 1024 - 4096, 6 * MiB + 2 * 64 * 1024); // a granule before a zero cluster
    edges[10 * MiB - 1] = 7; // one byte at the end of a 64 KiB span in a zero MiB
    zero(10 * MiB - MiB, 10 * MiB - 1);
    edges[10 * MiB] = 0;
    zero(12 * MiB, size - 512); // zeros up to the last sector, which is data
    for (const [name, data] of [
      ["full", full],
      ["edges", edges],
    ] as const) {
      const src = t.path(`${name}.raw`);
      writeFileSync(src, data);
      for (const fmt of ["qcow2", "vhdx", "vdi", "vmdk"]) {
        const out = t.path(`${name}-rz.${fmt}`);
        const ref = t.path(`${name}-qemu.${fmt}`);
        const r = await rz("convert", "-f", "raw", "-O", fmt, src, out);
        expect([name, fmt, r.code, r.err]).toEqual([name, fmt, 0, ""]);
        qemuImg(["convert", "-f", "raw", "-O", fmt, src, ref]);
        const cmp = qemuImg(["compare", "-f", "raw", "-F", fmt, src, out], { allowFail: true });
        expect([name, fmt, cmp.stdout]).toEqual([name, fmt, "Images are identical.\n"]);
        // the same ranges allocated as qemu-img's own output (host offsets aside)
        const map = (f: string) =>
          (JSON.parse(qemuImg(["map", "--output", "json", "-f", fmt, f]).stdout) as Array<Record<string, unknown>>)
            .filter((e) => e.data)
            .map((e) => [e.start, e.length]);
        expect([name, fmt, map(out)]).toEqual([name, fmt, map(ref)]);
      }
    }
  });

  it("a failed convert removes the files it created (raw, qcow2, split VMDK outputs)", async () => {
    // a source whose last data cluster lies past the end of the file: open succeeds, the copy fails half-way
    const src = t.path("broken.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", src, "5G"]);
    qemuIo(src, ["write -P 0x61 0 64k", "write -P 0x62 3G 4k"]);
    const size = readFileSync(src).length;
    writeFileSync(src, readFileSync(src).subarray(0, size - 4096));
    const before = new Set(readdirSync(t.dir));
    for (const [fmt, opt] of [
      ["raw", []],
      ["qcow2", []],
      ["vmdk", ["-o", "subformat=twoGbMaxExtentSparse"]],
    ] as const) {
      const out = t.path(`failed-${fmt}.img`);
      const r = await rz("convert", "-O", fmt, ...opt, src, out);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^ringzero-img: .*OUT_OF_BOUNDS.*\n$/);
      expect(r.err.split("\n")).toHaveLength(2); // one line
      expect(existsSync(out)).toBe(false);
    }
    expect(readdirSync(t.dir).filter((n) => !before.has(n))).toEqual([]);
  });

  it("create and convert -O vmdk -o subformat=twoGbMaxExtentSparse|twoGbMaxExtentFlat: 5 GiB, data across the extents", async () => {
    const GiB = 2 ** 30;
    const src = t.path("split-src.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", src, "5G"]);
    qemuIo(src, [
      `write -P 0x61 ${2 * GiB - 68 * 1024} 8k`,
      `write -P 0x62 ${2 * GiB - 2048} 4k`,
      `write -P 0x63 ${4 * GiB - 1000} 3000`,
      `write -P 0x64 ${5 * GiB - 4096} 4k`,
    ]);
    for (const sub of ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]) {
      const c = t.path(`c-${sub}.vmdk`);
      const q = t.path(`q-${sub}.vmdk`);
      const r = await rz("create", "-f", "vmdk", "-o", `subformat=${sub}`, c, "5G");
      expect([r.code, r.err]).toEqual([0, ""]);
      expect(r.out).toBe(qemuImg(["create", "-f", "vmdk", "-o", `subformat=${sub}`, q, "5G"]).stdout.replace(q, c));
      expect(qemuImg(["check", c]).stdout).toContain("No errors were found on the image.");
      const out = t.path(`conv-${sub}.vmdk`);
      const cv = await rz("convert", "-O", "vmdk", "-o", `subformat=${sub}`, src, out);
      expect([cv.code, cv.err]).toEqual([0, ""]);
      expect(qemuImg(["compare", "-f", "qcow2", "-F", "vmdk", src, out]).stdout).toBe("Images are identical.\n");
      expect(qemuImg(["check", out]).stdout).toContain("No errors were found on the image.");
      const info = JSON.parse((await rz("info", "--output", "json", out)).out);
      expect(info["format-specific"].data["create-type"]).toBe(sub);
      expect(info["format-specific"].data.extents).toHaveLength(3);
    }
  });

  it("compare: identical, mismatch offset, size mismatch in strict mode, exit codes", async () => {
    const a = t.path("cmp-a.raw");
    writeFileSync(a, pattern(1 << 20, 3));
    await rz("convert", "-O", "qcow2", a, t.path("cmp-b.qcow2"));
    expect(await rz("compare", a, t.path("cmp-b.qcow2"))).toMatchObject({ code: 0, out: "Images are identical.\n" });
    qemuIo(t.path("cmp-b.qcow2"), ["write -P 0 70000 1"]);
    const theirs = qemuImg(["compare", a, t.path("cmp-b.qcow2")], { allowFail: true });
    const ours = await rz("compare", a, t.path("cmp-b.qcow2"));
    expect(ours.code).toBe(theirs.status);
    expect(ours.out).toBe(theirs.stdout);
    await rz("create", "-f", "qcow2", t.path("cmp-c.qcow2"), "2M");
    await rz("create", "-f", "raw", t.path("cmp-d.raw"), "1M");
    expect((await rz("compare", t.path("cmp-c.qcow2"), t.path("cmp-d.raw"))).code).toBe(0);
    expect((await rz("compare", "-s", t.path("cmp-c.qcow2"), t.path("cmp-d.raw"))).code).toBe(1);
    expect((await rz("compare", a, t.path("missing"))).code).toBe(2);
  });

  it("check: exit 0 clean, 3 for leaks, 2 for corruption, 63 for raw; -r all repairs leaks", async () => {
    const f = t.path("chk.qcow2");
    await rz("create", "-f", "qcow2", f, "16M");
    expect((await rz("check", f)).code).toBe(0);
    // leak a cluster: raise the refcount of a cluster nothing references
    const b = Buffer.alloc(12 * 65536);
    readFileSync(f).copy(b);
    b.writeUInt16BE(1, 2 * 65536 + 2 * 10); // refcount of cluster 10, inside the (grown) file
    writeFileSync(f, b);
    expect((await rz("check", f)).code).toBe(3);
    expect(qemuCheck(f).status).toBe(3);
    const rep = await rz("check", "-r", "all", f);
    expect(rep.code).toBe(0);
    expect(qemuCheck(f).status).toBe(0);
    // corruption: a referenced cluster with refcount 0 (the L1 table's)
    const c = readFileSync(f);
    c.writeUInt16BE(0, 2 * 65536 + 2 * 3);
    writeFileSync(f, c);
    expect((await rz("check", f)).code).toBe(2);
    expect(qemuCheck(f).status).toBe(2);
    const raw = t.path("chk.raw");
    writeFileSync(raw, new Uint8Array(4096));
    expect((await rz("check", raw)).code).toBe(63);
  });

  it("resize grows qcow2 and raw; shrinking needs --shrink", async () => {
    const f = t.path("rs.qcow2");
    await rz("create", "-f", "qcow2", "-o", "cluster_size=512", f, "1M");
    expect((await rz("resize", f, "+5G")).out).toBe("Image resized.\n");
    expect(JSON.parse(qemuImg(["info", "--output", "json", f]).stdout)["virtual-size"]).toBe(5 * 2 ** 30 + 2 ** 20);
    expect(qemuCheck(f).status).toBe(0);
    expect((await rz("resize", f, "1M")).code).toBe(1);
    const r = t.path("rs.raw");
    await rz("create", "-f", "raw", r, "1M");
    await rz("resize", r, "3M");
    expect(readFileSync(r).length).toBe(3 * 2 ** 20);
    expect((await rz("resize", "--shrink", "-f", "raw", r, "1M")).code).toBe(0);
    expect(readFileSync(r).length).toBe(2 ** 20);
  });

  it("commit writes the overlay into its backing file and empties it", async () => {
    const base = t.path("cm-base.qcow2");
    qemuImg(["create", "-f", "qcow2", base, "4M"]);
    qemuIo(base, ["write -P 1 0 4M"]);
    const top = t.path("cm-top.qcow2");
    await rz("create", "-f", "qcow2", "-b", base, "-F", "qcow2", top);
    qemuIo(top, ["write -P 7 100k 300k", "write -z 2M 64k"]);
    const before = t.path("cm-before.raw");
    qemuImg(["convert", "-O", "raw", top, before]);
    expect((await rz("commit", top)).out).toBe("Image committed.\n");
    expect(qemuCheck(base).status).toBe(0);
    expect(qemuCheck(top).status).toBe(0);
    expect(qemuImg(["compare", before, base]).stdout).toContain("identical");
    expect(qemuImg(["compare", before, top]).stdout).toContain("identical");
    expect(
      JSON.parse(qemuImg(["map", "--output", "json", top]).stdout).every((e: { depth: number }) => e.depth === 1),
    ).toBe(true);
  });

  it("rebase (safe) keeps the visible content; -u only rewrites the header", async () => {
    const old = t.path("rb-old.raw");
    writeFileSync(old, pattern(2 << 20, 4));
    const neu = t.path("rb-new.raw");
    const nd = pattern(2 << 20, 4);
    nd.fill(0, 500000, 900000);
    writeFileSync(neu, nd);
    const top = t.path("rb-top.qcow2");
    qemuImg(["create", "-f", "qcow2", "-b", "rb-old.raw", "-F", "raw", top]);
    qemuIo(top, ["write -P 5 0 64k"]);
    const before = t.path("rb-before.raw");
    qemuImg(["convert", "-O", "raw", top, before]);
    expect((await rz("rebase", "-b", "rb-new.raw", "-F", "raw", top)).code).toBe(0);
    expect(qemuCheck(top).status).toBe(0);
    const info = JSON.parse(qemuImg(["info", "--output", "json", top]).stdout);
    expect(info["backing-filename"]).toBe("rb-new.raw");
    expect(qemuImg(["compare", before, top]).stdout).toContain("identical");
    expect((await rz("rebase", "-u", "-b", "rb-old.raw", "-F", "raw", top)).code).toBe(0);
    expect(JSON.parse(qemuImg(["info", "--output", "json", top]).stdout)["backing-filename"]).toBe("rb-old.raw");
  });

  it("snapshot -l lists qemu-img's internal snapshots as qemu-img does", async () => {
    const f = t.path("snap.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "1M"]);
    qemuIo(f, ["write -P 1 0 64k"]);
    qemuImg(["snapshot", "-c", "first", f]);
    qemuImg(["snapshot", "-c", "second-one", f]);
    const ours = await rz("snapshot", "-l", f);
    expect(ours.out).toBe(qemuImg(["snapshot", "-l", f]).stdout);
    // and the image with snapshots still reads and checks, read-only
    expect((await rz("check", f)).code).toBe(0);
    const info = JSON.parse((await rz("info", "--output", "json", f)).out);
    expect(info.snapshots.map((s: { name: string }) => s.name)).toEqual(["first", "second-one"]);
  });

  it("snapshot -c creates snapshots qemu-img lists, checks and applies", async () => {
    const f = t.path("snapc.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "4M"]);
    qemuIo(f, ["write -P 0x11 0 1M", "write -c -P 0x22 2M 64k"]);
    const before = t.path("snapc-before.raw");
    qemuImg(["convert", "-O", "raw", f, before]);
    expect((await rz("snapshot", "-c", "first", f)).code).toBe(0);
    expect(qemuCheck(f, "qcow2", true).text).toContain("No errors were found on the image.");
    qemuIo(f, ["write -P 0x33 0 100k", "write -P 0x44 3M 64k"]);
    expect((await rz("snapshot", "-c", "second", f)).code).toBe(0);
    expect((await rz("snapshot", "-c", "second", f)).code).toBe(1); // duplicate name
    const list = qemuImg(["snapshot", "-l", f]).stdout;
    expect(list).toMatch(/1 +first/);
    expect(list).toMatch(/2 +second/);
    expect((await rz("snapshot", "-l", f)).out).toBe(list);
    expect(qemuCheck(f).status).toBe(0);
    qemuImg(["snapshot", "-a", "first", f]);
    const applied = t.path("snapc-applied.raw");
    qemuImg(["convert", "-O", "raw", f, applied]);
    expect(firstDiff(new Uint8Array(readFileSync(applied)), new Uint8Array(readFileSync(before)))).toBe(-1);
    expect(qemuCheck(f).status).toBe(0);
  });

  it("clear errors and exit code 1 for bad arguments and files", async () => {
    expect((await rz("create", "-f", "qed", t.path("x.qed"), "1G")).code).toBe(1);
    const bad = await rz("create", "-f", "qcow2", t.path("x.qcow2"), "10Q");
    expect(bad).toMatchObject({ code: 1 });
    expect(bad.err).toContain("Invalid image size specified: '10Q'");
    const nf = await rz("info", t.path("nope.qcow2"));
    expect(nf.code).toBe(1);
    expect(nf.err).toContain("NOT_FOUND");
    expect((await rz("frobnicate")).code).toBe(1);
    expect((await rz("info", "--bogus", "x")).code).toBe(1);
    const hostile = t.path("hostile.qcow2");
    const b = readFileSync(t.path("a.qcow2"));
    b.writeUInt32BE(40, 20); // cluster_bits 40
    writeFileSync(hostile, b);
    const h = await rz("info", hostile);
    expect(h.code).toBe(1);
    expect(h.err).toContain("INVALID_HEADER, qcow2 at offset 20");
  });
});

describe.skipIf(!HAVE_QEMU)("ringzero-img convert between every format", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-matrix-");
  });
  afterAll(() => t.cleanup());

  const formats = ["raw", "qcow2", "vdi", "vpc", "vhdx", "vmdk", "parallels"] as const;
  it("raw -> every format -> the next format -> raw, byte-identical by qemu-img compare", async () => {
    const src = t.path("src.raw");
    const data = pattern(2 * 1024 * 1024 + 4096, 11);
    data.fill(0, 600 * 1024, 1500 * 1024);
    writeFileSync(src, data);
    const opt = (f: string) => (f === "vpc" ? ["-o", "force_size=on"] : []);
    for (const [i, from] of formats.entries()) {
      const to = formats[(i + 1) % formats.length]!;
      const a = t.path(`a.${from}`);
      expect((await rz("convert", "-O", from, ...opt(from), src, a)).code).toBe(0);
      const b = t.path(`b-${from}.${to}`);
      const r = await rz("convert", "-f", from, "-O", to, ...opt(to), a, b);
      expect([from, to, r.code, r.err]).toEqual([from, to, 0, ""]);
      for (const [img, fmt] of [
        [a, from],
        [b, to],
      ] as const) {
        const cmp = qemuImg(["compare", "-f", "raw", "-F", fmt, src, img], { allowFail: true });
        expect([fmt, cmp.stdout]).toEqual([fmt, "Images are identical.\n"]);
      }
      const back = t.path(`back-${to}.raw`);
      expect((await rz("convert", "-f", to, "-O", "raw", b, back)).code).toBe(0);
      expect((await rz("compare", src, back)).out).toBe("Images are identical.\n");
    }
  });
});

describe("command-line conventions (qemu-img's)", () => {
  const version = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;
  it("--version and -V print the version on stdout", async () => {
    for (const flag of ["--version", "-V"]) {
      expect(await rz(flag)).toEqual({ code: 0, out: `ringzero-img version ${version}\n`, err: "" });
    }
  });
  it("every command answers -h/--help on stdout with exit 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const top = await rz(flag);
      expect(top.code).toBe(0);
      expect(top.out).toMatch(/^usage: ringzero-img COMMAND/);
    }
    for (const verb of [
      "create",
      "info",
      "check",
      "convert",
      "map",
      "compare",
      "resize",
      "commit",
      "rebase",
      "snapshot",
    ]) {
      for (const flag of ["--help", "-h"]) {
        const r = await rz(verb, flag);
        expect(r.err).toBe("");
        expect(r.code).toBe(0);
        expect(r.out).toMatch(new RegExp(`^usage: ringzero-img ${verb} `));
        expect(r.out).toContain("formats: raw, qcow2");
      }
    }
    expect((await rz("convert", "--help")).out).toContain("-o options");
  });
  it("an unknown option: one line and a pointer to --help on stderr, exit 1, for every command", async () => {
    for (const verb of ["info", "convert", "compare", "check"]) {
      const r = await rz(verb, "--frobnicate", "x");
      expect(r).toEqual({
        code: 1,
        out: "",
        err: `ringzero-img: unrecognized option '--frobnicate'\nTry 'ringzero-img ${verb} --help' for more information\n`,
      });
    }
    expect((await rz("info", "-Z", "x")).err).toMatch(/^ringzero-img: unrecognized option '-Z'\n/);
  });
  it("usage errors and bad values exit 1 everywhere (compare's I/O errors stay 2)", async () => {
    expect(await rz()).toEqual({
      code: 1,
      out: "",
      err: "ringzero-img: Not enough arguments\nTry 'ringzero-img --help' for more information\n",
    });
    expect((await rz("frob")).err).toBe(
      "ringzero-img: Command not found: frob\nTry 'ringzero-img --help' for more information\n",
    );
    expect((await rz("frob")).code).toBe(1);
    const missing = await rz("convert", "-O");
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^ringzero-img: option '-O' requires an argument\nTry 'ringzero-img convert --help'/);
    expect(await rz("compare", "a")).toMatchObject({
      code: 1,
      err: expect.stringMatching(/Expecting more arguments\nTry 'ringzero-img compare --help'/),
    });
    expect((await rz("compare", "-f", "floppy", "a", "b")).code).toBe(1);
    expect((await rz("info", "a", "b")).code).toBe(1);
    const bad = await rz("create", "-f", "raw", "x.raw", "lots");
    expect(bad).toMatchObject({ code: 1, err: "ringzero-img: Invalid image size specified: 'lots'\n" });
  });
});
