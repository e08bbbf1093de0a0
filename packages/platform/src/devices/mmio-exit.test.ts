import { Bus, Hart } from "@ringzero/cpu-core";
import { describe, expect, it } from "vitest";
import { serveMmioExit } from "./mmio-exit.js";
import { MmioMap } from "./types.js";

const word = (v: number) => Uint8Array.of(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24);

describe("serveMmioExit", () => {
  it("completes reads with the device's value, writes into the device, and faults on a hole", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 20 });
    // ld a0, 0(a1); sd a0, 8(a1); ld a2, 0(a3)
    bus.write(0x8000_0000, word(0x0005b503));
    bus.write(0x8000_0004, word(0x00a5b423));
    bus.write(0x8000_0008, word(0x0006b603));
    const hart = new Hart(bus);
    hart.pc = 0x8000_0000;
    hart.x[22] = 0x1000_0000; // a1: the device
    hart.x[26] = 0x2000_0000; // a3: nothing there
    const written: bigint[] = [];
    const mmio = new MmioMap().add("dev", 0x1000_0000, 16, {
      read: (_offset, size) => (size === 8 ? 0x1234_5678_9abc_def0n : 0),
      write: (_offset, _size, value) => {
        written.push(BigInt(value));
        return true;
      },
    });
    let exit = hart.run(10);
    expect(exit).toMatchObject({ kind: "mmio", op: "read", size: 8 });
    if (exit.kind !== "mmio") throw new Error("no mmio exit");
    serveMmioExit(hart, mmio, exit);
    expect((BigInt(hart.x[21]) << 32n) | BigInt(hart.x[20] >>> 0)).toBe(0x1234_5678_9abc_def0n);
    exit = hart.run(10);
    if (exit.kind !== "mmio") throw new Error("no mmio exit");
    serveMmioExit(hart, mmio, exit);
    expect(written).toEqual([0x1234_5678_9abc_def0n]);
    exit = hart.run(10);
    if (exit.kind !== "mmio") throw new Error("no mmio exit");
    serveMmioExit(hart, mmio, exit);
    expect(mmio.unmapped).toBe(1);
    expect(hart.debugReadCsr(0x342)).toBe(5n); // mcause: load access fault
  });
});
