import { describe, expect, it } from "vitest";
import { VirtioInterrupt, VirtioStatus, VirtqDescFlag } from "./constants.js";
import type { GuestErrorCounter } from "./counters.js";
import { VirtioRng } from "./devices/rng.js";
import { VirtioMmioReg as R } from "./mmio.js";
import { MockDriver, MockGuestRam, mockDriver } from "./testing/index.js";
import { gather, SplitQueue, scatter, splitQueueLayout } from "./virtqueue.js";

const F = VirtqDescFlag;
const NEEDS_RESET = VirtioStatus.DEVICE_NEEDS_RESET;

function rng(options: Parameters<typeof mockDriver>[1] = {}) {
  const dev = new VirtioRng({ source: (b) => b.fill(0x5a) });
  const drv = mockDriver(dev, options);
  return { dev, drv, q: drv.queue(0) };
}

function expectFault(drv: MockDriver, counter: GuestErrorCounter): void {
  expect(drv.transport.counters[counter]).toBe(1);
  expect(drv.transport.counters.needsReset).toBe(1);
  expect(drv.status() & NEEDS_RESET).toBe(NEEDS_RESET);
  // §2.1.2: DRIVER_OK was set, so a config change notification follows.
  expect(drv.ackInterrupt() & VirtioInterrupt.CONFIG_CHANGE).toBe(VirtioInterrupt.CONFIG_CHANGE);
  expect(drv.transport.interruptLevel).toBe(false);
}

describe("split virtqueue: well-formed traffic", () => {
  it("serves direct and indirect chains and returns used elements in order", () => {
    const { drv, q, dev } = rng();
    const a = q.addBuffers([], [16]);
    const b = q.addBuffers([], [8, 8], { indirect: true });
    q.kick();
    const used = q.collect();
    expect(used.map((u) => [u.id, u.len])).toEqual([
      [a, 16],
      [b, 16],
    ]);
    expect(used[1]?.written.every((w) => w.every((x) => x === 0x5a))).toBe(true);
    expect(dev.stats).toEqual({ requests: 2, bytes: 32 });
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.USED_BUFFER);
    expect(drv.irqEdges).toEqual([false, true, false]);
  });

  it("wraps the ring many times on a 2-entry queue", () => {
    const { q, dev } = rng({ queueSize: () => 2 });
    for (let i = 0; i < 300; i++) {
      q.addBuffers([], [4]);
      q.kick();
      expect(q.collect()).toHaveLength(1);
    }
    expect(dev.stats.requests).toBe(300);
  });

  it("honours VIRTQ_AVAIL_F_NO_INTERRUPT without EVENT_IDX", () => {
    const { drv, q } = rng({ acceptFeatures: (f) => f & ~(1n << 29n) });
    q.setAvailFlags(1);
    q.addBuffers([], [4]);
    q.kick();
    expect(q.collect()).toHaveLength(1);
    expect(drv.ackInterrupt()).toBe(0);
    q.setAvailFlags(0);
    q.addBuffers([], [4]);
    q.kick();
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.USED_BUFFER);
  });

  it("with EVENT_IDX interrupts only when used.idx passes used_event, and publishes avail_event", () => {
    const { drv, q } = rng();
    expect(drv.eventIdx).toBe(true);
    // Ask for an interrupt only after the third used element (used_event = 2).
    q.setUsedEvent(2);
    for (let i = 0; i < 2; i++) {
      q.addBuffers([], [4]);
      q.kick();
      expect(drv.ackInterrupt()).toBe(0);
    }
    q.addBuffers([], [4]);
    q.kick();
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.USED_BUFFER);
    expect(q.usedIdx()).toBe(3);
    // avail_event = next avail index the device wants to hear about.
    expect(q.availEvent()).toBe(3);
  });

  it("serves buffers added before DRIVER_OK once DRIVER_OK is set (Linux's balloon kicks early)", () => {
    const drv = new MockDriver(new VirtioRng());
    expect(drv.negotiate()).toBe(true);
    const q = drv.setupQueue(0, 8);
    q.addBuffers([], [8]);
    q.kick();
    expect(q.collect()).toHaveLength(0);
    drv.driverOk();
    expect(q.collect()).toHaveLength(1);
  });

  it("works on SharedArrayBuffer-backed RAM (Atomics path)", () => {
    const { q, dev } = rng({ shared: true });
    q.addBuffers([], [32], { indirect: true });
    q.kick();
    expect(q.collect()[0]?.len).toBe(32);
    expect(dev.stats.bytes).toBe(32);
  });

  it("keeps free-running u16 indices across the 65535 -> 0 wrap", () => {
    const ram = new MockGuestRam(1 << 16);
    const faults: string[] = [];
    const sq = new SplitQueue(0, 4, (c) => faults.push(c));
    const lay = splitQueueLayout(4);
    sq.descAddr = ram.alloc(lay.desc, 16);
    sq.driverAddr = ram.alloc(lay.avail, 2);
    sq.deviceAddr = ram.alloc(lay.used, 4);
    expect(sq.enable(ram.memory, { eventIdx: false, indirect: false })).toBe(true);
    const buf = ram.alloc(8);
    const d = ram.dv(sq.descAddr, 16);
    d.setUint32(0, buf, true);
    d.setUint32(8, 8, true);
    d.setUint16(12, F.WRITE, true);
    const avail = ram.dv(sq.driverAddr, lay.avail);
    sq.lastAvail = 65534;
    sq.usedIdx = 65534;
    for (let i = 0; i < 4; i++) {
      const idx = (65534 + i) & 0xffff;
      avail.setUint16(4 + 2 * (idx % 4), 0, true);
      avail.setUint16(2, (idx + 1) & 0xffff, true);
      const c = sq.pop();
      expect(c?.writableLength).toBe(8);
      if (c) sq.push(c, 8);
    }
    expect(sq.lastAvail).toBe(2);
    expect(ram.dv(sq.deviceAddr, 4).getUint16(2, true)).toBe(2);
    expect(faults).toEqual([]);
  });
});

describe("split virtqueue: guest misbehaviour sets DEVICE_NEEDS_RESET and is counted", () => {
  it("descriptor loop", () => {
    const { drv, q } = rng();
    const buf = drv.ram.alloc(8);
    q.writeDesc(0, { addr: buf, len: 8, flags: F.WRITE | F.NEXT, next: 1 });
    q.writeDesc(1, { addr: buf, len: 8, flags: F.WRITE | F.NEXT, next: 0 });
    q.publish(0);
    q.kick();
    expectFault(drv, "descriptorLoop");
    // The broken queue serves nothing more until reset.
    q.kick();
    expect(drv.transport.counters.needsReset).toBe(1);
  });

  it("loop inside an indirect table", () => {
    const { drv, q } = rng();
    const buf = drv.ram.alloc(8);
    const table = drv.ram.alloc(32, 16);
    q.writeDesc(0, { addr: buf, len: 8, flags: F.WRITE | F.NEXT, next: 1 }, table);
    q.writeDesc(1, { addr: buf, len: 8, flags: F.WRITE | F.NEXT, next: 0 }, table);
    q.writeDesc(0, { addr: table, len: 32, flags: F.INDIRECT });
    q.publish(0);
    q.kick();
    expectFault(drv, "descriptorLoop");
  });

  it("chain longer than the queue size (through an indirect table)", () => {
    const { drv, q } = rng({ queueSize: () => 4 });
    const buf = drv.ram.alloc(8);
    const table = drv.ram.alloc(16 * 8, 16);
    for (let i = 0; i < 8; i++)
      q.writeDesc(i, { addr: buf, len: 8, flags: F.WRITE | (i < 7 ? F.NEXT : 0), next: i + 1 }, table);
    q.writeDesc(0, { addr: table, len: 16 * 8, flags: F.INDIRECT });
    q.publish(0);
    q.kick();
    expectFault(drv, "chainTooLong");
  });

  it("indirect descriptor inside an indirect table", () => {
    const { drv, q } = rng();
    const t1 = drv.ram.alloc(16, 16);
    const t2 = drv.ram.alloc(16, 16);
    q.writeDesc(0, { addr: drv.ram.alloc(8), len: 8, flags: F.WRITE }, t2);
    q.writeDesc(0, { addr: t2, len: 16, flags: F.INDIRECT }, t1);
    q.writeDesc(0, { addr: t1, len: 16, flags: F.INDIRECT });
    q.publish(0);
    q.kick();
    expectFault(drv, "nestedIndirect");
  });

  it("indirect descriptor without VIRTIO_F_INDIRECT_DESC", () => {
    const { drv, q } = rng({ acceptFeatures: (f) => f & ~(1n << 28n) });
    const t = drv.ram.alloc(16, 16);
    q.writeDesc(0, { addr: drv.ram.alloc(8), len: 8, flags: F.WRITE }, t);
    q.writeDesc(0, { addr: t, len: 16, flags: F.INDIRECT });
    q.publish(0);
    q.kick();
    expectFault(drv, "indirectNotAllowed");
  });

  it("indirect table length not a multiple of 16", () => {
    const { drv, q } = rng();
    q.writeDesc(0, { addr: drv.ram.alloc(32, 16), len: 24, flags: F.INDIRECT });
    q.publish(0);
    q.kick();
    expectFault(drv, "badIndirectTable");
  });

  it("buffer address outside RAM", () => {
    const { drv, q } = rng();
    q.writeDesc(0, { addr: 0x1000_0000, len: 8, flags: F.WRITE });
    q.publish(0);
    q.kick();
    expectFault(drv, "addressOutsideRam");
  });

  it("buffer running past the end of RAM", () => {
    const { drv, q } = rng();
    q.writeDesc(0, { addr: drv.ram.base + drv.ram.bytes.length - 4, len: 8, flags: F.WRITE });
    q.publish(0);
    q.kick();
    expectFault(drv, "addressOutsideRam");
  });

  it("device-readable descriptor after a device-writable one", () => {
    const { drv, q } = rng();
    const buf = drv.ram.alloc(8);
    q.writeDesc(0, { addr: buf, len: 8, flags: F.WRITE | F.NEXT, next: 1 });
    q.writeDesc(1, { addr: buf, len: 8, flags: 0 });
    q.publish(0);
    q.kick();
    expectFault(drv, "readableAfterWritable");
  });

  it("head index beyond the table", () => {
    const { drv, q } = rng();
    q.publish(q.size + 3);
    q.kick();
    expectFault(drv, "descIndexOutOfRange");
  });

  it("avail.idx jumping by more than the queue size", () => {
    const { drv, q } = rng();
    q.setAvailIdx(q.size + 1);
    q.kick();
    expectFault(drv, "availIdxJump");
  });

  it("unaligned rings, rings outside RAM, bad queue sizes are refused at QueueReady", () => {
    const cases: [GuestErrorCounter, (d: MockDriver) => void][] = [
      ["unalignedRing", (d) => d.setReg(R.QueueDescLow, d.ram.alloc(256, 16) + 8)],
      ["unalignedRing", (d) => d.setReg(R.QueueDeviceLow, d.ram.alloc(256, 4) + 2)],
      ["ringOutsideRam", (d) => d.setReg(R.QueueDriverLow, 0x1000)],
      ["ringOutsideRam", (d) => d.setReg(R.QueueDescHigh, 0xffff_ffff)],
      ["badQueueSize", (d) => d.setReg(R.QueueNum, 3)],
      ["badQueueSize", (d) => d.setReg(R.QueueNum, 0)],
      ["badQueueSize", (d) => d.setReg(R.QueueNum, 128)],
    ];
    for (const [counter, mutate] of cases) {
      const drv = new MockDriver(new VirtioRng());
      expect(drv.negotiate()).toBe(true);
      drv.setupQueue(0, 8);
      drv.setReg(R.QueueReady, 0);
      mutate(drv);
      drv.setReg(R.QueueReady, 1);
      expect(drv.reg(R.QueueReady)).toBe(0);
      expect(drv.transport.counters[counter]).toBe(1);
      expect(drv.status() & NEEDS_RESET).toBe(NEEDS_RESET);
      // Not yet DRIVER_OK: no config interrupt.
      expect(drv.ackInterrupt()).toBe(0);
      // Reset recovers the device.
      drv.setReg(R.Status, 0);
      expect(drv.status()).toBe(0);
      drv.init({ queueSize: () => 8 });
      const q = drv.queue(0);
      q.addBuffers([], [4]);
      q.kick();
      expect(q.collect()).toHaveLength(1);
    }
  });
});

describe("gather/scatter", () => {
  it("copy across buffer boundaries with an offset", () => {
    const bufs = [new Uint8Array(3), new Uint8Array(0), new Uint8Array(5)];
    expect(scatter(bufs, 2, Uint8Array.of(1, 2, 3, 4, 5, 6, 7))).toBe(6);
    expect(Array.from(bufs[0] as Uint8Array)).toEqual([0, 0, 1]);
    expect(Array.from(bufs[2] as Uint8Array)).toEqual([2, 3, 4, 5, 6]);
    const out = new Uint8Array(4);
    expect(gather(bufs, 1, out)).toBe(4);
    expect(Array.from(out)).toEqual([0, 1, 2, 3]);
    expect(gather(bufs, 100, out)).toBe(0);
  });
});
