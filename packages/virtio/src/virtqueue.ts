// Split virtqueue, device side (virtio 1.2 §2.7). Guest errors never throw:
// the queue records the counter, marks itself broken and reports the fault
// to its owner (the transport sets DEVICE_NEEDS_RESET, §2.1.2).
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_MAX_SIZE, VirtqDescFlag } from "./constants.js";
import type { GuestErrorCounter } from "./counters.js";
import type { GuestMemory } from "./memory.js";

/** One descriptor chain popped from the avail ring: live views of its buffers. */
export interface DescriptorChain {
  /** Head descriptor index (the id written to the used ring). */
  readonly head: number;
  /** Device-readable buffers, in chain order. */
  readonly readable: readonly Uint8Array[];
  /** Device-writable buffers, in chain order. */
  readonly writable: readonly Uint8Array[];
  /** Guest-physical address of each writable buffer. */
  readonly writableAddrs: readonly number[];
  readonly readableLength: number;
  readonly writableLength: number;
  /** Queue epoch at pop time; a reset makes the chain stale (see SplitQueue.isLive). */
  readonly epoch: number;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Ring sizes in bytes (§2.7 Table 2.2). */
export function splitQueueLayout(size: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

function dataView(v: Uint8Array): DataView {
  return new DataView(v.buffer, v.byteOffset, v.byteLength);
}

function isShared(v: Uint8Array): boolean {
  return typeof SharedArrayBuffer !== "undefined" && v.buffer instanceof SharedArrayBuffer;
}

/** A split virtqueue as the device sees it. Register fields are set by the transport. */
export class SplitQueue {
  /** QueueNum (§4.2.2); defaults to maxSize. */
  size: number;
  descAddr = 0;
  driverAddr = 0;
  deviceAddr = 0;
  /** QueueReady as last accepted. */
  ready = false;
  /** Incremented by reset(): completions of chains from an older epoch are dropped. */
  epoch = 0;
  /** A structural guest error stopped this queue until reset. */
  broken = false;
  /** avail entries consumed (free-running u16). */
  lastAvail = 0;
  /** used.idx as last written (free-running u16). */
  usedIdx = 0;
  private signalledUsed = 0;
  private eventIdx = false;
  private indirect = false;
  private memory: GuestMemory | undefined;
  private desc: DataView | undefined;
  private avail: DataView | undefined;
  private used: DataView | undefined;
  private availIdx16: Uint16Array | undefined;
  private usedIdx16: Uint16Array | undefined;

  constructor(
    readonly index: number,
    readonly maxSize: number,
    private readonly onFault: (counter: GuestErrorCounter) => void,
  ) {
    this.size = maxSize;
  }

  /** Back to the state after device reset (§2.4). */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = 0;
    this.driverAddr = 0;
    this.deviceAddr = 0;
    this.ready = false;
    this.disable();
  }

  /** Stops using the rings (QueueReady=0 or reset); in-flight chains become stale. */
  disable(): void {
    this.epoch++;
    this.broken = false;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.memory = undefined;
    this.desc = this.avail = this.used = undefined;
    this.availIdx16 = this.usedIdx16 = undefined;
  }

  /**
   * Validates the size and the rings and maps them (at QueueReady=1).
   * Returns false (after reporting the fault) when the guest's layout is invalid.
   */
  enable(memory: GuestMemory, features: { eventIdx: boolean; indirect: boolean }): boolean {
    this.disable();
    const n = this.size;
    // §2.7: split queue sizes are powers of 2, at most 32768; §4.2.3.2: at most QueueNumMax.
    if (n < 1 || n > this.maxSize || n > VIRTQ_MAX_SIZE || (n & (n - 1)) !== 0) {
      this.fault("badQueueSize");
      return false;
    }
    // §2.7 Table 2.2: descriptor table 16, avail ring 2, used ring 4.
    if (this.descAddr % 16 !== 0 || this.driverAddr % 2 !== 0 || this.deviceAddr % 4 !== 0) {
      this.fault("unalignedRing");
      return false;
    }
    const lay = splitQueueLayout(n);
    const d = memory.view(this.descAddr, lay.desc);
    const a = memory.view(this.driverAddr, lay.avail);
    const u = memory.view(this.deviceAddr, lay.used);
    if (!d || !a || !u) {
      this.fault("ringOutsideRam");
      return false;
    }
    this.memory = memory;
    this.desc = dataView(d);
    this.avail = dataView(a);
    this.used = dataView(u);
    if (LITTLE_ENDIAN_HOST && isShared(a)) this.availIdx16 = new Uint16Array(a.buffer, a.byteOffset, 2);
    if (LITTLE_ENDIAN_HOST && isShared(u)) this.usedIdx16 = new Uint16Array(u.buffer, u.byteOffset, 2);
    this.eventIdx = features.eventIdx;
    this.indirect = features.indirect;
    this.ready = true;
    return true;
  }

  get enabled(): boolean {
    return this.desc !== undefined && !this.broken;
  }

  /** True while `chain` belongs to the current epoch of a working queue. */
  isLive(chain: DescriptorChain): boolean {
    return chain.epoch === this.epoch && this.enabled;
  }

  private loadAvailIdx(): number {
    // Acquire: descriptors written before avail.idx are visible after it (§2.7.13).
    if (this.availIdx16) return Atomics.load(this.availIdx16, 1);
    return (this.avail as DataView).getUint16(2, true);
  }

  /** Number of chains the driver has made available and the device has not popped. */
  pending(): number {
    if (!this.enabled) return 0;
    return (this.loadAvailIdx() - this.lastAvail) & 0xffff;
  }

  /**
   * Pops the next available chain, or returns undefined when the ring is empty
   * or the queue is broken. A malformed chain breaks the queue (reported).
   */
  pop(): DescriptorChain | undefined {
    if (!this.enabled) return undefined;
    let availIdx = this.loadAvailIdx();
    let pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0 && this.eventIdx) {
      // §2.7.10: ask to be notified at the next entry, then look again so a
      // buffer added meanwhile is not missed.
      this.writeAvailEvent();
      availIdx = this.loadAvailIdx();
      pending = (availIdx - this.lastAvail) & 0xffff;
    }
    if (pending === 0) return undefined;
    // §2.7.6: the driver never makes more than the queue size available.
    if (pending > this.size) {
      this.fault("availIdxJump");
      return undefined;
    }
    const avail = this.avail as DataView;
    const head = avail.getUint16(4 + 2 * (this.lastAvail % this.size), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx) this.writeAvailEvent();
    return this.walk(head);
  }

  private writeAvailEvent(): void {
    // avail_event sits after the used ring (§2.7.8).
    (this.used as DataView).setUint16(4 + 8 * this.size, this.lastAvail, true);
    this.memory?.written?.(this.deviceAddr + 4 + 8 * this.size, 2);
  }

  /** Walks a chain (§2.7.5, §2.7.5.3). */
  private walk(head: number): DescriptorChain | undefined {
    const memory = this.memory as GuestMemory;
    let table = this.desc as DataView;
    let tableSize = this.size;
    let idx = head;
    let visited = 0;
    let total = 0;
    let inIndirect = false;
    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    const writableAddrs: number[] = [];
    let readableLength = 0;
    let writableLength = 0;
    for (;;) {
      if (idx >= tableSize) return this.fault("descIndexOutOfRange");
      // §2.7.5.3.1: a chain cannot visit more descriptors than its table has.
      if (++visited > tableSize) return this.fault("descriptorLoop");
      const off = 16 * idx;
      const addr = table.getUint32(off + 4, true) * 0x1_0000_0000 + table.getUint32(off, true);
      const len = table.getUint32(off + 8, true);
      const flags = table.getUint16(off + 12, true);
      const next = table.getUint16(off + 14, true);
      if (flags & VirtqDescFlag.INDIRECT) {
        // §2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, never with NEXT, never nested.
        if (inIndirect) return this.fault("nestedIndirect");
        if (!this.indirect || flags & VirtqDescFlag.NEXT) return this.fault("indirectNotAllowed");
        if (len === 0 || len % 16 !== 0) return this.fault("badIndirectTable");
        const v = memory.view(addr, len);
        if (!v) return this.fault("addressOutsideRam");
        table = dataView(v);
        tableSize = len / 16;
        idx = 0;
        visited = 0;
        inIndirect = true;
        continue;
      }
      // §2.7.5.3.1: no chain longer than the queue size.
      if (++total > this.size) return this.fault("chainTooLong");
      const v = memory.view(addr, len);
      if (!v) return this.fault("addressOutsideRam");
      if (flags & VirtqDescFlag.WRITE) {
        writable.push(v);
        writableAddrs.push(addr);
        writableLength += len;
      } else {
        // §2.7.4.2: device-readable elements precede device-writable ones.
        if (writable.length > 0) return this.fault("readableAfterWritable");
        readable.push(v);
        readableLength += len;
      }
      if (!(flags & VirtqDescFlag.NEXT)) break;
      idx = next;
    }
    return { head, readable, writable, writableAddrs, readableLength, writableLength, epoch: this.epoch };
  }

  /**
   * Returns `chain` to the driver with `len` bytes written (§2.7.8).
   * Returns false (and writes nothing) when the chain is stale.
   */
  push(chain: DescriptorChain, len: number): boolean {
    if (!this.isLive(chain)) return false;
    const used = this.used as DataView;
    const slot = 4 + 8 * (this.usedIdx % this.size);
    used.setUint32(slot, chain.head, true);
    used.setUint32(slot + 4, len >>> 0, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // §2.7.8.2: the element is written before used.idx (release store when shared).
    if (this.usedIdx16) Atomics.store(this.usedIdx16, 1, this.usedIdx);
    else used.setUint16(2, this.usedIdx, true);
    const memory = this.memory as GuestMemory;
    if (memory.written) {
      // The device wrote `len` bytes into the writable buffers, then the used ring.
      let left = len;
      for (let i = 0; i < chain.writable.length && left > 0; i++) {
        const n = Math.min(left, (chain.writable[i] as Uint8Array).length);
        memory.written(chain.writableAddrs[i] as number, n);
        left -= n;
      }
      memory.written(this.deviceAddr + slot, 8);
      memory.written(this.deviceAddr + 2, 2);
    }
    return true;
  }

  /**
   * Whether the driver wants a used-buffer notification for the elements
   * pushed since the last call (§2.7.7 NO_INTERRUPT, §2.7.10 used_event).
   */
  needsInterrupt(): boolean {
    if (!this.enabled) return false;
    const old = this.signalledUsed;
    const now = this.usedIdx;
    this.signalledUsed = now;
    if (old === now) return false;
    const avail = this.avail as DataView;
    if (this.eventIdx) {
      const usedEvent = avail.getUint16(4 + 2 * this.size, true);
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  private fault(counter: GuestErrorCounter): undefined {
    this.broken = true;
    this.onFault(counter);
    return undefined;
  }
}

/** Copies up to `dst.length` bytes of `bufs`, starting `offset` bytes in, into `dst`; returns the count. */
export function gather(bufs: readonly Uint8Array[], offset: number, dst: Uint8Array): number {
  let skip = offset;
  let done = 0;
  for (const b of bufs) {
    if (done >= dst.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, dst.length - done);
    dst.set(b.subarray(skip, skip + n), done);
    done += n;
    skip = 0;
  }
  return done;
}

/** Copies `src` into `bufs` starting `offset` bytes in, as far as they reach; returns the count. */
export function scatter(bufs: readonly Uint8Array[], offset: number, src: Uint8Array): number {
  let skip = offset;
  let done = 0;
  for (const b of bufs) {
    if (done >= src.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, src.length - done);
    b.set(src.subarray(done, done + n), skip);
    done += n;
    skip = 0;
  }
  return done;
}
