// SiFive test finisher (`sifive,test0`; QEMU's hw/misc/sifive_test.c): a
// 32-bit write at offset 0 ends the machine. Low 16 bits: 0x5555 pass,
// 0x3333 fail with the exit code in bits 31:16, 0x7777 reset. Linux reaches
// it through syscon-poweroff/syscon-reboot. The event goes to a callback:
// the board decides what "exit" means (never process.exit here).
import * as z from "../zod.js";
import { parseState } from "./errors.js";
import type { AccessCounters, AccessSize, MmioDevice } from "./types.js";
import { low32 } from "./types.js";

export const TEST_FINISHER_FAIL = 0x3333;
export const TEST_FINISHER_PASS = 0x5555;
export const TEST_FINISHER_RESET = 0x7777;

export type FinisherEvent =
  | { readonly kind: "pass" }
  | { readonly kind: "fail"; readonly code: number }
  | { readonly kind: "reset" };

export const FinisherEventSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("pass") }),
  z.object({ kind: z.literal("fail"), code: z.int().check(z.minimum(0), z.maximum(0xffff)) }),
  z.object({ kind: z.literal("reset") }),
]);

export const SifiveTestStateSchema = z.object({
  version: z.literal(1),
  /** The last event the guest signalled, if any. */
  last: z.nullable(FinisherEventSchema),
});
export type SifiveTestState = z.infer<typeof SifiveTestStateSchema>;

export interface SifiveTestCounters extends AccessCounters {
  /** Writes of a status other than pass/fail/reset (ignored, as QEMU does). */
  unknownStatus: number;
}

export class SifiveTest implements MmioDevice {
  readonly counters: SifiveTestCounters = { badAccesses: 0, unknownStatus: 0 };
  private lastEvent: FinisherEvent | null = null;

  constructor(private readonly onEvent: (event: FinisherEvent) => void = () => {}) {}

  /** The last event the guest signalled, or null. */
  get last(): FinisherEvent | null {
    return this.lastEvent;
  }

  read(_offset: number, size: AccessSize): number {
    if (size !== 4 || _offset !== 0) this.counters.badAccesses++;
    return 0;
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    if (offset !== 0 || size !== 4) {
      this.counters.badAccesses++;
      return;
    }
    const v = low32(value);
    let ev: FinisherEvent;
    switch (v & 0xffff) {
      case TEST_FINISHER_PASS:
        ev = { kind: "pass" };
        break;
      case TEST_FINISHER_FAIL:
        ev = { kind: "fail", code: v >>> 16 };
        break;
      case TEST_FINISHER_RESET:
        ev = { kind: "reset" };
        break;
      default:
        this.counters.unknownStatus++;
        return;
    }
    this.lastEvent = ev;
    this.onEvent(ev);
  }

  state(): SifiveTestState {
    return { version: 1, last: this.lastEvent };
  }

  static fromState(state: unknown, onEvent?: (event: FinisherEvent) => void): SifiveTest {
    const s = parseState(SifiveTestStateSchema, state, "sifive-test");
    const t = new SifiveTest(onEvent);
    t.lastEvent = s.last;
    return t;
  }
}
