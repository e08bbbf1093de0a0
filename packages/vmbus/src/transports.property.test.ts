// The same property through the same-thread and worker transports: random
// payload sizes and request batches arrive exactly (socket: socket.test.ts).
import { MessageChannel } from "node:worker_threads";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ControlTransport, SignalTransport } from "./channel.js";
import { VmbusClient } from "./client.js";
import { FlatGuestMemory } from "./memory.js";
import { RequestChannel } from "./requests.js";
import { VmbusServer } from "./server.js";
import { allocateRingPages, FakePeer, testGuid, waitForOffer } from "./testing/index.js";
import { createLocalTransport } from "./transports/local.js";
import { createWorkerSignalArea, WorkerEndpoint } from "./transports/worker.js";

type Ends = { host: ControlTransport & SignalTransport; guest: ControlTransport & SignalTransport; close(): void };

const transports: [string, () => Ends][] = [
  [
    "same thread",
    () => {
      const t = createLocalTransport();
      return { host: t.host.control as Ends["host"], guest: t.guest.control as Ends["guest"], close() {} };
    },
  ],
  [
    "worker endpoints (MessagePort + SAB signal area)",
    () => {
      const area = createWorkerSignalArea();
      const { port1, port2 } = new MessageChannel();
      const host = new WorkerEndpoint({ area, side: 0, port: port1 });
      const guest = new WorkerEndpoint({ area, side: 1, port: port2 });
      host.start();
      guest.start();
      return {
        host,
        guest,
        close() {
          host.close();
          guest.close();
        },
      };
    },
  ],
];

describe.each(transports)("%s", (_name, make) => {
  it("random payload sizes and batches arrive exactly, in order", async () => {
    const ends = make();
    try {
      const memory = new FlatGuestMemory(1 << 20);
      const server = new VmbusServer({ control: ends.host, signals: ends.host, mapGpadl: memory.mapper });
      const client = new VmbusClient({ control: ends.guest, signals: ends.guest });
      await client.connect();
      const hc = server.offer({ interfaceId: testGuid(0x77f), instanceId: testGuid() });
      const gc = await client.open(await waitForOffer(client, hc.channelId), allocateRingPages(memory, 8192));
      new FakePeer(hc, (p) => p.payload);
      const req = new RequestChannel(gc);
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ maxLength: 5000 }), { minLength: 1, maxLength: 30 }),
          async (payloads) => {
            const answers = await Promise.all(payloads.map((p) => req.request(p)));
            for (let i = 0; i < payloads.length; i++) {
              const sent = payloads[i];
              const got = answers[i].payload;
              expect(got.length).toBe((sent.length + 7) & ~7);
              expect(Buffer.compare(got.subarray(0, sent.length), sent)).toBe(0);
              expect(got.subarray(sent.length).every((b) => b === 0)).toBe(true);
            }
          },
        ),
        { numRuns: 60 },
      );
      expect(gc.reader.error).toBeUndefined();
      expect(hc.reader.error).toBeUndefined();
    } finally {
      ends.close();
    }
  });
});
