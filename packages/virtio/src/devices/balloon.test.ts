import { describe, expect, it } from "vitest";
import { VirtioInterrupt } from "../constants.js";
import { MockDriver, mockDriver, settle } from "../testing/index.js";
import { VIRTIO_BALLOON_PAGE_SIZE, VirtioBalloon, VirtioBalloonFeature, VirtioBalloonStatTag } from "./balloon.js";

function pfnList(pfns: number[]): Uint8Array {
  const b = new Uint8Array(4 * pfns.length);
  const v = new DataView(b.buffer);
  for (const [i, p] of pfns.entries()) v.setUint32(4 * i, p, true);
  return b;
}

function statsBuffer(entries: [number, bigint][]): Uint8Array {
  const b = new Uint8Array(10 * entries.length);
  const v = new DataView(b.buffer);
  entries.forEach(([tag, val], i) => {
    v.setUint16(10 * i, tag, true);
    v.setBigUint64(10 * i + 2, val, true);
  });
  return b;
}

describe("virtio-balloon", () => {
  it("inflates: zero-fills the given pages, counts them; deflate gives them back", () => {
    const dev = new VirtioBalloon();
    const drv = mockDriver(dev, { ramSize: 1 << 21 });
    const pa = drv.ram.alloc(3 * VIRTIO_BALLOON_PAGE_SIZE, VIRTIO_BALLOON_PAGE_SIZE);
    drv.ram.at(pa, 3 * VIRTIO_BALLOON_PAGE_SIZE).fill(0xab);
    const pfn = pa / VIRTIO_BALLOON_PAGE_SIZE;
    dev.setTarget(2);
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.CONFIG_CHANGE);
    expect(drv.config(0, 4)).toBe(2);
    drv.queue(0).addBuffers([pfnList([pfn, pfn + 1])], []);
    drv.queue(0).kick();
    expect(drv.queue(0).collect()).toHaveLength(1);
    expect(drv.ram.at(pa, 2 * VIRTIO_BALLOON_PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(drv.ram.at(pa + 2 * VIRTIO_BALLOON_PAGE_SIZE, 1)[0]).toBe(0xab);
    drv.setConfig(4, 4, 2);
    expect(dev.actual).toBe(2);
    expect(dev.stats).toMatchObject({ balloonPages: 2, inflatedPages: 2, releasedBytes: 8192, badPfns: 0 });
    drv.queue(1).addBuffers([pfnList([pfn, pfn + 7])], []);
    drv.queue(1).kick();
    expect(dev.stats).toMatchObject({ balloonPages: 1, deflatedPages: 1, badPfns: 1 });
  });

  it("counts PFNs outside guest RAM without touching anything", () => {
    const dev = new VirtioBalloon();
    const drv = mockDriver(dev);
    drv.queue(0).addBuffers([pfnList([0x10, 0xffff_ffff])], []);
    drv.queue(0).kick();
    expect(dev.stats.badPfns).toBe(2);
    expect(dev.stats.balloonPages).toBe(0);
  });

  it("reads guest statistics from the stats queue and requests fresh ones", async () => {
    const dev = new VirtioBalloon();
    const drv = new MockDriver(dev);
    expect(drv.negotiate()).toBe(true);
    expect((drv.features >> BigInt(VirtioBalloonFeature.STATS_VQ)) & 1n).toBe(1n);
    for (let i = 0; i < 3; i++) drv.setupQueue(i, 8);
    // Linux queues the first stats buffer before DRIVER_OK.
    const sq = drv.queue(2);
    sq.addBuffers([statsBuffer([[VirtioBalloonStatTag.freeMemory, 1000n]])], []);
    sq.kick();
    drv.driverOk();
    expect(dev.guestMemoryStats.values.freeMemory).toBe(1000n);
    const pending = dev.requestStats();
    // The device returned the buffer: the driver refills it (stats_handle_request) and re-adds it.
    expect(sq.collect()).toHaveLength(1);
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.USED_BUFFER);
    sq.addBuffers(
      [
        statsBuffer([
          [VirtioBalloonStatTag.freeMemory, 900n],
          [VirtioBalloonStatTag.totalMemory, 4096n],
          [99, 7n],
        ]),
      ],
      [],
    );
    sq.kick();
    const s = await pending;
    expect(s.values).toEqual({ freeMemory: 900n, totalMemory: 4096n, tag99: 7n });
    expect(s.reports).toBe(2);
  });

  it("forgets the balloon on reset", async () => {
    const dev = new VirtioBalloon({ statsQueue: false });
    const drv = mockDriver(dev);
    expect(drv.transport.queues).toHaveLength(2);
    const pa = drv.ram.alloc(VIRTIO_BALLOON_PAGE_SIZE, VIRTIO_BALLOON_PAGE_SIZE);
    drv.queue(0).addBuffers([pfnList([pa / VIRTIO_BALLOON_PAGE_SIZE])], []);
    drv.queue(0).kick();
    expect(dev.stats.balloonPages).toBe(1);
    expect(await dev.requestStats()).toEqual({ values: {}, reports: 0 });
    drv.setReg(0x70, 0);
    await settle(1);
    expect(dev.stats.balloonPages).toBe(0);
  });
});
