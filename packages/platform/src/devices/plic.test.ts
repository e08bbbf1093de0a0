import { describe, expect, it } from "vitest";
import { PlatformError } from "./errors.js";
import {
  PLIC_CLAIM,
  PLIC_CONTEXT,
  PLIC_CONTEXT_STRIDE,
  PLIC_ENABLE,
  PLIC_ENABLE_STRIDE,
  PLIC_PENDING,
  Plic,
} from "./plic.js";
import { RecordingLine } from "./test-helpers.js";

function board() {
  const m = new RecordingLine();
  const s = new RecordingLine();
  const plic = new Plic([m, s]);
  return { plic, m, s };
}
const prio = (p: Plic, src: number, v: number) => p.write(src * 4, 4, v);
const enable = (p: Plic, ctx: number, src: number) => {
  const off = PLIC_ENABLE + ctx * PLIC_ENABLE_STRIDE + (src >> 5) * 4;
  p.write(off, 4, (p.read(off, 4) as number) | (1 << (src & 31)));
};
const threshold = (p: Plic, ctx: number, v: number) => p.write(PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE, 4, v);
const claim = (p: Plic, ctx: number) => p.read(PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE + PLIC_CLAIM, 4);
const complete = (p: Plic, ctx: number, src: number) =>
  p.write(PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE + PLIC_CLAIM, 4, src);

describe("PLIC", () => {
  it("raises the S context only when the source is enabled there with priority above threshold", () => {
    const { plic, m, s } = board();
    plic.irq(10).set(true);
    expect(plic.isPending(10)).toBe(true);
    expect(plic.read(PLIC_PENDING, 4)).toBe(1 << 10);
    expect(s.level).toBe(false); // priority 0 never interrupts
    prio(plic, 10, 1);
    expect(s.level).toBe(false); // not enabled
    enable(plic, 1, 10);
    expect(s.level).toBe(true);
    expect(m.level).toBe(false);
    threshold(plic, 1, 1);
    expect(s.level).toBe(false); // priority must exceed the threshold
    threshold(plic, 1, 0);
    expect(s.level).toBe(true);
  });

  it("claims the highest priority, ties to the lowest id, and completes", () => {
    const { plic, s } = board();
    for (const src of [3, 5, 40]) {
      prio(plic, src, src === 40 ? 6 : 2);
      enable(plic, 1, src);
    }
    plic.irq(5).set(true);
    plic.irq(3).set(true);
    plic.irq(40).set(true);
    expect(claim(plic, 1)).toBe(40);
    expect(plic.isPending(40)).toBe(false);
    expect(claim(plic, 1)).toBe(3);
    expect(claim(plic, 1)).toBe(5);
    expect(claim(plic, 1)).toBe(0);
    expect(s.level).toBe(false);
    // Level still high after completion: pending again (gateway, spec §5).
    complete(plic, 1, 3);
    expect(plic.isPending(3)).toBe(true);
    expect(s.level).toBe(true);
    // Line dropped while claimed: completion leaves it idle.
    plic.irq(5).set(false);
    complete(plic, 1, 5);
    expect(plic.isPending(5)).toBe(false);
  });

  it("does not forward a claimed source again before completion", () => {
    const { plic, s } = board();
    prio(plic, 7, 1);
    enable(plic, 1, 7);
    plic.irq(7).set(true);
    expect(claim(plic, 1)).toBe(7);
    plic.irq(7).set(false);
    plic.irq(7).set(true);
    expect(plic.isPending(7)).toBe(false);
    expect(s.level).toBe(false);
    complete(plic, 1, 7);
    expect(s.level).toBe(true);
  });

  it("ignores completion of a source not enabled for the context (spec §10)", () => {
    const { plic } = board();
    prio(plic, 9, 1);
    enable(plic, 1, 9);
    plic.irq(9).set(true);
    expect(claim(plic, 1)).toBe(9);
    complete(plic, 0, 9); // context 0 does not enable source 9
    plic.irq(9).set(false);
    plic.irq(9).set(true);
    expect(plic.isPending(9)).toBe(false); // still in flight
    complete(plic, 1, 9);
    expect(plic.isPending(9)).toBe(true);
  });

  it("drives M and S contexts independently", () => {
    const { plic, m, s } = board();
    prio(plic, 1, 3);
    enable(plic, 0, 1);
    plic.irq(1).set(true);
    expect(m.level).toBe(true);
    expect(s.level).toBe(false);
    enable(plic, 1, 1);
    expect(s.level).toBe(true);
    expect(claim(plic, 0)).toBe(1);
    expect(m.level).toBe(false);
    expect(s.level).toBe(false); // claimed by M: no longer pending for anyone
  });

  it("withdraws a request when the level drops before the claim", () => {
    const { plic, s } = board();
    prio(plic, 2, 1);
    enable(plic, 1, 2);
    plic.irq(2).set(true);
    expect(s.level).toBe(true);
    plic.irq(2).set(false);
    expect(s.level).toBe(false);
    expect(claim(plic, 1)).toBe(0);
  });

  it("masks priorities and thresholds to the implemented bits, hardwires source 0 and sources above ndev", () => {
    const { plic } = board();
    prio(plic, 4, 0xffff_ffff);
    expect(plic.read(16, 4)).toBe(7);
    threshold(plic, 1, 0x1234);
    expect(plic.read(PLIC_CONTEXT + PLIC_CONTEXT_STRIDE, 4)).toBe(0x1234 & 7);
    plic.write(PLIC_ENABLE + PLIC_ENABLE_STRIDE, 4, 0xffff_ffff);
    expect(plic.read(PLIC_ENABLE + PLIC_ENABLE_STRIDE, 4)).toBe(0xffff_fffe);
    // ndev 96: word 3 holds source 96 only.
    plic.write(PLIC_ENABLE + PLIC_ENABLE_STRIDE + 12, 4, 0xffff_ffff);
    expect(plic.read(PLIC_ENABLE + PLIC_ENABLE_STRIDE + 12, 4)).toBe(1);
  });

  it("counts garbage accesses and never throws", () => {
    const { plic } = board();
    const before = plic.counters.badAccesses;
    expect(plic.read(1, 4)).toBe(0);
    expect(plic.read(0, 1)).toBe(0);
    expect(plic.read(0, 8)).toBe(0);
    expect(plic.read(97 * 4, 4)).toBe(0); // beyond ndev
    expect(plic.read(PLIC_CONTEXT + 2 * PLIC_CONTEXT_STRIDE, 4)).toBe(0); // no context 2
    expect(plic.read(PLIC_CONTEXT + 8, 4)).toBe(0);
    plic.write(PLIC_PENDING, 4, 0xffff_ffff); // read-only
    plic.write(0, 4, 5); // source 0
    plic.write(0x5f_fffc, 4, 1);
    expect(plic.counters.badAccesses - before).toBe(9);
    expect(plic.read(PLIC_PENDING, 4)).toBe(0);
    complete(plic, 1, 0);
    complete(plic, 1, 5000);
    plic.setLevel(0, true);
    plic.setLevel(1000, true);
    expect(plic.read(PLIC_PENDING, 4)).toBe(0);
  });

  it("refuses bad configurations and source numbers with typed errors", () => {
    expect(() => new Plic([])).toThrow(PlatformError);
    expect(() => new Plic([new RecordingLine()], { ndev: 0 })).toThrow(PlatformError);
    expect(() => new Plic([new RecordingLine()], { maxPriority: 6 })).toThrow(PlatformError);
    expect(() => board().plic.irq(97)).toThrow(PlatformError);
  });

  it("round-trips its state, including claimed sources and line levels", () => {
    const { plic } = board();
    prio(plic, 10, 3);
    prio(plic, 33, 5);
    enable(plic, 1, 10);
    enable(plic, 1, 33);
    enable(plic, 0, 96);
    threshold(plic, 0, 2);
    plic.irq(10).set(true);
    plic.irq(33).set(true);
    expect(claim(plic, 1)).toBe(33);
    const st = JSON.parse(JSON.stringify(plic.state()));
    const m2 = new RecordingLine();
    const s2 = new RecordingLine();
    const copy = Plic.fromState(st, [m2, s2]);
    expect(copy.state()).toEqual(plic.state());
    expect(s2.level).toBe(true);
    expect(claim(copy, 1)).toBe(10);
    complete(copy, 1, 33);
    expect(copy.isPending(33)).toBe(true);
    expect(() => Plic.fromState({ ...st, version: 2 }, [m2, s2])).toThrow(PlatformError);
    expect(() => Plic.fromState(st, [m2])).toThrow(PlatformError);
    expect(() => Plic.fromState({ ...st, pending: [200] }, [m2, s2])).toThrow(PlatformError);
  });
});
