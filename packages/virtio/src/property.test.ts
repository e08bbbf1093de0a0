// Property tests: random rings and descriptor tables never make a device
// throw, and the counters stay consistent with what happened.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryBlockBackend } from "./backends/block.js";
import { VirtioStatus } from "./constants.js";
import { GuestErrorCounter } from "./counters.js";
import type { VirtioDevice } from "./device.js";
import { VirtioBalloon } from "./devices/balloon.js";
import { VirtioBlk, VirtioBlkType } from "./devices/blk.js";
import { VirtioConsole } from "./devices/console.js";
import { VirtioRng } from "./devices/rng.js";
import { VirtioMmioReg } from "./mmio.js";
import { type MockDriver, mockDriver, settle } from "./testing/index.js";

const STRUCTURAL: GuestErrorCounter[] = [
  GuestErrorCounter.descIndexOutOfRange,
  GuestErrorCounter.descriptorLoop,
  GuestErrorCounter.chainTooLong,
  GuestErrorCounter.nestedIndirect,
  GuestErrorCounter.indirectNotAllowed,
  GuestErrorCounter.badIndirectTable,
  GuestErrorCounter.addressOutsideRam,
  GuestErrorCounter.readableAfterWritable,
  GuestErrorCounter.availIdxJump,
  GuestErrorCounter.wrongDirection,
];

const descArb = (size: number) =>
  fc.record({
    // Mostly inside the buffer area (see below), sometimes anywhere.
    addr: fc.oneof(fc.integer({ min: 0, max: 0xf000 }), fc.integer({ min: 0, max: 2 ** 40 })),
    inArea: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
    len: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 600 }), weight: 9 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }), weight: 1 },
    ),
    flags: fc.oneof(
      { arbitrary: fc.constantFrom(0, 1, 2, 3, 2, 3), weight: 8 },
      { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 1 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
    ),
    next: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: size - 1 }), weight: 9 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
    ),
  });

const ringArb = fc.integer({ min: 0, max: 4 }).chain((log) => {
  const size = 1 << log;
  return fc.record({
    size: fc.constant(size),
    descs: fc.array(descArb(size), { minLength: size, maxLength: size }),
    indirect: fc.array(descArb(8), { minLength: 8, maxLength: 8 }),
    ring: fc.array(
      fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: size - 1 }), weight: 9 },
        { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
      ),
      { minLength: size, maxLength: size },
    ),
    availIdx: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: size }), weight: 9 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
    ),
    usedEvent: fc.integer({ min: 0, max: 0xffff }),
    eventIdx: fc.boolean(),
    indirectFeature: fc.boolean(),
  });
});

type Ring = typeof ringArb extends fc.Arbitrary<infer T> ? T : never;

function load(drv: MockDriver, r: Ring): { area: number; table: number } {
  const q = drv.queue(0);
  const area = drv.ram.alloc(0x10000, 16);
  const table = drv.ram.alloc(16 * 8, 16);
  const place = (d: Ring["descs"][number]) => ({
    addr: d.inArea ? area + (d.addr % 0xf000) : d.addr,
    len: d.inArea ? d.len % 0x1000 : d.len,
    flags: d.flags,
    next: d.next,
  });
  r.indirect.forEach((d, i) => {
    q.writeDesc(i, place(d), table);
  });
  r.descs.forEach((d, i) => {
    // Some descriptors point at the indirect table.
    const p = place(d);
    q.writeDesc(i, d.flags & 4 && d.inArea ? { ...p, addr: table, len: 16 * (1 + (d.len % 8)) } : p);
  });
  for (let i = 0; i < r.size; i++) q.publish(r.ring[i] as number);
  q.setAvailIdx(r.availIdx);
  q.setUsedEvent(r.usedEvent);
  return { area, table };
}

function checkInvariants(drv: MockDriver, r: Ring): void {
  const c = drv.transport.counters;
  const structural = STRUCTURAL.reduce((s, k) => s + c[k], 0) + c.unalignedRing + c.ringOutsideRam + c.badQueueSize;
  expect(c.needsReset).toBeLessThanOrEqual(1);
  expect(structural).toBeGreaterThanOrEqual(c.needsReset);
  expect((drv.status() & VirtioStatus.DEVICE_NEEDS_RESET) !== 0).toBe(c.needsReset === 1);
  const q = drv.queue(0);
  const used = q.usedIdx();
  // The device never returns more than the driver made available.
  expect(used).toBeLessThanOrEqual(Math.min(r.availIdx, r.size));
  for (const u of q.collect()) expect(u.id).toBeLessThan(r.size);
}

function bringUp(device: VirtioDevice, r: Ring): MockDriver {
  return mockDriver(device, {
    ramSize: 1 << 18,
    queueSize: () => r.size,
    acceptFeatures: (f) => {
      let a = f;
      if (!r.eventIdx) a &= ~(1n << 29n);
      if (!r.indirectFeature) a &= ~(1n << 28n);
      return a;
    },
  });
}

describe("property: random rings", () => {
  it("virtio-rng never throws, never writes the driver area, counters stay consistent", () => {
    fc.assert(
      fc.property(ringArb, (r) => {
        const drv = bringUp(new VirtioRng({ source: (b) => b.fill(1) }), r);
        load(drv, r);
        const q = drv.queue(0);
        const descBefore = drv.ram.read(q.desc, 16 * r.size);
        const availBefore = drv.ram.read(q.avail, 6 + 2 * r.size);
        q.kick();
        q.kick();
        expect(drv.ram.read(q.desc, 16 * r.size)).toEqual(descBefore);
        expect(drv.ram.read(q.avail, 6 + 2 * r.size)).toEqual(availBefore);
        checkInvariants(drv, r);
      }),
      { numRuns: 300 },
    );
  });

  it("virtio-blk never throws or rejects, counters stay consistent", async () => {
    await fc.assert(
      fc.asyncProperty(
        ringArb,
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 200 }),
        async (r, type, sector) => {
          const drv = bringUp(new VirtioBlk({ backend: new MemoryBlockBackend(64 * 1024) }), r);
          const { area } = load(drv, r);
          // Give readable buffers at the start of the area a plausible header.
          const hdr = drv.ram.dv(area, 16);
          hdr.setUint32(
            0,
            [VirtioBlkType.IN, VirtioBlkType.OUT, VirtioBlkType.FLUSH, VirtioBlkType.GET_ID, type][type % 5] as number,
            true,
          );
          hdr.setBigUint64(8, BigInt(sector), true);
          drv.queue(0).kick();
          await settle(3);
          checkInvariants(drv, r);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("property: random register traffic", () => {
  const op = fc.record({
    write: fc.boolean(),
    offset: fc.oneof(
      fc.integer({ min: 0, max: 0x40 }).map((n) => n * 4),
      fc.integer({ min: 0, max: 0x1ff }),
    ),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
    value: fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffff_ffff })),
  });

  it("never throws; the line follows InterruptStatus; reset always recovers", () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1, 2), fc.array(op, { maxLength: 200 }), (which, ops) => {
        const device = [new VirtioRng(), new VirtioConsole(), new VirtioBalloon()][which] as VirtioDevice;
        const drv = mockDriver(device, { ramSize: 1 << 18 });
        for (const o of ops) {
          if (o.write) drv.transport.write(o.offset, o.size, o.value);
          else drv.transport.read(o.offset, o.size);
          expect(drv.transport.interruptLevel).toBe(drv.reg(VirtioMmioReg.InterruptStatus) !== 0);
        }
        drv.setReg(VirtioMmioReg.Status, 0);
        expect(drv.status()).toBe(0);
        expect(drv.transport.interruptLevel).toBe(false);
        // A fresh bring-up works after whatever happened.
        drv.init({ queueSize: () => 4 });
        expect(drv.status() & VirtioStatus.DRIVER_OK).toBe(VirtioStatus.DRIVER_OK);
      }),
      { numRuns: 200 },
    );
  });
});
