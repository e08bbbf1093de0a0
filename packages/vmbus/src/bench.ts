// `pnpm bench vmbus` (node dist/bench.js): the ring transport between the main
// thread and an echo worker, against the same traffic through
// worker.postMessage and through a MessageChannel, in the same run.
// Figures: round trip at depth 1 (p50/p99), packets/s and MB/s at depths
// 1/8/32 for 64 B / 512 B / 4 KiB payloads, signals (doorbells) per packet.
// Each cell runs for a fixed time, REPS times interleaved across the three
// transports; the median is printed.
// Options: --ms N (time per cell, default 300), --reps N (default 3),
// --sizes 64,512 and --depths 32 (subsets), --spin N.
import { Worker } from "node:worker_threads";
import {
  createPacketInfo,
  PACKET_FLAG_COMPLETION_REQUESTED,
  PacketType,
  RING_CONTROL_SIZE,
  RingReader,
  RingWriter,
} from "./ring.js";
import { createWorkerSignalArea, WorkerEndpoint } from "./transports/worker.js";
import { AdaptiveSpin, type RingWorkerResult } from "./workers/ring-worker.js";

const args = process.argv.slice(2);
const opt = (name: string, d: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const MS = opt("ms", 300);
const REPS = opt("reps", 3);
const list = (name: string, d: number[]) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1].split(",").map(Number) : d;
};
const SIZES = list("sizes", [64, 512, 4096]);
const DEPTHS = list("depths", [1, 8, 32]);
const RING_DATA = 256 * 1024;
/** Maximum empty-ring polls before Atomics.wait (adaptive, both ends); --spin 0 measures pure notify/wake. */
const SPIN = opt("spin", 2000);
/** --commit-every N: commit (and signal if due) after N packets at both ends instead of once per drained batch (default). */
const COMMIT_EVERY = opt("commit-every", Number.POSITIVE_INFINITY);
/** --ring-only: skip the postMessage / MessageChannel cells (for profiling the ring path alone). */
const RING_ONLY = args.includes("--ring-only");

interface Cell {
  pps: number;
  mbps: number;
  signalsPerPacket: number;
  lat: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
};

async function ringCell(size: number, depth: number): Promise<Cell> {
  const area = createWorkerSignalArea();
  const mem = new Uint8Array(new SharedArrayBuffer(2 * (RING_CONTROL_SIZE + RING_DATA)));
  const toWorker = mem.subarray(0, RING_CONTROL_SIZE + RING_DATA);
  const fromWorker = mem.subarray(RING_CONTROL_SIZE + RING_DATA);
  const w = new RingWriter(toWorker, { initialize: true });
  new RingWriter(fromWorker, { initialize: true });
  const r = new RingReader(fromWorker);
  const worker = new Worker(new URL("./workers/ring-worker.js", import.meta.url), {
    workerData: {
      vmbusRingWorker: true,
      role: "echo",
      area,
      side: 1,
      channelId: 1,
      rx: toWorker,
      tx: fromWorker,
      spin: SPIN,
      commitEvery: COMMIT_EVERY,
    },
  });
  const done = new Promise<RingWorkerResult>((res) => worker.once("message", res));
  await new Promise((res) => worker.once("online", res));
  const ep = new WorkerEndpoint({ area, side: 0 });
  // Zero-allocation paths both ways: writeRaw (u32 transaction id halves) and readInto.
  const payload = new Uint8Array(size);
  const rx = new Uint8Array(RING_DATA);
  const info = createPacketInfo();
  const lat: number[] = [];
  const sentAt = new Float64Array(depth + 1);
  const spin = new AdaptiveSpin(SPIN);
  let inflight = 0;
  let tid = 0;
  let completed = 0;
  r.setMask(true);
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < MS) {
    const seen = ep.doorbell();
    ep.poll();
    let progress = 0;
    while (inflight < depth) {
      if (!w.writeRaw(PacketType.IN_BAND, PACKET_FLAG_COMPLETION_REQUESTED, tid >>> 0, 0, payload)) break;
      if (depth === 1) sentAt[0] = performance.now();
      tid++;
      inflight++;
      progress++;
    }
    if (w.commit()) ep.signal(1);
    for (let n = 0; n < COMMIT_EVERY && r.readInto(rx, info) >= 0; n++) {
      if (depth === 1) lat.push(performance.now() - sentAt[0]);
      inflight--;
      completed++;
      progress++;
    }
    if (r.commit()) ep.signal(1);
    if (r.error) throw r.error;
    if (progress === 0) {
      if (spin.run(r, ep, seen)) continue;
      if (r.unmaskAndCheck()) {
        r.setMask(true);
      } else {
        ep.wait(seen, 100);
        r.setMask(true);
      }
    }
    if ((completed & 63) === 0 || depth === 1) now = performance.now();
  }
  const elapsed = performance.now() - t0;
  // Stop the echo worker with a SYNCH packet.
  while (!w.write({ type: PacketType.SYNCH, payload: new Uint8Array(0) })) {
    for (let p = r.read(); p; p = r.read());
    r.commit();
    ep.signal(1);
  }
  w.commit();
  ep.signal(1);
  const wr = await done;
  await worker.terminate();
  return {
    pps: completed / (elapsed / 1000),
    mbps: (completed * size) / (elapsed / 1000) / 1e6,
    signalsPerPacket: (ep.counters.doorbells + wr.signals) / Math.max(1, completed),
    lat,
  };
}

const ECHO_PARENT = `const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m));`;
const ECHO_PORT = `const { workerData } = require("node:worker_threads"); const p = workerData.port; p.on("message", (m) => p.postMessage(m));`;

async function messageCell(kind: "postMessage" | "MessageChannel", size: number, depth: number): Promise<Cell> {
  let worker: Worker;
  let port: { postMessage(v: unknown): void; on(e: "message", l: (v: unknown) => void): unknown; close?(): void };
  if (kind === "postMessage") {
    worker = new Worker(ECHO_PARENT, { eval: true });
    port = worker;
  } else {
    const { port1, port2 } = new MessageChannel();
    worker = new Worker(ECHO_PORT, { eval: true, workerData: { port: port2 }, transferList: [port2] });
    port = port1;
  }
  await new Promise((res) => worker.once("online", res));
  const payload = new Uint8Array(size);
  const lat: number[] = [];
  let completed = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let inflight = 0;
    let sentAt = 0;
    let stop = false;
    const send = () => {
      if (depth === 1) sentAt = performance.now();
      inflight++;
      port.postMessage(payload);
    };
    port.on("message", () => {
      inflight--;
      completed++;
      if (depth === 1) lat.push(performance.now() - sentAt);
      if (!stop && performance.now() - t0 >= MS) stop = true;
      if (!stop) send();
      else if (inflight === 0) resolve();
    });
    for (let i = 0; i < depth; i++) send();
  });
  const elapsed = performance.now() - t0;
  port.close?.();
  await worker.terminate();
  return {
    pps: completed / (elapsed / 1000),
    mbps: (completed * size) / (elapsed / 1000) / 1e6,
    signalsPerPacket: Number.NaN,
    lat,
  };
}

function medianOf(cells: Cell[]): Cell {
  const pps = median(cells.map((c) => c.pps));
  const best = cells.find((c) => c.pps === pps)!;
  return { ...best, signalsPerPacket: median(cells.map((c) => c.signalsPerPacket)) };
}

const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }) : "-";

async function main(): Promise<void> {
  console.log(
    `vmbus bench: node ${process.version}, ${MS} ms per cell, median of ${REPS}, ring data ${RING_DATA / 1024} KiB per direction, spin ${SPIN} polls before sleeping`,
  );
  console.log("round trip = request (in-band, completion requested) -> echo worker -> completion\n");
  const rows: string[][] = [
    [
      "payload",
      "depth",
      "ring pkt/s",
      "ring MB/s",
      "signals/pkt",
      "postMessage pkt/s",
      "MessageChannel pkt/s",
      "ring/postMessage",
      "ring/MessageChannel",
    ],
  ];
  const latencies: string[] = [];
  // Warm-up (discarded): get the ring, worker and message paths JIT-compiled before the first cell.
  for (const size of SIZES) {
    await ringCell(size, 32);
    if (RING_ONLY) continue;
    await messageCell("postMessage", size, 32);
    await messageCell("MessageChannel", size, 32);
  }
  for (const size of SIZES) {
    for (const depth of DEPTHS) {
      // Interleaved repetitions, so a burst of load on the machine hits all three alike.
      const runs: Cell[][] = [[], [], []];
      for (let i = 0; i < REPS; i++) {
        runs[0].push(await ringCell(size, depth));
        if (RING_ONLY) continue;
        runs[1].push(await messageCell("postMessage", size, depth));
        runs[2].push(await messageCell("MessageChannel", size, depth));
      }
      if (RING_ONLY) {
        runs[1] = runs[2] = [{ pps: Number.NaN, mbps: Number.NaN, signalsPerPacket: Number.NaN, lat: [] }];
      }
      const [ring, pm, mc] = runs.map(medianOf);
      rows.push([
        `${size} B`,
        String(depth),
        fmt(ring.pps),
        fmt(ring.mbps, 1),
        fmt(ring.signalsPerPacket, 3),
        fmt(pm.pps),
        fmt(mc.pps),
        `${fmt(ring.pps / pm.pps, 1)}x`,
        `${fmt(ring.pps / mc.pps, 1)}x`,
      ]);
      if (depth === 1) {
        const us = (xs: number[], p: number) => fmt(pct(xs, p) * 1000, 1);
        latencies.push(
          `${size} B round trip (us) p50/p99: ring ${us(ring.lat, 50)}/${us(ring.lat, 99)}, postMessage ${us(pm.lat, 50)}/${us(pm.lat, 99)}, MessageChannel ${us(mc.lat, 50)}/${us(mc.lat, 99)}`,
        );
      }
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i])).join("  "));
  console.log("");
  for (const l of latencies) console.log(l);
}

await main();
