// The I/O layer: memory store (sparse, shared across reopen), Node file store, raw format over both.
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { allocationMap } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { RawImage } from "../formats/raw.js";
import { memoryDisk } from "../testing.js";
import { tempDir } from "../testing-internal/qemu.js";
import { MemoryHost, MemoryStore } from "./memory.js";
import { NodeFileHost, NodeFileStore } from "./node-file.js";

describe("MemoryStore", () => {
  it("is sparse, reads zeros in holes and short at the end", async () => {
    const s = new MemoryStore("m");
    await s.truncate(10 * 2 ** 30);
    await s.write(5 * 2 ** 30, new Uint8Array([1, 2, 3]));
    expect(await s.allocatedSize()).toBe(64 * 1024);
    const b = new Uint8Array(5).fill(9);
    expect(await s.read(5 * 2 ** 30 - 1, b)).toBe(5);
    expect([...b]).toEqual([0, 1, 2, 3, 0]);
    expect(await s.read(10 * 2 ** 30 - 2, b)).toBe(2);
    await s.truncate(5 * 2 ** 30 + 1);
    expect(await s.size()).toBe(5 * 2 ** 30 + 1);
    await s.truncate(5 * 2 ** 30 + 3);
    const c = new Uint8Array(3);
    await s.read(5 * 2 ** 30, c);
    expect([...c]).toEqual([1, 0, 0]);
  });

  it("reopened views share bytes and size; read-only views refuse writes; closed stores refuse use", async () => {
    const h = new MemoryHost();
    const s = await h.create("a");
    const ro = await h.open("a", { readOnly: true });
    await s.write(100, new Uint8Array([7]));
    expect(await ro.size()).toBe(101);
    await expect(ro.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: DiskErrorCode.READ_ONLY });
    await s.close();
    await expect(s.size()).rejects.toMatchObject({ code: DiskErrorCode.CLOSED });
    await expect(h.open("b", { readOnly: true })).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
    expect(h.resolve("dir/x.qcow2", "y.raw")).toBe("dir/y.raw");
    expect(h.resolve("dir/x.qcow2", "/abs")).toBe("/abs");
  });
});

describe("raw", () => {
  it("reads, writes, zeroes, resizes and reports one data extent", async () => {
    const d = await memoryDisk(1 << 20);
    await d.write(1000, new Uint8Array(3000).fill(5));
    await d.writeZeroes(2000, 100);
    const r = await d.read(999, 3002);
    expect(r[0]).toBe(0);
    expect(r[1]).toBe(5);
    expect(r[1001]).toBe(0);
    expect(r[1101]).toBe(5);
    expect(await allocationMap(d)).toEqual([{ start: 0, length: 1 << 20, kind: "data", depth: 0, hostOffset: 0 }]);
    await d.resize(2 << 20);
    expect(d.size()).toBe(2 << 20);
    await expect(d.read(2 << 20, 1)).rejects.toBeInstanceOf(DiskError);
    await expect(d.write(2 ** 53, new Uint8Array(1))).rejects.toMatchObject({
      code: DiskErrorCode.INVALID_REQUEST,
      context: { format: "raw" },
    });
    await d.close();
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: DiskErrorCode.CLOSED });
  });
});

describe("NodeFileStore", () => {
  const t = tempDir("rz-io-");
  afterAll(() => t.cleanup());
  it.each([false, true])("positional I/O on a real file, and a raw image over it (blocking: %s)", async (blocking) => {
    const host = new NodeFileHost({ blocking });
    const s = await host.create(t.path("f.raw"));
    await s.truncate(4096);
    await s.write(4000, new Uint8Array(200).fill(3));
    expect(await s.size()).toBe(4200);
    await s.flush();
    await s.close();
    const img = await RawImage.open(await NodeFileStore.open(t.path("f.raw"), { readOnly: true }));
    expect((await img.read(4100, 100)).every((b) => b === 3)).toBe(true);
    await expect(img.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: DiskErrorCode.READ_ONLY });
    await img.close();
    expect(await host.exists(t.path("f.raw"))).toBe(true);
    expect(host.resolve("/a/b/c.qcow2", "d.raw")).toBe("/a/b/d.raw");
    await expect(host.open(t.path("none"), { readOnly: true })).rejects.toMatchObject({
      code: DiskErrorCode.NOT_FOUND,
    });
  });

  it.each([false, true])(
    "close waits for the calls in flight; calls after it fail with CLOSED, not on a reused descriptor (blocking: %s)",
    async (blocking) => {
      const host = new NodeFileHost({ blocking });
      const s = await host.create(t.path(`c-${blocking}.raw`));
      const data = new Uint8Array(1 << 20).fill(7);
      // Writes still queued on the thread pool when close() is called land before the descriptor goes.
      const writes = [0, 1, 2, 3].map((i) => s.write(i << 20, data));
      const closing = s.close();
      await Promise.all(writes);
      await closing;
      await s.close(); // a second close: nothing
      // A file opened now may get the same descriptor number; the closed store must not touch it.
      const other = await host.create(t.path(`d-${blocking}.raw`));
      await expect(s.write(0, new Uint8Array([1]))).rejects.toMatchObject({ code: DiskErrorCode.CLOSED });
      await expect(s.read(0, new Uint8Array(1))).rejects.toMatchObject({ code: DiskErrorCode.CLOSED });
      await expect(s.size()).rejects.toMatchObject({ code: DiskErrorCode.CLOSED });
      expect(await other.size()).toBe(0);
      await other.close();
      const back = await host.open(t.path(`c-${blocking}.raw`), { readOnly: true });
      const all = new Uint8Array(4 << 20);
      expect(await back.read(0, all)).toBe(4 << 20);
      expect(all.every((b) => b === 7)).toBe(true);
      await back.close();
    },
  );

  it.each([false, true])(
    "truncate(0) of a file just created is skipped, and only then (blocking: %s)",
    async (blocking) => {
      const host = new NodeFileHost({ blocking });
      for (const [i, change] of [
        (s: Awaited<ReturnType<typeof host.create>>) => s.write(5, new Uint8Array([1])),
        (s: Awaited<ReturnType<typeof host.create>>) => s.truncate(100),
      ].entries()) {
        const f = t.path(`z${i}-${blocking}.raw`);
        writeFileSync(f, "old bytes");
        const s = await host.create(f);
        expect(statSync(f).size).toBe(0); // created empty (O_TRUNC): the skipped truncate changes nothing
        await s.truncate(0);
        await change(s);
        expect(await s.size()).toBeGreaterThan(0);
        await s.truncate(0);
        expect(await s.size()).toBe(0);
        expect(statSync(f).size).toBe(0);
        await s.close();
      }
    },
  );

  it("blocking: the I/O is done on this thread by the time the call returns its promise", async () => {
    const host = new NodeFileHost({ blocking: true });
    const f = t.path("b.raw");
    const s = await host.create(f);
    // No await between the call and the check: nothing of it is left to the thread pool.
    const w = s.write(10, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(f)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
    await w;
    const tr = s.truncate(4);
    expect(statSync(f).size).toBe(4);
    await tr;
    writeFileSync(f, "abcdef");
    const buf = new Uint8Array(3);
    const r = s.read(2, buf);
    expect(new TextDecoder().decode(buf)).toBe("cde");
    expect(await r).toBe(3);
    await s.flush();
    await s.close();
  });
});
