// WorkerCompressor: results inflate back, match the inline (pako) bytes, and
// convert's output does not depend on the number of threads.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../cli/main.js";
import { type Compressor, deflateRaw, inflateExact, inlineCompressor, zlibDeflate, zlibInflate } from "../compress.js";
import { DiskError } from "../errors.js";
import { HAVE_QEMU, qemuCheck, qemuImg, tempDir } from "../testing-internal/qemu.js";
import { WorkerCompressor } from "./worker-compressor.js";

/** xorshift32 bytes: random data, text-like runs and zeros, 64 KiB each. */
function clusters(n: number, seed = 7): Uint8Array[] {
  let x = seed;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const words = new TextEncoder().encode("the disk sector cluster qemu ringzero image table refcount ");
  return Array.from({ length: n }, (_, i) => {
    const c = new Uint8Array(65536);
    if (i % 3 === 0) for (let j = 0; j < c.length; j++) c[j] = next() & 0xff;
    else if (i % 3 === 1) for (let j = 0; j < c.length; j++) c[j] = words[(j + (next() % 3)) % words.length]!;
    return c; // i % 3 === 2: zeros
  });
}

/** Byte equality by memcmp (vitest's deep equality walks typed arrays element by element). */
const same = (a: Uint8Array | null, b: Uint8Array) => a !== null && Buffer.compare(a, b) === 0;

describe("WorkerCompressor", () => {
  let t: ReturnType<typeof tempDir>;
  let workerUrl: URL;
  beforeAll(async () => {
    t = tempDir("rz-compress-");
    const file = t.path("compress-worker.js");
    await build({
      entryPoints: [join(import.meta.dirname, "compress-worker.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: file,
      logLevel: "warning",
    });
    workerUrl = pathToFileURL(file);
  });
  afterAll(() => t.cleanup());

  it("compresses concurrently across threads: each result inflates back to its input", async () => {
    const c = new WorkerCompressor({ threads: 3, workerUrl });
    try {
      const input = clusters(30);
      const [raw, zl] = await Promise.all([
        Promise.all(input.map((d) => c.compress("qcow2", d))),
        Promise.all(input.map((d) => c.compress("zlib", d))),
      ]);
      input.forEach((d, i) => {
        expect(same(inflateExact(raw[i]!, d.length), d)).toBe(true);
        expect(same(zlibInflate(zl[i]!, d.length), d)).toBe(true);
      });
      // random data does not shrink, zeros do
      expect(raw[0]!.length).toBeGreaterThan(65000);
      expect(raw[2]!.length).toBeLessThan(1000);
    } finally {
      await c.close();
    }
  });

  it("gives the bytes of the inline (pako) compressor, with QEMU's qcow2 parameters (node:zlib here)", async () => {
    const c = new WorkerCompressor({ threads: 2, workerUrl });
    try {
      for (const d of clusters(9, 99)) {
        expect(same(await c.compress("qcow2", d), deflateRaw(d))).toBe(true);
        expect(same(await c.compress("zlib", d), zlibDeflate(d))).toBe(true);
      }
    } finally {
      await c.close();
    }
  });

  it("fails its requests (no hang) when a worker dies, and refuses requests after close()", async () => {
    const bad = t.path("dies.mjs");
    writeFileSync(bad, "process.exit(3);\n");
    const c = new WorkerCompressor({ threads: 1, workerUrl: pathToFileURL(bad) });
    await expect(c.compress("qcow2", new Uint8Array(65536))).rejects.toBeInstanceOf(DiskError);
    await c.close();
    await expect(c.compress("zlib", new Uint8Array(16))).rejects.toMatchObject({ code: "CLOSED" });
    expect(() => new WorkerCompressor({ threads: 0, workerUrl })).toThrow();
  });

  describe.skipIf(!HAVE_QEMU)("convert through it", () => {
    /** `convert` with `compressor`, output bytes. */
    async function convert(compressor: Compressor, fmt: string, opts: string[], out: string): Promise<Uint8Array> {
      const code = await runCli(["convert", "-f", "raw", "-O", fmt, ...opts, t.path("src.raw"), out], {
        stdout: () => {},
        stderr: (s) => process.stderr.write(s),
        isTTY: false,
        compressor,
      });
      expect(code).toBe(0);
      return readFileSync(out);
    }

    beforeAll(() => {
      // 5 MiB + 512 bytes: a short last cluster; data, text and holes
      const img = new Uint8Array(5 * 1024 * 1024 + 512);
      clusters(80, 3).forEach((c, i) => {
        if (i % 4 !== 3) img.set(c.subarray(0, Math.min(c.length, img.length - i * 65536)), i * 65536);
      });
      img.fill(0x5a, img.length - 300);
      writeFileSync(t.path("src.raw"), img);
    });

    it("convert -c -O qcow2: the same bytes with 1 and 3 worker threads and inline; qemu-img check clean, content identical", async () => {
      const one = new WorkerCompressor({ threads: 1, workerUrl });
      const three = new WorkerCompressor({ threads: 3, workerUrl });
      try {
        const a = await convert(one, "qcow2", ["-c"], t.path("a.qcow2"));
        const b = await convert(three, "qcow2", ["-c"], t.path("b.qcow2"));
        const c = await convert(inlineCompressor, "qcow2", ["-c"], t.path("c.qcow2"));
        expect(Buffer.compare(a, b)).toBe(0);
        expect(Buffer.compare(a, c)).toBe(0);
        expect(qemuCheck(t.path("b.qcow2")).status).toBe(0);
        expect(JSON.parse(qemuImg(["info", "--output", "json", t.path("b.qcow2")]).stdout)["actual-size"]).toBeLessThan(
          4 * 1024 * 1024,
        );
        expect(qemuImg(["compare", "-f", "raw", t.path("src.raw"), t.path("b.qcow2")]).stdout).toContain(
          "Images are identical",
        );
      } finally {
        await one.close();
        await three.close();
      }
    });

    it("convert -O vmdk streamOptimized: grains compressed by 3 threads, qemu-img check clean, content identical", async () => {
      const three = new WorkerCompressor({ threads: 3, workerUrl });
      try {
        const a = await convert(three, "vmdk", ["-o", "subformat=streamOptimized"], t.path("a.vmdk"));
        const c = await convert(inlineCompressor, "vmdk", ["-o", "subformat=streamOptimized"], t.path("c.vmdk"));
        // the same size and grains; only the descriptor's random CID differs
        expect(a.length).toBe(c.length);
        expect(Buffer.compare(a.subarray(65536), c.subarray(65536))).toBe(0);
        expect(qemuCheck(t.path("a.vmdk"), "vmdk").status).toBe(0);
        expect(qemuImg(["compare", "-f", "raw", "-F", "vmdk", t.path("src.raw"), t.path("a.vmdk")]).stdout).toContain(
          "Images are identical",
        );
      } finally {
        await three.close();
      }
    });
  });
});
