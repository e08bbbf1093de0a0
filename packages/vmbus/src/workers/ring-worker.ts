// Worker entry used by the cross-worker stress test and the bench. Roles:
//   send    — writes `count` self-describing packets (sizes 8..maxSize) in batches
//   receive — reads them, checks sequence, length, content and zero padding
//   echo    — answers every packet that requests a completion with a COMPLETION
//             carrying the same payload; a SYNCH packet stops it
// Each loop follows vmbus.md §2.7: commit once per batch, signal only when
// commit says so, mask while draining, unmask and re-check before sleeping.
// Sleeping is Atomics.wait on the endpoint's doorbell (worker threads may block).
import { parentPort, workerData } from "node:worker_threads";
import { createPacketInfo, PACKET_FLAG_COMPLETION_REQUESTED, PacketType, RingReader, RingWriter } from "../ring.js";
import { WorkerEndpoint } from "../transports/worker.js";

export interface RingWorkerData {
  role: "send" | "receive" | "echo";
  area: SharedArrayBuffer;
  side: 0 | 1;
  /** Event flag (channel ID) used for both directions. */
  channelId: number;
  rx?: Uint8Array;
  tx?: Uint8Array;
  count?: number;
  maxSize?: number;
  batch?: number;
  /** Give up after this long without progress (deadlock detector). */
  stallMs?: number;
  /** echo: polls of an empty ring before sleeping (0 = sleep at once). */
  spin?: number;
  /** echo: commit (and signal if due) after this many completions (default: once per drained batch). */
  commitEvery?: number;
}

export interface RingWorkerResult {
  ok: boolean;
  role: string;
  packets: number;
  bytes: number;
  ms: number;
  signals: number;
  waits: number;
  full: number;
  error?: string;
}

/** Payload size of packet `seq` in the stress pattern (deterministic, 8..maxSize). */
export function stressSize(seq: number, maxSize: number): number {
  const x = Math.imul(seq ^ (seq >>> 7), 0x9e3779b1) >>> 0;
  // Mostly small, sometimes up to maxSize.
  return 8 + (x % 8 === 0 ? x % (maxSize - 7) : x % 57);
}

/** Fills `out[0..n)` with the stress pattern of packet `seq`. */
export function stressFill(out: Uint8Array, seq: number, n: number): void {
  out[0] = seq & 0xff;
  out[1] = (seq >>> 8) & 0xff;
  out[2] = (seq >>> 16) & 0xff;
  out[3] = seq >>> 24;
  out[4] = n & 0xff;
  out[5] = n >>> 8;
  for (let i = 6; i < n; i++) out[i] = (seq + i) & 0xff;
}

/**
 * Spin-then-sleep with an adaptive budget (like an adaptive mutex). A spin
 * that found work doubles the budget (up to `max` polls); one that did not
 * halves it (down to a 16-poll probe), because on a busy machine spinning
 * steals the CPU the peer needs. A collapsed budget would never hit again
 * (16 polls are ~0.3 µs, a peer's batch takes microseconds), so after
 * `PROBE_EVERY` misses in a row one spin runs with the full budget: when the
 * machine has become idle it hits and the budget stays up; under load it
 * costs one wasted spin per `PROBE_EVERY` sleeps.
 */
export class AdaptiveSpin {
  static readonly PROBE_EVERY = 64;
  readonly max: number;
  budget: number;
  /** Spins that found work / ran out of budget. */
  readonly stats = { hits: 0, misses: 0 };
  #missRun = 0;

  constructor(max: number) {
    this.max = max;
    this.budget = max;
  }

  /** Polls `r` while it is empty and no signal arrived; true if work appeared (do not sleep). */
  run(r: RingReader, ep: WorkerEndpoint, seen: number): boolean {
    if (this.max === 0) return false;
    const budget = this.budget;
    let i = 0;
    while (i < budget && r.isEmpty() && ep.doorbell() === seen) i++;
    if (i < budget) {
      this.stats.hits++;
      this.#missRun = 0;
      this.budget = Math.min(this.max, budget * 2);
      return !r.isEmpty();
    }
    this.stats.misses++;
    if (++this.#missRun >= AdaptiveSpin.PROBE_EVERY) {
      this.#missRun = 0;
      this.budget = this.max;
    } else {
      this.budget = Math.max(16, budget >> 1);
    }
    return false;
  }
}

function runSend(d: RingWorkerData, ep: WorkerEndpoint): RingWorkerResult {
  const w = new RingWriter(d.tx!);
  const count = d.count ?? 1_000_000;
  const maxSize = d.maxSize ?? 64;
  const batch = d.batch ?? 16;
  const stall = d.stallMs ?? 10_000;
  const scratch = new Uint8Array(maxSize);
  const views: Uint8Array[] = [];
  for (let n = 0; n <= maxSize; n++) views.push(scratch.subarray(0, n));
  const pkt = { type: PacketType.IN_BAND as number, payload: views[0] };
  const t0 = performance.now();
  let last = t0;
  let seq = 0;
  let waits = 0;
  while (seq < count) {
    const seen = ep.doorbell();
    ep.poll();
    let wrote = 0;
    while (seq < count && wrote < batch) {
      const n = stressSize(seq, maxSize);
      stressFill(scratch, seq, n);
      pkt.payload = views[n];
      if (!w.write(pkt)) break;
      seq++;
      wrote++;
    }
    if (w.commit()) ep.signal(d.channelId);
    if (wrote > 0) {
      last = performance.now();
      continue;
    }
    waits++;
    ep.wait(seen, 50);
    if (performance.now() - last > stall)
      return result(d, false, seq, w.counters.bytes, t0, ep, waits, w.counters.full, "sender stalled");
  }
  return result(d, true, seq, w.counters.bytes, t0, ep, waits, w.counters.full);
}

function runReceive(d: RingWorkerData, ep: WorkerEndpoint): RingWorkerResult {
  const r = new RingReader(d.rx!);
  const count = d.count ?? 1_000_000;
  const maxSize = d.maxSize ?? 64;
  const stall = d.stallMs ?? 10_000;
  const t0 = performance.now();
  let last = t0;
  let seq = 0;
  let waits = 0;
  r.setMask(true);
  while (seq < count) {
    const seen = ep.doorbell();
    ep.poll();
    let got = 0;
    for (let p = r.read(); p !== undefined; p = r.read()) {
      const b = p.payload;
      const n = stressSize(seq, maxSize);
      const gotSeq = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
      if (gotSeq !== seq || b.length !== ((n + 7) & ~7) || (b[4] | (b[5] << 8)) !== n) {
        return result(
          d,
          false,
          seq,
          r.counters.bytes,
          t0,
          ep,
          waits,
          0,
          `packet ${seq}: got seq ${gotSeq} length ${b.length}`,
        );
      }
      for (let i = 6; i < b.length; i++) {
        if (b[i] !== (i < n ? (seq + i) & 0xff : 0)) {
          return result(d, false, seq, r.counters.bytes, t0, ep, waits, 0, `packet ${seq}: byte ${i} corrupt`);
        }
      }
      seq++;
      if (++got === 4096) break;
    }
    if (r.commit()) ep.signal(d.channelId);
    if (r.error) return result(d, false, seq, r.counters.bytes, t0, ep, waits, 0, r.error.message);
    if (got > 0) {
      last = performance.now();
      continue;
    }
    if (r.unmaskAndCheck()) {
      r.setMask(true);
      continue;
    }
    waits++;
    ep.wait(seen, 50);
    r.setMask(true);
    if (performance.now() - last > stall)
      return result(d, false, seq, r.counters.bytes, t0, ep, waits, 0, "receiver stalled");
  }
  return result(d, true, seq, r.counters.bytes, t0, ep, waits, 0);
}

function runEcho(d: RingWorkerData, ep: WorkerEndpoint): RingWorkerResult {
  const r = new RingReader(d.rx!);
  const w = new RingWriter(d.tx!);
  // Zero-allocation loop: readInto a scratch buffer, writeRaw the completion from it.
  const buf = new Uint8Array(r.dataSize);
  const info = createPacketInfo();
  const t0 = performance.now();
  let packets = 0;
  let waits = 0;
  let held: { lo: number; hi: number; payload: Uint8Array } | undefined; // a completion that did not fit yet
  const spin = new AdaptiveSpin(d.spin ?? 0);
  const commitEvery = d.commitEvery ?? Number.POSITIVE_INFINITY;
  r.setMask(true);
  for (;;) {
    const seen = ep.doorbell();
    ep.poll();
    let progress = 0;
    if (held) {
      if (w.writeRaw(PacketType.COMPLETION, 0, held.lo, held.hi, held.payload)) {
        held = undefined;
        progress++;
      }
    }
    while (!held) {
      const n = r.readInto(buf, info);
      if (n < 0) break;
      progress++;
      if (info.type === PacketType.SYNCH) {
        if (r.commit()) ep.signal(d.channelId);
        if (w.commit()) ep.signal(d.channelId);
        return result(d, true, packets, w.counters.bytes, t0, ep, waits, w.counters.full);
      }
      packets++;
      if ((info.flags & PACKET_FLAG_COMPLETION_REQUESTED) === 0) continue;
      if (!w.writeRaw(PacketType.COMPLETION, 0, info.transactionIdLow, info.transactionIdHigh, buf, n)) {
        held = { lo: info.transactionIdLow, hi: info.transactionIdHigh, payload: buf.slice(0, n) };
      }
      if (progress >= commitEvery) break;
    }
    let sig = r.commit();
    sig = w.commit() || sig;
    if (sig) ep.signal(d.channelId);
    if (r.error) return result(d, false, packets, w.counters.bytes, t0, ep, waits, w.counters.full, r.error.message);
    if (progress > 0) continue;
    // Adaptive polling (vmbus.md §5.14): spin before sleeping while spinning pays off.
    if (!held && spin.run(r, ep, seen)) continue;
    if (!held && r.unmaskAndCheck()) {
      r.setMask(true);
      continue;
    }
    waits++;
    ep.wait(seen, 1000);
    r.setMask(true);
  }
}

function result(
  d: RingWorkerData,
  ok: boolean,
  packets: number,
  bytes: number,
  t0: number,
  ep: WorkerEndpoint,
  waits: number,
  full: number,
  error?: string,
): RingWorkerResult {
  return {
    ok,
    role: d.role,
    packets,
    bytes,
    ms: performance.now() - t0,
    signals: ep.counters.doorbells,
    waits,
    full,
    error,
  };
}

/** Runs one role on the calling thread (exported for in-process use). */
export function runRingWorker(d: RingWorkerData): RingWorkerResult {
  const ep = new WorkerEndpoint({ area: d.area, side: d.side });
  try {
    if (d.role === "send") return runSend(d, ep);
    if (d.role === "receive") return runReceive(d, ep);
    return runEcho(d, ep);
  } catch (e) {
    return { ok: false, role: d.role, packets: 0, bytes: 0, ms: 0, signals: 0, waits: 0, full: 0, error: String(e) };
  }
}

if (parentPort && workerData && (workerData as { vmbusRingWorker?: boolean }).vmbusRingWorker) {
  parentPort.postMessage(runRingWorker(workerData as RingWorkerData));
}
