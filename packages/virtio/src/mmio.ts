// virtio-mmio transport, version 2 (virtio 1.2 §4.2.2).

import { featureBit, VirtioFeature, VirtioInterrupt, VirtioStatus } from "./constants.js";
import { type GuestErrorCounter, type GuestErrorCounters, newCounters } from "./counters.js";
import type { VirtioDevice, VirtioDeviceContext } from "./device.js";
import { parseConfig, VirtioError, VirtioErrorCode } from "./errors.js";
import type { GuestMemory } from "./memory.js";
import { SplitQueue } from "./virtqueue.js";
import * as z from "./zod.js";

/** Register offsets (§4.2.2 Table 4.1). */
export const VirtioMmioReg = {
  /** 0x74726976 ("virt"). R */
  MagicValue: 0x000,
  /** 2 for this (non-legacy) transport. R */
  Version: 0x004,
  /** Device type (§5). R */
  DeviceID: 0x008,
  /** Subsystem vendor. R */
  VendorID: 0x00c,
  /** 32 feature bits selected by DeviceFeaturesSel. R */
  DeviceFeatures: 0x010,
  DeviceFeaturesSel: 0x014,
  /** 32 accepted bits selected by DriverFeaturesSel. W */
  DriverFeatures: 0x020,
  DriverFeaturesSel: 0x024,
  QueueSel: 0x030,
  /** Largest queue size for QueueSel, 0 when the queue does not exist. R */
  QueueNumMax: 0x034,
  QueueNum: 0x038,
  QueueReady: 0x044,
  /** Written with the queue index. W */
  QueueNotify: 0x050,
  InterruptStatus: 0x060,
  InterruptACK: 0x064,
  Status: 0x070,
  QueueDescLow: 0x080,
  QueueDescHigh: 0x084,
  QueueDriverLow: 0x090,
  QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0,
  QueueDeviceHigh: 0x0a4,
  SHMSel: 0x0ac,
  SHMLenLow: 0x0b0,
  SHMLenHigh: 0x0b4,
  SHMBaseLow: 0x0b8,
  SHMBaseHigh: 0x0bc,
  QueueReset: 0x0c0,
  ConfigGeneration: 0x0fc,
  /** Device-specific configuration space starts here. */
  Config: 0x100,
} as const;

export const VIRTIO_MMIO_MAGIC = 0x74726976;
export const VIRTIO_MMIO_VERSION = 2;
/** Size of one virtio-mmio slot on the virt board. */
export const VIRTIO_MMIO_SLOT_SIZE = 0x1000;

/** Interrupt line: a callback or anything with `set(level)` (e.g. a PLIC source). */
export type VirtioIrq = ((level: boolean) => void) | { set(level: boolean): void };

export interface VirtioMmioOptions {
  device: VirtioDevice;
  memory: GuestMemory;
  /**
   * Level-sensitive line, high while InterruptStatus is non-zero. May be
   * given later with attachIrq() (when the line comes from placing the device).
   */
  irq?: VirtioIrq;
  /** VendorID register (default 0x554d4551, what QEMU reports; Linux ignores it). */
  vendorId?: number;
}

const OptionsSchema = z.object({
  device: z.custom<VirtioDevice>((d) => typeof d === "object" && d !== null && "deviceId" in d),
  memory: z.custom<GuestMemory>(
    (m) => typeof m === "object" && m !== null && typeof (m as GuestMemory).view === "function",
  ),
  irq: z.optional(
    z.custom<VirtioIrq | undefined>(
      (i) =>
        i === undefined ||
        typeof i === "function" ||
        (typeof i === "object" && i !== null && typeof (i as { set: unknown }).set === "function"),
    ),
  ),
  vendorId: z.optional(z.int().check(z.minimum(0), z.maximum(0xffff_ffff))),
});

/** Transport-level feature bits this implementation always offers. */
const TRANSPORT_FEATURES =
  featureBit(VirtioFeature.VERSION_1) | featureBit(VirtioFeature.INDIRECT_DESC) | featureBit(VirtioFeature.EVENT_IDX);

interface LiveContext extends VirtioDeviceContext {
  live: boolean;
}

/**
 * One virtio-mmio register window (one slot). Call `read`/`write` from MMIO
 * exits at offsets relative to the slot base. Never throws on guest input.
 */
export class VirtioMmioTransport {
  /** Guest misbehaviour, by name. */
  readonly counters: GuestErrorCounters = newCounters();
  readonly device: VirtioDevice;
  readonly queues: readonly SplitQueue[];
  /** All feature bits offered to the driver. */
  readonly offeredFeatures: bigint;
  private readonly memory: GuestMemory;
  private setLine: (level: boolean) => void = () => {};
  private readonly vendorId: number;
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private lineLevel = false;
  private generation = 0;
  private ctx: LiveContext | undefined;

  constructor(options: VirtioMmioOptions) {
    const o = parseConfig(OptionsSchema, options, "virtio-mmio transport");
    this.device = o.device;
    this.memory = o.memory;
    if (o.irq) this.attachIrq(o.irq);
    this.vendorId = o.vendorId ?? 0x554d4551;
    const sizes = this.device.queueMaxSizes;
    if (sizes.length === 0 || sizes.some((s) => !Number.isInteger(s) || s < 1 || s > 32768 || (s & (s - 1)) !== 0)) {
      throw new VirtioError(
        VirtioErrorCode.CONFIG_INVALID,
        { queueMaxSizes: sizes },
        "queue sizes must be powers of 2 in 1..32768",
      );
    }
    this.queues = sizes.map((max, i) => new SplitQueue(i, max, (c) => this.needsReset(c)));
    this.offeredFeatures = this.device.deviceFeatures | TRANSPORT_FEATURES;
    this.device.bind({ configChanged: () => this.configChanged() });
  }

  /** Connects the interrupt line and drives it to the current level. */
  attachIrq(irq: VirtioIrq): void {
    this.setLine = typeof irq === "function" ? irq : (level) => irq.set(level);
    this.setLine(this.lineLevel);
  }

  /** Device status register (§2.1). */
  get deviceStatus(): number {
    return this.status;
  }

  /** Features the driver accepted (meaningful once FEATURES_OK is set). */
  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** Current level of the interrupt line. */
  get interruptLevel(): boolean {
    return this.lineLevel;
  }

  /** ConfigGeneration register. */
  get configGeneration(): number {
    return this.generation;
  }

  /** MMIO read. Registers are 32-bit; the config space also allows 1, 2 and 8 bytes. */
  read(offset: number, size: 1 | 2 | 4 | 8): number | bigint {
    if (offset >= VirtioMmioReg.Config) return this.readConfig(offset - VirtioMmioReg.Config, size);
    if (size !== 4 || offset % 4 !== 0) return this.bad(size === 8 ? 0n : 0);
    const R = VirtioMmioReg;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case R.MagicValue:
        return VIRTIO_MMIO_MAGIC;
      case R.Version:
        return VIRTIO_MMIO_VERSION;
      case R.DeviceID:
        return this.device.deviceId;
      case R.VendorID:
        return this.vendorId;
      case R.DeviceFeatures:
        return this.deviceFeaturesSel > 1
          ? 0
          : Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case R.QueueNumMax:
        return q ? q.maxSize : 0;
      case R.QueueNum:
        return q ? q.size : 0;
      case R.QueueReady:
        return q?.ready ? 1 : 0;
      case R.InterruptStatus:
        return this.interruptStatus;
      case R.Status:
        return this.status;
      case R.QueueDescLow:
        return q ? q.descAddr % 0x1_0000_0000 : 0;
      case R.QueueDescHigh:
        return q ? Math.floor(q.descAddr / 0x1_0000_0000) : 0;
      case R.QueueDriverLow:
        return q ? q.driverAddr % 0x1_0000_0000 : 0;
      case R.QueueDriverHigh:
        return q ? Math.floor(q.driverAddr / 0x1_0000_0000) : 0;
      case R.QueueDeviceLow:
        return q ? q.deviceAddr % 0x1_0000_0000 : 0;
      case R.QueueDeviceHigh:
        return q ? Math.floor(q.deviceAddr / 0x1_0000_0000) : 0;
      case R.SHMLenLow:
      case R.SHMLenHigh:
      case R.SHMBaseLow:
      case R.SHMBaseHigh:
        // §4.2.2: no shared memory region with this SHMSel reads as length -1.
        return 0xffff_ffff;
      case R.QueueReset:
        return 0;
      case R.ConfigGeneration:
        return this.generation;
      default:
        return this.bad(0);
    }
  }

  /** MMIO write. Never throws; bad accesses are counted. */
  write(offset: number, size: 1 | 2 | 4 | 8, value: number | bigint): void {
    if (offset >= VirtioMmioReg.Config) {
      this.writeConfig(offset - VirtioMmioReg.Config, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) {
      this.bad(0);
      return;
    }
    const v = Number(BigInt.asUintN(32, BigInt(value)));
    const R = VirtioMmioReg;
    switch (offset) {
      case R.DeviceFeaturesSel:
        this.deviceFeaturesSel = v;
        return;
      case R.DriverFeatures:
        if (this.status & (VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK)) {
          this.count("statusProtocol");
          return;
        }
        if (this.driverFeaturesSel <= 1) {
          const shift = BigInt(32 * this.driverFeaturesSel);
          this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift);
        }
        return;
      case R.DriverFeaturesSel:
        this.driverFeaturesSel = v;
        return;
      case R.QueueSel:
        this.queueSel = v;
        return;
      case R.QueueNum:
      case R.QueueDescLow:
      case R.QueueDescHigh:
      case R.QueueDriverLow:
      case R.QueueDriverHigh:
      case R.QueueDeviceLow:
      case R.QueueDeviceHigh:
        this.writeQueueField(offset, v);
        return;
      case R.QueueReady:
        this.writeQueueReady(v);
        return;
      case R.QueueNotify:
        this.notify(v & 0xffff);
        return;
      case R.InterruptACK:
        this.interruptStatus &= ~v;
        this.updateLine();
        return;
      case R.Status:
        this.writeStatus(v & 0xff);
        return;
      case R.SHMSel:
        // No shared memory regions: every selector reads as absent.
        return;
      default:
        this.bad(0);
    }
  }

  /** Host-side reset (e.g. VM reboot): same as the driver writing 0 to Status. */
  reset(): void {
    if (this.ctx) this.ctx.live = false;
    this.ctx = undefined;
    this.device.reset();
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.interruptStatus = 0;
    this.updateLine();
  }

  private readConfig(offset: number, size: number): number | bigint {
    const cfg = this.device.config;
    if (![1, 2, 4, 8].includes(size) || offset + size > cfg.length) return this.bad(size === 8 ? 0n : 0);
    const dv = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
    switch (size) {
      case 1:
        return dv.getUint8(offset);
      case 2:
        return dv.getUint16(offset, true);
      case 4:
        return dv.getUint32(offset, true);
      default:
        return dv.getBigUint64(offset, true);
    }
  }

  private writeConfig(offset: number, size: number, value: number | bigint): void {
    const cfg = this.device.config;
    if (![1, 2, 4].includes(size) || offset + size > cfg.length) {
      this.bad(0);
      return;
    }
    const v = Number(BigInt.asUintN(8 * size, BigInt(value)));
    if (!this.device.writeConfig(offset, size, v)) this.count("badRegisterAccess");
  }

  private writeQueueField(offset: number, v: number): void {
    const q = this.queues[this.queueSel];
    // §4.2.3.2: queue registers only for an existing queue that is not ready.
    if (!q || q.ready) {
      this.count("queueRegisterMisuse");
      return;
    }
    const R = VirtioMmioReg;
    const HI = 0x1_0000_0000;
    switch (offset) {
      case R.QueueNum:
        q.size = v;
        return;
      case R.QueueDescLow:
        q.descAddr = Math.floor(q.descAddr / HI) * HI + v;
        return;
      case R.QueueDescHigh:
        q.descAddr = v * HI + (q.descAddr % HI);
        return;
      case R.QueueDriverLow:
        q.driverAddr = Math.floor(q.driverAddr / HI) * HI + v;
        return;
      case R.QueueDriverHigh:
        q.driverAddr = v * HI + (q.driverAddr % HI);
        return;
      case R.QueueDeviceLow:
        q.deviceAddr = Math.floor(q.deviceAddr / HI) * HI + v;
        return;
      case R.QueueDeviceHigh:
        q.deviceAddr = v * HI + (q.deviceAddr % HI);
        return;
    }
  }

  private writeQueueReady(v: number): void {
    const q = this.queues[this.queueSel];
    if (!q) {
      this.count("queueRegisterMisuse");
      return;
    }
    if ((v & 1) === 0) {
      q.ready = false;
      q.disable();
      return;
    }
    if (q.ready) return;
    const f = this.driverFeatures;
    const ok = q.enable(this.memory, {
      eventIdx: (f & featureBit(VirtioFeature.EVENT_IDX)) !== 0n,
      indirect: (f & featureBit(VirtioFeature.INDIRECT_DESC)) !== 0n,
    });
    // A refused layout leaves the queue not ready; the fault set NEEDS_RESET.
    if (!ok) q.ready = false;
    else if (this.ctx) this.device.notify(q.index);
  }

  private notify(index: number): void {
    const q = this.queues[index];
    if (!q) {
      this.count("badNotify");
      return;
    }
    // Before DRIVER_OK buffers wait until activation (§3.1.1, Linux's balloon kicks early).
    if (!this.ctx || !q.enabled) return;
    this.device.notify(index);
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const S = VirtioStatus;
    const old = this.status;
    // §2.1.2: the driver never clears a status bit (other than by writing 0).
    if ((old & ~S.DEVICE_NEEDS_RESET & ~v) !== 0) {
      this.count("statusProtocol");
      return;
    }
    let next = v | (old & S.DEVICE_NEEDS_RESET);
    if (next & S.FEATURES_OK && !(old & S.FEATURES_OK)) {
      const f = this.driverFeatures;
      // §6.1: VERSION_1 is required; §2.2.1: only offered bits may be accepted.
      if ((f & featureBit(VirtioFeature.VERSION_1)) === 0n || (f & ~this.offeredFeatures) !== 0n) {
        this.count("featuresRejected");
        next &= ~S.FEATURES_OK;
      }
    }
    if (next & S.DRIVER_OK && !(old & S.DRIVER_OK) && !(next & S.FEATURES_OK)) {
      this.count("statusProtocol");
      next &= ~S.DRIVER_OK;
    }
    this.status = next;
    if (next & S.DRIVER_OK && !(old & S.DRIVER_OK)) this.activate();
  }

  private activate(): void {
    const features = this.driverFeatures;
    const ctx: LiveContext = {
      memory: this.memory,
      features,
      queues: this.queues,
      live: true,
      hasFeature: (bit) => (features & featureBit(bit)) !== 0n,
      signalUsed: (q) => {
        if (ctx.live && q.needsInterrupt()) this.raise(VirtioInterrupt.USED_BUFFER);
      },
      count: (c) => {
        if (ctx.live) this.count(c);
      },
      fail: (c) => {
        if (ctx.live) this.needsReset(c);
      },
    };
    this.ctx = ctx;
    this.device.activate(ctx);
    // Buffers made available before DRIVER_OK are served now.
    for (const q of this.queues) if (ctx.live && q.enabled && q.pending() > 0) this.device.notify(q.index);
  }

  private configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    if (this.status & VirtioStatus.DRIVER_OK) this.raise(VirtioInterrupt.CONFIG_CHANGE);
  }

  private needsReset(counter: GuestErrorCounter): void {
    this.count(counter);
    if (this.status & VirtioStatus.DEVICE_NEEDS_RESET) return;
    this.counters.needsReset++;
    this.status |= VirtioStatus.DEVICE_NEEDS_RESET;
    // §2.1.2: with DRIVER_OK set, a configuration change notification follows.
    if (this.status & VirtioStatus.DRIVER_OK) this.raise(VirtioInterrupt.CONFIG_CHANGE);
  }

  private raise(bits: number): void {
    this.interruptStatus |= bits;
    this.updateLine();
  }

  private updateLine(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.lineLevel) {
      this.lineLevel = level;
      this.setLine(level);
    }
  }

  private count(counter: GuestErrorCounter): void {
    this.counters[counter]++;
  }

  private bad<T extends number | bigint>(v: T): T {
    this.counters.badRegisterAccess++;
    return v;
  }
}
