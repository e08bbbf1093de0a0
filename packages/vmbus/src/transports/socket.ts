// Stream-socket transport (Unix socket or 127.0.0.1 TCP) so a VSP can live in
// another process. Length-prefixed frames: u32 length (LE, counts kind + body),
// u8 kind, body.
//
//   1 CONTROL   body = one control message (<= 240 bytes)
//   2 SIGNAL    body = u32 channel ID
//   3 RING_DATA body = u32 channel ID, u32 write_index, u32 pending_send_sz, u32 from,
//               then the data-area bytes [from, write_index) (wrapping)
//   4 RING_READ body = u32 channel ID, u32 read_index, u32 interrupt_mask
//
// Copy mode: ring memory cannot be shared across processes, so each side keeps
// its own copy of both rings of a channel. After every commit the owner of a
// ring field ships it: the writer ships new packet bytes with write_index and
// pending_send_sz (RING_DATA), the reader ships read_index and interrupt_mask
// (RING_READ). A RING_DATA frame also acts as a signal to the receiving
// channel (the copy may lag the peer's view, so the §2.7 "signal only on
// empty -> non-empty" decision made on stale indices could otherwise lose a
// wakeup); a RING_READ frame signals the local channel when its writer is
// waiting (pending_send_sz != 0). The readers still validate everything:
// frames are peer input and a malformed one is counted and dropped.
import type { Duplex } from "node:stream";
import type { ControlTransport, RingMirror, SignalTransport } from "../channel.js";
import { MAX_MESSAGE_SIZE } from "../messages.js";
import { RING_CONTROL_SIZE, RingControl } from "../ring.js";

export const FrameKind = { CONTROL: 1, SIGNAL: 2, RING_DATA: 3, RING_READ: 4 } as const;
/** Largest frame accepted: a full 1 GiB ring is never shipped at once in practice; cap at 16 MiB. */
export const MAX_FRAME = 16 << 20;

export interface SocketEndpointCounters {
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Frames that were malformed or named an unknown channel (dropped). */
  badFrames: number;
}

interface Mirrored {
  outgoing: Uint8Array;
  incoming: Uint8Array;
  outCtrl: Int32Array;
  inCtrl: Int32Array;
  /** write_index of the outgoing ring as last shipped. */
  shipped: number;
  /** read_index of the incoming ring as last shipped. */
  readShipped: number;
}

/** One end of a socket: ControlTransport + SignalTransport + the copy-mode RingMirror. */
export class SocketEndpoint implements ControlTransport, SignalTransport, RingMirror {
  readonly counters: SocketEndpointCounters = { framesIn: 0, framesOut: 0, bytesOut: 0, badFrames: 0 };
  readonly #socket: Duplex;
  readonly #rings = new Map<number, Mirrored>();
  #onMessage: ((m: Uint8Array) => void) | undefined;
  #onSignal: ((id: number) => void) | undefined;
  #pending: Uint8Array = new Uint8Array(0);
  #closed = false;

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("close", () => {
      this.#closed = true;
    });
    socket.on("error", () => {
      this.#closed = true;
    });
  }

  #send(kind: number, body: Uint8Array): boolean {
    if (this.#closed) return false;
    const frame = new Uint8Array(5 + body.length);
    new DataView(frame.buffer).setUint32(0, 1 + body.length, true);
    frame[4] = kind;
    frame.set(body, 5);
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
    this.#socket.write(frame);
    return true;
  }

  post(message: Uint8Array): boolean {
    return this.#send(FrameKind.CONTROL, message);
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
  }

  signal(channelId: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, channelId, true);
    this.#send(FrameKind.SIGNAL, b);
  }

  onSignal(handler: (channelId: number) => void): void {
    this.#onSignal = handler;
  }

  /** Registers the local copies of a channel's rings (called by VmbusServer / VmbusClient on open). */
  attach(channelId: number, outgoing: Uint8Array, incoming: Uint8Array): void {
    this.#rings.set(channelId, {
      outgoing,
      incoming,
      outCtrl: new Int32Array(outgoing.buffer, outgoing.byteOffset, 32),
      inCtrl: new Int32Array(incoming.buffer, incoming.byteOffset, 32),
      shipped: Atomics.load(new Int32Array(outgoing.buffer, outgoing.byteOffset, 1), 0) >>> 0,
      readShipped: Atomics.load(new Int32Array(incoming.buffer, incoming.byteOffset, 2), 1) >>> 0,
    });
  }

  outgoingCommitted(channelId: number): void {
    const m = this.#rings.get(channelId);
    if (!m) return;
    const size = m.outgoing.length - RING_CONTROL_SIZE;
    const w = Atomics.load(m.outCtrl, RingControl.WRITE_INDEX / 4) >>> 0;
    const pending = Atomics.load(m.outCtrl, RingControl.PENDING_SEND_SIZE / 4) >>> 0;
    const from = m.shipped;
    const n = (w - from) & (size - 1);
    const body = new Uint8Array(16 + n);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, channelId, true);
    dv.setUint32(4, w, true);
    dv.setUint32(8, pending, true);
    dv.setUint32(12, from, true);
    const data = m.outgoing.subarray(RING_CONTROL_SIZE);
    const first = Math.min(n, size - from);
    body.set(data.subarray(from, from + first), 16);
    if (first < n) body.set(data.subarray(0, n - first), 16 + first);
    m.shipped = w;
    this.#send(FrameKind.RING_DATA, body);
  }

  incomingCommitted(channelId: number): void {
    const m = this.#rings.get(channelId);
    if (!m) return;
    const r = Atomics.load(m.inCtrl, RingControl.READ_INDEX / 4) >>> 0;
    if (r === m.readShipped) return; // nothing consumed since the last frame
    m.readShipped = r;
    const body = new Uint8Array(12);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, channelId, true);
    dv.setUint32(4, r, true);
    dv.setUint32(8, Atomics.load(m.inCtrl, RingControl.INTERRUPT_MASK / 4) >>> 0, true);
    this.#send(FrameKind.RING_READ, body);
  }

  #onData(chunk: Uint8Array): void {
    let buf: Uint8Array;
    if (this.#pending.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending);
      buf.set(chunk, this.#pending.length);
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0, true);
      if (len === 0 || len > MAX_FRAME) {
        // Framing is lost: nothing after this can be trusted.
        this.counters.badFrames++;
        this.close();
        return;
      }
      if (buf.length - pos - 4 < len) break;
      const kind = buf[pos + 4];
      const body = buf.slice(pos + 5, pos + 4 + len);
      pos += 4 + len;
      this.counters.framesIn++;
      this.#frame(kind, body);
    }
    this.#pending = buf.slice(pos);
  }

  #frame(kind: number, body: Uint8Array): void {
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    switch (kind) {
      case FrameKind.CONTROL:
        if (body.length > MAX_MESSAGE_SIZE) break;
        this.#onMessage?.(body);
        return;
      case FrameKind.SIGNAL:
        if (body.length !== 4) break;
        this.#onSignal?.(dv.getUint32(0, true));
        return;
      case FrameKind.RING_DATA: {
        if (body.length < 16) break;
        const id = dv.getUint32(0, true);
        const m = this.#rings.get(id);
        if (!m) break;
        const size = m.incoming.length - RING_CONTROL_SIZE;
        const w = dv.getUint32(4, true);
        const from = dv.getUint32(12, true);
        const n = body.length - 16;
        if (w >= size || from >= size || (w & 7) !== 0 || (from & 7) !== 0 || ((w - from) & (size - 1)) !== n) break;
        const data = m.incoming.subarray(RING_CONTROL_SIZE);
        const first = Math.min(n, size - from);
        data.set(body.subarray(16, 16 + first), from);
        if (first < n) data.set(body.subarray(16 + first), 0);
        Atomics.store(m.inCtrl, RingControl.PENDING_SEND_SIZE / 4, dv.getUint32(8, true));
        Atomics.store(m.inCtrl, RingControl.WRITE_INDEX / 4, w);
        this.#onSignal?.(id);
        return;
      }
      case FrameKind.RING_READ: {
        if (body.length !== 12) break;
        const id = dv.getUint32(0, true);
        const m = this.#rings.get(id);
        if (!m) break;
        // Stored as received: the local writer validates read_index itself.
        Atomics.store(m.outCtrl, RingControl.READ_INDEX / 4, dv.getUint32(4, true));
        Atomics.store(m.outCtrl, RingControl.INTERRUPT_MASK / 4, dv.getUint32(8, true));
        if (Atomics.load(m.outCtrl, RingControl.PENDING_SEND_SIZE / 4) !== 0) this.#onSignal?.(id);
        return;
      }
    }
    this.counters.badFrames++;
  }

  /** Closes the socket; later posts return false. */
  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }
}
