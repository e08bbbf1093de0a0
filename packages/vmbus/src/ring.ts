// One direction of a VMBus channel: a 4 KiB control page followed by a
// power-of-two data area (vmbus.md §2.5). Packets are 8-aligned, start with a
// 16-byte descriptor and end with an 8-byte footer (§2.6). Writers batch then
// commit; readers read then commit; both commits say whether to signal (§2.7).
//
// Memory model: indices, interrupt mask and pending_send_sz are accessed with
// Atomics (sequentially consistent, which gives the full barriers Linux
// ring_buffer.c uses); payload bytes are plain typed-array copies published by
// the index store. Copies are split at the wrap (at most two), as OpenVMM's
// SingleMappedRingMem does (vmbus.md §5.3).
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { decodeGpaDirectHeader, type GpaRange } from "./gpa.js";

/** Size of the control page in front of the data area (Linux hyperv.h struct hv_ring_buffer). */
export const RING_CONTROL_SIZE = 4096;
/** Smallest data area accepted (one page). */
export const RING_MIN_DATA_SIZE = 4096;

// Control page word offsets (Int32 index = byte offset / 4) — vmbus.md §2.5.
/** 0: write_index u32, owned by the writer (OpenVMM "in"). */
const W_WRITE = 0;
/** 4: read_index u32, owned by the reader (OpenVMM "out"). */
const W_READ = 1;
/** 8: interrupt_mask u32, owned by the reader. */
const W_MASK = 2;
/** 12: pending_send_sz u32, owned by the writer. */
const W_PENDING = 3;
/** 64: feature_bits u32; bit 0 = supports pending_send_sz. */
const W_FEATURES = 16;
export const RING_FEATURE_PENDING_SEND_SIZE = 1;

/** Byte offsets of the control-page fields, for tests and tracing. */
export const RingControl = {
  WRITE_INDEX: 0,
  READ_INDEX: 4,
  INTERRUPT_MASK: 8,
  PENDING_SEND_SIZE: 12,
  FEATURE_BITS: 64,
} as const;

/** Packet types (Linux hyperv.h enum vmbus_packet_type). */
export const PacketType = {
  INVALID: 0,
  SYNCH: 1,
  ADD_TRANSFER_PAGE_SET: 2,
  REMOVE_TRANSFER_PAGE_SET: 3,
  ESTABLISH_GPADL: 4,
  TEARDOWN_GPADL: 5,
  IN_BAND: 6,
  TRANSFER_PAGES: 7,
  GPADL: 8,
  GPA_DIRECT: 9,
  CANCEL_REQUEST: 0xa,
  COMPLETION: 0xb,
  DATA_USING_ADDITIONAL_PACKETS: 0xc,
  ADDITIONAL_DATA: 0xd,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/**
 * Types a reader accepts: OpenVMM's set (in-band, transfer pages, GPA direct,
 * completion; vmbus.md §2.6) plus SYNCH. Everything else is a violation.
 */
const ACCEPTED_TYPES = new Uint8Array(16);
for (const t of [
  PacketType.SYNCH,
  PacketType.IN_BAND,
  PacketType.TRANSFER_PAGES,
  PacketType.GPA_DIRECT,
  PacketType.COMPLETION,
]) {
  ACCEPTED_TYPES[t] = 1;
}
/** True if a reader of this library accepts packets of `type`. */
export function isAcceptedPacketType(type: number): boolean {
  return type >= 0 && type < 16 && ACCEPTED_TYPES[type] === 1;
}

/** The only defined packet flag (Linux hyperv.h VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED). */
export const PACKET_FLAG_COMPLETION_REQUESTED = 1;

/** Descriptor size: type u16, data_offset8 u16, length8 u16, flags u16, transaction_id u64. */
export const PACKET_DESCRIPTOR_SIZE = 16;
/** Footer after each packet: u64 with the packet's start offset in the high 32 bits. */
export const PACKET_FOOTER_SIZE = 8;
/** length8 is a u16 (vmbus.md §2.6). */
const MAX_LENGTH8 = 0xffff;

export interface OutgoingPacket {
  type: number;
  flags?: number;
  transactionId?: bigint;
  /** bytes placed between the 16-byte descriptor and the payload (e.g. encoded GPA ranges); multiple of 8 */
  header?: Uint8Array;
  payload: Uint8Array | readonly Uint8Array[];
}

export interface IncomingPacket {
  type: number;
  flags: number;
  transactionId: bigint;
  /** Bytes between the descriptor and data_offset8 * 8 (copied). */
  header: Uint8Array;
  /** (length8 - data_offset8) * 8 bytes (copied): the sent payload plus its zero padding to 8. */
  payload: Uint8Array;
  /** For GPA_DIRECT packets: the validated ranges decoded from `header`. */
  ranges?: GpaRange[];
}

/**
 * What `RingReader.readInto` fills in instead of allocating an IncomingPacket
 * (reuse one object per loop: `createPacketInfo()`).
 */
export interface PacketInfo {
  type: number;
  flags: number;
  /** Low 32 bits of transaction_id (unsigned). */
  transactionIdLow: number;
  /** High 32 bits of transaction_id (unsigned). */
  transactionIdHigh: number;
  /** Bytes between the descriptor and data_offset8 * 8 (copied into `header` if one was given). */
  headerLength: number;
  /** (length8 - data_offset8) * 8: the payload plus its zero padding to 8. */
  payloadLength: number;
  /** For GPA_DIRECT packets: the validated ranges; undefined otherwise. */
  ranges: GpaRange[] | undefined;
}

/** A fresh PacketInfo for `RingReader.readInto`. */
export function createPacketInfo(): PacketInfo {
  return {
    type: 0,
    flags: 0,
    transactionIdLow: 0,
    transactionIdHigh: 0,
    headerLength: 0,
    payloadLength: 0,
    ranges: undefined,
  };
}

/** readInto: nothing to read (empty ring, or a violation is latched in `error`). */
export const READ_NONE = -1;
/** readInto: the next packet's payload (or header) does not fit the buffers given; nothing consumed. */
export const READ_TOO_SMALL = -2;

/**
 * Ring bytes a packet consumes, footer included: 16 + header + payload rounded
 * up to 8 + 8 (OpenVMM PacketSize; vmbus.md §2.6 worked size).
 */
export function packetRingSize(payloadLength: number, headerLength = 0): number {
  return PACKET_DESCRIPTOR_SIZE + headerLength + ((payloadLength + 7) & ~7) + PACKET_FOOTER_SIZE;
}

/** Largest payload an empty ring of `dataSize` bytes takes in one in-band packet. */
export function maxPayload(dataSize: number, headerLength = 0): number {
  return (
    Math.min(dataSize - 8, MAX_LENGTH8 * 8 + PACKET_FOOTER_SIZE) -
    PACKET_DESCRIPTOR_SIZE -
    headerLength -
    PACKET_FOOTER_SIZE
  );
}

/**
 * Allocates one ring (control page + `dataSize` bytes), over a SharedArrayBuffer
 * unless `shared` is false.
 */
export function allocateRing(dataSize: number, shared = true): Uint8Array {
  checkDataSize(dataSize);
  const bytes = RING_CONTROL_SIZE + dataSize;
  return new Uint8Array(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
}

function checkDataSize(dataSize: number): void {
  if (
    !Number.isInteger(dataSize) ||
    dataSize < RING_MIN_DATA_SIZE ||
    (dataSize & (dataSize - 1)) !== 0 ||
    dataSize > 2 ** 30
  ) {
    throw new VmbusError(
      VmbusErrorCode.RING_GEOMETRY,
      { dataSize },
      "data area must be a power of two >= 4096 and <= 1 GiB",
    );
  }
}

/** Validates ring memory; returns the data size. */
function geometry(mem: Uint8Array): number {
  if (!(mem instanceof Uint8Array)) throw new VmbusError(VmbusErrorCode.RING_GEOMETRY, {}, "mem must be a Uint8Array");
  if (mem.byteOffset % 8 !== 0) {
    throw new VmbusError(
      VmbusErrorCode.RING_GEOMETRY,
      { byteOffset: mem.byteOffset },
      "byteOffset must be a multiple of 8",
    );
  }
  const dataSize = mem.length - RING_CONTROL_SIZE;
  checkDataSize(dataSize);
  return dataSize;
}

const EMPTY = new Uint8Array(0);
/** Copies up to this many bytes with a loop instead of a subarray + set (no allocation, cheaper when small). */
const SMALL_COPY = 64;

export interface RingWriterCounters {
  /** Packets written (committed or not). */
  packets: number;
  /** Ring bytes written: descriptors, headers, padded payloads and footers. */
  bytes: number;
  /** Commits that published a new write index. */
  commits: number;
  /** Commits that returned true (reader must be signalled). */
  signals: number;
  /** write() calls that returned false (ring full). */
  full: number;
}

/** The sending side of one ring. */
export class RingWriter {
  readonly dataSize: number;
  readonly counters: RingWriterCounters = { packets: 0, bytes: 0, commits: 0, signals: 0, full: 0 };
  readonly #ctrl: Int32Array;
  readonly #data: Uint8Array;
  readonly #dv: DataView;
  readonly #mask: number;
  /** Write position including the uncommitted batch. */
  #wpos = 0;
  /** write_index as last published. */
  #committed = 0;
  /** Last read_index seen (validated); a stale value only under-estimates free space. */
  #cachedRead = 0;
  /** True while this writer has a non-zero pending_send_sz outstanding. */
  #pendingSet = false;
  #error: VmbusError | undefined;

  constructor(mem: Uint8Array, options: { initialize?: boolean } = {}) {
    this.dataSize = geometry(mem);
    this.#mask = this.dataSize - 1;
    this.#ctrl = new Int32Array(mem.buffer, mem.byteOffset, RING_CONTROL_SIZE / 4);
    this.#data = mem.subarray(RING_CONTROL_SIZE);
    this.#dv = new DataView(mem.buffer, mem.byteOffset + RING_CONTROL_SIZE, this.dataSize);
    if (options.initialize) {
      for (let i = 0; i < RING_CONTROL_SIZE / 4; i++) Atomics.store(this.#ctrl, i, 0);
      // Linux sets feature bit 0 at ring init; OpenVMM OutgoingRing::new (vmbus.md §2.5).
      Atomics.store(this.#ctrl, W_FEATURES, RING_FEATURE_PENDING_SEND_SIZE);
    }
    const w = Atomics.load(this.#ctrl, W_WRITE) >>> 0;
    const r = Atomics.load(this.#ctrl, W_READ) >>> 0;
    if (!this.#validIndex(w) || !this.#validIndex(r)) {
      this.#error = new VmbusError(VmbusErrorCode.RING_INDEX_INVALID, { write: w, read: r, side: "writer" });
    } else {
      this.#wpos = this.#committed = w;
      this.#cachedRead = r;
    }
  }

  /** Latched when the peer left an invalid read index; writes then return false. */
  get error(): VmbusError | undefined {
    return this.#error;
  }

  #validIndex(i: number): boolean {
    return i < this.dataSize && (i & 7) === 0; // vmbus.md §2.5: valid iff < size and a multiple of 8
  }

  #loadRead(): number {
    const r = Atomics.load(this.#ctrl, W_READ) >>> 0;
    if (!this.#validIndex(r)) {
      this.#error = new VmbusError(VmbusErrorCode.RING_INDEX_INVALID, { read: r, side: "writer" });
      return -1;
    }
    this.#cachedRead = r;
    return r;
  }

  /** Bytes a new packet may use now (size - used - 8), counting the uncommitted batch. */
  available(): number {
    if (this.#error) return 0;
    const r = this.#loadRead();
    if (r < 0) return 0;
    return this.dataSize - ((this.#wpos - r) & this.#mask) - 8;
  }

  /**
   * Appends to the uncommitted batch (payload copied, zero padded to 8, footer
   * with start offset << 32). false = does not fit: pending_send_sz is set
   * (hysteresis max(need, size/4)) so the reader signals when space frees.
   * Never throws for ring state; a malformed packet or one larger than the ring
   * can ever hold -> VmbusError.
   */
  write(p: OutgoingPacket): boolean {
    const payload = p.payload;
    let plen = 0;
    if (payload instanceof Uint8Array) plen = payload.length;
    else for (let i = 0; i < payload.length; i++) plen += payload[i].length;
    return this.#put(p.type, p.flags ?? 0, p.transactionId, 0, 0, p.header, payload, plen);
  }

  /**
   * `write` without the packet object and without a bigint: the transaction id
   * as two u32 halves, the payload as the first `payloadLength` bytes of
   * `payload` (default all). Allocates nothing. Same checks, same result.
   */
  writeRaw(
    type: number,
    flags: number,
    transactionIdLow: number,
    transactionIdHigh: number,
    payload: Uint8Array,
    payloadLength: number = payload.length,
    header?: Uint8Array,
  ): boolean {
    if (!Number.isInteger(payloadLength) || payloadLength < 0 || payloadLength > payload.length) {
      throw new VmbusError(
        VmbusErrorCode.PACKET_INVALID,
        { payloadLength, available: payload.length },
        "payloadLength outside the payload buffer",
      );
    }
    return this.#put(type, flags, undefined, transactionIdLow, transactionIdHigh, header, payload, payloadLength);
  }

  #put(
    type: number,
    flags: number,
    tid: bigint | undefined,
    tidLow: number,
    tidHigh: number,
    header: Uint8Array | undefined,
    payload: Uint8Array | readonly Uint8Array[],
    plen: number,
  ): boolean {
    if (!isAcceptedPacketType(type) || (flags & ~PACKET_FLAG_COMPLETION_REQUESTED) !== 0) {
      throw new VmbusError(VmbusErrorCode.PACKET_INVALID, { type, flags }, "unknown packet type or flags");
    }
    const hlen = header === undefined ? 0 : header.length;
    if ((hlen & 7) !== 0)
      throw new VmbusError(VmbusErrorCode.PACKET_INVALID, { headerLength: hlen }, "header not a multiple of 8");
    const len = PACKET_DESCRIPTOR_SIZE + hlen + ((plen + 7) & ~7);
    const need = len + PACKET_FOOTER_SIZE;
    const size = this.dataSize;
    // vmbus.md §2.5: the largest packet (footer included) is size - 8; length8 is a u16.
    if (need > size - 8 || len > MAX_LENGTH8 * 8) {
      throw new VmbusError(VmbusErrorCode.PACKET_TOO_LARGE, { bytes: need, dataSize: size }, "packet can never fit");
    }
    if (this.#error) {
      this.counters.full++;
      return false;
    }
    const mask = this.#mask;
    // Free space as Linux hv_ringbuffer_write: the ring is never filled completely (§2.5).
    if (size - ((this.#wpos - this.#cachedRead) & mask) - 8 < need) {
      let r = this.#loadRead();
      if (r < 0 || size - ((this.#wpos - r) & mask) - 8 < need) {
        if (r < 0) {
          this.counters.full++;
          return false;
        }
        // vmbus.md §2.7 flow control: ask for max(need, size/4) (OpenVMM hysteresis), then re-check
        // so a read committed between our check and the store cannot be missed.
        Atomics.store(this.#ctrl, W_PENDING, Math.min(Math.max(need, size >>> 2), size - 8));
        this.#pendingSet = true;
        r = this.#loadRead();
        if (r < 0 || size - ((this.#wpos - r) & mask) - 8 < need) {
          this.counters.full++;
          return false;
        }
      }
    }
    if (this.#pendingSet) {
      // OpenVMM clears pending_send_sz once the write fits.
      Atomics.store(this.#ctrl, W_PENDING, 0);
      this.#pendingSet = false;
    }
    const dv = this.#dv;
    const start = this.#wpos;
    // Linux hyperv.h struct vmpacket_descriptor. The descriptor may straddle the wrap at its 8-byte halves only.
    dv.setUint16(start, type, true);
    dv.setUint16(start + 2, (PACKET_DESCRIPTOR_SIZE + hlen) >>> 3, true);
    dv.setUint16(start + 4, len >>> 3, true);
    dv.setUint16(start + 6, flags, true);
    let pos = (start + 8) & mask;
    if (tid === undefined) {
      dv.setUint32(pos, tidLow >>> 0, true);
      dv.setUint32(pos + 4, tidHigh >>> 0, true);
    } else {
      dv.setBigUint64(pos, tid, true);
    }
    pos = (pos + 8) & mask;
    if (hlen !== 0) pos = this.#copyIn(header!, hlen, pos);
    if (payload instanceof Uint8Array) pos = this.#copyIn(payload, plen, pos);
    else for (let i = 0; i < payload.length; i++) pos = this.#copyIn(payload[i], payload[i].length, pos);
    const pad = (8 - (plen & 7)) & 7;
    if (pad !== 0) {
      // The padding ends on an 8-byte boundary, so it never straddles the wrap. Payload zero padded (Linux channel.c).
      const data = this.#data;
      for (let i = 0; i < pad; i++) data[pos + i] = 0;
      pos = (pos + pad) & mask;
    }
    // Footer: u64 with the packet start in the high 32 bits (Linux ring_buffer.c prev_indices).
    dv.setUint32(pos, 0, true);
    dv.setUint32(pos + 4, start, true);
    this.#wpos = (pos + 8) & mask;
    this.counters.packets++;
    this.counters.bytes += need;
    return true;
  }

  /** Copies src[0..n) in at pos: one copy, or two split at the wrap. */
  #copyIn(src: Uint8Array, n: number, pos: number): number {
    const data = this.#data;
    const first = this.dataSize - pos;
    if (n <= first) {
      if (n === src.length) data.set(src, pos);
      else if (n <= SMALL_COPY) for (let i = 0; i < n; i++) data[pos + i] = src[i];
      else data.set(src.subarray(0, n), pos);
      return (pos + n) & this.#mask;
    }
    data.set(src.subarray(0, first), pos);
    data.set(src.subarray(first, n), 0);
    return n - first;
  }

  /** Bytes written but not yet committed. */
  uncommitted(): number {
    return (this.#wpos - this.#committed) & this.#mask;
  }

  /**
   * Publishes write_index with Atomics.store once; returns true iff the reader
   * must be signalled: interrupt_mask clear AND the ring was empty before this
   * batch (read_index == old write_index) — vmbus.md §2.7, Linux
   * hv_signal_on_write, OpenVMM commit_write.
   */
  commit(): boolean {
    const w = this.#wpos;
    const old = this.#committed;
    if (w === old) return false;
    this.#committed = w;
    Atomics.store(this.#ctrl, W_WRITE, w);
    this.counters.commits++;
    if (Atomics.load(this.#ctrl, W_MASK) !== 0) return false;
    if (Atomics.load(this.#ctrl, W_READ) >>> 0 !== old) return false;
    this.counters.signals++;
    return true;
  }
}

export interface RingReaderCounters {
  /** Packets delivered. */
  packets: number;
  /** Ring bytes consumed (descriptors, headers, padded payloads, footers). */
  bytes: number;
  /** Commits that published a new read index. */
  commits: number;
  /** Commits that returned true (writer must be signalled). */
  signals: number;
  /** Protocol violations seen (latched: at most one per reader). */
  violations: number;
}

/** The receiving side of one ring. */
export class RingReader {
  readonly dataSize: number;
  readonly counters: RingReaderCounters = { packets: 0, bytes: 0, commits: 0, signals: 0, violations: 0 };
  readonly #ctrl: Int32Array;
  readonly #data: Uint8Array;
  readonly #dv: DataView;
  readonly #mask: number;
  /** Read position including packets read but not committed. */
  #rpos = 0;
  /** read_index as last published. */
  #committed = 0;
  /** Last validated write_index; packets up to it may be read without another load. */
  #cachedWrite = 0;
  #error: VmbusError | undefined;

  constructor(mem: Uint8Array) {
    this.dataSize = geometry(mem);
    this.#mask = this.dataSize - 1;
    this.#ctrl = new Int32Array(mem.buffer, mem.byteOffset, RING_CONTROL_SIZE / 4);
    this.#data = mem.subarray(RING_CONTROL_SIZE);
    this.#dv = new DataView(mem.buffer, mem.byteOffset + RING_CONTROL_SIZE, this.dataSize);
    const r = Atomics.load(this.#ctrl, W_READ) >>> 0;
    if (r >= this.dataSize || (r & 7) !== 0) {
      this.#violate(VmbusErrorCode.RING_INDEX_INVALID, { read: r, side: "reader" });
    } else {
      this.#rpos = this.#committed = this.#cachedWrite = r;
    }
  }

  /** The first violation seen; once set, read() returns undefined. */
  get error(): VmbusError | undefined {
    return this.#error;
  }

  #violate(code: VmbusErrorCode, context: Record<string, unknown>): undefined {
    this.#error = new VmbusError(code, context);
    this.counters.violations++;
    return undefined;
  }

  /**
   * The next packet, copied out then validated; undefined when empty or after a
   * violation (latched in `error`). Never throws, never reads outside mem.
   */
  read(): IncomingPacket | undefined {
    if (!this.#next()) return undefined;
    const start = this.#rpos;
    const mask = this.#mask;
    const hlen = this.#hlen;
    const plen = this.#plen;
    const lo = this.#tidLow;
    const hi = this.#tidHigh;
    const transactionId = (lo | hi) === 0 ? 0n : (BigInt(hi) << 32n) | BigInt(lo);
    const p3 = (start + PACKET_DESCRIPTOR_SIZE) & mask;
    const header = hlen === 0 ? EMPTY : this.#copyOut(p3, hlen);
    const payload = plen === 0 ? EMPTY : this.#copyOut((p3 + hlen) & mask, plen);
    let ranges: GpaRange[] | undefined;
    if (this.#type === PacketType.GPA_DIRECT) {
      // Validated on the copy, so the peer cannot change it after the check (vmbus.md §3.4 CoCo rule).
      const r = decodeGpaDirectHeader(header);
      if (r instanceof VmbusError)
        return this.#violate(VmbusErrorCode.GPA_RANGE_INVALID, { offset: start, detail: r.message });
      ranges = r;
    }
    this.#consume();
    const packet: IncomingPacket = { type: this.#type, flags: this.#flags, transactionId, header, payload };
    if (ranges !== undefined) packet.ranges = ranges;
    return packet;
  }

  /**
   * `read` without allocating: the payload is copied into `payload[0..n)`, the
   * header (if any) into `header` when given (GPA_DIRECT headers are always
   * copied, validated and decoded into `info.ranges`), the descriptor's fields
   * into `info`. Returns n = `info.payloadLength` (≥ 0) when a packet was
   * consumed; READ_NONE when empty or after a violation (see `error`);
   * READ_TOO_SMALL when `payload` (or a given `header`) is shorter than the
   * packet's — nothing is consumed and `info` says the sizes needed. Same
   * validation as `read`; never throws, never reads outside mem.
   */
  readInto(payload: Uint8Array, info: PacketInfo, header?: Uint8Array): number {
    if (!this.#next()) return READ_NONE;
    const start = this.#rpos;
    const mask = this.#mask;
    const hlen = this.#hlen;
    const plen = this.#plen;
    const type = this.#type;
    info.type = type;
    info.flags = this.#flags;
    info.transactionIdLow = this.#tidLow;
    info.transactionIdHigh = this.#tidHigh;
    info.headerLength = hlen;
    info.payloadLength = plen;
    info.ranges = undefined;
    if (plen > payload.length || (header !== undefined && hlen > header.length)) return READ_TOO_SMALL;
    const p3 = (start + PACKET_DESCRIPTOR_SIZE) & mask;
    if (type === PacketType.GPA_DIRECT) {
      // Validated on a private copy, so the peer cannot change it after the check (vmbus.md §3.4 CoCo rule).
      const copy = this.#copyOut(p3, hlen);
      const r = decodeGpaDirectHeader(copy);
      if (r instanceof VmbusError)
        return this.#violate(VmbusErrorCode.GPA_RANGE_INVALID, { offset: start, detail: r.message }) ?? READ_NONE;
      info.ranges = r;
      if (header !== undefined) header.set(copy);
    } else if (header !== undefined && hlen !== 0) {
      this.#copyTo(p3, hlen, header);
    }
    if (plen !== 0) this.#copyTo((p3 + hlen) & mask, plen, payload);
    this.#consume();
    return plen;
  }

  // Fields of the packet at #rpos, set by #next() once its descriptor is validated.
  #type = 0;
  #flags = 0;
  #tidLow = 0;
  #tidHigh = 0;
  #hlen = 0;
  #plen = 0;

  /**
   * Validates the descriptor at #rpos against the published write index and
   * loads its fields; false when empty or on a violation (latched).
   */
  #next(): boolean {
    if (this.#error !== undefined) return false;
    const size = this.dataSize;
    const mask = this.#mask;
    const start = this.#rpos;
    let w = this.#cachedWrite;
    if (w === start) {
      w = Atomics.load(this.#ctrl, W_WRITE) >>> 0;
      // vmbus.md §2.5 / §5.10: index < size and a multiple of 8.
      if (w >= size || (w & 7) !== 0) {
        this.#violate(VmbusErrorCode.RING_INDEX_INVALID, { write: w, side: "reader" });
        return false;
      }
      this.#cachedWrite = w;
      if (w === start) return false;
    }
    const avail = (w - start) & mask;
    const dv = this.#dv;
    // Descriptor first half (never straddles: start is 8-aligned). Linux hyperv.h struct vmpacket_descriptor.
    // Each field is read from shared memory once, into a local, and checked there.
    const type = dv.getUint16(start, true);
    const off8 = dv.getUint16(start + 2, true);
    const len8 = dv.getUint16(start + 4, true);
    const flags = dv.getUint16(start + 6, true);
    // OpenVMM vmbus_ring read checks (vmbus.md §2.6): data_offset8 >= 2, length8 >= data_offset8,
    // length (+ footer) within the bytes available, known type and flags.
    if (off8 < 2 || len8 < off8) {
      this.#violate(VmbusErrorCode.DESCRIPTOR_INVALID, { offset: start, off8, len8 });
      return false;
    }
    const len = len8 * 8;
    if (len + PACKET_FOOTER_SIZE > avail) {
      this.#violate(VmbusErrorCode.PACKET_TRUNCATED, { offset: start, len8, available: avail });
      return false;
    }
    if (type >= 16 || ACCEPTED_TYPES[type] !== 1) {
      this.#violate(VmbusErrorCode.PACKET_TYPE_UNKNOWN, { offset: start, type });
      return false;
    }
    if ((flags & ~PACKET_FLAG_COMPLETION_REQUESTED) !== 0) {
      this.#violate(VmbusErrorCode.PACKET_FLAGS_UNKNOWN, { offset: start, flags });
      return false;
    }
    const p2 = (start + 8) & mask;
    this.#type = type;
    this.#flags = flags;
    this.#tidLow = dv.getUint32(p2, true);
    this.#tidHigh = dv.getUint32(p2 + 4, true);
    this.#hlen = off8 * 8 - PACKET_DESCRIPTOR_SIZE;
    this.#plen = len - off8 * 8;
    return true;
  }

  /** Moves past the packet #next() validated. */
  #consume(): void {
    const used = PACKET_DESCRIPTOR_SIZE + this.#hlen + this.#plen + PACKET_FOOTER_SIZE;
    this.#rpos = (this.#rpos + used) & this.#mask;
    this.counters.packets++;
    this.counters.bytes += used;
  }

  #copyOut(pos: number, n: number): Uint8Array {
    const first = this.dataSize - pos;
    if (n <= first) return this.#data.slice(pos, pos + n);
    const out = new Uint8Array(n);
    out.set(this.#data.subarray(pos));
    out.set(this.#data.subarray(0, n - first), first);
    return out;
  }

  /** Copies n bytes at pos into out[0..n): one copy, or two split at the wrap. */
  #copyTo(pos: number, n: number, out: Uint8Array): void {
    const data = this.#data;
    const first = this.dataSize - pos;
    if (n <= first) {
      if (n <= SMALL_COPY) for (let i = 0; i < n; i++) out[i] = data[pos + i];
      else out.set(data.subarray(pos, pos + n));
      return;
    }
    out.set(data.subarray(pos));
    out.set(data.subarray(0, n - first), first);
  }

  /** Bytes read but not yet committed. */
  uncommitted(): number {
    return (this.#rpos - this.#committed) & this.#mask;
  }

  /**
   * Publishes read_index for what was read; returns true iff the writer must be
   * signalled: pending_send_sz != 0 and free space moved from below it to at or
   * above it (vmbus.md §2.7, Linux hv_pkt_iter_close).
   */
  commit(): boolean {
    const r = this.#rpos;
    const old = this.#committed;
    if (r === old) return false;
    this.#committed = r;
    Atomics.store(this.#ctrl, W_READ, r);
    this.counters.commits++;
    const pending = Atomics.load(this.#ctrl, W_PENDING) >>> 0;
    if (pending === 0) return false;
    const w = Atomics.load(this.#ctrl, W_WRITE) >>> 0;
    const size = this.dataSize;
    const mask = this.#mask;
    const before = size - ((w - old) & mask) - 8;
    const after = size - ((w - r) & mask) - 8;
    if (before >= pending || after < pending) return false;
    this.counters.signals++;
    return true;
  }

  /** Sets or clears interrupt_mask (the writer then skips or sends signals). */
  setMask(masked: boolean): void {
    Atomics.store(this.#ctrl, W_MASK, masked ? 1 : 0);
  }

  /**
   * Clears the interrupt mask and re-checks (vmbus.md §2.7): true when the ring
   * is non-empty, i.e. the caller must drain again instead of sleeping.
   */
  unmaskAndCheck(): boolean {
    Atomics.store(this.#ctrl, W_MASK, 0);
    return !this.isEmpty();
  }

  /** True when nothing is left to read (or a violation is latched). */
  isEmpty(): boolean {
    if (this.#error !== undefined) return true;
    return Atomics.load(this.#ctrl, W_WRITE) >>> 0 === this.#rpos;
  }
}
