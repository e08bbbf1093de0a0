// Worker-thread transport: the SharedArrayBuffer signal area, the control plane
// over a MessagePort, and the cross-worker stress test (millions of packets
// between two workers: no loss, no duplication, no deadlock, bounded time).
import { MessageChannel, Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { VmbusClient } from "./client.js";
import { FlatGuestMemory } from "./memory.js";
import { RequestChannel } from "./requests.js";
import { allocateRing, RING_CONTROL_SIZE, RingWriter } from "./ring.js";
import { VmbusServer } from "./server.js";
import { allocateRingPages, FakePeer, testGuid, waitForOffer } from "./testing/index.js";
import { createWorkerSignalArea, WorkerEndpoint } from "./transports/worker.js";
import { buildForWorkers } from "./worker-build.test-helper.js";
import type { RingWorkerData, RingWorkerResult } from "./workers/ring-worker.js";

function runWorker(dir: string, data: RingWorkerData): Promise<RingWorkerResult> {
  const w = new Worker(new URL(`file://${dir}/workers/ring-worker.js`), {
    workerData: { ...data, vmbusRingWorker: true },
  });
  return new Promise((resolve, reject) => {
    w.once("message", (m) => {
      resolve(m as RingWorkerResult);
      void w.terminate();
    });
    w.once("error", reject);
  });
}

describe("worker signal area", () => {
  it("signals are edge-triggered per flag: a set flag is not rung twice", () => {
    const area = createWorkerSignalArea();
    const a = new WorkerEndpoint({ area, side: 0 });
    const b = new WorkerEndpoint({ area, side: 1 });
    const got: number[] = [];
    b.onSignal((id) => got.push(id));
    const before = b.doorbell();
    a.signal(5);
    a.signal(5);
    a.signal(2047);
    expect(a.counters).toMatchObject({ signalsSent: 3, signalsCoalesced: 1, doorbells: 2 });
    expect(b.doorbell()).toBe(before + 2);
    expect(b.poll()).toBe(2);
    expect(got.sort((x, y) => x - y)).toEqual([5, 2047]);
    expect(b.poll()).toBe(0);
    a.signal(5);
    expect(a.counters.doorbells).toBe(3); // cleared by the poll, so rung again
    expect(new WorkerEndpoint({ area, side: 0 }).poll()).toBe(0); // side 0 flags untouched
  });

  it("server and client over a MessagePort and the signal area (Atomics.waitAsync loop)", async () => {
    const area = createWorkerSignalArea();
    const { port1, port2 } = new MessageChannel();
    const host = new WorkerEndpoint({ area, side: 0, port: port1 });
    const guest = new WorkerEndpoint({ area, side: 1, port: port2 });
    const memory = new FlatGuestMemory(1 << 20);
    const server = new VmbusServer({ control: host, signals: host, mapGpadl: memory.mapper });
    const client = new VmbusClient({ control: guest, signals: guest });
    host.start();
    guest.start();
    try {
      await client.connect();
      const hc = server.offer({ interfaceId: testGuid(0x55), instanceId: testGuid() });
      const offer = await waitForOffer(client, hc.channelId);
      const gc = await client.open(offer, allocateRingPages(memory, 8192));
      new FakePeer(hc, (p) => p.payload.map((x) => x + 1));
      const req = new RequestChannel(gc);
      const answers = await Promise.all(
        Array.from({ length: 300 }, (_, i) => req.request(Uint8Array.of(i & 0x7f, 1, 2))),
      );
      expect(answers.map((a) => a.payload[0])).toEqual(answers.map((_, i) => (i & 0x7f) + 1));
      expect(host.counters.doorbells + guest.counters.doorbells).toBeLessThan(2 * 300);
    } finally {
      host.close();
      guest.close();
    }
  });
});

describe("cross-worker stress", () => {
  for (const { name, count, dataSize, maxSize, batch } of [
    { name: "2M small packets, 64 KiB ring", count: 2_000_000, dataSize: 64 * 1024, maxSize: 64, batch: 32 },
    {
      name: "200k packets up to 3 KiB through a 4 KiB ring (constant ring-full)",
      count: 200_000,
      dataSize: 4096,
      maxSize: 3000,
      batch: 4,
    },
  ]) {
    it(name, async () => {
      const dir = buildForWorkers();
      const ring = allocateRing(dataSize);
      new RingWriter(ring, { initialize: true });
      const area = createWorkerSignalArea();
      const common = { area, channelId: 1, count, maxSize, stallMs: 20_000 };
      const t0 = performance.now();
      const [s, r] = await Promise.all([
        runWorker(dir, { ...common, role: "send", side: 0, tx: ring, batch }),
        runWorker(dir, { ...common, role: "receive", side: 1, rx: ring }),
      ]);
      const ms = performance.now() - t0;
      expect(s.error).toBeUndefined();
      expect(r.error).toBeUndefined();
      expect(s.ok && r.ok).toBe(true);
      expect(r.packets).toBe(count);
      expect(r.bytes).toBe(s.bytes);
      expect(ms).toBeLessThan(50_000);
      const ctrl = new DataView(ring.buffer, 0, RING_CONTROL_SIZE);
      expect(ctrl.getUint32(0, true)).toBe(ctrl.getUint32(4, true)); // drained
      console.log(
        `${name}: ${(count / (ms / 1000) / 1e6).toFixed(2)} M packets/s, signals/packet ${((s.signals + r.signals) / count).toFixed(4)}, sender full ${s.full}`,
      );
    });
  }
});
