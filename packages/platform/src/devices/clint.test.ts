import { describe, expect, it } from "vitest";
import { CLINT_MSIP, CLINT_MTIME, CLINT_MTIMECMP, Clint, hostTickClock } from "./clint.js";
import { PlatformError } from "./errors.js";
import { RecordingLine } from "./test-helpers.js";

function board(harts = 1) {
  let now = 1000;
  const lines = Array.from({ length: harts }, () => ({ msip: new RecordingLine(), mtip: new RecordingLine() }));
  const clint = new Clint(lines, () => now);
  clint.reset();
  return {
    clint,
    lines,
    advance: (t: number) => {
      now += t;
    },
  };
}

describe("CLINT", () => {
  it("msip drives the MSIP line through bit 0 only", () => {
    const { clint, lines } = board();
    clint.write(CLINT_MSIP, 4, 0xffff_fffe);
    expect(lines[0].msip.level).toBe(false);
    clint.write(CLINT_MSIP, 4, 1);
    expect(lines[0].msip.level).toBe(true);
    expect(clint.read(CLINT_MSIP, 4)).toBe(1);
    clint.write(CLINT_MSIP, 4, 0);
    expect(lines[0].msip.level).toBe(false);
  });

  it("mtime follows the clock and is writable as 64 bits or halves", () => {
    const { clint, advance } = board();
    expect(clint.read(CLINT_MTIME, 8)).toBe(1000n);
    advance(5);
    expect(clint.read(CLINT_MTIME, 4)).toBe(1005);
    clint.write(CLINT_MTIME, 8, 0x1_0000_0000n);
    expect(clint.read(CLINT_MTIME + 4, 4)).toBe(1);
    advance(7);
    expect(clint.read(CLINT_MTIME, 8)).toBe(0x1_0000_0007n);
    clint.write(CLINT_MTIME + 4, 4, 0);
    expect(clint.time()).toBe(7);
  });

  it("resets mtimecmp to 0 as QEMU does, so MTIP is high until software programs it", () => {
    const { clint, lines } = board();
    expect(clint.read(CLINT_MTIMECMP, 8)).toBe(0n);
    expect(lines[0].mtip.level).toBe(true);
    clint.write(CLINT_MTIMECMP, 8, -1n);
    expect(lines[0].mtip.level).toBe(false);
    expect(clint.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
  });

  it("raises MTIP when mtime reaches mtimecmp, lowers it when mtimecmp moves ahead", () => {
    const { clint, lines, advance } = board();
    clint.write(CLINT_MTIMECMP, 8, 1100n);
    expect(lines[0].mtip.level).toBe(false);
    expect(clint.nextDeadline()).toBe(1100);
    advance(99);
    clint.poll();
    expect(lines[0].mtip.level).toBe(false);
    advance(1);
    expect(clint.nextDeadline()).toBeLessThanOrEqual(clint.time()); // poll is due
    clint.poll();
    expect(lines[0].mtip.level).toBe(true);
    expect(clint.nextDeadline()).toBe(Number.POSITIVE_INFINITY); // already fired
    // The 32-bit sequence of the privileged spec §3.2.1: low = -1, high, low.
    clint.write(CLINT_MTIMECMP, 4, 0xffff_ffff);
    clint.write(CLINT_MTIMECMP + 4, 4, 0);
    clint.write(CLINT_MTIMECMP, 4, 5000);
    expect(clint.read(CLINT_MTIMECMP, 8)).toBe(5000n);
    expect(lines[0].mtip.level).toBe(false);
  });

  it("addresses each hart's registers", () => {
    const { clint, lines } = board(2);
    clint.write(CLINT_MSIP + 4, 4, 1);
    expect(lines[1].msip.level).toBe(true);
    expect(lines[0].msip.level).toBe(false);
    clint.write(CLINT_MTIMECMP + 8, 8, -1n);
    expect(lines[1].mtip.level).toBe(false);
    expect(lines[0].mtip.level).toBe(true);
  });

  it("counts garbage accesses and never throws", () => {
    const { clint } = board();
    expect(clint.read(CLINT_MSIP + 4, 4)).toBe(0); // no hart 1
    expect(clint.read(CLINT_MSIP, 8)).toBe(0);
    expect(clint.read(CLINT_MSIP, 1)).toBe(0);
    expect(clint.read(CLINT_MTIMECMP + 2, 4)).toBe(0); // misaligned
    expect(clint.read(0x8000, 4)).toBe(0);
    clint.write(0xfff8, 8, 1n);
    clint.write(CLINT_MTIMECMP + 8, 8, 0n);
    expect(clint.counters.badAccesses).toBe(7);
    clint.write(CLINT_MTIMECMP, 8, 0x1234_5678_9abc_def0n);
    expect(clint.read(CLINT_MTIMECMP + 6, 2)).toBe(0x1234); // narrow reads inside a register are fine
  });

  it("calls no line while constructed (the harts may not exist yet); reset() raises MTIP as QEMU's reset", () => {
    const calls: string[] = [];
    const harts: { msip: { set(l: boolean): void }; mtip: { set(l: boolean): void } }[] = [];
    const lines = [
      {
        msip: { set: (l: boolean) => (harts[0] as (typeof harts)[0]).msip.set(l) },
        mtip: { set: (l: boolean) => (harts[0] as (typeof harts)[0]).mtip.set(l) },
      },
    ];
    const clint = new Clint(lines, () => 5); // throws if a line were called: no hart 0 yet
    expect(clint.nextDeadline()).toBe(0);
    harts.push({ msip: { set: (l) => calls.push(`msip ${l}`) }, mtip: { set: (l) => calls.push(`mtip ${l}`) } });
    clint.reset();
    expect(calls).toEqual(["msip false", "mtip true"]);
    clint.poll();
    expect(calls).toHaveLength(2); // edges only from then on
    clint.write(CLINT_MSIP, 4, 1);
    clint.write(CLINT_MTIMECMP, 8, 100n);
    clint.reset(); // back to msip 0, mtimecmp 0: the lines follow
    expect(calls.slice(2)).toEqual(["msip true", "mtip false", "msip false", "mtip true"]);
    // Without reset(), the first poll or register write drives the lines just the same.
    const rec = [{ msip: new RecordingLine(), mtip: new RecordingLine() }];
    const lazy = new Clint(rec, () => 5);
    expect(rec[0].mtip.edges).toBe(0);
    lazy.write(CLINT_MTIMECMP + 4, 4, 0);
    expect(rec[0].mtip.level).toBe(true);
  });

  it("round-trips its state and continues mtime from the saved value", () => {
    const { clint, advance } = board();
    clint.write(CLINT_MSIP, 4, 1);
    clint.write(CLINT_MTIMECMP, 8, 1500n);
    advance(600);
    clint.poll();
    const st = JSON.parse(JSON.stringify(clint.state()));
    const lines = [{ msip: new RecordingLine(), mtip: new RecordingLine() }];
    const copy = Clint.fromState(st, lines, () => 42);
    expect(lines[0].msip.edges + lines[0].mtip.edges).toBe(0); // no line called before the first poll
    expect(copy.nextDeadline()).toBe(0); // which is due now
    copy.poll();
    expect(copy.read(CLINT_MTIME, 8)).toBe(1600n);
    expect(lines[0].msip.level).toBe(true);
    expect(lines[0].mtip.level).toBe(true);
    expect(copy.state()).toEqual(st);
    expect(() => Clint.fromState({ ...st, harts: [] }, lines)).toThrow(PlatformError);
    expect(() => Clint.fromState({ ...st, mtime: "x" }, lines)).toThrow(PlatformError);
  });

  it("the default clock counts host time at 10 MHz", async () => {
    const clock = hostTickClock();
    const a = clock();
    await new Promise((r) => setTimeout(r, 20));
    const ticks = clock() - a;
    expect(ticks).toBeGreaterThan(150_000);
    expect(ticks).toBeLessThan(20_000_000);
    expect(() => new Clint([])).toThrow(PlatformError);
  });
});
