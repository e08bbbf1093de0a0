// A channel as both ends see it: a RingWriter for the outgoing ring, a
// RingReader for the incoming one, a way to signal the peer and an explicit
// state (vmbus.md §2.2a, OpenVMM vmbus_server channels.rs states).
import { VmbusError, VmbusErrorCode } from "./errors.js";
import type { IncomingPacket, OutgoingPacket, RingReader, RingWriter } from "./ring.js";

/**
 * offered: available, not open · opening: OPEN_CHANNEL in progress · open ·
 * closing: CLOSE_CHANNEL in progress · revoked: rescinded, channel ID held
 * until RELID_RELEASED · reoffered: offered again while the old instance still
 * holds the ID (sent on release) · released: terminal, ID freed.
 */
export type ChannelState = "offered" | "opening" | "open" | "closing" | "revoked" | "reoffered" | "released";

/** Control messages (vmbus.md §2.1): `post` returns false when no buffer is free, the caller retries. */
export interface ControlTransport {
  post(message: Uint8Array): boolean;
  onMessage(handler: (message: Uint8Array) => void): void;
}

/** Event signals, one flag per channel ID (vmbus.md §2.8). */
export interface SignalTransport {
  signal(channelId: number): void;
  onSignal(handler: (channelId: number) => void): void;
}

/**
 * Optional hook of transports whose ring memory cannot be shared (the socket
 * transport's copy mode): told after every commit so it can ship the bytes.
 */
export interface RingMirror {
  /** The local writer published a new write index (and maybe pending_send_sz) on the outgoing ring. */
  outgoingCommitted(channelId: number): void;
  /** The local reader published a new read index on the incoming ring. */
  incomingCommitted(channelId: number): void;
}

export interface ChannelCounters {
  signalsIn: number;
  signalsOut: number;
}

type Listener<A extends unknown[]> = (...a: A) => void;

/** Shared part of ServerChannel and ClientChannel. */
export class Channel {
  readonly channelId: number;
  readonly counters: ChannelCounters = { signalsIn: 0, signalsOut: 0 };
  #state: ChannelState;
  #writer: RingWriter | undefined;
  #reader: RingReader | undefined;
  #error: VmbusError | undefined;
  readonly #signals: SignalTransport;
  readonly #stateListeners: Listener<[ChannelState, ChannelState]>[] = [];
  readonly #signalListeners: Listener<[]>[] = [];
  /** Set by the owner: what to do when the incoming ring is found corrupt. */
  protected onViolation: (e: VmbusError) => void = () => {};
  /** @internal */
  mirror: RingMirror | undefined;
  /** @internal the ring views, once opened (see channelDataPlane). */
  ringMemory: { outgoing: Uint8Array; incoming: Uint8Array } | undefined;

  constructor(channelId: number, state: ChannelState, signals: SignalTransport) {
    this.channelId = channelId;
    this.#state = state;
    this.#signals = signals;
  }

  get state(): ChannelState {
    return this.#state;
  }

  /** The first ring violation or protocol error on this channel. */
  get error(): VmbusError | undefined {
    return this.#error;
  }

  /** Outgoing ring. Throws INVALID_STATE if the channel was never opened. */
  get writer(): RingWriter {
    if (!this.#writer)
      throw new VmbusError(VmbusErrorCode.INVALID_STATE, { channelId: this.channelId, state: this.#state });
    return this.#writer;
  }

  /** Incoming ring. Throws INVALID_STATE if the channel was never opened. */
  get reader(): RingReader {
    if (!this.#reader)
      throw new VmbusError(VmbusErrorCode.INVALID_STATE, { channelId: this.channelId, state: this.#state });
    return this.#reader;
  }

  /** @internal */
  attachRings(writer: RingWriter, reader: RingReader): void {
    this.#writer = writer;
    this.#reader = reader;
  }

  /** @internal */
  setState(next: ChannelState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    for (const l of this.#stateListeners.slice()) l(next, prev);
  }

  /** @internal */
  setError(e: VmbusError): void {
    this.#error ??= e;
  }

  /** Called with (state, previous) on every transition; returns an unsubscribe function. */
  onStateChange(cb: (state: ChannelState, previous: ChannelState) => void): () => void {
    this.#stateListeners.push(cb);
    return () => remove(this.#stateListeners, cb);
  }

  /** Called when the peer signals this channel (new packets, or ring space freed). */
  onSignal(cb: () => void): () => void {
    this.#signalListeners.push(cb);
    return () => remove(this.#signalListeners, cb);
  }

  /** @internal the owner routes the transport's signal here. */
  deliverSignal(): void {
    this.counters.signalsIn++;
    for (const l of this.#signalListeners.slice()) l();
  }

  /** Signals the peer (only while open). */
  signalPeer(): void {
    if (this.#state !== "open") return;
    this.counters.signalsOut++;
    this.#signals.signal(this.channelId);
  }

  /**
   * Commits the outgoing batch and signals the peer if the ring says so
   * (vmbus.md §2.7). Returns whether a signal was sent.
   */
  flush(): boolean {
    const w = this.writer;
    const dirty = this.mirror !== undefined && w.uncommitted() !== 0;
    const sig = w.commit();
    if (dirty) this.mirror!.outgoingCommitted(this.channelId);
    if (sig) this.signalPeer();
    return sig;
  }

  /** Writes one packet and flushes; false when the ring is full (retry after a signal). */
  send(p: OutgoingPacket): boolean {
    if (!this.writer.write(p)) return false;
    this.flush();
    return true;
  }

  /**
   * Drains the incoming ring the Linux/OpenVMM way (vmbus.md §2.7): mask,
   * read everything, commit (signalling a blocked writer), unmask and re-check.
   * Returns the number of packets handled. A ring violation sets `error` and
   * calls the owner's violation policy (server: revoke; client: close) — it is
   * never thrown.
   */
  receive(handler: (p: IncomingPacket) => void, budget = Number.POSITIVE_INFINITY): number {
    const r = this.reader;
    let n = 0;
    for (;;) {
      r.setMask(true);
      for (let p = n < budget ? r.read() : undefined; p !== undefined; p = n < budget ? r.read() : undefined) {
        n++;
        handler(p);
      }
      const sig = r.commit();
      if (this.mirror) this.mirror.incomingCommitted(this.channelId);
      if (sig) this.signalPeer();
      if (r.error) {
        this.setError(r.error);
        this.onViolation(r.error);
        return n;
      }
      if (n >= budget) return n; // stay masked: the caller comes back
      if (!r.unmaskAndCheck()) return n;
    }
  }
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

/**
 * Control-message sender with retry: a transport without buffers returns false
 * and the message is retried in order with a growing delay (Linux connection.c
 * retries HvPostMessage with exponential back-off).
 */
export class ControlPoster {
  readonly #t: ControlTransport;
  readonly #queue: Uint8Array[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #delay = 1;
  retries = 0;
  sent = 0;

  constructor(t: ControlTransport) {
    this.#t = t;
  }

  post(m: Uint8Array): void {
    this.#queue.push(m);
    if (this.#queue.length === 1 && this.#timer === undefined) this.#flush();
  }

  #flush(): void {
    this.#timer = undefined;
    while (this.#queue.length > 0) {
      if (!this.#t.post(this.#queue[0])) {
        this.retries++;
        this.#timer = setTimeout(() => this.#flush(), this.#delay);
        this.#delay = Math.min(this.#delay * 2, 100);
        return;
      }
      this.#delay = 1;
      this.sent++;
      this.#queue.shift();
    }
  }

  /** Drops queued messages and stops retrying. */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }
}
