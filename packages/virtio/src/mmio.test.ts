import { describe, expect, it } from "vitest";
import { VirtioInterrupt, VirtioStatus } from "./constants.js";
import { VirtioBalloon } from "./devices/balloon.js";
import { VirtioRng } from "./devices/rng.js";
import { VirtioError } from "./errors.js";
import { arrayGuestMemory } from "./memory.js";
import { VirtioMmioReg as R, VirtioMmioTransport } from "./mmio.js";
import { MockDriver } from "./testing/index.js";

const S = VirtioStatus;

describe("virtio-mmio v2 registers", () => {
  it("identifies itself as a version 2 device", () => {
    const drv = new MockDriver(new VirtioRng());
    expect(drv.reg(R.MagicValue)).toBe(0x74726976);
    expect(drv.reg(R.Version)).toBe(2);
    expect(drv.reg(R.DeviceID)).toBe(4);
    expect(drv.reg(R.VendorID)).toBe(0x554d4551);
    expect(drv.reg(R.ConfigGeneration)).toBe(0);
    // No shared memory regions: length reads as -1 (§4.2.2).
    drv.setReg(R.SHMSel, 0);
    expect(drv.reg(R.SHMLenLow)).toBe(0xffff_ffff);
    expect(drv.reg(R.SHMLenHigh)).toBe(0xffff_ffff);
  });

  it("offers VERSION_1, INDIRECT_DESC and EVENT_IDX through DeviceFeaturesSel", () => {
    const drv = new MockDriver(new VirtioRng());
    const f = drv.readDeviceFeatures();
    expect(f).toBe((1n << 32n) | (1n << 28n) | (1n << 29n));
    drv.setReg(R.DeviceFeaturesSel, 2);
    expect(drv.reg(R.DeviceFeatures)).toBe(0);
  });

  it("reports QueueNumMax per queue and 0 for absent queues", () => {
    const drv = new MockDriver(new VirtioBalloon());
    for (const [sel, max] of [
      [0, 128],
      [2, 128],
      [3, 0],
    ] as const) {
      drv.setReg(R.QueueSel, sel);
      expect(drv.reg(R.QueueNumMax)).toBe(max);
    }
  });

  it("refuses FEATURES_OK without VERSION_1 (legacy drivers) and with unoffered bits", () => {
    const drv = new MockDriver(new VirtioRng());
    expect(drv.negotiate((f) => f & ~(1n << 32n))).toBe(false);
    expect(drv.transport.counters.featuresRejected).toBe(1);
    expect(drv.negotiate((f) => f | (1n << 40n))).toBe(false);
    expect(drv.transport.counters.featuresRejected).toBe(2);
    expect(drv.negotiate()).toBe(true);
    expect(drv.transport.negotiatedFeatures).toBe(drv.readDeviceFeatures());
  });

  it("keeps the status state machine: no DRIVER_OK before FEATURES_OK, no clearing bits", () => {
    const drv = new MockDriver(new VirtioRng());
    drv.setReg(R.Status, S.ACKNOWLEDGE | S.DRIVER | S.DRIVER_OK);
    expect(drv.status()).toBe(S.ACKNOWLEDGE | S.DRIVER);
    expect(drv.transport.counters.statusProtocol).toBe(1);
    drv.setReg(R.Status, S.ACKNOWLEDGE);
    expect(drv.status()).toBe(S.ACKNOWLEDGE | S.DRIVER);
    expect(drv.transport.counters.statusProtocol).toBe(2);
    // Features cannot change after FEATURES_OK.
    expect(drv.negotiate()).toBe(true);
    drv.setReg(R.DriverFeatures, 0);
    expect(drv.transport.counters.statusProtocol).toBe(3);
    drv.setReg(R.Status, S.FAILED | drv.status());
    expect(drv.status() & S.FAILED).toBe(S.FAILED);
  });

  it("resets everything when 0 is written to Status", () => {
    const drv = new MockDriver(new VirtioRng()).init();
    const q = drv.queue(0);
    q.addBuffers([], [4]);
    q.kick();
    expect(drv.transport.interruptLevel).toBe(true);
    drv.setReg(R.Status, 0);
    expect(drv.status()).toBe(0);
    expect(drv.transport.interruptLevel).toBe(false);
    expect(drv.reg(R.InterruptStatus)).toBe(0);
    drv.setReg(R.QueueSel, 0);
    expect(drv.reg(R.QueueReady)).toBe(0);
    expect(drv.reg(R.QueueDescLow)).toBe(0);
    expect(drv.transport.negotiatedFeatures).toBe(0n);
    // Notifies after reset do nothing.
    q.kick();
    expect(drv.transport.interruptLevel).toBe(false);
  });

  it("counts bad register accesses and never throws", () => {
    const drv = new MockDriver(new VirtioRng());
    expect(drv.transport.read(R.MagicValue, 2)).toBe(0);
    expect(drv.transport.read(0x0e0, 4)).toBe(0);
    drv.transport.write(R.Status, 1, 1);
    drv.transport.write(0x0e0, 4, 1);
    // rng has no config space.
    expect(drv.transport.read(R.Config, 4)).toBe(0);
    expect(drv.transport.counters.badRegisterAccess).toBe(5);
    expect(drv.status()).toBe(0);
  });

  it("refuses queue register writes while the queue is ready and for absent queues", () => {
    const drv = new MockDriver(new VirtioRng()).init();
    drv.setReg(R.QueueSel, 0);
    drv.setReg(R.QueueNum, 2);
    drv.setReg(R.QueueSel, 5);
    drv.setReg(R.QueueDescLow, 0x8000_0000);
    drv.setReg(R.QueueReady, 1);
    expect(drv.transport.counters.queueRegisterMisuse).toBe(3);
    drv.setReg(R.QueueNotify, 7);
    expect(drv.transport.counters.badNotify).toBe(1);
    expect(drv.status() & S.DEVICE_NEEDS_RESET).toBe(0);
  });

  it("bumps ConfigGeneration and raises a config interrupt when the device config changes", () => {
    const balloon = new VirtioBalloon();
    const drv = new MockDriver(balloon);
    balloon.setTarget(10);
    expect(drv.reg(R.ConfigGeneration)).toBe(1);
    // Before DRIVER_OK: no interrupt.
    expect(drv.reg(R.InterruptStatus)).toBe(0);
    drv.init();
    balloon.setTarget(20);
    expect(drv.reg(R.ConfigGeneration)).toBe(2);
    expect(drv.config(0, 4)).toBe(20);
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.CONFIG_CHANGE);
    expect(drv.transport.interruptLevel).toBe(false);
  });

  it("reads the config space with 1, 2, 4 and 8-byte accesses", () => {
    const balloon = new VirtioBalloon();
    const drv = new MockDriver(balloon);
    balloon.setTarget(0x0403_0201);
    expect(drv.config(0, 1)).toBe(1);
    expect(drv.config(1, 2)).toBe(0x0302);
    expect(drv.config(0, 4)).toBe(0x0403_0201);
    expect(drv.config(0, 8)).toBe(0x0403_0201n);
    expect(drv.config(14, 4)).toBe(0);
    expect(drv.transport.counters.badRegisterAccess).toBe(1);
  });

  it("accepts the interrupt line later (attachIrq) and drives it to the current level", () => {
    const t = new VirtioMmioTransport({
      device: new VirtioRng(),
      memory: arrayGuestMemory(0x8000_0000, new Uint8Array(4096)),
    });
    const levels: boolean[] = [];
    t.attachIrq({ set: (l) => levels.push(l) });
    expect(levels).toEqual([false]);
  });

  it("rejects invalid host configuration with typed errors", () => {
    expect(() => new VirtioMmioTransport({ device: new VirtioRng(), memory: {} as never })).toThrow(VirtioError);
    const dev = new VirtioRng();
    new VirtioMmioTransport({ device: dev, memory: arrayGuestMemory(0, new Uint8Array(16)) });
    try {
      new VirtioMmioTransport({ device: dev, memory: arrayGuestMemory(0, new Uint8Array(16)) });
      expect.unreachable();
    } catch (e) {
      expect((e as VirtioError).code).toBe("INVALID_STATE");
    }
    expect(() => new VirtioRng({ queueSize: 3 })).toThrow(/CONFIG_INVALID/);
  });
});
