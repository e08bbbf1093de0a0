import { describe, expect, it } from "vitest";
import { PlatformError } from "./errors.js";
import {
  GoldfishRtc,
  hostWallClockNs,
  RTC_ALARM_HIGH,
  RTC_ALARM_LOW,
  RTC_ALARM_STATUS,
  RTC_CLEAR_ALARM,
  RTC_CLEAR_INTERRUPT,
  RTC_IRQ_ENABLED,
  RTC_TIME_HIGH,
  RTC_TIME_LOW,
} from "./goldfish-rtc.js";
import { RecordingLine } from "./test-helpers.js";

const T0 = 1_764_000_000_123_456_789n; // Nov 2025, ns

function board() {
  let now = T0;
  const irq = new RecordingLine();
  const rtc = new GoldfishRtc({ irq, clock: () => now });
  const readTime = () => {
    const lo = rtc.read(RTC_TIME_LOW, 4);
    const hi = rtc.read(RTC_TIME_HIGH, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  };
  return {
    rtc,
    irq,
    readTime,
    advance: (ns: bigint) => {
      now += ns;
    },
  };
}

describe("goldfish RTC", () => {
  it("reads the wall clock in ns, TIME_LOW latching TIME_HIGH", () => {
    const { rtc, readTime, advance } = board();
    expect(readTime()).toBe(T0);
    const lo = rtc.read(RTC_TIME_LOW, 4);
    advance(1n << 33n); // the high half changes between the two reads
    expect(rtc.read(RTC_TIME_HIGH, 4)).toBe(Number(T0 >> 32n));
    expect(lo).toBe(Number(T0 & 0xffff_ffffn));
  });

  it("lets the guest set the time (high then low, as rtc-goldfish.c does)", () => {
    const { rtc, readTime, advance } = board();
    const t = 1_000_000_000_000_000_000n;
    rtc.write(RTC_TIME_HIGH, 4, Number(t >> 32n));
    rtc.write(RTC_TIME_LOW, 4, Number(t & 0xffff_ffffn));
    expect(readTime()).toBe(t);
    advance(5n);
    expect(readTime()).toBe(t + 5n);
  });

  it("fires an enabled alarm, reports status, and acknowledges", () => {
    const { rtc, irq, advance } = board();
    const at = T0 + 1_000_000n;
    rtc.write(RTC_ALARM_HIGH, 4, Number(at >> 32n));
    rtc.write(RTC_ALARM_LOW, 4, Number(at & 0xffff_ffffn));
    rtc.write(RTC_IRQ_ENABLED, 4, 1);
    expect(rtc.read(RTC_ALARM_STATUS, 4)).toBe(1);
    expect(rtc.read(RTC_ALARM_HIGH, 4)).toBe(Number(at >> 32n));
    expect(rtc.nanosUntilAlarm()).toBe(1_000_000);
    advance(999_999n);
    rtc.poll();
    expect(irq.level).toBe(false);
    advance(1n);
    rtc.poll();
    expect(irq.level).toBe(true);
    expect(rtc.read(RTC_ALARM_STATUS, 4)).toBe(0);
    expect(rtc.nanosUntilAlarm()).toBe(Number.POSITIVE_INFINITY);
    rtc.write(RTC_CLEAR_INTERRUPT, 4, 1);
    expect(irq.level).toBe(false);
  });

  it("an alarm in the past fires at once; a disabled interrupt stays low; CLEAR_ALARM disarms", () => {
    const { rtc, irq, advance } = board();
    rtc.write(RTC_ALARM_HIGH, 4, 0);
    rtc.write(RTC_ALARM_LOW, 4, 5);
    expect(irq.level).toBe(false); // not enabled
    rtc.write(RTC_IRQ_ENABLED, 4, 1);
    expect(irq.level).toBe(true);
    rtc.write(RTC_CLEAR_INTERRUPT, 4, 0);
    const at = T0 + 10n;
    rtc.write(RTC_ALARM_HIGH, 4, Number(at >> 32n));
    rtc.write(RTC_ALARM_LOW, 4, Number(at & 0xffff_ffffn));
    rtc.write(RTC_CLEAR_ALARM, 4, 1);
    advance(100n);
    rtc.poll();
    expect(irq.level).toBe(false);
  });

  it("counts garbage accesses and never throws", () => {
    const { rtc } = board();
    expect(rtc.read(RTC_TIME_LOW, 8)).toBe(0);
    expect(rtc.read(2, 4)).toBe(0);
    expect(rtc.read(0x20, 4)).toBe(0);
    rtc.write(RTC_ALARM_STATUS, 4, 1);
    rtc.write(0x800, 4, 1);
    expect(rtc.counters.badAccesses).toBe(5);
  });

  it("round-trips its state", () => {
    const { rtc } = board();
    rtc.write(RTC_TIME_HIGH, 4, 7);
    rtc.write(RTC_ALARM_HIGH, 4, 8);
    rtc.write(RTC_ALARM_LOW, 4, 9);
    rtc.write(RTC_IRQ_ENABLED, 4, 1);
    rtc.read(RTC_TIME_LOW, 4);
    const st = JSON.parse(JSON.stringify(rtc.state()));
    const irq = new RecordingLine();
    const copy = GoldfishRtc.fromState(st, { irq, clock: () => T0 });
    expect(copy.state()).toEqual(st);
    expect(copy.read(RTC_TIME_HIGH, 4)).toBe(7);
    expect(copy.read(RTC_ALARM_STATUS, 4)).toBe(1);
    expect(() => GoldfishRtc.fromState({ ...st, alarmHigh: -1 })).toThrow(PlatformError);
  });

  it("the default clock is the host's wall clock", () => {
    const ms = Number(hostWallClockNs()() / 1_000_000n);
    expect(Math.abs(ms - Date.now())).toBeLessThan(1000);
  });
});
