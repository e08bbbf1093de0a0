import { describe, expect, it } from "vitest";
import { PlatformError } from "./errors.js";
import { type FinisherEvent, SifiveTest } from "./sifive-test.js";

describe("SiFive test finisher", () => {
  it("reports pass, fail with code, and reset through the callback", () => {
    const events: FinisherEvent[] = [];
    const t = new SifiveTest((e) => events.push(e));
    t.write(0, 4, 0x5555);
    t.write(0, 4, (42 << 16) | 0x3333);
    t.write(0, 4, 0x7777n);
    t.write(0, 4, 0xffff_3333n);
    expect(events).toEqual([
      { kind: "pass" },
      { kind: "fail", code: 42 },
      { kind: "reset" },
      { kind: "fail", code: 0xffff },
    ]);
    expect(t.last).toEqual({ kind: "fail", code: 0xffff });
  });

  it("ignores other values and counts garbage accesses", () => {
    const events: FinisherEvent[] = [];
    const t = new SifiveTest((e) => events.push(e));
    t.write(0, 4, 0x1234);
    t.write(4, 4, 0x5555);
    t.write(0, 2, 0x5555);
    t.write(0, 8, 0x5555n);
    expect(t.read(0, 4)).toBe(0);
    expect(t.read(8, 1)).toBe(0);
    expect(events).toEqual([]);
    expect(t.counters).toEqual({ badAccesses: 4, unknownStatus: 1 });
  });

  it("round-trips its state", () => {
    const t = new SifiveTest();
    expect(SifiveTest.fromState(t.state()).last).toBeNull();
    t.write(0, 4, (3 << 16) | 0x3333);
    const copy = SifiveTest.fromState(JSON.parse(JSON.stringify(t.state())));
    expect(copy.state()).toEqual(t.state());
    expect(() => SifiveTest.fromState({ version: 1, last: { kind: "fail" } })).toThrow(PlatformError);
  });
});
