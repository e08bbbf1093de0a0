// goldfish RTC (`google,goldfish-rtc`; the Android emulator's goldfish
// platform spec, QEMU's hw/rtc/goldfish_rtc.c, Linux's
// drivers/rtc/rtc-goldfish.c): a 64-bit nanosecond wall clock read through
// TIME_LOW (which latches the high half) then TIME_HIGH, one alarm, and an
// interrupt line that is high while an alarm interrupt is pending and enabled.
// Guest writes to the time move an offset over the host clock.
import * as z from "../zod.js";
import { parseState } from "./errors.js";
import type { AccessCounters, AccessSize, IrqLine, MmioDevice } from "./types.js";
import { low32, NO_IRQ } from "./types.js";

/** Register offsets (goldfish RTC). */
export const RTC_TIME_LOW = 0x00; // read: low 32 bits of ns, latches TIME_HIGH; write: set low half
export const RTC_TIME_HIGH = 0x04; // read: latched high 32 bits; write: set high half
export const RTC_ALARM_LOW = 0x08; // write: arm the alarm at (ALARM_HIGH << 32 | value)
export const RTC_ALARM_HIGH = 0x0c; // high half of the next alarm
export const RTC_IRQ_ENABLED = 0x10; // bit 0: alarm interrupt enabled
export const RTC_CLEAR_ALARM = 0x14; // write: disarm
export const RTC_ALARM_STATUS = 0x18; // read: 1 while an alarm is armed
export const RTC_CLEAR_INTERRUPT = 0x1c; // write: acknowledge the interrupt

const U64 = (v: bigint) => BigInt.asUintN(64, v);

/** Host wall-clock time in ns since the Unix epoch (monotonic after the first call). */
export function hostWallClockNs(): () => bigint {
  const wall0 = BigInt(Date.now()) * 1_000_000n;
  const t0 = performance.now();
  return () => wall0 + BigInt(Math.floor((performance.now() - t0) * 1e6));
}

const u32 = z.int().check(z.minimum(0), z.maximum(0xffff_ffff));
const dec = z.string().check(z.regex(/^-?\d{1,20}$/));
export const GoldfishRtcStateSchema = z.object({
  version: z.literal(1),
  /** Guest time minus host clock, ns (signed decimal string). */
  offsetNs: dec,
  /** Armed alarm time in guest ns (decimal string). */
  alarmNs: dec,
  alarmHigh: u32,
  timeHighLatch: u32,
  alarmRunning: z.boolean(),
  irqEnabled: z.boolean(),
  irqPending: z.boolean(),
});
export type GoldfishRtcState = z.infer<typeof GoldfishRtcStateSchema>;

export interface GoldfishRtcOptions {
  /** The interrupt line (PLIC source 11 on virt). */
  readonly irq?: IrqLine;
  /** Host wall clock in ns since the epoch (default: the host's). */
  readonly clock?: () => bigint;
}

export class GoldfishRtc implements MmioDevice {
  readonly counters: AccessCounters = { badAccesses: 0 };
  private readonly irqLine: IrqLine;
  private readonly clock: () => bigint;
  private irqLevel = false;
  private offset = 0n;
  private alarm = 0n;
  private alarmHigh = 0;
  private timeHighLatch = 0;
  private alarmRunning = false;
  private irqEnabled = false;
  private irqPending = false;

  constructor(options: GoldfishRtcOptions = {}) {
    this.irqLine = options.irq ?? NO_IRQ;
    this.clock = options.clock ?? hostWallClockNs();
  }

  /** The guest-visible time in ns. */
  time(): bigint {
    return U64(this.clock() + this.offset);
  }

  /** Nanoseconds until the armed alarm fires (0 if due: call poll()), or Infinity. */
  nanosUntilAlarm(): number {
    if (!this.alarmRunning) return Number.POSITIVE_INFINITY;
    const d = this.alarm - this.time();
    return d <= 0n ? 0 : Number(d);
  }

  /** Fires the alarm when its time has come. */
  poll(): void {
    if (this.alarmRunning && this.time() >= this.alarm) {
      this.alarmRunning = false;
      this.irqPending = true;
      this.update();
    }
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 4 || offset & 3 || offset < 0 || offset > RTC_CLEAR_INTERRUPT) {
      this.counters.badAccesses++;
      return 0;
    }
    switch (offset) {
      case RTC_TIME_LOW: {
        const t = this.time();
        this.timeHighLatch = Number(t >> 32n);
        return Number(t & 0xffff_ffffn);
      }
      case RTC_TIME_HIGH:
        return this.timeHighLatch;
      case RTC_ALARM_LOW:
        return Number(this.alarm & 0xffff_ffffn);
      case RTC_ALARM_HIGH:
        return Number(this.alarm >> 32n);
      case RTC_IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case RTC_ALARM_STATUS:
        this.poll();
        return this.alarmRunning ? 1 : 0;
      default:
        return 0; // CLEAR_ALARM, CLEAR_INTERRUPT: write-only, read as 0
    }
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    if (size !== 4 || offset & 3 || offset < 0 || offset > RTC_CLEAR_INTERRUPT) {
      this.counters.badAccesses++;
      return;
    }
    const v = BigInt(low32(value));
    switch (offset) {
      case RTC_TIME_LOW: {
        const now = this.time();
        this.offset = BigInt.asIntN(64, this.offset + ((now >> 32n) << 32n) + v - now);
        break;
      }
      case RTC_TIME_HIGH: {
        const now = this.time();
        this.offset = BigInt.asIntN(64, this.offset + (v << 32n) + (now & 0xffff_ffffn) - now);
        break;
      }
      case RTC_ALARM_LOW:
        this.alarm = (BigInt(this.alarmHigh) << 32n) | v;
        this.alarmRunning = true;
        break;
      case RTC_ALARM_HIGH:
        this.alarmHigh = Number(v);
        break;
      case RTC_IRQ_ENABLED:
        this.irqEnabled = (v & 1n) === 1n;
        break;
      case RTC_CLEAR_ALARM:
        this.alarmRunning = false;
        break;
      case RTC_CLEAR_INTERRUPT:
        this.irqPending = false;
        break;
      default:
        this.counters.badAccesses++; // ALARM_STATUS is read-only
    }
    this.poll();
    this.update();
  }

  private update(): void {
    const level = this.irqPending && this.irqEnabled;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irqLine.set(level);
    }
  }

  state(): GoldfishRtcState {
    return {
      version: 1,
      offsetNs: this.offset.toString(),
      alarmNs: this.alarm.toString(),
      alarmHigh: this.alarmHigh,
      timeHighLatch: this.timeHighLatch,
      alarmRunning: this.alarmRunning,
      irqEnabled: this.irqEnabled,
      irqPending: this.irqPending,
    };
  }

  static fromState(state: unknown, options: GoldfishRtcOptions = {}): GoldfishRtc {
    const s = parseState(GoldfishRtcStateSchema, state, "goldfish-rtc");
    const r = new GoldfishRtc(options);
    r.offset = BigInt.asIntN(64, BigInt(s.offsetNs));
    r.alarm = U64(BigInt(s.alarmNs));
    r.alarmHigh = s.alarmHigh;
    r.timeHighLatch = s.timeHighLatch;
    r.alarmRunning = s.alarmRunning;
    r.irqEnabled = s.irqEnabled;
    r.irqPending = s.irqPending;
    r.update();
    return r;
  }
}
