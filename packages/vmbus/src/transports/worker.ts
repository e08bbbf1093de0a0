// Worker-thread transport: signals through a SharedArrayBuffer event-flag
// area with a doorbell word per side (vmbus.md §5.7: SIEF bits + doorbell,
// Atomics.or / Atomics.notify, edge semantics of HvCallSignalEventDirect's
// NewlySignaled); control messages through a MessagePort (ordered, copied —
// the control plane is rare, the data plane never touches the port).
//
// An endpoint either runs on the event loop (Atomics.waitAsync, `start()`),
// or is driven by a worker's own loop: `poll()` dispatches pending flags,
// `wait(ms)` blocks in Atomics.wait (never on a thread that cannot block).
import type { ControlTransport, SignalTransport } from "../channel.js";
import { scheduleMacrotask } from "../host-yield.js";

/** Int32 words: [0], [1] doorbells of side 0 and 1; flags of side s at FLAGS + s * 64 (2048 bits each). */
const DOORBELL = 0;
const FLAGS = 16;
const FLAG_WORDS = 64;
/** Bytes of the shared signal area. */
export const WORKER_SIGNAL_AREA_BYTES = (FLAGS + 2 * FLAG_WORDS) * 4;
/** Channel IDs usable as event flags (one SIEF area: 2048 bits). */
export const MAX_SIGNAL_ID = FLAG_WORDS * 32 - 1;

/** The part of MessagePort / worker parentPort the transport uses. */
export interface PortLike {
  postMessage(value: unknown): void;
  on(event: "message", listener: (value: unknown) => void): unknown;
  unref?(): void;
  ref?(): void;
  close?(): void;
}

export interface WorkerEndpointOptions {
  /** The shared signal area (WORKER_SIGNAL_AREA_BYTES, from createWorkerSignalArea). */
  area: SharedArrayBuffer;
  /** 0 or 1: the two ends use different sides. */
  side: 0 | 1;
  /** Carries control messages; omit for a signals-only endpoint. */
  port?: PortLike;
}

export interface WorkerEndpointCounters {
  signalsSent: number;
  /** Signals that found the peer's flag already set (coalesced, no doorbell). */
  signalsCoalesced: number;
  doorbells: number;
  wakeups: number;
}

/** Atomics.waitAsync (ES2024; in Node since 16) — typed here because the project's lib is ES2022. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
      t?: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

export function createWorkerSignalArea(): SharedArrayBuffer {
  return new SharedArrayBuffer(WORKER_SIGNAL_AREA_BYTES);
}

export class WorkerEndpoint implements ControlTransport, SignalTransport {
  readonly counters: WorkerEndpointCounters = { signalsSent: 0, signalsCoalesced: 0, doorbells: 0, wakeups: 0 };
  readonly #words: Int32Array;
  readonly #me: number;
  readonly #peer: number;
  readonly #port: PortLike | undefined;
  #onSignal: ((id: number) => void) | undefined;
  #onMessage: ((m: Uint8Array) => void) | undefined;
  #running = false;
  #closed = false;

  constructor(o: WorkerEndpointOptions) {
    this.#words = new Int32Array(o.area);
    this.#me = o.side;
    this.#peer = 1 - o.side;
    this.#port = o.port;
    o.port?.on("message", (v) => {
      if (v instanceof Uint8Array) this.#onMessage?.(v);
    });
  }

  post(message: Uint8Array): boolean {
    if (this.#closed || !this.#port) return false;
    this.#port.postMessage(message.slice());
    return true;
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
  }

  /** Sets the peer's flag; rings its doorbell only if the flag was clear (edge-triggered). */
  signal(channelId: number): void {
    const w = this.#words;
    const bit = 1 << (channelId & 31);
    const idx = FLAGS + this.#peer * FLAG_WORDS + ((channelId >>> 5) & (FLAG_WORDS - 1));
    this.counters.signalsSent++;
    if ((Atomics.or(w, idx, bit) & bit) !== 0) {
      this.counters.signalsCoalesced++;
      return;
    }
    this.counters.doorbells++;
    Atomics.add(w, DOORBELL + this.#peer, 1);
    Atomics.notify(w, DOORBELL + this.#peer);
  }

  /** Registers the handler; with `start()` it runs from the event loop. */
  onSignal(handler: (channelId: number) => void): void {
    this.#onSignal = handler;
  }

  /** Clears and dispatches every set flag of this side; returns how many. */
  poll(): number {
    const w = this.#words;
    const base = FLAGS + this.#me * FLAG_WORDS;
    let n = 0;
    for (let i = 0; i < FLAG_WORDS; i++) {
      if (Atomics.load(w, base + i) === 0) continue;
      let bits = Atomics.exchange(w, base + i, 0); // clear before handling, as a SIEF scan does
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits);
        bits &= ~(1 << b);
        n++;
        this.#onSignal?.(i * 32 + b);
      }
    }
    return n;
  }

  /** Current doorbell value of this side (pass to `wait`). */
  doorbell(): number {
    return Atomics.load(this.#words, DOORBELL + this.#me);
  }

  /**
   * Blocks (Atomics.wait, worker threads only) until the doorbell moves past
   * `seen` or `timeoutMs` passes, then polls. Returns the flags dispatched.
   */
  wait(seen: number, timeoutMs: number): number {
    Atomics.wait(this.#words, DOORBELL + this.#me, seen, timeoutMs);
    this.counters.wakeups++;
    return this.poll();
  }

  /** Runs the signal loop on the event loop with Atomics.waitAsync. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop();
  }

  #loop = (): void => {
    for (let spins = 0; !this.#closed; spins++) {
      const seen = Atomics.load(this.#words, DOORBELL + this.#me);
      this.poll();
      const r = waitAsync(this.#words, DOORBELL + this.#me, seen);
      if (r.async) {
        void r.value.then(() => {
          this.counters.wakeups++;
          this.#loop();
        });
        return;
      }
      if (spins > 64) {
        scheduleMacrotask(this.#loop); // let timers and I/O run under constant traffic
        return;
      }
    }
  };

  /** Stops the loop and releases the port. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.add(this.#words, DOORBELL + this.#me, 1);
    Atomics.notify(this.#words, DOORBELL + this.#me);
    this.#port?.close?.();
  }
}
