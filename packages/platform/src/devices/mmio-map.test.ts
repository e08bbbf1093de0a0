import { describe, expect, it } from "vitest";
import { PlatformError } from "./errors.js";
import { SifiveTest } from "./sifive-test.js";
import type { AccessSize, MmioDevice } from "./types.js";
import { depositU64, EmptyVirtioSlot, MmioMap, sliceU64, VIRT } from "./types.js";

class Echo implements MmioDevice {
  log: string[] = [];
  read(offset: number, size: AccessSize): number {
    this.log.push(`r${offset}/${size}`);
    return offset;
  }
  write(offset: number, size: AccessSize, value: number | bigint): void {
    this.log.push(`w${offset}/${size}=${value}`);
  }
}

describe("MmioMap", () => {
  it("routes by range with offsets relative to the base, and reports holes", () => {
    const uart = new Echo();
    const clint = new Echo();
    const map = new MmioMap()
      .add("uart", VIRT.uart.base, VIRT.uart.size, uart)
      .add("clint", VIRT.clint.base, VIRT.clint.size, clint)
      .add("test", VIRT.test.base, VIRT.test.size, new SifiveTest());
    for (let n = 0; n < VIRT.virtio.count; n++) {
      map.add(`virtio${n}`, VIRT.virtio.base + n * VIRT.virtio.stride, VIRT.virtio.size, new Echo());
    }
    expect(map.read(VIRT.uart.base + 5, 1)).toBe(5);
    expect(map.read(VIRT.clint.base + 0xbff8, 8)).toBe(0xbff8);
    expect(map.write(VIRT.uart.base, 1, 0x41)).toBe(true);
    expect(uart.log).toEqual(["r5/1", "w0/1=65"]);
    expect(map.read(VIRT.uart.base + 0x100, 1)).toBeUndefined(); // just past the UART
    expect(map.read(VIRT.uart.base + 0xfe, 4)).toBeUndefined(); // straddles the end
    expect(map.write(0x0, 4, 1)).toBe(false);
    expect(map.read(VIRT.plic.base, 4)).toBeUndefined(); // not added
    expect(map.unmapped).toBe(4);
    expect(map.find(VIRT.virtio.base + 3 * 0x1000 + 0x70)?.name).toBe("virtio3");
    expect(map.list().map((r) => r.name)[0]).toBe("test");
  });

  it("refuses overlapping and empty regions", () => {
    const map = new MmioMap().add("a", 0x1000, 0x1000, new Echo());
    expect(() => map.add("b", 0x1fff, 0x10, new Echo())).toThrow(PlatformError);
    expect(() => map.add("c", 0x800, 0x801, new Echo())).toThrow(PlatformError);
    expect(() => map.add("d", 0x3000, 0, new Echo())).toThrow(PlatformError);
    expect(() => map.add("e", -1, 1, new Echo())).toThrow(PlatformError);
    map.add("f", 0x2000, 0x10, new Echo());
  });

  it("slices and deposits 64-bit registers", () => {
    const r = 0x1122_3344_5566_7788n;
    expect(sliceU64(r, 4, 4)).toBe(0x1122_3344);
    expect(sliceU64(r, 1, 2)).toBe(0x6677);
    expect(sliceU64(r, 0, 8)).toBe(r);
    expect(depositU64(r, 4, 4, 0xaabb_ccdd)).toBe(0xaabb_ccdd_5566_7788n);
    expect(depositU64(r, 0, 8, -1n)).toBe(0xffff_ffff_ffff_ffffn);
    expect(depositU64(r, 2, 1, 0x1ff)).toBe(0x1122_3344_55ff_7788n);
  });
});

describe("MmioMap.remove and EmptyVirtioSlot", () => {
  it("removes a region so another can take its place; an empty slot reads as QEMU's", () => {
    const map = new MmioMap();
    const slot = new EmptyVirtioSlot();
    map.add("virtio0", 0x1000_1000, 0x1000, slot);
    expect(map.read(0x1000_1000, 4)).toBe(0x7472_6976);
    expect(map.read(0x1000_1004, 4)).toBe(2);
    expect(map.read(0x1000_1008, 4)).toBe(0);
    expect(map.remove("virtio0")).toBe(true);
    expect(map.remove("virtio0")).toBe(false);
    expect(map.read(0x1000_1000, 4)).toBeUndefined();
    map.add("virtio0", 0x1000_1000, 0x1000, { read: () => 42, write: () => {} });
    expect(map.read(0x1000_1000, 4)).toBe(42);
  });
});
