// SynIC-style message ports and event flags on SharedArrayBuffers
// (vmbus.md §1.3-1.4 and §5 items 7-8). Every virtual processor has one VP
// area: a doorbell word that any thread bumps and Atomics.notify()s when it
// leaves the VP something (event flag, message, interrupt line, intercept
// reply), the 16 SINTs x 2048 event flags, interrupt line levels, and the
// intercept reply slot. A message port is a separate SAB owned by the
// receiver: 16 message buffers of 256 bytes (HV_MESSAGE), producers serialised
// by a lock word.

export const VP_AREA_WORDS = 4096;
/** Word indices of a VP area (Int32Array). */
export const Vp = {
  /** Bumped (Atomics.add + notify) by every thread that leaves the VP work. */
  DOORBELL: 0,
  /** 1: the VP must stop (the kernel or its partition asked). */
  STOP: 1,
  /** VpState value. */
  STATE: 2,
  /** Non-zero: a host message (structured clone) waits: yield to the event loop. */
  HOST_MESSAGE: 3,
  /** Intercept reply: sequence number completed, status, value lo/hi, a1 lo/hi. */
  ICPT_SEQ: 8,
  ICPT_STATUS: 9,
  ICPT_VALUE_LO: 10,
  ICPT_VALUE_HI: 11,
  ICPT_A1_LO: 12,
  ICPT_A1_HI: 13,
  /** Credit scheduler (sched.ts): 1 = the VP spends credit and parks when it is gone; 0 = never parks. */
  SCHED_METERED: 16,
  /** Credit in µs of CPU time: the kernel adds each period and notifies, the VP subtracts what it used. */
  SCHED_CREDIT: 17,
  /** Interrupt line levels by PLIC source (0..127); written with Atomics.store. */
  IRQ_LINES: 64,
  /** Event flags: 16 SINTs x 64 words (2048 flags each), TLFS hv_synic_event_flags. */
  EVENT_FLAGS: 256,
  /** Per-VP counters (see VpCounter). */
  COUNTERS: 1536,
} as const;

/** PARKED: out of credit, waiting in Atomics.wait for the next accounting period (sched.ts). */
export const VpState = { CREATED: 0, RUNNING: 1, IDLE: 2, INTERCEPT: 3, STOPPED: 4, PARKED: 5 } as const;

export const SINT_COUNT = 16;
export const EVENT_FLAGS_PER_SINT = 2048;
export const IRQ_LINE_COUNT = 128;

/** Counters kept in every VP area, by index from Vp.COUNTERS. */
export const VpCounter = {
  instructionsLo: 0,
  instructionsHi: 1,
  /** Exits handled inside the microkernel (CLINT, PLIC, SBI TIME/IPI/RFENCE/HSM/BASE). */
  exitsMicrokernel: 2,
  /** Exits the partition's paravisor handled in the VP's thread (virtio-mmio, RTC). */
  exitsParavisor: 3,
  /** Exits sent to the parent partition as intercept messages (UART, SBI console, SRST). */
  exitsIntercept: 4,
  exitsWfi: 5,
  exitsBudget: 6,
  /** MMIO to addresses nobody emulates (access fault to the guest). */
  unclaimedMmio: 7,
  /** Microseconds spent waiting for intercept replies. */
  interceptWaitMicros: 8,
  /** Microseconds slept in WFI. */
  idleMicros: 9,
  /** Microseconds spent running guest code. */
  runMicros: 10,
  interceptTimeouts: 11,
  eventsDelivered: 12,
  messagesDelivered: 13,
  doorbellWakeups: 14,
  /** Microseconds parked by the scheduler (credit exhausted: cap or the partition's share of the budget). */
  throttledMicros: 15,
  /** CPU time of the VP's thread in µs (guest, paravisor and VP code; /proc/thread-self/schedstat on Linux). */
  cpuMicrosLo: 16,
  cpuMicrosHi: 17,
  /** Microseconds the VP's thread was runnable but the host OS ran something else (steal; Linux only). */
  stealMicros: 18,
  /** Translator (engine "translator"): blocks compiled, and of those WebAssembly (the rest JavaScript). */
  translatorBlocks: 19,
  translatorWasmBlocks: 20,
} as const;
export type VpCounterName = keyof typeof VpCounter;

export function createVpArea(): SharedArrayBuffer {
  return new SharedArrayBuffer(VP_AREA_WORDS * 4);
}

/** Atomics.waitAsync (ES2024; Node >= 16): waits without blocking the thread's event loop. */
export const waitAsync = (
  Atomics as unknown as {
    waitAsync: (
      a: Int32Array,
      index: number,
      value: number,
      timeout?: number,
    ) => { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** Wake the VP: bump its doorbell and notify a thread waiting on it. */
export function ringDoorbell(area: Int32Array): void {
  Atomics.add(area, Vp.DOORBELL, 1);
  Atomics.notify(area, Vp.DOORBELL);
}

/**
 * Sets event flag `flag` of `sint` (TLFS HvCallSignalEventDirect): the VP is
 * woken only on the clear -> set edge. Returns true when newly signalled.
 */
export function signalEventFlag(area: Int32Array, sint: number, flag: number): boolean {
  const word = Vp.EVENT_FLAGS + sint * 64 + (flag >>> 5);
  const bit = 1 << (flag & 31);
  const old = Atomics.or(area, word, bit);
  if (old & bit) return false;
  ringDoorbell(area);
  return true;
}

/** Takes and clears the set flags of `sint`, calling `fn` for each (TLFS: receivers clear with atomic ops). */
export function drainEventFlags(area: Int32Array, sint: number, fn: (flag: number) => void): number {
  let n = 0;
  const base = Vp.EVENT_FLAGS + sint * 64;
  for (let w = 0; w < 64; w++) {
    if (Atomics.load(area, base + w) === 0) continue;
    let bits = Atomics.exchange(area, base + w, 0);
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      bits &= bits - 1;
      n++;
      fn(w * 32 + b);
    }
  }
  return n;
}

/** Sets an interrupt line level seen by the VP's interrupt controller. */
export function setIrqLine(area: Int32Array, source: number, level: boolean): void {
  const v = level ? 1 : 0;
  if (Atomics.exchange(area, Vp.IRQ_LINES + source, v) !== v) ringDoorbell(area);
}

// ---- message ports ---------------------------------------------------------

export const MESSAGE_SIZE = 256;
export const MESSAGE_PAYLOAD_MAX = 240;
export const PORT_BUFFERS = 16;
const PORT_HEADER_WORDS = 16;
const P_LOCK = 0;
const P_HEAD = 1;
const P_TAIL = 2;
const P_FULL = 3;
const P_POSTED = 4;

const PORT_BYTES = PORT_HEADER_WORDS * 4 + PORT_BUFFERS * MESSAGE_SIZE;

/** The 16 SINT message queues of one VP, in one buffer. */
export function createSintQueues(): SharedArrayBuffer {
  return new SharedArrayBuffer(SINT_COUNT * PORT_BYTES);
}

/** The message queue of `sint` inside a VP's queue buffer. */
export function sintQueue(buffer: SharedArrayBuffer, sint: number): MessageQueue {
  return new MessageQueue(buffer, sint * PORT_BYTES);
}

/** One HV_MESSAGE (TLFS hv_message): type, origin, payload (<= 240 bytes). */
export interface HvMessage {
  readonly type: number;
  readonly origin: number;
  readonly payload: Uint8Array;
}

/**
 * A message port: a receiver-owned queue of 16 HV_MESSAGE buffers (TLFS
 * "each port gets 16 guest message buffers"). Any thread holding the buffer
 * can post (serialised by a lock word); only the receiver drains.
 */
export class MessageQueue {
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;

  constructor(buffer: SharedArrayBuffer, byteOffset = 0) {
    this.i32 = new Int32Array(buffer, byteOffset, PORT_HEADER_WORDS);
    const data = byteOffset + PORT_HEADER_WORDS * 4;
    this.u8 = new Uint8Array(buffer, data, PORT_BUFFERS * MESSAGE_SIZE);
    this.dv = new DataView(buffer, data, PORT_BUFFERS * MESSAGE_SIZE);
  }

  /** Queues a message; false when all 16 buffers are in use (INSUFFICIENT_BUFFERS, the sender retries). */
  post(type: number, origin: number, payload: Uint8Array): boolean {
    const i = this.i32;
    while (Atomics.compareExchange(i, P_LOCK, 0, 1) !== 0) {
      // Producers hold the lock for one 256-byte copy; spin briefly.
    }
    try {
      const head = Atomics.load(i, P_HEAD);
      const tail = Atomics.load(i, P_TAIL);
      if (((tail - head) | 0) >= PORT_BUFFERS) {
        Atomics.add(i, P_FULL, 1);
        return false;
      }
      const off = (tail & (PORT_BUFFERS - 1)) * MESSAGE_SIZE;
      this.dv.setUint32(off, type >>> 0, true);
      this.dv.setUint8(off + 4, payload.length);
      this.dv.setUint8(off + 5, 0);
      this.dv.setUint16(off + 6, 0, true);
      this.dv.setFloat64(off + 8, 0, true);
      this.dv.setUint32(off + 8, origin >>> 0, true);
      this.u8.set(payload, off + 16);
      Atomics.store(i, P_TAIL, (tail + 1) | 0);
      Atomics.add(i, P_POSTED, 1);
      return true;
    } finally {
      Atomics.store(i, P_LOCK, 0);
    }
  }

  /** The oldest message (copied out), or undefined. Only the receiver calls this. */
  take(): HvMessage | undefined {
    const i = this.i32;
    const head = Atomics.load(i, P_HEAD);
    if (head === Atomics.load(i, P_TAIL)) return undefined;
    const off = (head & (PORT_BUFFERS - 1)) * MESSAGE_SIZE;
    const type = this.dv.getUint32(off, true);
    const size = Math.min(this.dv.getUint8(off + 4), MESSAGE_PAYLOAD_MAX);
    const origin = this.dv.getUint32(off + 8, true);
    const payload = this.u8.slice(off + 16, off + 16 + size);
    Atomics.store(i, P_HEAD, (head + 1) | 0);
    return { type, origin, payload };
  }

  get pending(): number {
    return (Atomics.load(this.i32, P_TAIL) - Atomics.load(this.i32, P_HEAD)) | 0;
  }

  /** Posts refused because the queue was full. */
  get refused(): number {
    return Atomics.load(this.i32, P_FULL);
  }

  get posted(): number {
    return Atomics.load(this.i32, P_POSTED);
  }
}
