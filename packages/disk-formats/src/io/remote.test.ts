// Stores for hosts without files: Blob, HTTP Range, the in-memory overlay, and
// RemoteHost opening qcow2 chains through them.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskError, DiskErrorCode } from "../errors.js";
import { createImage, openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import { MemoryHost, MemoryStore } from "./memory.js";
import { BlobStore, HttpRangeStore, OverlayStore, RemoteHost } from "./remote.js";
import { readFull } from "./store.js";

/** A tiny deterministic generator (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

describe("OverlayStore", () => {
  it("reads and writes as a plain store would, and never writes its base (random operations)", async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const r = rng(seed);
      const initial = pattern(Math.floor(r() * 300_000), seed);
      const base = new MemoryStore("base", false, initial);
      const overlay = await OverlayStore.over(base.reopen(true));
      const model = new MemoryStore("model", false, initial);
      for (let op = 0; op < 40; op++) {
        const size = await model.size();
        const k = r();
        if (k < 0.45) {
          const off = Math.floor(r() * (size + 70_000));
          const data = pattern(1 + Math.floor(r() * 150_000), seed * 100 + op);
          await overlay.write(off, data);
          await model.write(off, data);
        } else if (k < 0.55) {
          const to = Math.floor(r() * (size + 100_000));
          await overlay.truncate(to);
          await model.truncate(to);
        } else {
          const off = Math.floor(r() * (size + 1000));
          const len = Math.floor(r() * 200_000);
          const a = new Uint8Array(len).fill(7);
          const b = new Uint8Array(len).fill(7);
          expect(await overlay.read(off, a)).toBe(await model.read(off, b));
          expect(firstDiff(a, b)).toBe(-1);
        }
        expect(await overlay.size()).toBe(await model.size());
      }
      const all = new Uint8Array(await model.size());
      const got = new Uint8Array(all.length);
      await model.read(0, all);
      await overlay.read(0, got);
      expect(firstDiff(got, all)).toBe(-1);
      expect(firstDiff(base.bytes(), initial)).toBe(-1);
    }
  });
});

describe("BlobStore", () => {
  it("reads by slices, short at the end, and refuses writes", async () => {
    const bytes = pattern(100_000, 3);
    const s = new BlobStore(new Blob([bytes]), "disk.img");
    expect(await s.size()).toBe(100_000);
    const b = new Uint8Array(10).fill(1);
    expect(await s.read(99_995, b)).toBe(5);
    expect([...b.subarray(0, 5)]).toEqual([...bytes.subarray(99_995)]);
    expect([...b.subarray(5)]).toEqual([1, 1, 1, 1, 1]);
    expect(await s.read(100_000, b)).toBe(0);
    await expect(s.write(0)).rejects.toMatchObject({ code: DiskErrorCode.READ_ONLY });
  });
});

/** A qcow2 over a backing qcow2, made by the library in memory: [base bytes, top bytes, what the disk reads]. */
async function chain(): Promise<{ base: Uint8Array; top: Uint8Array; disk: Uint8Array }> {
  const h = new MemoryHost();
  const size = 4 * 1024 * 1024;
  const disk = new Uint8Array(size);
  const base = await createImage(h, "img/base.qcow2", { format: "qcow2", size });
  const a = pattern(300_000, 1);
  await base.write(100_000, a);
  disk.set(a, 100_000);
  await base.close();
  const top = await createImage(h, "img/top.qcow2", { format: "qcow2", backingFile: "base.qcow2" });
  const b = pattern(70_000, 2);
  await top.write(200_000, b);
  disk.set(b, 200_000);
  await top.close();
  const bytes = (n: string) => (h.files.get(n) as MemoryStore).bytes();
  return { base: bytes("img/base.qcow2"), top: bytes("img/top.qcow2"), disk };
}

describe("RemoteHost over Blobs", () => {
  it("opens a qcow2 chain of picked files, writes to memory, leaves the files as they were", async () => {
    const c = await chain();
    const host = new RemoteHost({ "img/top.qcow2": new Blob([c.top]), "img/base.qcow2": new Blob([c.base]) });
    const img = await openImage(host, "img/top.qcow2");
    const got = new Uint8Array(c.disk.length);
    await img.readInto(0, got);
    expect(firstDiff(got, c.disk)).toBe(-1);
    const w = pattern(5000, 9);
    await img.write(1_000_000, w);
    const back = new Uint8Array(5000);
    await img.readInto(1_000_000, back);
    expect(firstDiff(back, w)).toBe(-1);
    expect(img.format).toBe("qcow2");
    await img.close();
    // The sources are untouched: a fresh open reads the original disk.
    const again = await openImage(host, "img/top.qcow2", { readOnly: true });
    await again.readInto(0, got);
    expect(firstDiff(got, c.disk)).toBe(-1);
    await again.close();
  });

  it("names a missing file NOT_FOUND", async () => {
    await expect(openImage(new RemoteHost(), "nope.qcow2")).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
  });
});

describe("HttpRangeStore and RemoteHost over HTTP", () => {
  const files = new Map<string, Uint8Array>();
  const log: string[] = [];
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0] as string;
      const body = files.get(path);
      log.push(`${path} ${req.headers.range ?? ""}`);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!m || path.startsWith("/norange/")) {
        res.writeHead(200, { "content-length": body.length }).end(body);
        return;
      }
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), body.length - 1);
      res
        .writeHead(206, { "content-range": `bytes ${start}-${end}/${body.length}`, "content-length": end - start + 1 })
        .end(body.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("reads a qcow2 chain lazily by ranges (relative backing name resolved against the URL)", async () => {
    const c = await chain();
    files.set("/img/top.qcow2", c.top);
    files.set("/img/base.qcow2", c.base);
    log.length = 0;
    const host = new RemoteHost({}, { blockSize: 16 * 1024 });
    const img = await openImage(host, `${url}/img/top.qcow2`);
    const got = new Uint8Array(70_000);
    await img.readInto(200_000, got);
    expect(firstDiff(got, c.disk.subarray(200_000, 270_000))).toBe(-1);
    // Lazy: far fewer bytes than the two files were fetched.
    const fetched = log.filter((l) => l.includes("bytes=")).length;
    expect(fetched).toBeGreaterThan(1);
    expect(log.every((l) => /bytes=\d+-\d+$/.test(l))).toBe(true);
    const all = new Uint8Array(c.disk.length);
    await img.readInto(0, all);
    expect(firstDiff(all, c.disk)).toBe(-1);
    // Writes stay in memory.
    await img.write(0, pattern(512, 5));
    const head = new Uint8Array(512);
    await img.readInto(0, head);
    expect(firstDiff(head, pattern(512, 5))).toBe(-1);
    await img.close();
    expect(files.get("/img/top.qcow2")).toBe(c.top);
  });

  it("calls the global fetch bound to its global, as a browser requires (else 'Illegal invocation')", async () => {
    files.set("/bound", pattern(10_000, 6));
    const real = globalThis.fetch;
    // Chromium's fetch throws when called detached from its global object.
    globalThis.fetch = function (this: unknown, input: Parameters<typeof fetch>[0], init?: RequestInit) {
      if (this !== globalThis) throw new TypeError("Failed to execute 'fetch': Illegal invocation");
      return real(input, init);
    } as typeof fetch;
    try {
      const s = await HttpRangeStore.open(`${url}/bound`);
      const b = new Uint8Array(100);
      await readFull(s, 5_000, b);
      expect(firstDiff(b, pattern(10_000, 6).subarray(5_000, 5_100))).toBe(-1);
    } finally {
      globalThis.fetch = real;
    }
  });

  it("caches blocks: a second read of the same range makes no request", async () => {
    files.set("/blob", pattern(200_000, 4));
    const s = await HttpRangeStore.open(`${url}/blob`);
    const b = new Uint8Array(1000);
    await readFull(s, 150_000, b);
    const n = s.stats.requests;
    await readFull(s, 150_100, b);
    expect(s.stats.requests).toBe(n);
    expect(firstDiff(b, pattern(200_000, 4).subarray(150_100, 151_100))).toBe(-1);
  });

  it("a small cache: reads larger than it, and reads that evict, still return the right bytes", async () => {
    const data = pattern(50_000, 6);
    files.set("/small", data);
    const s = await HttpRangeStore.open(`${url}/small`, { blockSize: 1024, cacheBlocks: 4 });
    const r = rng(6);
    for (let i = 0; i < 200; i++) {
      const off = Math.floor(r() * 50_000);
      const b = new Uint8Array(Math.floor(r() * 6000));
      const n = await readFull(s, off, b);
      expect(firstDiff(b.subarray(0, n), data.subarray(off, off + n))).toBe(-1);
    }
  });

  it("refuses a server without Range support (UNSUPPORTED) and a missing URL (NOT_FOUND)", async () => {
    files.set("/norange/x", new Uint8Array(10));
    const e1 = await HttpRangeStore.open(`${url}/norange/x`).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(DiskError);
    expect((e1 as DiskError).code).toBe(DiskErrorCode.UNSUPPORTED);
    const e2 = await HttpRangeStore.open(`${url}/missing`).catch((e: unknown) => e);
    expect((e2 as DiskError).code).toBe(DiskErrorCode.NOT_FOUND);
  });

  it.skipIf(!HAVE_QEMU)("reads a compressed qcow2 written by qemu-img (raw deflate clusters) over HTTP", async () => {
    const t = tempDir("rz-remote-");
    try {
      const raw = t.path("d.raw");
      const q = t.path("d.qcow2");
      qemuImg(["create", "-f", "raw", raw, "4M"]);
      qemuIo(raw, ["write -P 0x5a 0 1M", "write -P 0x33 2M 512k"], "raw");
      qemuImg(["convert", "-c", "-f", "raw", "-O", "qcow2", raw, q]);
      files.set("/c.qcow2", new Uint8Array(readFileSync(q)));
      const img = await openImage(new RemoteHost(), `${url}/c.qcow2`, { readOnly: true });
      const got = new Uint8Array(4 * 1024 * 1024);
      await img.readInto(0, got);
      expect(firstDiff(got, new Uint8Array(readFileSync(raw)))).toBe(-1);
      await img.close();
    } finally {
      t.cleanup();
    }
  });
});
