// Property tests (fast-check): random packet sizes and batch patterns deliver
// exactly the sent bytes in order across many wraps; a simulated
// reader/writer pair driven only by the signals never deadlocks; random
// corruption of the control page and descriptors never throws, never touches
// memory outside the ring and is latched and counted.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VmbusErrorCode } from "./errors.js";
import {
  createPacketInfo,
  maxPayload,
  PacketType,
  READ_NONE,
  READ_TOO_SMALL,
  RING_CONTROL_SIZE,
  RingReader,
  RingWriter,
} from "./ring.js";

const CANARY = 0xa5;
const GUARD = 256;

/** A ring placed inside a larger buffer, with canaries on both sides. */
function guardedRing(dataSize: number, shift8: number) {
  const total = GUARD + shift8 * 8 + RING_CONTROL_SIZE + dataSize + GUARD;
  const buf = new Uint8Array(new SharedArrayBuffer(total));
  buf.fill(CANARY);
  const start = GUARD + shift8 * 8;
  const mem = buf.subarray(start, start + RING_CONTROL_SIZE + dataSize);
  mem.fill(0);
  const canariesIntact = () => {
    for (let i = 0; i < start; i++) if (buf[i] !== CANARY) return false;
    for (let i = start + mem.length; i < total; i++) if (buf[i] !== CANARY) return false;
    return true;
  };
  return { buf, mem, canariesIntact };
}

function fill(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const sizeArb = (dataSize: number) =>
  fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 64 }), weight: 5 },
    { arbitrary: fc.integer({ min: 0, max: 700 }), weight: 3 },
    // odd and large sizes right below the maximum (size - 8 with descriptor and footer)
    { arbitrary: fc.integer({ min: 0, max: 40 }).map((k) => maxPayload(dataSize) - k), weight: 1 },
  );

/** The received payload is the sent one plus zero padding to 8 (one expect: toEqual on big arrays is slow). */
function expectPadded(got: Uint8Array, sent: Uint8Array): void {
  let bad = got.length === ((sent.length + 7) & ~7) ? -1 : -2;
  for (let i = 0; bad === -1 && i < got.length; i++) if (got[i] !== (i < sent.length ? sent[i] : 0)) bad = i;
  expect(bad).toBe(-1);
}

describe("ring properties", () => {
  it("random sizes, batches and split payloads arrive exactly, in order, across many wraps", () => {
    let wraps = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.boolean()), {
          minLength: 50,
          maxLength: 200,
        }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (dataSize, shift, steps, seed) => {
          const { mem, canariesIntact } = guardedRing(dataSize, shift);
          const w = new RingWriter(mem, { initialize: true });
          const r = new RingReader(mem);
          const sizes = fc.sample(sizeArb(dataSize), { numRuns: 2000, seed: shift + dataSize });
          const queue: Uint8Array[] = [];
          let next = 0;
          let delivered = 0;
          let tid = 0n;
          let expectTid = 0n;
          for (const [writes, reads, split] of steps) {
            for (let i = 0; i < writes; i++) {
              const payload = fill(sizes[next % sizes.length], seed + next);
              const parts = split && payload.length > 2 ? [payload.subarray(0, 3), payload.subarray(3)] : payload;
              if (!w.write({ type: PacketType.IN_BAND, transactionId: tid, payload: parts })) break;
              tid++;
              next++;
              queue.push(payload);
            }
            w.commit();
            for (let i = 0; i < reads; i++) {
              const p = r.read();
              if (!p) break;
              expect(p.transactionId).toBe(expectTid++);
              expectPadded(p.payload, queue.shift()!);
              delivered++;
            }
            r.commit();
          }
          for (let p = r.read(); p; p = r.read()) {
            expectPadded(p.payload, queue.shift()!);
            delivered++;
          }
          expect(queue.length).toBe(0);
          expect(r.error).toBeUndefined();
          expect(delivered).toBe(w.counters.packets);
          expect(r.counters.bytes).toBe(w.counters.bytes);
          expect(canariesIntact()).toBe(true);
          wraps += w.counters.bytes / dataSize;
        },
      ),
      { numRuns: 150 },
    );
    expect(wraps).toBeGreaterThan(1000);
  });

  it("a writer and a reader that only wake on the ring's signals never deadlock and lose nothing", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 400, maxLength: 400 }),
        fc.array(sizeArb(4096), { minLength: 40, maxLength: 40 }),
        (dataSize, schedule, sizes) => {
          const mem = new Uint8Array(new ArrayBuffer(RING_CONTROL_SIZE + dataSize));
          const w = new RingWriter(mem, { initialize: true });
          const r = new RingReader(mem);
          const total = 300;
          let sent = 0;
          let received = 0;
          let writerBlocked = false;
          let readerAsleep = true; // OpenVMM: the reader unmasks right before it waits
          let spins = 0;
          for (let step = 0; received < total; step++) {
            const pick = schedule[step % schedule.length];
            const writerTurn = pick < 5 ? !writerBlocked && sent < total : readerAsleep;
            if (writerTurn && !writerBlocked && sent < total) {
              const batch = 1 + (pick % 4);
              for (let i = 0; i < batch && sent < total; i++) {
                const n = sizes[sent % sizes.length] % (maxPayload(dataSize) + 1);
                if (!w.write({ type: PacketType.IN_BAND, transactionId: BigInt(sent), payload: fill(n, sent) })) {
                  writerBlocked = true;
                  break;
                }
                sent++;
              }
              if (w.commit()) readerAsleep = false;
            } else if (!readerAsleep) {
              r.setMask(true);
              const budget = 1 + (pick % 3);
              let drained = false;
              for (let i = 0; i < budget; i++) {
                const p = r.read();
                if (!p) {
                  drained = true;
                  break;
                }
                expect(p.transactionId).toBe(BigInt(received));
                received++;
              }
              if (r.commit()) writerBlocked = false;
              if (drained && !r.unmaskAndCheck()) readerAsleep = true;
            } else if (writerBlocked || sent === total) {
              // Both sides wait: only legal when everything has been delivered.
              expect({ deadlock: true, sent, received, writerBlocked }).toEqual({
                deadlock: false,
                sent,
                received,
                writerBlocked,
              });
            }
            if (++spins > 200_000) throw new Error("no progress");
          }
          expect(r.error).toBeUndefined();
        },
      ),
      { numRuns: 150 },
    );
  });

  it("random corruption of the control page and descriptors never throws and is latched and counted", () => {
    const codes = new Set<string>(Object.values(VmbusErrorCode));
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.integer({ min: 0, max: 900 }), { minLength: 1, maxLength: 20 }),
        fc.array(
          fc.oneof(
            fc.record({ word: fc.integer({ min: 0, max: 3 }), value: fc.integer({ min: 0, max: 0xffff_ffff }) }),
            fc.record({
              word: fc.integer({ min: 0, max: 1 }),
              value: fc.integer({ min: 0, max: 2 ** 16 }).map((v) => v * 8),
            }),
            fc.record({ at: fc.integer({ min: 0, max: 8191 }), value: fc.integer({ min: 0, max: 0xffff }) }),
          ),
          { minLength: 1, maxLength: 8 },
        ),
        (dataSize, shift, sizes, corruptions) => {
          const { mem, canariesIntact } = guardedRing(dataSize, shift);
          const w = new RingWriter(mem, { initialize: true });
          for (const n of sizes) if (!w.write({ type: PacketType.IN_BAND, payload: fill(n, n) })) break;
          w.commit();
          const ctrl = new DataView(mem.buffer, mem.byteOffset, RING_CONTROL_SIZE);
          const data = new DataView(mem.buffer, mem.byteOffset + RING_CONTROL_SIZE, dataSize);
          for (const c of corruptions) {
            if ("word" in c) ctrl.setUint32(c.word * 4, c.value, true);
            else data.setUint16((c.at % dataSize) & ~1, c.value, true);
          }
          const r = new RingReader(mem);
          const w2 = new RingWriter(mem); // a writer attached to the corrupted ring
          for (let round = 0; round < 3; round++) {
            for (let i = 0; i < 100; i++) {
              const p = r.read();
              if (!p) break;
              expect(p.header.length % 8).toBe(0);
              expect(p.payload.length % 8).toBe(0);
              expect(p.payload.length + p.header.length + 16).toBeLessThanOrEqual(dataSize - 16);
            }
            r.commit();
            r.unmaskAndCheck();
            r.isEmpty();
            w2.write({ type: PacketType.IN_BAND, payload: fill(100, round) });
            w2.commit();
            w2.available();
          }
          if (r.error) {
            expect(codes.has(r.error.code)).toBe(true);
            expect(r.counters.violations).toBe(1);
          } else {
            expect(r.counters.violations).toBe(0);
          }
          expect(canariesIntact()).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("writeRaw + readInto (the zero-allocation paths) deliver exactly what write + read do, across wraps", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.nat(7)), {
          minLength: 50,
          maxLength: 150,
        }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (dataSize, shift, steps, seed) => {
          const { mem, canariesIntact } = guardedRing(dataSize, shift);
          const w = new RingWriter(mem, { initialize: true });
          const r = new RingReader(mem);
          const sizes = fc.sample(sizeArb(dataSize), { numRuns: 500, seed: seed + shift });
          const big = new Uint8Array(dataSize);
          const small = new Uint8Array(24);
          const info = createPacketInfo();
          const queue: { payload: Uint8Array; lo: number; hi: number }[] = [];
          let next = 0;
          const check = (mode: number): boolean => {
            if (mode === 0) {
              const p = r.read();
              if (!p) return false;
              const e = queue.shift()!;
              expect(p.transactionId).toBe((BigInt(e.hi) << 32n) | BigInt(e.lo));
              expectPadded(p.payload, e.payload);
              return true;
            }
            let into = mode === 1 ? small : big;
            let n = r.readInto(into, info);
            if (n === READ_NONE) return false;
            if (n === READ_TOO_SMALL) {
              expect(info.payloadLength).toBeGreaterThan(small.length);
              into = big;
              n = r.readInto(big, info);
            }
            const e = queue.shift()!;
            expect([info.type, info.flags, info.transactionIdLow, info.transactionIdHigh]).toEqual([
              PacketType.IN_BAND,
              0,
              e.lo,
              e.hi,
            ]);
            expect(n).toBe(info.payloadLength);
            expectPadded(into.subarray(0, n), e.payload);
            return true;
          };
          for (const [writes, reads, mode] of steps) {
            for (let i = 0; i < writes; i++) {
              const n = sizes[next % sizes.length];
              const buf = fill(n + (mode & 3), seed + next); // payloadLength below the buffer's length
              const lo = (seed * 7 + next) >>> 0;
              const hi = next & 1 ? next : 0;
              if (!w.writeRaw(PacketType.IN_BAND, 0, lo, hi, buf, n)) break;
              next++;
              queue.push({ payload: buf.subarray(0, n), lo, hi });
            }
            w.commit();
            for (let i = 0; i < reads; i++) if (!check(mode % 3)) break;
            r.commit();
          }
          while (check(2));
          expect(queue.length).toBe(0);
          expect(r.error).toBeUndefined();
          expect(r.counters.bytes).toBe(w.counters.bytes);
          expect(canariesIntact()).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("readInto sees the same packets and the same violation as read on identically corrupted rings", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.array(fc.integer({ min: 0, max: 900 }), { minLength: 1, maxLength: 20 }),
        fc.array(
          fc.oneof(
            fc.record({ word: fc.integer({ min: 0, max: 1 }), value: fc.integer({ min: 0, max: 0xffff_ffff }) }),
            fc.record({ at: fc.integer({ min: 0, max: 8191 }), value: fc.integer({ min: 0, max: 0xffff }) }),
          ),
          { minLength: 1, maxLength: 8 },
        ),
        (dataSize, sizes, corruptions) => {
          const rings = [guardedRing(dataSize, 0), guardedRing(dataSize, 1)];
          for (const { mem } of rings) {
            const w = new RingWriter(mem, { initialize: true });
            for (const n of sizes) {
              const type = n % 5 === 0 ? PacketType.COMPLETION : PacketType.IN_BAND;
              if (!w.write({ type, flags: n & 1, transactionId: BigInt(n * 977), payload: fill(n, n) })) break;
            }
            w.commit();
            const ctrl = new DataView(mem.buffer, mem.byteOffset, RING_CONTROL_SIZE);
            const data = new DataView(mem.buffer, mem.byteOffset + RING_CONTROL_SIZE, dataSize);
            for (const c of corruptions) {
              if ("word" in c) ctrl.setUint32(c.word * 4, c.value, true);
              else data.setUint16((c.at % dataSize) & ~1, c.value, true);
            }
          }
          const a = new RingReader(rings[0].mem);
          const b = new RingReader(rings[1].mem);
          const buf = new Uint8Array(dataSize);
          const hdr = new Uint8Array(dataSize);
          const info = createPacketInfo();
          for (let i = 0; i < 100; i++) {
            const p = a.read();
            const n = b.readInto(buf, info, hdr);
            expect(n).not.toBe(READ_TOO_SMALL);
            if (!p) {
              expect(n).toBe(READ_NONE);
              break;
            }
            expect(info.type).toBe(p.type);
            expect(info.flags).toBe(p.flags);
            expect((BigInt(info.transactionIdHigh) << 32n) | BigInt(info.transactionIdLow)).toBe(p.transactionId);
            expect(buf.subarray(0, n)).toEqual(p.payload);
            expect(hdr.subarray(0, info.headerLength)).toEqual(p.header);
          }
          expect(b.error?.code).toBe(a.error?.code);
          expect(b.counters).toEqual(a.counters);
          expect(rings[0].canariesIntact() && rings[1].canariesIntact()).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
