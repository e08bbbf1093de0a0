// Socket transport in copy mode over 127.0.0.1 TCP: control plane, requests
// with random sizes (delivered exactly), flow control through a small ring,
// and malformed frames.
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { VmbusClient } from "./client.js";
import type { GpaRange } from "./gpa.js";
import { FlatGuestMemory } from "./memory.js";
import { RequestChannel } from "./requests.js";
import { VmbusServer } from "./server.js";
import { allocateRingPages, FakePeer, testGuid, waitForOffer } from "./testing/index.js";
import { SocketEndpoint } from "./transports/socket.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function socketPair(): Promise<{ a: Socket; b: Socket }> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  const accepted = once(srv, "connection");
  const b = connect(port, "127.0.0.1");
  const [a] = (await accepted) as [Socket];
  await once(b, "connect");
  cleanups.push(() => {
    a.destroy();
    b.destroy();
    srv.close();
  });
  return { a, b };
}

async function socketBus(dataSize: number) {
  const { a, b } = await socketPair();
  const host = new SocketEndpoint(a);
  const guest = new SocketEndpoint(b);
  // Copy mode: the host cannot see guest pages; it gets a private copy of the GPADL's size.
  const server = new VmbusServer({
    control: host,
    signals: host,
    mirror: host,
    mapGpadl: (ranges: readonly GpaRange[]) => new Uint8Array(ranges.reduce((n, r) => n + r.byteCount, 0)),
  });
  const client = new VmbusClient({ control: guest, signals: guest, mirror: guest });
  await client.connect();
  const memory = new FlatGuestMemory(1 << 20);
  const hc = server.offer({ interfaceId: testGuid(0x50c), instanceId: testGuid() });
  const offer = await waitForOffer(client, hc.channelId);
  const gc = await client.open(offer, allocateRingPages(memory, dataSize));
  return { host, guest, server, client, hc, gc };
}

describe("socket transport (copy mode)", () => {
  it("random payload sizes arrive exactly through both mirrored rings", async () => {
    const { hc, gc } = await socketBus(16 * 1024);
    new FakePeer(hc, (p) => p.payload);
    const req = new RequestChannel(gc);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 20 }),
        async (payloads) => {
          const answers = await Promise.all(payloads.map((p) => req.request(p)));
          answers.forEach((a, i) => {
            const sent = payloads[i];
            expect(a.payload.length).toBe((sent.length + 7) & ~7);
            expect(a.payload.subarray(0, sent.length)).toEqual(sent);
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it("flow control: many requests through a 4 KiB ring complete", async () => {
    const { hc, gc, host } = await socketBus(4096);
    new FakePeer(hc, (p) => p.payload.subarray(0, 8));
    const req = new RequestChannel(gc);
    const all = await Promise.all(
      Array.from({ length: 300 }, (_, i) => req.request(new Uint8Array(900).fill(i & 0xff))),
    );
    expect(all.map((a) => a.payload[0])).toEqual(all.map((_, i) => i & 0xff));
    expect(gc.writer.counters.full).toBeGreaterThan(0);
    expect(host.counters.badFrames).toBe(0);
  });

  it("malformed frames are counted and dropped; a bad length closes the link", async () => {
    const { a, b } = await socketPair();
    const ep = new SocketEndpoint(a);
    const got: number[] = [];
    ep.onSignal((id) => got.push(id));
    const frame = (kind: number, body: number[]) => {
      const f = new Uint8Array(5 + body.length);
      new DataView(f.buffer).setUint32(0, 1 + body.length, true);
      f[4] = kind;
      f.set(body, 5);
      return f;
    };
    b.write(frame(2, [1, 2])); // short signal
    b.write(frame(3, [9, 0, 0, 0])); // short ring data
    b.write(frame(4, new Array(12).fill(0))); // ring read for an unknown channel
    b.write(frame(9, [])); // unknown kind
    b.write(frame(2, [7, 0, 0, 0])); // a good signal
    while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual([7]);
    expect(ep.counters.badFrames).toBe(4);
    b.write(Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 1));
    await once(a, "close");
    expect(ep.post(new Uint8Array(8))).toBe(false);
  });
});
