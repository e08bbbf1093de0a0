import { describe, expect, it } from "vitest";
import { LoopbackBackend, RecordingBackend } from "./testing.js";

describe("test doubles", () => {
  it("RecordingBackend keeps copies of sent frames and injects into the receiver", () => {
    const b = new RecordingBackend();
    const f = Uint8Array.of(1, 2, 3);
    b.send(f);
    f[0] = 9;
    expect([...b.sent[0]!]).toEqual([1, 2, 3]);
    expect(b.inject(f)).toBe(false);
    const got: number[] = [];
    b.setReceiver((x) => got.push(x[0]!));
    expect(b.inject(f)).toBe(true);
    b.close();
    expect(b.inject(f)).toBe(false);
    b.send(f);
    expect(got).toEqual([9]);
    expect(b.sent).toHaveLength(1);
  });

  it("LoopbackBackend returns each frame to its sender", () => {
    const b = new LoopbackBackend();
    const got: Uint8Array[] = [];
    b.setReceiver((x) => got.push(x));
    b.send(Uint8Array.of(7));
    b.close();
    b.send(Uint8Array.of(8));
    expect(got.map((x) => x[0])).toEqual([7]);
  });
});
