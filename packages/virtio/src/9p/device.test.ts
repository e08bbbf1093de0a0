import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VirtioMmioReg } from "../mmio.js";
import { type MockDriver, type MockQueue, mockDriver } from "../testing/index.js";
import { ninePConfigBytes, VIRTIO_9P_MOUNT_TAG, Virtio9p } from "./device.js";
import { DOTL, P9 } from "./protocol.js";
import { NinePServer } from "./server.js";
import { NinePTestClient, TBuilder } from "./testing.js";

let dir: string;
let server: NinePServer;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rz9p-dev-"));
  server = new NinePServer({ root: dir, maxMsize: 65536 });
});
afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until(q: MockQueue) {
  for (let i = 0; i < 2000; i++) {
    const used = q.collect();
    if (used.length > 0) return used;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error("no reply");
}

/** A client whose messages travel through the virtqueue like Linux's: split readable parts, 11-byte reply header, payload buffer. */
function queueClient(drv: MockDriver) {
  const q = drv.queue(0);
  return new NinePTestClient(async (m) => {
    const cut = Math.min(5, m.length);
    q.addBuffers([m.subarray(0, cut), m.subarray(cut)], [11, 8192]);
    q.kick();
    const [u] = await until(q);
    if (!u) throw new Error("no used element");
    const all = Buffer.concat(u.written);
    return all.subarray(0, u.len);
  });
}

describe("virtio-9p device", () => {
  it("exposes device id 9, the MOUNT_TAG feature and le16 tag_len + tag", () => {
    const dev = new Virtio9p({ handler: server, mountTag: "hostshare" });
    const drv = mockDriver(dev, { ramSize: 4 << 20 });
    expect(drv.reg(VirtioMmioReg.DeviceID)).toBe(9);
    expect(drv.features & (1n << BigInt(VIRTIO_9P_MOUNT_TAG))).not.toBe(0n);
    expect(drv.config(0, 2)).toBe(9);
    const tag = Array.from({ length: 9 }, (_, i) => Number(drv.config(2 + i, 1)));
    expect(String.fromCharCode(...tag)).toBe("hostshare");
    expect([...ninePConfigBytes("ab")]).toEqual([2, 0, 0x61, 0x62]);
  });

  it("rejects bad mount tags and handlers", () => {
    expect(() => new Virtio9p({ handler: server, mountTag: "" })).toThrowError(/CONFIG_INVALID/);
    expect(() => new Virtio9p({ handler: server, mountTag: "a b" })).toThrowError(/CONFIG_INVALID/);
    expect(() => new Virtio9p({ handler: server, mountTag: "x".repeat(256) })).toThrowError(/CONFIG_INVALID/);
    expect(() => new Virtio9p({ handler: {} as never, mountTag: "t" })).toThrowError(/CONFIG_INVALID/);
  });

  it("serves a session over the request queue with scattered replies", async () => {
    writeFileSync(join(dir, "big"), Buffer.alloc(6000, 0x5a));
    const dev = new Virtio9p({ handler: server, mountTag: "share" });
    const drv = mockDriver(dev, { ramSize: 8 << 20 });
    const c = queueClient(drv);
    expect(await c.version(8192)).toEqual({ msize: 8192, version: "9P2000.L" });
    await c.attach(0);
    await c.walk(0, 1, "big");
    await c.lopen(1, DOTL.RDONLY);
    const data = await c.read(1, 0, 8000);
    expect(data.length).toBe(6000);
    expect(data.every((b) => b === 0x5a)).toBe(true);
    await c.walk(0, 2);
    await c.lcreate(2, "new", DOTL.WRONLY | DOTL.CREATE, 0o644);
    expect(await c.write(2, 0, Buffer.alloc(3000, 1))).toBe(3000);
    expect(readFileSync(join(dir, "new")).length).toBe(3000);
    expect(dev.stats.requests).toBe(8);
    expect(drv.irqEdges.includes(true)).toBe(true);
  });

  it("handles Linux's zero-copy layout: Twrite header and payload pages, Rread header then pages", async () => {
    const dev = new Virtio9p({ handler: server, mountTag: "share" });
    const drv = mockDriver(dev, { ramSize: 8 << 20 });
    const q = drv.queue(0);
    const c = queueClient(drv);
    await c.version(65536);
    await c.attach(0);
    await c.walk(0, 1);
    await c.lcreate(1, "zc", DOTL.RDWR | DOTL.CREATE, 0o644);
    const payload = Uint8Array.from({ length: 10000 }, (_, i) => (i * 13) & 0xff);
    const tw = new TBuilder().u32(1).u64(0).u32(payload.length).bytes(payload).build(P9.Twrite, 77);
    // 23-byte header, then the user pages (the size field covers both, as Linux patches it).
    q.addBuffers(
      [tw.subarray(0, 23), tw.subarray(23, 23 + 4096), tw.subarray(23 + 4096, 23 + 8192), tw.subarray(23 + 8192)],
      [11],
    );
    q.kick();
    const [w] = await until(q);
    expect(w?.len).toBe(11);
    expect(Buffer.concat(w?.written ?? []).readUInt32LE(7)).toBe(10000);
    const tr = new TBuilder().u32(1).u64(0).u32(10000).build(P9.Tread, 78);
    q.addBuffers([tr], [11, 4096, 4096, 4096]);
    q.kick();
    const [r] = await until(q);
    expect(r?.len).toBe(11 + 10000);
    const all = Buffer.concat(r?.written ?? []);
    expect(all[4]).toBe(P9.Rread);
    expect(all.readUInt32LE(7)).toBe(10000);
    expect(Buffer.compare(all.subarray(11, 11 + 10000), payload)).toBe(0);
    expect(readFileSync(join(dir, "zc")).equals(Buffer.from(payload))).toBe(true);
  });

  it("a chain without room for a reply is returned empty and counted; a short one is truncated", async () => {
    const dev = new Virtio9p({ handler: server, mountTag: "share" });
    const drv = mockDriver(dev, { ramSize: 4 << 20 });
    const q = drv.queue(0);
    const b = Buffer.alloc(21);
    b.writeUInt32LE(21, 0);
    b[4] = P9.Tversion;
    b.writeUInt16LE(0xffff, 5);
    b.writeUInt32LE(8192, 7);
    b.writeUInt16LE(8, 11);
    b.write("9P2000.L", 13);
    q.addBuffers([b], [4]);
    q.kick();
    expect((await until(q))[0]?.len).toBe(0);
    q.addBuffers([b], [12]);
    q.kick();
    const [u] = await until(q);
    expect(u?.len).toBe(12);
    expect(dev.stats.truncatedReplies).toBe(1);
  });
});
