import { describe, expect, it } from "vitest";
import { MemoryBlockBackend } from "../backends/block.js";
import { VirtioStatus } from "../constants.js";
import { MockDriver, type MockQueue, mockDriver, settle } from "../testing/index.js";
import { VirtioBlk, VirtioBlkFeature, VirtioBlkStatus, VirtioBlkType } from "./blk.js";

function hdr(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return b;
}

function seg(sector: number, sectors: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, sectors, true);
  v.setUint32(12, flags, true);
  return b;
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

async function request(q: MockQueue, out: Uint8Array[], inLens: number[], indirect = false) {
  q.addBuffers(out, inLens, { indirect });
  q.kick();
  await settle();
  const used = q.collect();
  expect(used).toHaveLength(1);
  const u = used[0];
  if (!u) throw new Error("no used element");
  const last = u.written[u.written.length - 1] as Uint8Array;
  return { ...u, status: last[last.length - 1] };
}

function setup(
  disk = new MemoryBlockBackend(64 * 1024),
  opts: Partial<ConstructorParameters<typeof VirtioBlk>[0]> = {},
) {
  const dev = new VirtioBlk({ backend: disk, serial: "rz-disk-1", ...opts });
  const drv = mockDriver(dev);
  return { dev, drv, disk, q: drv.queue(0) };
}

describe("virtio-blk", () => {
  it("reports capacity, seg_max, blk_size and features through the mmio config space", () => {
    const { drv } = setup();
    expect(drv.config(0, 8)).toBe(128n);
    expect(drv.config(12, 4)).toBe(126);
    expect(drv.config(20, 4)).toBe(512);
    const f = drv.features;
    for (const b of [
      VirtioBlkFeature.FLUSH,
      VirtioBlkFeature.DISCARD,
      VirtioBlkFeature.WRITE_ZEROES,
      VirtioBlkFeature.SEG_MAX,
    ]) {
      expect((f >> BigInt(b)) & 1n).toBe(1n);
    }
    expect((f >> BigInt(VirtioBlkFeature.RO)) & 1n).toBe(0n);
  });

  it("uses a back end's readv/writev on the guest's own buffers (odd segment splits, status byte untouched)", async () => {
    const disk = new MemoryBlockBackend(64 * 1024);
    const calls: { op: string; offset: number; lengths: number[] }[] = [];
    const sg = Object.assign(disk, {
      readv: async (offset: number, bufs: readonly Uint8Array[]) => {
        calls.push({ op: "readv", offset, lengths: bufs.map((b) => b.length) });
        let o = offset;
        for (const b of bufs) {
          b.set(disk.bytes.subarray(o, o + b.length));
          o += b.length;
        }
      },
      writev: async (offset: number, bufs: readonly Uint8Array[]) => {
        calls.push({ op: "writev", offset, lengths: bufs.map((b) => b.length) });
        let o = offset;
        for (const b of bufs) {
          disk.bytes.set(b, o);
          o += b.length;
        }
      },
    });
    const { q } = setup(sg);
    const data = pattern(1536, 9);
    // Header and data in one descriptor (the header's 16 bytes must be skipped), then two odd pieces.
    const first = new Uint8Array(16 + 100);
    first.set(hdr(VirtioBlkType.OUT, 3));
    first.set(data.subarray(0, 100), 16);
    const w = await request(q, [first, data.subarray(100, 1001), data.subarray(1001)], [1]);
    expect(w.status).toBe(VirtioBlkStatus.OK);
    expect(disk.bytes.subarray(1536, 3072)).toEqual(data);
    // Data and status byte in one writable descriptor: readv gets all but the last byte.
    const r = await request(q, [hdr(VirtioBlkType.IN, 3)], [700, 837]);
    expect(r.status).toBe(VirtioBlkStatus.OK);
    expect(r.len).toBe(1537);
    expect(Buffer.concat([r.written[0] as Uint8Array, (r.written[1] as Uint8Array).subarray(0, 836)])).toEqual(
      Buffer.from(data),
    );
    expect(calls).toEqual([
      { op: "writev", offset: 1536, lengths: [100, 901, 535] },
      { op: "readv", offset: 1536, lengths: [700, 836] },
    ]);
  });

  it("writes then reads sectors (direct and indirect chains, several data segments)", async () => {
    const { q, disk } = setup();
    const data = pattern(1024, 3);
    const w = await request(q, [hdr(VirtioBlkType.OUT, 4), data.subarray(0, 512), data.subarray(512)], [1], true);
    expect(w.status).toBe(VirtioBlkStatus.OK);
    expect(w.len).toBe(1);
    expect(disk.bytes.subarray(2048, 3072)).toEqual(data);
    const r = await request(q, [hdr(VirtioBlkType.IN, 4)], [512, 512, 1]);
    expect(r.status).toBe(VirtioBlkStatus.OK);
    expect(r.len).toBe(1025);
    expect(r.written[0]).toEqual(data.subarray(0, 512));
    expect(r.written[1]).toEqual(data.subarray(512));
  });

  it("answers GET_ID with the NUL-padded serial", async () => {
    const { q } = setup();
    const r = await request(q, [hdr(VirtioBlkType.GET_ID, 0)], [20, 1]);
    expect(r.status).toBe(VirtioBlkStatus.OK);
    expect(r.len).toBe(21);
    expect(new TextDecoder().decode(r.written[0]).replace(/\0+$/, "")).toBe("rz-disk-1");
  });

  it("flushes, discards and writes zeroes (with and without unmap)", async () => {
    const disk = new MemoryBlockBackend(pattern(64 * 1024, 1));
    const { q, dev } = setup(disk);
    expect((await request(q, [hdr(VirtioBlkType.FLUSH, 0)], [1])).status).toBe(VirtioBlkStatus.OK);
    expect(disk.flushes).toBe(1);
    expect((await request(q, [hdr(VirtioBlkType.DISCARD, 0), seg(0, 2, 0)], [1])).status).toBe(VirtioBlkStatus.OK);
    expect(disk.bytes.subarray(0, 1024).every((b) => b === 0)).toBe(true);
    expect(disk.bytes[1024]).not.toBe(0);
    const wz = await request(q, [hdr(VirtioBlkType.WRITE_ZEROES, 0), seg(4, 1, 1), seg(8, 1, 0)], [1]);
    expect(wz.status).toBe(VirtioBlkStatus.OK);
    expect(disk.bytes.subarray(2048, 2560).every((b) => b === 0)).toBe(true);
    expect(disk.bytes.subarray(4096, 4608).every((b) => b === 0)).toBe(true);
    // §5.2.6.2: discard with the unmap flag, or unknown flags -> UNSUPP.
    expect((await request(q, [hdr(VirtioBlkType.DISCARD, 0), seg(0, 1, 1)], [1])).status).toBe(VirtioBlkStatus.UNSUPP);
    expect((await request(q, [hdr(VirtioBlkType.WRITE_ZEROES, 0), seg(0, 1, 2)], [1])).status).toBe(
      VirtioBlkStatus.UNSUPP,
    );
    expect(dev.stats.unsupported).toBe(2);
  });

  it("fails writes to a read-only disk with IOERR and leaves it unchanged", async () => {
    const disk = new MemoryBlockBackend(pattern(8192, 9), true);
    const { q, drv } = setup(disk);
    expect((drv.features >> BigInt(VirtioBlkFeature.RO)) & 1n).toBe(1n);
    const before = disk.bytes.slice();
    expect((await request(q, [hdr(VirtioBlkType.OUT, 0), new Uint8Array(512)], [1])).status).toBe(
      VirtioBlkStatus.IOERR,
    );
    expect(disk.bytes).toEqual(before);
    expect((await request(q, [hdr(VirtioBlkType.IN, 0)], [512, 1])).status).toBe(VirtioBlkStatus.OK);
  });

  it("answers unknown types with UNSUPP and bad requests with IOERR, counting guest errors", async () => {
    const { q, drv } = setup();
    expect((await request(q, [hdr(99, 0)], [1])).status).toBe(VirtioBlkStatus.UNSUPP);
    // Beyond capacity (128 sectors).
    expect((await request(q, [hdr(VirtioBlkType.IN, 127)], [1024, 1])).status).toBe(VirtioBlkStatus.IOERR);
    // Not a whole number of sectors.
    expect((await request(q, [hdr(VirtioBlkType.IN, 0)], [100, 1])).status).toBe(VirtioBlkStatus.IOERR);
    // Short header.
    expect((await request(q, [new Uint8Array(8)], [1])).status).toBe(VirtioBlkStatus.IOERR);
    // Data for a read in a device-readable buffer (wrong direction).
    expect((await request(q, [hdr(VirtioBlkType.IN, 0), new Uint8Array(512)], [1])).status).toBe(VirtioBlkStatus.IOERR);
    expect(drv.transport.counters.malformedRequest).toBe(3);
    expect(drv.transport.counters.wrongDirection).toBe(1);
    expect(drv.status() & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0);
  });

  it("sets DEVICE_NEEDS_RESET when a request has no status byte", async () => {
    const { q, drv } = setup();
    q.addBuffers([hdr(VirtioBlkType.IN, 0)], []);
    q.kick();
    await settle();
    expect(drv.status() & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET);
    expect(drv.transport.counters.wrongDirection).toBe(1);
    expect(drv.ackInterrupt() & 2).toBe(2);
  });

  it("fails with IOERR when the back end rejects", async () => {
    const disk = new MemoryBlockBackend(8192);
    disk.readInto = async () => {
      throw new Error("media error");
    };
    const { q, dev } = setup(disk);
    expect((await request(q, [hdr(VirtioBlkType.IN, 0)], [512, 1])).status).toBe(VirtioBlkStatus.IOERR);
    expect(dev.stats.backendErrors).toBe(1);
  });

  it("does not touch guest memory when reset while a read is in flight", async () => {
    let release: () => void = () => {};
    const disk = new MemoryBlockBackend(pattern(8192, 5));
    const orig = disk.readInto.bind(disk);
    disk.readInto = (off, buf) =>
      new Promise<void>((r) => {
        release = r;
      }).then(() => orig(off, buf));
    const dev = new VirtioBlk({ backend: disk });
    const drv = new MockDriver(dev).init();
    const q = drv.queue(0);
    q.addBuffers([hdr(VirtioBlkType.IN, 0)], [512, 1]);
    q.kick();
    const ramBefore = drv.ram.bytes.slice();
    drv.setReg(0x070, 0); // reset
    release();
    await settle();
    expect(Buffer.compare(drv.ram.bytes, ramBefore)).toBe(0);
    expect(dev.stats.inFlight).toBe(0);
  });

  it("reports every byte it writes into guest memory through GuestMemory.written", async () => {
    const writes: [number, number][] = [];
    const dev = new VirtioBlk({ backend: new MemoryBlockBackend(pattern(8192, 2)) });
    const drv = mockDriver(dev, { onWritten: (pa, len) => writes.push([pa, len]) });
    const q = drv.queue(0);
    q.addBuffers([hdr(VirtioBlkType.IN, 1)], [512, 1]);
    q.kick();
    await q.waitUsed(1);
    const inBufs = writes.filter(([pa]) => pa < q.desc || pa >= q.used + 6 + 8 * q.size + 2);
    expect(inBufs.map(([, len]) => len).sort()).toEqual([1, 1, 512]);
    // The used element and used.idx are reported too.
    expect(writes.some(([pa, len]) => pa === q.used + 4 && len === 8)).toBe(true);
    expect(writes.some(([pa, len]) => pa === q.used + 2 && len === 2)).toBe(true);
  });

  it("completes requests out of order as the back end finishes them, and survives synchronous throws", async () => {
    const disk = new MemoryBlockBackend(pattern(64 * 1024, 4));
    const releases: (() => void)[] = [];
    const orig = disk.readInto.bind(disk);
    disk.readInto = (off, buf) => {
      if (off === 512 * 100) throw new Error("sync failure");
      return new Promise<void>((r) => {
        releases.push(r);
      }).then(() => orig(off, buf));
    };
    const { q, dev } = setup(disk);
    const ids = [0, 1, 2, 3].map((i) => q.addBuffers([hdr(VirtioBlkType.IN, i * 8)], [512, 1], { token: i }));
    const bad = q.addBuffers([hdr(VirtioBlkType.IN, 100)], [512, 1]);
    q.kick();
    await settle();
    const first = q.collect();
    expect(first.map((u) => u.id)).toEqual([bad]);
    expect(first[0]?.written[1]?.[0]).toBe(VirtioBlkStatus.IOERR);
    for (const r of [...releases].reverse()) r();
    const used = await q.waitUsed(4);
    expect(used.map((u) => u.token)).toEqual([3, 2, 1, 0]);
    for (const u of used) {
      const i = u.token as number;
      expect(u.id).toBe(ids[i]);
      expect(u.written[0]).toEqual(disk.bytes.subarray(i * 8 * 512, i * 8 * 512 + 512));
    }
    expect(dev.stats).toMatchObject({ reads: 5, backendErrors: 1, inFlight: 0 });
  });
});
