// Same-thread transport: direct calls, delivered with queueMicrotask so a
// handler never runs inside the sender's call (no re-entrancy). Signals are
// coalesced per channel like SynIC event flags: a flag already set is not
// raised twice (vmbus.md §1.3 SIEF, §5.7).
import type { ControlTransport, SignalTransport } from "../channel.js";

export interface TransportEndpoint {
  control: ControlTransport;
  signals: SignalTransport;
}

export interface LocalTransportOptions {
  /** Message buffers per direction (TLFS: 16 per port); a full queue makes post() return false. Default 16. */
  messageBuffers?: number;
}

class LocalSide implements ControlTransport, SignalTransport {
  peer!: LocalSide;
  #onMessage: ((m: Uint8Array) => void) | undefined;
  #onSignal: ((id: number) => void) | undefined;
  /** Messages queued towards this side. */
  readonly inbox: Uint8Array[] = [];
  #inboxScheduled = false;
  /** Set flags towards this side (SIEF bits). */
  readonly #flags = new Set<number>();
  #flagsScheduled = false;
  readonly #buffers: number;

  constructor(buffers: number) {
    this.#buffers = buffers;
  }

  post(message: Uint8Array): boolean {
    return this.peer.#enqueue(message.slice());
  }

  #enqueue(m: Uint8Array): boolean {
    if (this.inbox.length >= this.#buffers) return false; // HV_STATUS_INSUFFICIENT_BUFFERS
    this.inbox.push(m);
    if (!this.#inboxScheduled) {
      this.#inboxScheduled = true;
      queueMicrotask(() => this.#deliverMessages());
    }
    return true;
  }

  #deliverMessages(): void {
    this.#inboxScheduled = false;
    // One at a time, in order; messages posted by the handler go to the next microtask.
    const batch = this.inbox.splice(0, this.inbox.length);
    for (const m of batch) this.#onMessage?.(m);
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
  }

  signal(channelId: number): void {
    this.peer.#raise(channelId);
  }

  #raise(id: number): void {
    if (this.#flags.has(id)) return;
    this.#flags.add(id);
    if (!this.#flagsScheduled) {
      this.#flagsScheduled = true;
      queueMicrotask(() => this.#deliverSignals());
    }
  }

  #deliverSignals(): void {
    this.#flagsScheduled = false;
    const ids = [...this.#flags];
    this.#flags.clear(); // cleared before the handlers run, as a SIEF scan clears bits first
    for (const id of ids) this.#onSignal?.(id);
  }

  onSignal(handler: (channelId: number) => void): void {
    this.#onSignal = handler;
  }
}

/** Two connected endpoints in the same thread: `host` for VmbusServer, `guest` for VmbusClient. */
export function createLocalTransport(options: LocalTransportOptions = {}): {
  host: TransportEndpoint;
  guest: TransportEndpoint;
} {
  const n = options.messageBuffers ?? 16;
  const a = new LocalSide(n);
  const b = new LocalSide(n);
  a.peer = b;
  b.peer = a;
  return { host: { control: a, signals: a }, guest: { control: b, signals: b } };
}
