// Request/response on top of a channel (vmbus.md §2.6): a request is an
// in-band packet with COMPLETION_REQUESTED and a transaction ID; the answer is
// a COMPLETION packet (type 0xB) echoing that ID. Several requests may be in
// flight; each has a timeout; a rescind fails them all.
import type { Channel } from "./channel.js";
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { type IncomingPacket, type OutgoingPacket, PACKET_FLAG_COMPLETION_REQUESTED, PacketType } from "./ring.js";

export interface RequestOptions {
  /** Milliseconds before the request fails with TIMEOUT (default: the channel's default, 5000). */
  timeoutMs?: number;
  /** Packet type of the request (default IN_BAND). */
  type?: number;
  /** Extra header (e.g. GPA-direct ranges). */
  header?: Uint8Array;
}

export interface RequestChannelOptions {
  /** Default per-request timeout in ms (default 5000). */
  timeoutMs?: number;
  /**
   * Incoming packets that are not completions of our requests: requests from
   * the peer (flag COMPLETION_REQUESTED set: answer with `complete`) and plain
   * in-band messages.
   */
  onPacket?: (p: IncomingPacket) => void;
}

export interface RequestCounters {
  requests: number;
  completed: number;
  timeouts: number;
  failed: number;
  /** Completions that matched no request in flight (late after a timeout, or bogus): dropped. */
  unmatched: number;
  /** Times a send waited for ring space. */
  queued: number;
}

interface Pending {
  resolve(p: IncomingPacket): void;
  reject(e: VmbusError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Drives one channel: drains it on every signal, matches completions to
 * requests, queues sends while the ring is full (the peer's pending_send_sz
 * signal resumes them).
 */
export class RequestChannel {
  readonly channel: Channel;
  readonly counters: RequestCounters = { requests: 0, completed: 0, timeouts: 0, failed: 0, unmatched: 0, queued: 0 };
  readonly #pending = new Map<bigint, Pending>();
  readonly #queue: OutgoingPacket[] = [];
  readonly #o: RequestChannelOptions;
  #nextId = 1n;
  #failure: VmbusError | undefined;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(channel: Channel, options: RequestChannelOptions = {}) {
    this.channel = channel;
    this.#o = options;
    this.#unsubscribe.push(channel.onSignal(() => this.pump()));
    this.#unsubscribe.push(
      channel.onStateChange((state) => {
        if (state === "revoked")
          this.failAll(
            channel.error ?? new VmbusError(VmbusErrorCode.CHANNEL_REVOKED, { channelId: channel.channelId }),
          );
        else if (state === "closing" || state === "offered" || state === "released") {
          this.#rejectAll(new VmbusError(VmbusErrorCode.CLOSED, { channelId: channel.channelId }));
        }
      }),
    );
    // Packets the peer sent before this helper subscribed would otherwise wait for the next signal.
    queueMicrotask(() => this.pump());
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Sends a request and resolves with the peer's completion packet. */
  request(payload: Uint8Array | readonly Uint8Array[], o: RequestOptions = {}): Promise<IncomingPacket> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.channel.state !== "open") {
      return Promise.reject(
        new VmbusError(VmbusErrorCode.INVALID_STATE, { channelId: this.channel.channelId, state: this.channel.state }),
      );
    }
    const transactionId = this.#nextId++;
    this.counters.requests++;
    return new Promise<IncomingPacket>((resolve, reject) => {
      const ms = o.timeoutMs ?? this.#o.timeoutMs ?? 5000;
      const p: Pending = { resolve, reject, timer: undefined };
      if (Number.isFinite(ms)) {
        p.timer = setTimeout(() => {
          if (this.#pending.delete(transactionId)) {
            this.counters.timeouts++;
            reject(new VmbusError(VmbusErrorCode.TIMEOUT, { channelId: this.channel.channelId, transactionId }));
          }
        }, ms);
      }
      this.#pending.set(transactionId, p);
      this.#send({
        type: o.type ?? PacketType.IN_BAND,
        flags: PACKET_FLAG_COMPLETION_REQUESTED,
        transactionId,
        header: o.header,
        payload,
      });
    });
  }

  /** Answers a peer's request with a COMPLETION packet echoing its transaction ID. */
  complete(transactionId: bigint, payload: Uint8Array | readonly Uint8Array[]): void {
    this.#send({ type: PacketType.COMPLETION, transactionId, payload });
  }

  /** Sends a packet that expects no answer. */
  post(payload: Uint8Array | readonly Uint8Array[], type: number = PacketType.IN_BAND): void {
    this.#send({ type, payload });
  }

  #send(p: OutgoingPacket): void {
    if (this.channel.state !== "open") return;
    if (this.#queue.length > 0 || !this.channel.writer.write(p)) {
      this.counters.queued++;
      this.#queue.push(p);
      return;
    }
    this.channel.flush();
  }

  /** Drains incoming packets and retries queued sends; called on every signal. */
  pump(): void {
    const ch = this.channel;
    if (ch.state !== "open") return;
    ch.receive((p) => this.#dispatch(p));
    if (this.#queue.length > 0) {
      let wrote = false;
      while (this.#queue.length > 0 && ch.writer.write(this.#queue[0])) {
        this.#queue.shift();
        wrote = true;
      }
      if (wrote) ch.flush();
    }
  }

  #dispatch(p: IncomingPacket): void {
    if (p.type === PacketType.COMPLETION) {
      const w = this.#pending.get(p.transactionId);
      if (!w) {
        this.counters.unmatched++;
        return;
      }
      this.#pending.delete(p.transactionId);
      if (w.timer !== undefined) clearTimeout(w.timer);
      this.counters.completed++;
      w.resolve(p);
      return;
    }
    this.#o.onPacket?.(p);
  }

  /** Rejects every request in flight (and later ones) with `reason`; drops queued sends. */
  failAll(reason: VmbusError): void {
    this.#failure ??= reason;
    this.#rejectAll(reason);
  }

  #rejectAll(reason: VmbusError): void {
    this.#queue.length = 0;
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const w of all) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      this.counters.failed++;
      w.reject(reason);
    }
  }

  /** Stops listening to the channel. */
  dispose(): void {
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe.length = 0;
  }
}
