// Hostile guests: random accesses (any offset in the device's window, any
// size, any value) never throw, reads return values of the access width,
// and every device's state still round-trips afterwards.
import { describe, expect, it } from "vitest";
import { Clint } from "./clint.js";
import { GoldfishRtc } from "./goldfish-rtc.js";
import { Plic } from "./plic.js";
import { SifiveTest } from "./sifive-test.js";
import { RecordingLine } from "./test-helpers.js";
import { type AccessSize, type MmioDevice, VIRT } from "./types.js";
import { Uart16550 } from "./uart16550.js";

function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const SIZES: AccessSize[] = [1, 2, 4, 8];

function hammer(dev: MmioDevice, window: number, seed: number, n = 20_000) {
  const rnd = prng(seed);
  for (let i = 0; i < n; i++) {
    const size = SIZES[rnd() & 3];
    // Mostly register-like offsets near the start of each page, sometimes anywhere (or negative).
    const r = rnd();
    const offset =
      r % 7 === 0 ? (rnd() % (window + 64)) - 32 : (rnd() % (window >>> 12 || 1)) * 0x1000 + (rnd() & 0x3f);
    if (rnd() & 1) {
      const v = dev.read(offset, size);
      if (size === 8) expect(typeof v === "bigint" || v === 0).toBe(true);
      else {
        expect(typeof v).toBe("number");
        expect(v as number).toBeGreaterThanOrEqual(0);
        expect(v as number).toBeLessThan(2 ** (size * 8));
      }
    } else {
      const value =
        rnd() % 3 === 0 ? (BigInt(rnd()) << 32n) | BigInt(rnd()) : rnd() & (size === 1 ? 0xff : 0xffff_ffff);
      dev.write(offset, size, value);
    }
  }
}

describe("devices under random guest accesses", () => {
  it("PLIC", () => {
    const lines = [new RecordingLine(), new RecordingLine()];
    const plic = new Plic(lines);
    const rnd = prng(1);
    for (let i = 0; i < 200; i++) plic.setLevel(rnd() % 100, (rnd() & 1) === 1);
    hammer(plic, VIRT.plic.size, 2);
    expect(Plic.fromState(JSON.parse(JSON.stringify(plic.state())), lines).state()).toEqual(plic.state());
  });

  it("CLINT", () => {
    let t = 0;
    const lines = [{ msip: new RecordingLine(), mtip: new RecordingLine() }];
    const clint = new Clint(lines, () => t++);
    hammer(clint, VIRT.clint.size, 3);
    const st = JSON.parse(JSON.stringify(clint.state()));
    expect(Clint.fromState(st, lines, () => 0).state()).toEqual(st);
  });

  it("UART", () => {
    const out: number[] = [];
    const uart = new Uart16550({ irq: new RecordingLine(), onTransmit: (b) => out.push(...b), inputLimit: 256 });
    const rnd = prng(4);
    for (let i = 0; i < 50; i++) uart.pushInput(Uint8Array.from({ length: rnd() % 40 }, () => rnd() & 0xff));
    hammer(uart, VIRT.uart.size, 5);
    expect(uart.inputPending).toBeLessThanOrEqual(256);
    expect(Uart16550.fromState(JSON.parse(JSON.stringify(uart.state()))).state()).toEqual(uart.state());
  });

  it("goldfish RTC (time set to the ends of the 64-bit range)", () => {
    const edge = new GoldfishRtc({ clock: () => 1_700_000_000_000_000_000n });
    edge.write(0x04, 4, 0xffff_ffff);
    edge.write(0x00, 4, 0xffff_ffff);
    expect(edge.time()).toBe(0xffff_ffff_ffff_ffffn);
    const copy = GoldfishRtc.fromState(JSON.parse(JSON.stringify(edge.state())), {
      clock: () => 1_700_000_000_000_000_000n,
    });
    expect(copy.time()).toBe(0xffff_ffff_ffff_ffffn);
    expect(copy.state()).toEqual(edge.state());
  });

  it("goldfish RTC", () => {
    const rtc = new GoldfishRtc({ irq: new RecordingLine(), clock: () => 1_700_000_000_000_000_000n });
    hammer(rtc, VIRT.rtc.size, 6);
    const st = JSON.parse(JSON.stringify(rtc.state()));
    expect(GoldfishRtc.fromState(st, { clock: () => 0n }).state()).toEqual(st);
  });

  it("test finisher", () => {
    const t = new SifiveTest();
    hammer(t, VIRT.test.size, 7);
    expect(t.counters.unknownStatus).toBeGreaterThan(0);
    expect(SifiveTest.fromState(t.state()).state()).toEqual(t.state());
  });
});
