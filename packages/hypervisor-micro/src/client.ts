// A partition thread's side of the microkernel: the slow hypercalls go to the
// kernel thread over a MessagePort (replies wake the caller through its
// doorbell); the fast ones (post message, signal event, assert interrupt,
// complete intercept) run here against shared SynIC memory.
import { HYPERCALL_NAMES, type HypercallName, type SlowCallName, type SlowCalls } from "./hypercalls.js";
import type { HvThreadInit, KernelPort } from "./kernel.js";
import { GrantedMemory } from "./memory.js";
import { fail, type HvResult, HvStatus, ok, unwrap } from "./status.js";
import {
  drainEventFlags,
  MESSAGE_PAYLOAD_MAX,
  type MessageQueue,
  ringDoorbell,
  SINT_COUNT,
  setIrqLine,
  signalEventFlag,
  sintQueue,
  Vp,
  waitAsync,
} from "./synic.js";

const INDEX = new Map(HYPERCALL_NAMES.map((n, i) => [n, i]));

/** Counts fast hypercalls of this thread in the kernel-visible counters. */
class Counters {
  private readonly a: Int32Array;
  constructor(readonly buffer: SharedArrayBuffer) {
    this.a = new Int32Array(buffer);
  }
  count(name: HypercallName): void {
    Atomics.add(this.a, INDEX.get(name) as number, 1);
  }
}

/** A SintConnection as it crosses to another thread of the same partition (structured-cloneable). */
export interface SharedSintConnection {
  readonly partitionId: number;
  readonly vpIndex: number;
  readonly sint: number;
  readonly area: SharedArrayBuffer;
  readonly queues: SharedArrayBuffer;
  /** The hypercall counters of the thread that connected (fast calls are counted there). */
  readonly counters: SharedArrayBuffer;
}

/** A connection to one SINT of a parent's or child's VP (PostMessageDirect / SignalEventDirect). */
export class SintConnection {
  private readonly area: Int32Array;
  private readonly queue: MessageQueue;

  constructor(
    readonly partitionId: number,
    readonly vpIndex: number,
    readonly sint: number,
    private readonly areaBuffer: SharedArrayBuffer,
    private readonly queuesBuffer: SharedArrayBuffer,
    private readonly counters: Counters,
  ) {
    this.area = new Int32Array(areaBuffer);
    this.queue = sintQueue(queuesBuffer, sint);
  }

  /**
   * The connection for another thread of the caller's partition (a device
   * worker that signals the peer itself): it reaches only this SINT of this
   * VP, as the original does.
   */
  share(): SharedSintConnection {
    return {
      partitionId: this.partitionId,
      vpIndex: this.vpIndex,
      sint: this.sint,
      area: this.areaBuffer,
      queues: this.queuesBuffer,
      counters: this.counters.buffer,
    };
  }

  /** The far end of `share()`. */
  static fromShared(s: SharedSintConnection): SintConnection {
    if (s.sint < 0 || s.sint >= SINT_COUNT) throw new RangeError(`SINT ${s.sint}`);
    return new SintConnection(s.partitionId, s.vpIndex, s.sint, s.area, s.queues, new Counters(s.counters));
  }

  /** HvCallPostMessageDirect: INVALID_PARAMETER (type 0, high bit, > 240 bytes), INSUFFICIENT_BUFFERS. */
  postMessage(type: number, payload: Uint8Array, origin = 0): HvResult<void> {
    this.counters.count("PostMessage");
    // TLFS HvCallPostMessage: the type is non-zero with the MSB clear; payload <= 240 bytes.
    if (type === 0 || type >>> 31 !== 0 || payload.length > MESSAGE_PAYLOAD_MAX)
      return fail(HvStatus.INVALID_PARAMETER, "message type 1..0x7fffffff, payload <= 240 bytes");
    if (!this.queue.post(type, origin, payload))
      return fail(HvStatus.INSUFFICIENT_BUFFERS, "the port's 16 buffers are in use");
    ringDoorbell(this.area);
    return ok(undefined);
  }

  /** HvCallSignalEventDirect: true when the flag went clear -> set (the VP was woken). */
  signalEvent(flag: number): HvResult<boolean> {
    this.counters.count("SignalEvent");
    if (!Number.isInteger(flag) || flag < 0 || flag >= 2048) return fail(HvStatus.INVALID_PARAMETER, "flag 0..2047");
    return ok(signalEventFlag(this.area, this.sint, flag));
  }
}

/** What the creator of a VP holds: interrupt lines and intercept completion. */
export class VpControl {
  readonly area: Int32Array;

  constructor(
    readonly partitionId: number,
    readonly vpIndex: number,
    area: SharedArrayBuffer,
    private readonly counters: Counters,
  ) {
    this.area = new Int32Array(area);
  }

  /** Sets a PLIC source's level on the VP (1..127). */
  assertInterrupt(source: number, level: boolean): HvResult<void> {
    this.counters.count("AssertInterrupt");
    if (!Number.isInteger(source) || source < 1 || source >= 128)
      return fail(HvStatus.INVALID_PARAMETER, "source 1..127");
    setIrqLine(this.area, source, level);
    return ok(undefined);
  }

  /** Answers intercept `seq`: the MMIO read value, or (SBI) a0 value and a1. */
  completeIntercept(seq: number, status: number, value = 0n, a1 = 0n): HvResult<void> {
    this.counters.count("CompleteIntercept");
    const a = this.area;
    const v = BigInt.asUintN(64, value);
    const w = BigInt.asUintN(64, a1);
    Atomics.store(a, Vp.ICPT_STATUS, status);
    Atomics.store(a, Vp.ICPT_VALUE_LO, Number(v & 0xffff_ffffn) | 0);
    Atomics.store(a, Vp.ICPT_VALUE_HI, Number(v >> 32n) | 0);
    Atomics.store(a, Vp.ICPT_A1_LO, Number(w & 0xffff_ffffn) | 0);
    Atomics.store(a, Vp.ICPT_A1_HI, Number(w >> 32n) | 0);
    // The sequence number is published last: the VP reads the reply after seeing it.
    Atomics.store(a, Vp.ICPT_SEQ, seq | 0);
    Atomics.notify(a, Vp.ICPT_SEQ);
    return ok(undefined);
  }

  /** True once the VP's thread has ended. */
  get stopped(): boolean {
    return Atomics.load(this.area, Vp.STATE) === 4;
  }
}

export class HvClient {
  readonly partitionId: number;
  readonly vpIndex: number;
  /** This thread's VP area (doorbell, event flags, counters). */
  readonly area: Int32Array;
  private readonly queuesBuffer: SharedArrayBuffer;
  private readonly port: KernelPort;
  private readonly counters: Counters;
  private readonly pending = new Map<number, (r: HvResult<unknown>) => void>();
  private nextId = 1;

  constructor(init: HvThreadInit) {
    this.partitionId = init.partitionId;
    this.vpIndex = init.vpIndex;
    this.area = new Int32Array(init.area);
    this.queuesBuffer = init.queues;
    this.port = init.kernel;
    this.counters = new Counters(init.counters);
    // Node: the port keeps the thread alive only while a call waits (ref/unref; the web's ports have neither).
    this.port.onmessage = (e) => {
      const m = e.data as { id: number; result: HvResult<unknown> };
      const done = this.pending.get(m.id);
      this.pending.delete(m.id);
      done?.(m.result);
      if (this.pending.size === 0) this.port.unref?.();
    };
    this.port.unref?.();
  }

  /** A slow hypercall: resolves with its typed result (never rejects). */
  call<K extends SlowCallName>(name: K, input: SlowCalls[K]["in"]): Promise<HvResult<SlowCalls[K]["out"]>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve as (r: HvResult<unknown>) => void);
      this.port.ref?.();
      this.port.postMessage({ id, name, input });
    });
  }

  /** A slow hypercall whose failure the caller cannot recover from (throws HypercallError). */
  async must<K extends SlowCallName>(name: K, input: SlowCalls[K]["in"]): Promise<SlowCalls[K]["out"]> {
    return unwrap(name, await this.call(name, input));
  }

  async connect(partitionId: number, vpIndex: number, sint: number): Promise<HvResult<SintConnection>> {
    const r = await this.call("ConnectSint", { partitionId, vpIndex, sint });
    if (r.status !== HvStatus.SUCCESS) return r;
    const t = r.value;
    return ok(new SintConnection(t.partitionId, t.vpIndex, t.sint, t.area, t.queues, this.counters));
  }

  async createVp(input: SlowCalls["CreateVp"]["in"]): Promise<HvResult<VpControl>> {
    const r = await this.call("CreateVp", input);
    if (r.status !== HvStatus.SUCCESS) return r;
    return ok(new VpControl(r.value.partitionId, r.value.vpIndex, r.value.area, this.counters));
  }

  async acceptGrant(grantId: number): Promise<HvResult<GrantedMemory>> {
    const r = await this.call("AcceptGrant", { grantId });
    if (r.status !== HvStatus.SUCCESS) return r;
    return ok(new GrantedMemory(r.value));
  }

  /** This thread's own message queue for `sint`. */
  queue(sint: number): MessageQueue {
    if (sint < 0 || sint >= SINT_COUNT) throw new RangeError(`SINT ${sint}`);
    return sintQueue(this.queuesBuffer, sint);
  }

  /** Takes and clears this VP's set event flags of `sint`. */
  drainEvents(sint: number, fn: (flag: number) => void): number {
    return drainEventFlags(this.area, sint, fn);
  }

  get doorbell(): number {
    return Atomics.load(this.area, Vp.DOORBELL);
  }

  /** Resolves when the doorbell moves past `seen` (or after `timeoutMs`); keeps the event loop alive meanwhile. */
  async waitDoorbell(seen: number, timeoutMs = 1000): Promise<void> {
    // Atomics.waitAsync (ES2024; Node >= 16) lets this thread's event loop run, but a pending
    // wait does not keep the loop alive in Node: a timer of the same length does.
    const r = waitAsync(this.area, Vp.DOORBELL, seen, timeoutMs);
    if (!r.async) return;
    const keepAlive = setTimeout(() => {}, timeoutMs + 10);
    try {
      await r.value;
    } finally {
      clearTimeout(keepAlive);
    }
  }
}

/** The message type a SintTransport's control messages carry (VMBus: HvPostMessage type 1, vmbus.md §2.1). */
export const CHANNEL_MESSAGE_TYPE = 1;

/**
 * A two-way message-and-signal link between this thread's VP and a peer
 * partition's VP over one SINT: control messages travel by PostMessage into
 * the peer's SINT queue, signals set the peer's event flag (one per channel
 * ID, vmbus.md §2.8). It has the shape of @ringzero/vmbus's ControlTransport
 * and SignalTransport without depending on it. The owner calls `poll()` when
 * its doorbell moves.
 */
export class SintTransport {
  private readonly messageHandlers: ((m: Uint8Array) => void)[] = [];
  private readonly signalHandlers: ((id: number) => void)[] = [];
  private readonly inbox: MessageQueue;
  readonly counters = { messagesOut: 0, messagesIn: 0, signalsOut: 0, signalsIn: 0, refused: 0, foreign: 0 };

  constructor(
    private readonly hv: HvClient,
    private readonly peer: SintConnection,
  ) {
    this.inbox = hv.queue(peer.sint);
  }

  post(message: Uint8Array): boolean {
    const r = this.peer.postMessage(CHANNEL_MESSAGE_TYPE, message, this.hv.partitionId);
    if (r.status !== HvStatus.SUCCESS) {
      this.counters.refused++;
      return false;
    }
    this.counters.messagesOut++;
    return true;
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.messageHandlers.push(handler);
  }

  signal(channelId: number): void {
    this.counters.signalsOut++;
    this.peer.signalEvent(channelId);
  }

  onSignal(handler: (channelId: number) => void): void {
    this.signalHandlers.push(handler);
  }

  /** Delivers queued messages (only the peer's; others are counted and dropped), then set event flags. */
  poll(): void {
    for (let m = this.inbox.take(); m; m = this.inbox.take()) {
      if (m.type !== CHANNEL_MESSAGE_TYPE || m.origin !== this.peer.partitionId) {
        this.counters.foreign++;
        continue;
      }
      this.counters.messagesIn++;
      for (const h of this.messageHandlers) h(m.payload);
    }
    this.hv.drainEvents(this.peer.sint, (id) => {
      this.counters.signalsIn++;
      for (const h of this.signalHandlers) h(id);
    });
  }
}
