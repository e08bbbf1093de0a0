import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeIntercept, encodeIntercept, type Intercept } from "./intercept.js";
import {
  createSintQueues,
  createVpArea,
  drainEventFlags,
  PORT_BUFFERS,
  setIrqLine,
  signalEventFlag,
  sintQueue,
  Vp,
} from "./synic.js";

describe("SINT message queues", () => {
  it("deliver in order, refuse the 17th message, survive index wrap-around", () => {
    const q = sintQueue(createSintQueues(), 2);
    const other = sintQueue(createSintQueues(), 3);
    let sent = 0;
    let got = 0;
    // 200 rounds of 1..16 messages: the slot index wraps ~100 times.
    for (let round = 0; round < 200; round++) {
      const n = 1 + (round % PORT_BUFFERS);
      for (let i = 0; i < n; i++) {
        expect(q.post(1 + (sent % 7), sent, Uint8Array.of(sent & 0xff, 0xaa))).toBe(true);
        sent++;
      }
      if (n === PORT_BUFFERS) expect(q.post(1, 0, new Uint8Array(0))).toBe(false);
      for (let m = q.take(); m; m = q.take()) {
        expect(m.origin).toBe(got);
        expect(m.type).toBe(1 + (got % 7));
        expect([...m.payload]).toEqual([got & 0xff, 0xaa]);
        got++;
      }
    }
    expect(got).toBe(sent);
    expect(q.refused).toBeGreaterThan(0);
    expect(other.pending).toBe(0); // queues do not overlap
  });

  it("keeps full 240-byte payloads intact in every slot", () => {
    const q = sintQueue(createSintQueues(), 15);
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 240 }), { minLength: 1, maxLength: 16 }), (payloads) => {
        for (const p of payloads) expect(q.post(5, 1, p)).toBe(true);
        for (const p of payloads) expect(q.take()?.payload).toEqual(p);
        expect(q.take()).toBeUndefined();
      }),
    );
  });
});

describe("event flags and interrupt lines", () => {
  it("wake the VP only on the clear -> set edge, and every flag drains once", () => {
    const a = new Int32Array(createVpArea());
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2047 }), { maxLength: 64 }),
        fc.integer({ min: 0, max: 15 }),
        (flags, sint) => {
          const before = Atomics.load(a, Vp.DOORBELL);
          let edges = 0;
          for (const f of flags) if (signalEventFlag(a, sint, f)) edges++;
          const unique = new Set(flags);
          expect(edges).toBe(unique.size);
          expect(Atomics.load(a, Vp.DOORBELL) - before).toBe(unique.size);
          const seen: number[] = [];
          drainEventFlags(a, sint, (f) => seen.push(f));
          expect(seen.sort((x, y) => x - y)).toEqual([...unique].sort((x, y) => x - y));
          expect(drainEventFlags(a, sint, () => {})).toBe(0);
        },
      ),
    );
  });

  it("a line rings the doorbell only when its level changes", () => {
    const a = new Int32Array(createVpArea());
    setIrqLine(a, 10, true);
    setIrqLine(a, 10, true);
    setIrqLine(a, 10, false);
    expect(Atomics.load(a, Vp.DOORBELL)).toBe(2);
    expect(Atomics.load(a, Vp.IRQ_LINES + 10)).toBe(0);
  });
});

describe("intercept messages", () => {
  const mmio = fc.record({
    kind: fc.constant("mmio" as const),
    vp: fc.nat(0xffff),
    seq: fc.nat(0x7fffffff),
    write: fc.boolean(),
    posted: fc.boolean(),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
    address: fc.nat(0xffffffff),
    value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  });
  const sbi = fc.record({
    kind: fc.constant("sbi" as const),
    vp: fc.nat(0xffff),
    seq: fc.nat(0x7fffffff),
    posted: fc.boolean(),
    op: fc.constantFrom("write" as const, "read" as const),
    bytes: fc.uint8Array({ maxLength: 200 }),
    max: fc.nat(0xffff),
  });
  it("round-trip", () => {
    fc.assert(
      fc.property(fc.oneof(mmio, sbi), (i: Intercept) => {
        const m = encodeIntercept(i);
        expect(m.payload.length).toBeLessThanOrEqual(240);
        expect(decodeIntercept(m.type, m.payload)).toEqual(i);
      }),
    );
  });
  it("garbage decodes to undefined or a well-formed intercept, never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 240 }), (type, p) => {
        const i = decodeIntercept(type, p);
        if (i?.kind === "mmio") expect([1, 2, 4, 8]).toContain(i.size);
        if (i?.kind === "sbi") expect(i.bytes.length).toBeLessThanOrEqual(p.length);
      }),
    );
  });
});
