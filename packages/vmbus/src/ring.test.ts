import { describe, expect, it } from "vitest";
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { encodeGpaDirectHeader } from "./gpa.js";
import {
  allocateRing,
  createPacketInfo,
  maxPayload,
  PACKET_FLAG_COMPLETION_REQUESTED,
  PacketType,
  packetRingSize,
  READ_NONE,
  READ_TOO_SMALL,
  RING_CONTROL_SIZE,
  RingControl,
  RingReader,
  RingWriter,
} from "./ring.js";

const SIZE = 4096;

function ring(dataSize = SIZE, shared = true) {
  const mem = allocateRing(dataSize, shared);
  const w = new RingWriter(mem, { initialize: true });
  const r = new RingReader(mem);
  const dv = new DataView(mem.buffer, mem.byteOffset);
  const data = new DataView(mem.buffer, mem.byteOffset + RING_CONTROL_SIZE);
  return { mem, w, r, dv, data };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
const inband = (n: number, seed = 1) => ({ type: PacketType.IN_BAND, payload: bytes(n, seed) });

/** Moves both indices to `offset` by writing and reading filler packets. */
function advanceTo(w: RingWriter, r: RingReader, offset: number, dataSize = SIZE) {
  let pos = 0;
  while (pos !== offset) {
    const gap = (offset - pos + dataSize) % dataSize;
    const step = Math.min(gap, 1024);
    expect(w.write({ type: PacketType.IN_BAND, payload: new Uint8Array(step - 24) })).toBe(true);
    w.commit();
    expect(r.read()).toBeDefined();
    r.commit();
    pos = (pos + step) % dataSize;
  }
}

describe("ring layout (vmbus.md §2.5, §2.6)", () => {
  it("writes the descriptor, padded payload and footer of the worked example", () => {
    const { w, dv, data } = ring();
    expect(dv.getUint32(RingControl.FEATURE_BITS, true)).toBe(1);
    expect(
      w.write({ type: PacketType.IN_BAND, flags: 1, transactionId: 0x1122334455667788n, payload: bytes(20) }),
    ).toBe(true);
    expect(dv.getUint32(RingControl.WRITE_INDEX, true)).toBe(0); // not published before commit
    w.commit();
    expect(dv.getUint32(RingControl.WRITE_INDEX, true)).toBe(48);
    expect(data.getUint16(0, true)).toBe(6);
    expect(data.getUint16(2, true)).toBe(2); // data_offset8
    expect(data.getUint16(4, true)).toBe(5); // length8: 16 + 24
    expect(data.getUint16(6, true)).toBe(1);
    expect(data.getBigUint64(8, true)).toBe(0x1122334455667788n);
    for (let i = 20; i < 24; i++) expect(data.getUint8(16 + i)).toBe(0); // zero padding
    expect(data.getBigUint64(40, true)).toBe(0n); // footer of a packet starting at 0
    expect(w.write(inband(8))).toBe(true);
    w.commit();
    expect(data.getUint32(48 + 24 + 4, true)).toBe(48); // footer high half = start offset
    expect(data.getUint32(48 + 24, true)).toBe(0);
    expect(packetRingSize(20)).toBe(48);
  });

  it("round-trips header, payload, flags and transaction id", () => {
    const { w, r } = ring();
    const header = encodeGpaDirectHeader([{ byteCount: 5000, byteOffset: 100, pfns: [7, 8] }]);
    w.write({
      type: PacketType.GPA_DIRECT,
      flags: PACKET_FLAG_COMPLETION_REQUESTED,
      transactionId: 2n ** 64n - 1n,
      header,
      payload: [bytes(3), bytes(5, 9)],
    });
    w.commit();
    const p = r.read()!;
    expect(p.type).toBe(PacketType.GPA_DIRECT);
    expect(p.flags).toBe(1);
    expect(p.transactionId).toBe(2n ** 64n - 1n);
    expect(p.header).toEqual(header);
    expect(p.ranges).toEqual([{ byteCount: 5000, byteOffset: 100, pfns: [7, 8] }]);
    expect(Array.from(p.payload)).toEqual([...bytes(3), ...bytes(5, 9)]);
    expect(r.read()).toBeUndefined();
    expect(r.error).toBeUndefined();
  });

  it("readInto and writeRaw: same packet as write/read, GPA ranges decoded, too-small buffers consume nothing", () => {
    const { w, r } = ring();
    const header = encodeGpaDirectHeader([{ byteCount: 5000, byteOffset: 100, pfns: [7, 8] }]);
    w.write({ type: PacketType.GPA_DIRECT, transactionId: 2n ** 64n - 1n, header, payload: bytes(11) });
    expect(w.writeRaw(PacketType.IN_BAND, PACKET_FLAG_COMPLETION_REQUESTED, 0xffff_ffff, 7, bytes(30), 5)).toBe(true);
    expect(() => w.writeRaw(PacketType.IN_BAND, 0, 0, 0, bytes(4), 5)).toThrow(VmbusError);
    expect(() => w.writeRaw(PacketType.GPADL, 0, 0, 0, bytes(4))).toThrow(VmbusError);
    w.commit();
    const info = createPacketInfo();
    const out = new Uint8Array(64);
    expect(r.readInto(new Uint8Array(8), info)).toBe(READ_TOO_SMALL);
    expect(info.payloadLength).toBe(16);
    expect(r.readInto(out, info, new Uint8Array(8))).toBe(READ_TOO_SMALL);
    expect(r.counters.packets).toBe(0);
    const hdr = new Uint8Array(64);
    expect(r.readInto(out, info, hdr)).toBe(16);
    expect(info).toEqual({
      type: PacketType.GPA_DIRECT,
      flags: 0,
      transactionIdLow: 0xffff_ffff,
      transactionIdHigh: 0xffff_ffff,
      headerLength: header.length,
      payloadLength: 16,
      ranges: [{ byteCount: 5000, byteOffset: 100, pfns: [7, 8] }],
    });
    expect(hdr.subarray(0, header.length)).toEqual(header);
    expect(Array.from(out.subarray(0, 16))).toEqual([...bytes(11), 0, 0, 0, 0, 0]);
    const p = r.read()!;
    expect(p.transactionId).toBe((7n << 32n) | 0xffff_ffffn);
    expect(p.flags).toBe(PACKET_FLAG_COMPLETION_REQUESTED);
    expect(Array.from(p.payload)).toEqual([...bytes(30).subarray(0, 5), 0, 0, 0]);
    expect(r.readInto(out, info)).toBe(READ_NONE);
    expect(r.error).toBeUndefined();
  });

  it("a packet ending exactly at the end of the data area wraps the write index to 0", () => {
    const { w, r, dv } = ring();
    advanceTo(w, r, SIZE - 1024);
    expect(w.write(inband(1000))).toBe(true); // 16 + 1000 + 8 = 1024
    w.commit();
    expect(dv.getUint32(RingControl.WRITE_INDEX, true)).toBe(0);
    const p = r.read()!;
    expect(p.payload).toEqual(bytes(1000));
    r.commit();
    expect(dv.getUint32(RingControl.READ_INDEX, true)).toBe(0);
  });

  it("descriptor, payload and footer straddling the wrap are split and rejoined", () => {
    for (const start of [SIZE - 8, SIZE - 16, SIZE - 24, SIZE - 40]) {
      const { w, r, data } = ring();
      advanceTo(w, r, start);
      expect(w.write({ type: PacketType.IN_BAND, transactionId: 0xabcdn, payload: bytes(61, start) })).toBe(true);
      w.commit();
      const len = 16 + 64;
      const footer = (start + len) % SIZE;
      expect(data.getUint32(footer + 4, true)).toBe(start);
      const p = r.read()!;
      expect(p.transactionId).toBe(0xabcdn);
      expect(p.payload.subarray(0, 61)).toEqual(bytes(61, start));
      expect(p.payload.length).toBe(64);
      expect(r.error).toBeUndefined();
    }
  });

  it("free space is size - used - 8: exact fits and the byte after (off-by-8)", () => {
    const { w, r } = ring();
    expect(w.available()).toBe(SIZE - 8);
    expect(maxPayload(SIZE)).toBe(SIZE - 32);
    expect(() => w.write(inband(SIZE - 32 + 1))).toThrow(VmbusError);
    expect(w.write(inband(SIZE - 32))).toBe(true); // consumes size - 8
    expect(w.available()).toBe(0);
    w.commit();
    expect(r.read()!.payload.length).toBe(SIZE - 32);
    r.commit();
    expect(w.write(inband(1000))).toBe(true); // 1024 used
    expect(w.available()).toBe(SIZE - 1024 - 8);
    expect(w.write(inband(SIZE - 1024 - 8 - 24 + 1))).toBe(false); // 8 bytes too many
    expect(w.counters.full).toBe(1);
    expect(w.write(inband(SIZE - 1024 - 8 - 24))).toBe(true); // exactly available
    expect(w.available()).toBe(0);
  });

  it("rejects malformed outgoing packets with a typed error", () => {
    const { w } = ring();
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as VmbusError).code;
      }
      return undefined;
    };
    expect(code(() => w.write({ type: 2, payload: bytes(1) }))).toBe(VmbusErrorCode.PACKET_INVALID);
    expect(code(() => w.write({ type: 6, flags: 2, payload: bytes(1) }))).toBe(VmbusErrorCode.PACKET_INVALID);
    expect(code(() => w.write({ type: 6, header: bytes(4), payload: bytes(1) }))).toBe(VmbusErrorCode.PACKET_INVALID);
    expect(code(() => allocateRing(6000))).toBe(VmbusErrorCode.RING_GEOMETRY);
    const odd = new Uint8Array(new ArrayBuffer(4096 * 2 + 4), 4);
    expect(code(() => new RingReader(odd))).toBe(VmbusErrorCode.RING_GEOMETRY);
  });

  it("length8 is a u16: packets above 512 KiB are too large even in a big ring", () => {
    const { w } = ring(1 << 20, false);
    expect(maxPayload(1 << 20)).toBe(0xffff * 8 - 16);
    expect(w.write(inband(0xffff * 8 - 16))).toBe(true);
    expect(() => w.write(inband(0xffff * 8 - 15))).toThrow(/PACKET_TOO_LARGE/);
  });
});

describe("signalling (vmbus.md §2.7)", () => {
  it("signals only on empty -> non-empty with the mask clear", () => {
    const { w, r } = ring();
    w.write(inband(10));
    expect(w.commit()).toBe(true); // empty -> non-empty
    w.write(inband(10));
    expect(w.commit()).toBe(false); // reader has not caught up
    expect(w.commit()).toBe(false); // empty batch
    r.read();
    r.read();
    r.commit();
    r.setMask(true);
    w.write(inband(10));
    expect(w.commit()).toBe(false); // masked
    expect(r.unmaskAndCheck()).toBe(true); // must drain instead of sleeping
    r.read();
    r.commit();
    expect(r.unmaskAndCheck()).toBe(false);
    expect(r.isEmpty()).toBe(true);
    w.write(inband(10));
    expect(w.commit()).toBe(true);
    expect(w.counters.signals).toBe(2);
    expect(w.counters.commits).toBe(4);
  });

  it("a reader that read the batch but did not commit still counts as non-empty for the writer", () => {
    const { w, r } = ring();
    w.write(inband(10));
    w.commit();
    r.read(); // not committed
    w.write(inband(10));
    expect(w.commit()).toBe(false);
    r.read();
    r.commit();
    w.write(inband(10));
    expect(w.commit()).toBe(true);
  });

  it("pending_send_sz: hysteresis max(need, size/4), writer signalled only when crossing", () => {
    const { w, r, dv } = ring();
    // Fill with 8 packets of 512 bytes ring space (488 payload): 7 fit (3584 + 8 <= 4096 - ...).
    let n = 0;
    while (w.write(inband(488))) n++;
    expect(n).toBe(7); // 7 * 512 = 3584; available 4096 - 3584 - 8 = 504 < 512
    w.commit();
    expect(dv.getUint32(RingControl.PENDING_SEND_SIZE, true)).toBe(1024); // max(512, 4096/4)
    // Reading one packet frees 512: available 1016 < 1024 -> no signal.
    r.read();
    expect(r.commit()).toBe(false);
    // Second one: 1528 >= 1024 -> crossing -> signal.
    r.read();
    expect(r.commit()).toBe(true);
    // Third: already above -> no signal.
    r.read();
    expect(r.commit()).toBe(false);
    expect(r.counters.signals).toBe(1);
    // The writer's next successful write clears pending_send_sz.
    expect(w.write(inband(488))).toBe(true);
    expect(dv.getUint32(RingControl.PENDING_SEND_SIZE, true)).toBe(0);
  });

  it("pending_send_sz uses the packet size when it exceeds size/4, and free space reaching it exactly signals", () => {
    const { w, r, dv } = ring();
    expect(w.write(inband(1000 - 24))).toBe(true); // 1000 ring bytes
    expect(w.write(inband(2088 - 24))).toBe(true); // 2088
    w.commit();
    // used 3088, available 1000: a 2000-byte packet does not fit.
    expect(w.write(inband(2000 - 24))).toBe(false);
    expect(dv.getUint32(RingControl.PENDING_SEND_SIZE, true)).toBe(2000);
    r.read(); // frees 1000: available becomes exactly 2000
    expect(r.commit()).toBe(true);
    expect(w.write(inband(2000 - 24))).toBe(true);
    expect(w.available()).toBe(0);
  });

  it("free space 8 bytes short of pending_send_sz does not signal", () => {
    const { w, r } = ring();
    expect(w.write(inband(1000 - 24))).toBe(true);
    expect(w.write(inband(2096 - 24))).toBe(true);
    w.commit();
    expect(w.write(inband(2000 - 24))).toBe(false); // available 992
    r.read(); // available 1992 < 2000
    expect(r.commit()).toBe(false);
    r.read();
    expect(r.commit()).toBe(true);
  });

  it("re-checks after storing pending_send_sz: space freed concurrently is not missed", () => {
    const { w, r, dv } = ring();
    while (w.write(inband(488)));
    w.commit();
    // Simulate the reader freeing space (with pending still 0 from its point of view) — the
    // writer's next attempt sees the space and clears pending instead of waiting for a signal.
    r.read();
    r.read();
    Atomics.store(new Int32Array(dv.buffer, dv.byteOffset, 4), 3, 0);
    expect(r.commit()).toBe(false); // pending was cleared -> reader does not signal
    expect(w.write(inband(488))).toBe(true);
  });
});

describe("hostile shared state is latched, never thrown", () => {
  it("invalid write index, bad descriptor, truncated length, unknown type and flags", () => {
    const cases: [string, (dv: DataView, data: DataView) => void, string][] = [
      ["write index misaligned", (dv) => dv.setUint32(0, 52, true), VmbusErrorCode.RING_INDEX_INVALID],
      ["write index out of range", (dv) => dv.setUint32(0, SIZE, true), VmbusErrorCode.RING_INDEX_INVALID],
      ["data_offset8 < 2", (_, d) => d.setUint16(2, 1, true), VmbusErrorCode.DESCRIPTOR_INVALID],
      ["length8 < data_offset8", (_, d) => d.setUint16(4, 1, true), VmbusErrorCode.DESCRIPTOR_INVALID],
      ["length beyond written bytes", (_, d) => d.setUint16(4, 7, true), VmbusErrorCode.PACKET_TRUNCATED],
      ["length8 huge", (_, d) => d.setUint16(4, 0xffff, true), VmbusErrorCode.PACKET_TRUNCATED],
      ["unknown type", (_, d) => d.setUint16(0, 0x8, true), VmbusErrorCode.PACKET_TYPE_UNKNOWN],
      ["type 0", (_, d) => d.setUint16(0, 0, true), VmbusErrorCode.PACKET_TYPE_UNKNOWN],
      ["unknown flags", (_, d) => d.setUint16(6, 4, true), VmbusErrorCode.PACKET_FLAGS_UNKNOWN],
      ["GPA direct with no ranges", (_, d) => d.setUint16(0, 9, true), VmbusErrorCode.GPA_RANGE_INVALID],
    ];
    for (const [name, corrupt, code] of cases) {
      const { w, r, dv, data } = ring();
      w.write({ type: PacketType.IN_BAND, header: new Uint8Array(8), payload: bytes(20) }); // 48 bytes, off8 3
      w.commit();
      corrupt(dv, data);
      expect(() => r.read(), name).not.toThrow();
      expect(r.error?.code, name).toBe(code);
      expect(r.counters.violations, name).toBe(1);
      expect(r.read(), name).toBeUndefined(); // latched
      expect(r.counters.violations, name).toBe(1);
      // The zero-allocation path applies the same checks.
      const again = ring();
      again.w.write({ type: PacketType.IN_BAND, header: new Uint8Array(8), payload: bytes(20) });
      again.w.commit();
      corrupt(again.dv, again.data);
      expect(again.r.readInto(new Uint8Array(4096), createPacketInfo()), name).toBe(READ_NONE);
      expect(again.r.error?.code, name).toBe(code);
      expect(again.r.counters.violations, name).toBe(1);
    }
  });

  it("a writer facing an invalid read index returns false and latches", () => {
    const { w, dv } = ring();
    expect(w.write(inband(2000))).toBe(true);
    dv.setUint32(RingControl.READ_INDEX, 13, true);
    expect(w.write(inband(3000))).toBe(false); // needs a reload of the read index
    expect(w.error?.code).toBe(VmbusErrorCode.RING_INDEX_INVALID);
    expect(w.write(inband(1))).toBe(false);
    expect(w.available()).toBe(0);
  });

  it("constructors latch invalid indices instead of throwing", () => {
    const mem = allocateRing(SIZE);
    new DataView(mem.buffer).setUint32(4, 0xffff_fff8, true);
    expect(new RingReader(mem).error?.code).toBe(VmbusErrorCode.RING_INDEX_INVALID);
    expect(new RingWriter(mem).error?.code).toBe(VmbusErrorCode.RING_INDEX_INVALID);
  });
});
