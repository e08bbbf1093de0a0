// convert's read-ahead, observed through the stores: the next window's extents are looked up and
// its reads started before this window is written, never during its writes, and never into the
// buffer of a window whose writes have not all finished (main.ts, copyContent).
import { describe, expect, it } from "vitest";
import { MemoryHost } from "../io/memory.js";
import type { ByteStore, StoreHost } from "../io/store.js";
import { rzOn } from "../testing-internal/cli.js";
import { firstDiff, pattern } from "../testing-internal/qemu.js";
import { scatterRead } from "../testing-internal/scatter-read.js";

const MiB = 1024 * 1024;
/** convert's read window (COPY_CHUNK). */
const WINDOW = 4 * MiB;

interface Op {
  op: "read" | "write" | "wrote";
  file: string;
  offset: number;
  length: number;
}

/** A host whose stores log each read and write as it is issued, and each write as it completes. */
class LogHost implements StoreHost {
  readonly ops: Op[] = [];
  readonly inner = new MemoryHost();
  /** With `vectored`, the stores have a readv (logged as one read of the buffers' total length). */
  constructor(private readonly vectored = false) {}

  private wrap(s: ByteStore): ByteStore {
    const ops = this.ops;
    return {
      name: s.name,
      readOnly: s.readOnly,
      size: () => s.size(),
      read: (offset, buf) => {
        ops.push({ op: "read", file: s.name, offset, length: buf.length });
        return s.read(offset, buf);
      },
      ...(this.vectored && {
        readv: async (offset: number, bufs: readonly Uint8Array[]) => {
          ops.push({ op: "read", file: s.name, offset, length: bufs.reduce((n, b) => n + b.length, 0) });
          return scatterRead((o, b) => s.read(o, b), offset, bufs);
        },
      }),
      write: async (offset, data) => {
        ops.push({ op: "write", file: s.name, offset, length: data.length });
        await s.write(offset, data);
        ops.push({ op: "wrote", file: s.name, offset, length: data.length });
      },
      truncate: (n) => s.truncate(n),
      flush: () => s.flush(),
      close: () => s.close(),
    };
  }
  async open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
    return this.wrap(await this.inner.open(name, options));
  }
  async create(name: string): Promise<ByteStore> {
    return this.wrap(await this.inner.create(name));
  }
  resolve(base: string, name: string): string {
    return this.inner.resolve(base, name);
  }
  canonical(name: string): Promise<string> {
    return this.inner.canonical(name);
  }
  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }
  remove(name: string): Promise<void> {
    return this.inner.remove(name);
  }
}

/**
 * Checks the order of a conversion's source reads against its writes to a raw target, whose
 * windows start at multiples of WINDOW (the source has data at each): no source read is issued
 * from the first write of a window until the last of its writes has completed. With one window
 * read ahead, the reads issued after window k's writes (and before window k + 1's) are window
 * k + 2's, into window k's buffer: its writes are done.
 */
function checkOrder(ops: Op[], source: string, target: string): void {
  const windows = new Map<number, { first: number; done: number }>();
  ops.forEach((o, i) => {
    if (o.file !== target) return;
    const k = Math.floor(o.offset / WINDOW);
    const w = windows.get(k) ?? { first: i, done: i };
    w.done = i;
    windows.set(k, w);
  });
  expect(windows.size).toBeGreaterThanOrEqual(3);
  for (const [k, w] of windows) {
    const during = ops.filter((o, i) => o.file === source && o.op === "read" && i > w.first && i < w.done);
    expect(
      during.map((o) => o.offset),
      `source reads issued while window ${k} was written`,
    ).toEqual([]);
  }
}

describe("ringzero-img convert: read-ahead order", () => {
  it("raw source: the next window's read is issued before this window's writes, none during them", async () => {
    const host = new LogHost();
    const size = 3 * WINDOW + 3 * MiB + 512;
    const data = pattern(size, 7);
    for (let i = 0; i < size; i += 4096) data[i] = 1; // no zero granule: every window is all data
    const s = await host.inner.create("src.raw");
    await s.write(0, data);
    const r = await rzOn(host, "convert", "-f", "raw", "-O", "raw", "src.raw", "out.raw");
    expect([r.code, r.err]).toEqual([0, ""]);
    const out = new Uint8Array(size);
    await (await host.inner.open("out.raw", { readOnly: true })).read(0, out);
    expect(firstDiff(out, data)).toBe(-1);
    checkOrder(host.ops, "src.raw", "out.raw");
    // Window 1's read comes before window 0's first write.
    const i = (p: (o: Op) => boolean) => host.ops.findIndex(p);
    expect(i((o) => o.file === "src.raw" && o.offset === WINDOW)).toBeLessThan(i((o) => o.file === "out.raw"));
  });

  const sourceReads: number[] = [];
  for (const vectored of [false, true])
    it(`qcow2 source with several extents per window (several block-status lookups): the same order${vectored ? " (store with readv)" : ""}`, async () => {
      const host = new LogHost(vectored);
      const size = 4 * WINDOW;
      const data = new Uint8Array(size);
      for (let w = 0; w < size; w += WINDOW)
        for (const [a, b] of [
          [0, 256 * 1024],
          [MiB, MiB + 64 * 1024],
          [3 * MiB - 128 * 1024, 3 * MiB + 512 * 1024],
          [WINDOW - 64 * 1024, WINDOW],
        ] as const)
          data.set(pattern(b - a, w + a + 1), w + a);
      for (let i = 0; i < size; i += 4096) if (data[i + 1] !== 0) data[i] = 1;
      await (await host.inner.create("src.raw")).write(0, data);
      expect((await rzOn(host, "convert", "-f", "raw", "-O", "qcow2", "src.raw", "src.qcow2")).code).toBe(0);
      host.ops.length = 0;
      const r = await rzOn(host, "convert", "-f", "qcow2", "-O", "raw", "src.qcow2", "out.raw");
      expect([r.code, r.err]).toEqual([0, ""]);
      const out = new Uint8Array(size);
      await (await host.inner.open("out.raw", { readOnly: true })).read(0, out);
      expect(firstDiff(out, data)).toBe(-1);
      checkOrder(host.ops, "src.qcow2", "out.raw");
      // with readv, a window's extents (one run of the file: written in guest order) are one read
      sourceReads.push(host.ops.filter((o) => o.op === "read" && o.file === "src.qcow2").length);
      if (vectored) expect(sourceReads[1]! + 12).toBeLessThanOrEqual(sourceReads[0]!);
    });
});
