import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VirtioBlk, VirtioBlkStatus, VirtioBlkType } from "../devices/blk.js";
import { VirtioError } from "../errors.js";
import { mockDriver } from "../testing/index.js";
import { type BlockBackend, MemoryBlockBackend } from "./block.js";
import { FileBlockBackend } from "./block-file.js";

const tmp = mkdtempSync(join(tmpdir(), "rz-virtio-blk-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function hdr(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return b;
}

describe("block back ends", () => {
  it("a raw host file serves virtio-blk reads, writes, write-zeroes and flushes", async () => {
    const path = join(tmp, "disk.raw");
    writeFileSync(path, Buffer.alloc(16 * 512, 0x11));
    const disk = await FileBlockBackend.open(path);
    expect(disk.size()).toBe(8192);
    const drv = mockDriver(new VirtioBlk({ backend: disk }));
    const q = drv.queue(0);
    const data = new Uint8Array(512).fill(0x77);
    q.addBuffers([hdr(VirtioBlkType.OUT, 3), data], [1]);
    const zero = new Uint8Array(16);
    new DataView(zero.buffer).setBigUint64(0, 5n, true);
    new DataView(zero.buffer).setUint32(8, 2, true);
    q.addBuffers([hdr(VirtioBlkType.WRITE_ZEROES, 0), zero], [1]);
    q.addBuffers([hdr(VirtioBlkType.FLUSH, 0)], [1]);
    q.kick();
    const used = await q.waitUsed(3);
    expect(used.map((u) => u.written[0]?.[0])).toEqual([VirtioBlkStatus.OK, VirtioBlkStatus.OK, VirtioBlkStatus.OK]);
    q.addBuffers([hdr(VirtioBlkType.IN, 2)], [1024, 1]);
    q.kick();
    const [r] = await q.waitUsed(1);
    expect(r?.written[0]?.subarray(0, 512).every((b) => b === 0x11)).toBe(true);
    expect(r?.written[0]?.subarray(512).every((b) => b === 0x77)).toBe(true);
    await disk.close();
    const file = readFileSync(path);
    expect(file.subarray(5 * 512, 7 * 512).every((b) => b === 0)).toBe(true);
    expect(file[7 * 512]).toBe(0x11);
  });

  it("refuses missing files and files that are not whole sectors", async () => {
    await expect(FileBlockBackend.open(join(tmp, "missing.raw"))).rejects.toThrow(VirtioError);
    const odd = join(tmp, "odd.raw");
    writeFileSync(odd, Buffer.alloc(1000));
    await expect(FileBlockBackend.open(odd)).rejects.toThrow(/BACKEND_OPEN_FAILED/);
  });

  it("a read-only file rejects writes; the memory back end checks ranges", async () => {
    const path = join(tmp, "ro.raw");
    writeFileSync(path, Buffer.alloc(1024));
    const disk = await FileBlockBackend.open(path, { readOnly: true });
    await expect(disk.write(0, new Uint8Array(512))).rejects.toThrow(VirtioError);
    await disk.close();
    const mem = new MemoryBlockBackend(1024);
    await expect(mem.readInto(1000, new Uint8Array(512))).rejects.toThrow(/INVALID_STATE/);
  });

  it("is structurally what @ringzero/disk-formats' BlockBackend provides", () => {
    // The subset of disk-formats' interface, written out: a disk-formats image must type-check here.
    type DiskFormatsBackend = {
      readonly readOnly: boolean;
      size(): number;
      read(offset: number, length: number): Promise<Uint8Array>;
      readInto(offset: number, buf: Uint8Array): Promise<void>;
      write(offset: number, data: Uint8Array): Promise<void>;
      writeZeroes(offset: number, length: number, options?: { mayUnmap?: boolean }): Promise<void>;
      discard(offset: number, length: number): Promise<void>;
      flush(): Promise<void>;
      close(): Promise<void>;
    };
    const accept = (b: DiskFormatsBackend): BlockBackend => b;
    expect(typeof accept).toBe("function");
  });
});
