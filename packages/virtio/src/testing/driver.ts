// A driver-side mock: lays out split queues in a fake guest RAM, negotiates
// features through the virtio-mmio registers in Linux's order
// (drivers/virtio/virtio_mmio.c + virtio.c), adds buffers and collects used
// elements. For tests of devices without a guest.
import { featureBit, VirtioFeature, VirtioStatus, VirtqDescFlag } from "../constants.js";
import type { VirtioDevice } from "../device.js";
import { arrayGuestMemory, type GuestMemory } from "../memory.js";
import { VirtioMmioReg as R, VirtioMmioTransport } from "../mmio.js";
import { splitQueueLayout } from "../virtqueue.js";

/** Guest RAM base on the virt board. */
export const MOCK_RAM_BASE = 0x8000_0000;

/** A flat fake guest RAM with a bump allocator. */
export class MockGuestRam {
  readonly bytes: Uint8Array;
  readonly memory: GuestMemory;
  private next: number;

  constructor(
    size = 1 << 20,
    readonly base = MOCK_RAM_BASE,
    shared = false,
  ) {
    this.bytes = new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
    this.memory = arrayGuestMemory(base, this.bytes);
    this.next = base;
  }

  private readonly freed = new Map<string, number[]>();

  /** Allocates `size` bytes aligned to `align`; returns the guest-physical address. */
  alloc(size: number, align = 16): number {
    const reuse = this.freed.get(`${size}/${align}`)?.pop();
    if (reuse !== undefined) return reuse;
    const pa = Math.ceil(this.next / align) * align;
    if (pa + size > this.base + this.bytes.length) throw new Error(`mock RAM exhausted (${size} bytes)`);
    this.next = pa + size;
    return pa;
  }

  /** Returns a block from alloc(size, align) for reuse by an allocation of the same size and alignment. */
  free(pa: number, size: number, align = 16): void {
    const key = `${size}/${align}`;
    const list = this.freed.get(key);
    if (list) list.push(pa);
    else this.freed.set(key, [pa]);
  }

  /** Live view of [pa, pa+len). */
  at(pa: number, len: number): Uint8Array {
    const v = this.memory.view(pa, len);
    if (!v) throw new Error(`mock RAM: 0x${pa.toString(16)}+${len} outside RAM`);
    return v;
  }

  dv(pa: number, len: number): DataView {
    const v = this.at(pa, len);
    return new DataView(v.buffer, v.byteOffset, v.byteLength);
  }

  write(pa: number, data: Uint8Array): void {
    this.at(pa, data.length).set(data);
  }

  read(pa: number, len: number): Uint8Array {
    return this.at(pa, len).slice();
  }
}

/** One used element as the mock driver collected it. */
export interface MockUsed {
  /** Head descriptor id, as returned by addBuffers(). */
  readonly id: number;
  /** Bytes the device reported written. */
  readonly len: number;
  /** Copies of the device-writable buffers, in order. */
  readonly written: Uint8Array[];
  /** The token passed to addBuffers(). */
  readonly token: unknown;
}

export interface AddOptions {
  /** Put the chain in an indirect table (needs VIRTIO_F_INDIRECT_DESC). */
  indirect?: boolean;
  /** Anything to recognise the request by in the used element. */
  token?: unknown;
}

interface Outstanding {
  descs: number[];
  blocks: { pa: number; size: number; align: number }[];
  writable: { pa: number; len: number }[];
  token: unknown;
}

/** The driver's view of one split queue. */
export class MockQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private free: number[];
  private availIdx = 0;
  private lastUsed = 0;
  private readonly outstanding = new Map<number, Outstanding>();

  constructor(
    readonly driver: MockDriver,
    readonly index: number,
    readonly size: number,
  ) {
    const ram = driver.ram;
    const lay = splitQueueLayout(size);
    this.desc = ram.alloc(lay.desc, 16);
    this.avail = ram.alloc(lay.avail, 2);
    this.used = ram.alloc(lay.used, 4);
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  /** Free descriptors left in the table. */
  get freeDescriptors(): number {
    return this.free.length;
  }

  /** Writes descriptor `i` of the table at `table` (default: the queue's table). */
  writeDesc(i: number, d: { addr: number; len: number; flags?: number; next?: number }, table = this.desc): void {
    const v = this.driver.ram.dv(table + 16 * i, 16);
    v.setUint32(0, d.addr % 0x1_0000_0000, true);
    v.setUint32(4, Math.floor(d.addr / 0x1_0000_0000), true);
    v.setUint32(8, d.len, true);
    v.setUint16(12, d.flags ?? 0, true);
    v.setUint16(14, d.next ?? 0, true);
  }

  /** Puts `head` in the next avail slot and publishes avail.idx (no kick). */
  publish(head: number): void {
    const ram = this.driver.ram;
    ram.dv(this.avail + 4 + 2 * (this.availIdx % this.size), 2).setUint16(0, head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    ram.dv(this.avail, 4).setUint16(2, this.availIdx, true);
  }

  /** Sets avail.idx directly (to test a jumping index). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.driver.ram.dv(this.avail, 4).setUint16(2, this.availIdx, true);
  }

  /** avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT = 1). */
  setAvailFlags(flags: number): void {
    this.driver.ram.dv(this.avail, 2).setUint16(0, flags, true);
  }

  /** used_event (only meaningful with VIRTIO_F_EVENT_IDX). */
  setUsedEvent(v: number): void {
    this.driver.ram.dv(this.avail + 4 + 2 * this.size, 2).setUint16(0, v, true);
  }

  /** avail_event as the device last wrote it. */
  availEvent(): number {
    return this.driver.ram.dv(this.used + 4 + 8 * this.size, 2).getUint16(0, true);
  }

  /** used.idx as the device last wrote it. */
  usedIdx(): number {
    return this.driver.ram.dv(this.used, 4).getUint16(2, true);
  }

  /**
   * Adds one chain: `out` buffers (device-readable, copied into fresh guest
   * memory) then writable buffers of the given lengths. Returns the head id.
   */
  addBuffers(out: readonly Uint8Array[], inLens: readonly number[], options: AddOptions = {}): number {
    const ram = this.driver.ram;
    const parts: { addr: number; len: number; write: boolean }[] = [];
    const blocks: { pa: number; size: number; align: number }[] = [];
    const alloc = (size: number, align: number): number => {
      const pa = ram.alloc(size, align);
      blocks.push({ pa, size, align });
      return pa;
    };
    for (const b of out) {
      const pa = alloc(Math.max(b.length, 1), 8);
      ram.write(pa, b);
      parts.push({ addr: pa, len: b.length, write: false });
    }
    const writable: { pa: number; len: number }[] = [];
    for (const len of inLens) {
      const pa = alloc(Math.max(len, 1), 8);
      ram.at(pa, len).fill(0xee);
      parts.push({ addr: pa, len, write: true });
      writable.push({ pa, len });
    }
    if (parts.length === 0) throw new Error("addBuffers: empty chain");
    let descs: number[];
    if (options.indirect) {
      const table = alloc(16 * parts.length, 16);
      parts.forEach((p, i) => {
        this.writeDesc(
          i,
          {
            addr: p.addr,
            len: p.len,
            flags: (p.write ? VirtqDescFlag.WRITE : 0) | (i + 1 < parts.length ? VirtqDescFlag.NEXT : 0),
            next: i + 1,
          },
          table,
        );
      });
      descs = this.take(1);
      this.writeDesc(descs[0] as number, { addr: table, len: 16 * parts.length, flags: VirtqDescFlag.INDIRECT });
    } else {
      descs = this.take(parts.length);
      parts.forEach((p, i) => {
        const last = i + 1 === parts.length;
        this.writeDesc(descs[i] as number, {
          addr: p.addr,
          len: p.len,
          flags: (p.write ? VirtqDescFlag.WRITE : 0) | (last ? 0 : VirtqDescFlag.NEXT),
          next: last ? 0 : (descs[i + 1] as number),
        });
      });
    }
    const head = descs[0] as number;
    this.outstanding.set(head, { descs, blocks, writable, token: options.token });
    this.publish(head);
    return head;
  }

  private take(n: number): number[] {
    if (this.free.length < n) throw new Error(`queue ${this.index}: no free descriptors (${n} needed)`);
    return this.free.splice(0, n);
  }

  /** Writes QueueNotify. */
  kick(): void {
    this.driver.transport.write(R.QueueNotify, 4, this.index);
  }

  /**
   * Collects used elements until `count` have arrived (polling across event-loop
   * turns, for asynchronous back ends); rejects after `timeoutMs`.
   */
  async waitUsed(count: number, timeoutMs = 5000): Promise<MockUsed[]> {
    const got: MockUsed[] = [];
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; ; polls++) {
      got.push(...this.collect());
      if (got.length >= count) return got;
      if (Date.now() > deadline)
        throw new Error(`queue ${this.index}: ${got.length}/${count} used elements after ${timeoutMs} ms`);
      // Promise callbacks and I/O first (cheap turns), then back off to timers.
      await new Promise<void>((r) => (polls < 1000 ? setImmediate(r) : setTimeout(r, 1)));
    }
  }

  /** Collects the used elements the device returned since the last call. */
  collect(): MockUsed[] {
    const ram = this.driver.ram;
    const out: MockUsed[] = [];
    const idx = this.usedIdx();
    while (this.lastUsed !== idx) {
      const e = ram.dv(this.used + 4 + 8 * (this.lastUsed % this.size), 8);
      const id = e.getUint32(0, true);
      const len = e.getUint32(4, true);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      const o = this.outstanding.get(id);
      out.push({ id, len, token: o?.token, written: (o?.writable ?? []).map((w) => ram.read(w.pa, w.len)) });
      if (o) {
        this.outstanding.delete(id);
        this.free.push(...o.descs);
        for (const b of o.blocks) ram.free(b.pa, b.size, b.align);
      }
    }
    if (this.driver.eventIdx) this.setUsedEvent(this.lastUsed);
    return out;
  }
}

export interface MockDriverOptions {
  /** RAM size of the fake guest (default 1 MiB). */
  ramSize?: number;
  /** Back RAM by a SharedArrayBuffer. */
  shared?: boolean;
  /** Which offered features to accept (default: all offered). */
  acceptFeatures?: (offered: bigint) => bigint;
  /** Queue sizes to program (default: QueueNumMax, capped at 64). */
  queueSize?: (index: number, max: number) => number;
  /** Queues to set up (default: all with QueueNumMax > 0). */
  queueCount?: number;
  /** Receives the device's GuestMemory.written() reports. */
  onWritten?: (pa: number, length: number) => void;
}

/** The mock driver bound to one transport. */
export class MockDriver {
  readonly ram: MockGuestRam;
  readonly transport: VirtioMmioTransport;
  readonly queues: MockQueue[] = [];
  /** Every level change of the interrupt line. */
  readonly irqEdges: boolean[] = [];
  features = 0n;

  constructor(device: VirtioDevice, options: MockDriverOptions = {}) {
    this.ram = new MockGuestRam(options.ramSize ?? 1 << 20, MOCK_RAM_BASE, options.shared ?? false);
    const ram = this.ram.memory;
    const onWritten = options.onWritten;
    this.transport = new VirtioMmioTransport({
      device,
      memory: onWritten ? { view: (pa, len) => ram.view(pa, len), written: onWritten } : ram,
      irq: (level) => this.irqEdges.push(level),
    });
  }

  get eventIdx(): boolean {
    return (this.features & featureBit(VirtioFeature.EVENT_IDX)) !== 0n;
  }

  reg(offset: number): number {
    return Number(this.transport.read(offset, 4));
  }

  setReg(offset: number, value: number): void {
    this.transport.write(offset, 4, value);
  }

  status(): number {
    return this.reg(R.Status);
  }

  /** Offered features, read through DeviceFeaturesSel 0 and 1. */
  readDeviceFeatures(): bigint {
    this.setReg(R.DeviceFeaturesSel, 1);
    const hi = BigInt(this.reg(R.DeviceFeatures));
    this.setReg(R.DeviceFeaturesSel, 0);
    return (hi << 32n) | BigInt(this.reg(R.DeviceFeatures));
  }

  /** Reset, ACKNOWLEDGE, DRIVER, feature negotiation. Returns whether FEATURES_OK stuck. */
  negotiate(accept: (offered: bigint) => bigint = (f) => f): boolean {
    if (this.reg(R.MagicValue) !== 0x74726976 || this.reg(R.Version) !== 2) return false;
    this.setReg(R.Status, 0);
    this.setReg(R.Status, VirtioStatus.ACKNOWLEDGE);
    this.setReg(R.Status, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    const offered = this.readDeviceFeatures();
    this.features = accept(offered);
    this.setReg(R.DriverFeaturesSel, 1);
    this.setReg(R.DriverFeatures, Number((this.features >> 32n) & 0xffff_ffffn));
    this.setReg(R.DriverFeaturesSel, 0);
    this.setReg(R.DriverFeatures, Number(this.features & 0xffff_ffffn));
    this.setReg(R.Status, this.status() | VirtioStatus.FEATURES_OK);
    return (this.status() & VirtioStatus.FEATURES_OK) !== 0;
  }

  /** Lays out queue `index` in RAM and programs it (QueueReady=1). */
  setupQueue(index: number, size?: number): MockQueue {
    this.setReg(R.QueueSel, index);
    const max = this.reg(R.QueueNumMax);
    if (max === 0) throw new Error(`queue ${index} does not exist`);
    const n = size ?? Math.min(max, 64);
    const q = new MockQueue(this, index, n);
    this.setReg(R.QueueNum, n);
    this.setReg(R.QueueDescLow, q.desc % 0x1_0000_0000);
    this.setReg(R.QueueDescHigh, Math.floor(q.desc / 0x1_0000_0000));
    this.setReg(R.QueueDriverLow, q.avail % 0x1_0000_0000);
    this.setReg(R.QueueDriverHigh, Math.floor(q.avail / 0x1_0000_0000));
    this.setReg(R.QueueDeviceLow, q.used % 0x1_0000_0000);
    this.setReg(R.QueueDeviceHigh, Math.floor(q.used / 0x1_0000_0000));
    this.setReg(R.QueueReady, 1);
    this.queues[index] = q;
    return q;
  }

  /** Sets DRIVER_OK. */
  driverOk(): void {
    this.setReg(R.Status, this.status() | VirtioStatus.DRIVER_OK);
  }

  /** Full Linux-order bring-up: negotiate, set up queues, DRIVER_OK. Throws if FEATURES_OK is refused. */
  init(options: MockDriverOptions = {}): this {
    if (!this.negotiate(options.acceptFeatures)) throw new Error("device refused FEATURES_OK");
    let count = options.queueCount;
    if (count === undefined) {
      count = 0;
      for (;;) {
        this.setReg(R.QueueSel, count);
        if (this.reg(R.QueueNumMax) === 0) break;
        count++;
      }
    }
    for (let i = 0; i < count; i++) {
      this.setReg(R.QueueSel, i);
      const max = this.reg(R.QueueNumMax);
      this.setupQueue(i, options.queueSize ? options.queueSize(i, max) : undefined);
    }
    this.driverOk();
    return this;
  }

  queue(index: number): MockQueue {
    const q = this.queues[index];
    if (!q) throw new Error(`queue ${index} not set up`);
    return q;
  }

  /** Reads InterruptStatus and acknowledges it (what vm_interrupt does). */
  ackInterrupt(): number {
    const s = this.reg(R.InterruptStatus);
    if (s) this.setReg(R.InterruptACK, s);
    return s;
  }

  /** Reads the config space at `offset` with a `size`-byte access. */
  config(offset: number, size: 1 | 2 | 4 | 8 = 4): number | bigint {
    return this.transport.read(R.Config + offset, size);
  }

  setConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    this.transport.write(R.Config + offset, size, value);
  }
}

/** Creates a device's transport and mock driver and brings the device up. */
export function mockDriver(device: VirtioDevice, options: MockDriverOptions = {}): MockDriver {
  return new MockDriver(device, options).init(options);
}

/** Waits until pending promise callbacks (device back ends) have run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
