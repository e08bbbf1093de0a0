// The narrow interfaces between the board and its devices (STYLE.md 1):
// a device is a read/write pair over its own offsets, an interrupt is a line
// with one method, and an MmioMap routes physical addresses to devices.
import { PlatformError, PlatformErrorCode } from "./errors.js";

/** Access width in bytes, as the hart's MMIO exit reports it. */
export type AccessSize = 1 | 2 | 4 | 8;

/**
 * A memory-mapped device. `offset` is relative to the device's base. Reads of
 * up to 4 bytes return a number (unsigned), 8-byte reads a bigint. Writes take
 * either. Bad offsets or sizes never throw: reads return 0, writes are
 * dropped, and the device counts them in `badAccesses`.
 */
export interface MmioDevice {
  read(offset: number, size: AccessSize): number | bigint;
  write(offset: number, size: AccessSize, value: number | bigint): void;
}

/** A level-sensitive interrupt line (a PLIC source, or a hart's MIP bit). */
export interface IrqLine {
  set(level: boolean): void;
}

/** A line that goes nowhere (a device built without a consumer). */
export const NO_IRQ: IrqLine = { set() {} };

/** Counters every device keeps for guest accesses it refused. */
export interface AccessCounters {
  /** Reads and writes at offsets or sizes the device does not implement. */
  badAccesses: number;
}

/** The value of an MMIO write as an unsigned number of at most 32 bits. */
export function low32(value: number | bigint): number {
  return typeof value === "bigint" ? Number(value & 0xffff_ffffn) : value >>> 0;
}

/** The value of an MMIO write as an unsigned 64-bit bigint. */
export function toU64(value: number | bigint): bigint {
  return typeof value === "bigint" ? BigInt.asUintN(64, value) : BigInt.asUintN(64, BigInt(Math.trunc(value)));
}

/** The read result for `size` bytes of a 64-bit register value starting at byte `shift`. */
export function sliceU64(reg: bigint, byteShift: number, size: AccessSize): number | bigint {
  const v = BigInt.asUintN(size * 8, reg >> BigInt(byteShift * 8));
  return size === 8 ? v : Number(v);
}

/** `reg` with `size` bytes at byte `shift` replaced by `value`. */
export function depositU64(reg: bigint, byteShift: number, size: AccessSize, value: number | bigint): bigint {
  const bits = BigInt(size * 8);
  const sh = BigInt(byteShift * 8);
  const mask = ((1n << bits) - 1n) << sh;
  return BigInt.asUintN(64, (reg & ~mask) | ((toU64(value) << sh) & mask));
}

/** QEMU virt's memory map (hw/riscv/virt.c, ../shared/reference/qemu-virt.dts). */
export const VIRT = {
  test: { base: 0x10_0000, size: 0x1000 },
  rtc: { base: 0x10_1000, size: 0x1000, irq: 11 },
  clint: { base: 0x200_0000, size: 0x1_0000 },
  plic: { base: 0xc00_0000, size: 0x60_0000, ndev: 96 },
  uart: { base: 0x1000_0000, size: 0x100, irq: 10, clockFrequency: 3_686_400 },
  virtio: { base: 0x1000_1000, stride: 0x1000, size: 0x1000, count: 8, firstIrq: 1 },
  ram: { base: 0x8000_0000 },
  timebaseFrequency: 10_000_000,
} as const;

/** One region of an MmioMap. */
export interface MmioRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly device: MmioDevice;
}

/**
 * Routes physical addresses to devices by range. `read` returns undefined and
 * `write` false for a hole (no device, or an access that runs past the end of
 * a region): the hypervisor then raises an access fault (`hart.failMmio()`).
 */
export class MmioMap {
  private regions: MmioRegion[] = [];
  private last: MmioRegion | undefined;
  /** Accesses that hit no device. */
  unmapped = 0;

  /** Adds a device at [base, base+size); overlapping regions are refused. */
  add(name: string, base: number, size: number, device: MmioDevice): this {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new PlatformError(PlatformErrorCode.MMIO_OVERLAP, { name, base, size }, "empty or invalid region");
    }
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) {
        throw new PlatformError(PlatformErrorCode.MMIO_OVERLAP, { name, base, size, other: r.name });
      }
    }
    this.regions.push({ name, base, size, device });
    this.regions.sort((a, b) => a.base - b.base);
    return this;
  }

  /** Removes the region called `name`; false when there is none. */
  remove(name: string): boolean {
    const i = this.regions.findIndex((r) => r.name === name);
    if (i < 0) return false;
    if (this.last === this.regions[i]) this.last = undefined;
    this.regions.splice(i, 1);
    return true;
  }

  /** The regions, sorted by base address. */
  list(): readonly MmioRegion[] {
    return this.regions;
  }

  /** The region holding all of [address, address+size), or undefined. */
  find(address: number, size = 1): MmioRegion | undefined {
    const l = this.last;
    if (l && address >= l.base && address + size <= l.base + l.size) return l;
    let lo = 0;
    let hi = this.regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.regions[mid];
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.size) lo = mid + 1;
      else {
        if (address + size > r.base + r.size) break;
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /** Reads from the device at `address`, or undefined for a hole. */
  read(address: number, size: AccessSize): number | bigint | undefined {
    const r = this.find(address, size);
    if (!r) {
      this.unmapped++;
      return undefined;
    }
    return r.device.read(address - r.base, size);
  }

  /** Writes to the device at `address`; false for a hole. */
  write(address: number, size: AccessSize, value: number | bigint): boolean {
    const r = this.find(address, size);
    if (!r) {
      this.unmapped++;
      return false;
    }
    r.device.write(address - r.base, size, value);
    return true;
  }
}

/**
 * A virtio-mmio slot with no device behind it, as QEMU virt has eight of them
 * (virtio 1.2 §4.2.2: MagicValue "virt", Version 2, DeviceID 0 = no device;
 * a driver must ignore it). Everything else reads 0; writes are ignored.
 */
export class EmptyVirtioSlot implements MmioDevice {
  read(offset: number, size: AccessSize): number {
    if (size !== 4) return 0;
    if (offset === 0x000) return 0x7472_6976; // "virt"
    if (offset === 0x004) return 2;
    if (offset === 0x00c) return 0x554d_4551; // VendorID "QEMU", as QEMU's transport reports
    return 0;
  }
  write(): void {}
}
