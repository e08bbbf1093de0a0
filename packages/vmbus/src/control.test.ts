// The control plane over the same-thread transport: connect, offers, GPADLs,
// open/close, every channel state transition, rescind with requests in flight,
// a re-offer racing a late revoke, hostile control messages.
import { describe, expect, it } from "vitest";
import type { ChannelState } from "./channel.js";
import { type ClientOffer, VmbusClient } from "./client.js";
import { type VmbusError, VmbusErrorCode } from "./errors.js";
import { FlatGuestMemory } from "./memory.js";
import { decodeMessage, encodeMessage, MessageType, VmbusVersion } from "./messages.js";
import { RequestChannel } from "./requests.js";
import { PacketType } from "./ring.js";
import { VmbusServer } from "./server.js";
import {
  allocateRingPages,
  createLoopback,
  FakePeer,
  HostilePeer,
  hostileControlMessages,
  openPair,
  testGuid,
  waitForOffer,
} from "./testing/index.js";
import { createLocalTransport } from "./transports/local.js";

const tick = () => new Promise((r) => setTimeout(r, 0));
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b).replace(/\0+$/, "");

function track(ch: { onStateChange(cb: (s: ChannelState) => void): unknown; state: ChannelState }): ChannelState[] {
  const seen: ChannelState[] = [ch.state];
  ch.onStateChange((s) => seen.push(s));
  return seen;
}

describe("connect and version negotiation", () => {
  it("walks the version down until the host accepts", async () => {
    const t = createLocalTransport();
    const memory = new FlatGuestMemory(1 << 20);
    const server = new VmbusServer({ ...t.host, mapGpadl: memory.mapper, versions: [VmbusVersion.WIN10] });
    const client = new VmbusClient(t.guest);
    expect(await client.connect()).toBe(VmbusVersion.WIN10);
    expect(server.version).toBe(VmbusVersion.WIN10);
    expect(client.counters.messagesOut).toBe(8); // 7 INITIATE_CONTACT + REQUEST_OFFERS
  });

  it("rejects with REFUSED when no version is accepted", async () => {
    const t = createLocalTransport();
    new VmbusServer({ ...t.host, mapGpadl: () => undefined, versions: [0x1234] });
    const client = new VmbusClient(t.guest);
    await expect(client.connect()).rejects.toMatchObject({ code: VmbusErrorCode.REFUSED });
  });

  it("delivers offers made before and after REQUEST_OFFERS (hot add)", async () => {
    const t = createLocalTransport();
    const memory = new FlatGuestMemory(1 << 20);
    const server = new VmbusServer({ ...t.host, mapGpadl: memory.mapper });
    const a = server.offer({ interfaceId: testGuid(1), instanceId: testGuid(), userDefined: enc("pipe") });
    const client = new VmbusClient(t.guest);
    await client.connect();
    expect(client.offers().map((o) => o.channelId)).toEqual([a.channelId]);
    expect(dec(client.offers()[0].userDefined)).toBe("pipe");
    const b = server.offer({ interfaceId: testGuid(1), instanceId: testGuid() });
    const o = await waitForOffer(client, b.channelId);
    expect(o.interfaceId).toBe(testGuid(1));
    expect(b.channelId).toBe(a.channelId + 1);
  });

  it("a message that cannot be posted is retried in order", async () => {
    const t = createLocalTransport({ messageBuffers: 1 });
    const memory = new FlatGuestMemory(1 << 20);
    const server = new VmbusServer({ ...t.host, mapGpadl: memory.mapper });
    for (let i = 0; i < 5; i++) server.offer({ interfaceId: testGuid(1), instanceId: testGuid() });
    const client = new VmbusClient(t.guest);
    await client.connect();
    expect(client.offers().length).toBe(5);
  });
});

describe("channels", () => {
  it("open, exchange requests both ways, close and reopen", async () => {
    const lb = await createLoopback();
    const { host, guest, offer } = await openPair(lb, {}, 16 * 1024);
    expect(host.state).toBe("open");
    expect(guest.state).toBe("open");
    const hostPeer = new FakePeer(host, (p) => enc(`host saw ${dec(p.payload)}`));
    const guestReq = new RequestChannel(guest);
    const r = await guestReq.request(enc("ping"));
    expect(r.type).toBe(PacketType.COMPLETION);
    expect(dec(r.payload)).toBe("host saw ping");
    // host -> guest request
    const guestPeer = new FakePeer(guest, () => enc("pong"));
    guestReq.dispose();
    const back = await hostPeer.requests.request(enc("hello"));
    expect(dec(back.payload)).toBe("pong");
    expect(guestPeer.received.length).toBe(1);
    // close: CLOSE_CHANNEL, GPADL_TEARDOWN -> TORNDOWN
    const hostStates = track(host);
    await guest.close();
    expect(guest.state).toBe("offered");
    expect(hostStates).toEqual(["open", "closing", "offered"]);
    expect(host.gpadls.size).toBe(0);
    // reopen the same offer
    const again = await lb.client.open(offer, allocateRingPages(lb.memory, 8192));
    expect(again.state).toBe("open");
    expect(host.state).toBe("open");
    const p2 = new FakePeer(host, () => enc("again"));
    expect(dec((await new RequestChannel(again).request(enc("x"))).payload)).toBe("again");
    expect(p2.received.length).toBe(1);
    expect(lb.server.counters.violations).toBe(0);
    expect(lb.client.counters.violations).toBe(0);
  });

  // A host that answers after the guest gave up (a loaded parent): the guest cleans up after itself
  // so that its retry finds the channel closed, and nobody counts a violation.
  for (const late of [MessageType.GPADL_CREATED, MessageType.OPEN_CHANNEL_RESULT] as const) {
    it(`an open whose ${late === MessageType.GPADL_CREATED ? "GPADL_CREATED" : "OPEN_RESULT"} comes too late is undone and retried`, async () => {
      const t = createLocalTransport();
      const memory = new FlatGuestMemory(1 << 20);
      const server = new VmbusServer({ ...t.host, mapGpadl: memory.mapper });
      const host = server.offer({ interfaceId: testGuid(7), instanceId: testGuid() });
      // Hold back the first host->guest message of type `late` for 60 ms.
      const guestControl = t.guest.control;
      let held = false;
      const control = {
        post: (m: Uint8Array) => guestControl.post(m),
        onMessage: (h: (m: Uint8Array) => void) =>
          guestControl.onMessage((m) => {
            const d = decodeMessage(m);
            if (!held && !(d instanceof Error) && d.type === late) {
              held = true;
              setTimeout(() => h(m), 60);
            } else h(m);
          }),
      };
      const client = new VmbusClient({ control, signals: t.guest.signals });
      await client.connect();
      const offer = await waitForOffer(client, host.channelId);
      const pages = allocateRingPages(memory, 4096);
      await expect(client.open(offer, { ...pages, timeoutMs: 20 })).rejects.toMatchObject({
        code: VmbusErrorCode.TIMEOUT,
      });
      await new Promise((r) => setTimeout(r, 100)); // the late answer and the guest's clean-up
      expect(host.state).toBe("offered");
      expect(host.gpadls.size).toBe(0);
      const ch = await client.open(offer, pages);
      expect(ch.state).toBe("open");
      expect(host.state).toBe("open");
      expect(host.gpadls.size).toBe(1);
      expect(server.counters.violations).toBe(0);
      expect(client.counters.violations).toBe(0);
    });
  }

  it("server channel states: offered -> opening -> open -> closing -> offered -> revoked -> released", async () => {
    const lb = await createLoopback();
    const host = lb.server.offer({ interfaceId: testGuid(5), instanceId: testGuid() });
    const states = track(host);
    const offer = await waitForOffer(lb.client, host.channelId);
    const guest = await lb.client.open(offer, allocateRingPages(lb.memory, 4096));
    await guest.close();
    const rescinded = new Promise((r) => lb.client.onRescind(r));
    lb.server.revoke(host);
    await rescinded;
    await tick();
    expect(states).toEqual(["offered", "opening", "open", "closing", "offered", "revoked", "released"]);
    expect(lb.server.channels()).toEqual([]);
  });

  it("accept() refusing an open answers a failed OPEN_RESULT", async () => {
    const lb = await createLoopback();
    const host = lb.server.offer({ interfaceId: testGuid(5), instanceId: testGuid(), accept: (_c, ud) => ud[0] === 1 });
    const offer = await waitForOffer(lb.client, host.channelId);
    await expect(lb.client.open(offer, allocateRingPages(lb.memory, 4096))).rejects.toMatchObject({
      code: VmbusErrorCode.REFUSED,
    });
    expect(host.state).toBe("offered");
    const ok = await lb.client.open(offer, { ...allocateRingPages(lb.memory, 4096), userData: Uint8Array.of(1) });
    expect(ok.state).toBe("open");
    expect(host.openUserData[0]).toBe(1);
  });

  it("a ring GPADL the host cannot map fails the open, a GPADL across messages is reassembled", async () => {
    const lb = await createLoopback();
    // 2 x (4 KiB + 128 KiB) = 66 pages: the GPADL needs a header and two bodies.
    const { host, guest } = await openPair(lb, {}, 128 * 1024);
    expect([...host.gpadls.values()][0][0].pfns.length).toBe(66);
    await guest.close();
    const offer = lb.client.offers()[0];
    const pages = allocateRingPages(lb.memory, 4096);
    const pfns = pages.ringGpadl.pfns.map((p, i) => (i === 1 ? p + 100 : p)); // not contiguous
    await expect(lb.client.open(offer, { ...pages, ringGpadl: { ...pages.ringGpadl, pfns } })).rejects.toMatchObject({
      code: VmbusErrorCode.REFUSED,
    });
    expect(lb.server.counters.violations).toBe(1);
  });

  it("requests time out; a late completion is counted as unmatched", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb);
    const held: bigint[] = [];
    const hostReq = new RequestChannel(host, { onPacket: (p) => held.push(p.transactionId) });
    const guestReq = new RequestChannel(guest);
    await expect(guestReq.request(enc("slow"), { timeoutMs: 20 })).rejects.toMatchObject({
      code: VmbusErrorCode.TIMEOUT,
    });
    hostReq.complete(held[0], enc("late"));
    await tick();
    expect(guestReq.counters).toMatchObject({ timeouts: 1, unmatched: 1, completed: 0 });
    expect(guestReq.inFlight).toBe(0);
  });

  it("a full ring queues requests until the peer frees space (pending_send_sz signal)", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb, {}, 4096);
    new FakePeer(host, (p) => p.payload.subarray(0, 4));
    const req = new RequestChannel(guest);
    const all = Array.from({ length: 200 }, (_, i) => req.request(new Uint8Array(500).fill(i & 0xff)));
    const answers = await Promise.all(all);
    expect(answers.map((a) => a.payload[0])).toEqual(all.map((_, i) => i & 0xff));
    expect(req.counters.queued).toBeGreaterThan(0);
    expect(guest.writer.counters.full).toBeGreaterThan(0);
    // signals per packet stay well below 1 under load
    expect(guest.counters.signalsOut).toBeLessThan(200);
  });
});

describe("rescind and re-offer (vmbus.md §4)", () => {
  it("rescind with requests in flight fails them, sends RELID_RELEASED and frees the ID", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb);
    new RequestChannel(host, { onPacket: () => {} }); // never answers
    const req = new RequestChannel(guest);
    const pending = [req.request(enc("a")), req.request(enc("b")), req.request(enc("c"))];
    await tick();
    expect(req.inFlight).toBe(3);
    const guestStates = track(guest);
    lb.server.revoke(host);
    const results = await Promise.allSettled(pending);
    for (const r of results) expect((r as PromiseRejectedResult).reason.code).toBe(VmbusErrorCode.CHANNEL_REVOKED);
    expect(guestStates).toEqual(["open", "revoked"]);
    await expect(req.request(enc("d"))).rejects.toMatchObject({ code: VmbusErrorCode.CHANNEL_REVOKED });
    await tick();
    expect(host.state).toBe("released");
    expect(lb.client.offers()).toEqual([]);
    expect(lb.client.counters.rescinds).toBe(1);
  });

  it("rescind during an open rejects the open with CHANNEL_REVOKED", async () => {
    const t = createLocalTransport();
    const memory = new FlatGuestMemory(1 << 20);
    // Drop the host's OPEN_CHANNEL_RESULT so the open is still pending when the rescind arrives.
    const hostControl = {
      post: (m: Uint8Array) => (m[0] === MessageType.OPEN_CHANNEL_RESULT ? true : t.host.control.post(m)),
      onMessage: (h: (m: Uint8Array) => void) => t.host.control.onMessage(h),
    };
    const server = new VmbusServer({ control: hostControl, signals: t.host.signals, mapGpadl: memory.mapper });
    const client = new VmbusClient(t.guest);
    await client.connect();
    const host = server.offer({ interfaceId: testGuid(9), instanceId: testGuid() });
    const offer = await waitForOffer(client, host.channelId);
    const opening = client.open(offer, allocateRingPages(memory, 4096));
    while (host.state !== "open") await tick();
    server.revoke(host);
    await expect(opening).rejects.toMatchObject({ code: VmbusErrorCode.CHANNEL_REVOKED });
    await tick();
    expect(host.state).toBe("released");
  });

  it("a re-offer before RELID_RELEASED waits as 'reoffered', reuses the ID, and a late revoke of the old instance is ignored", async () => {
    const lb = await createLoopback();
    const key = { interfaceId: testGuid(0x77), instanceId: testGuid() };
    const { host: old, guest } = await openPair(lb, key);
    const errors: VmbusError[] = [];
    lb.server.onError((e) => errors.push(e));
    lb.server.revoke(old);
    const next = lb.server.offer(key);
    expect(next.state).toBe("reoffered");
    expect(next.channelId).toBe(old.channelId);
    expect(next.sequence).toBeGreaterThan(old.sequence);
    const reoffer = new Promise<ClientOffer>((resolve) =>
      lb.client.onRescind(() => resolve(waitForOffer(lb.client, old.channelId))),
    );
    expect(guest.state).toBe("open"); // RESCIND not yet delivered
    const o2 = await reoffer; // RESCIND -> RELID_RELEASED -> OFFER (same ID)
    expect(guest.state).toBe("revoked");
    expect(old.state).toBe("released");
    expect(next.state).toBe("offered");
    lb.server.revoke(old); // late revoke of the old instance
    expect(lb.server.counters.staleRevokes).toBe(1);
    expect(next.state).toBe("offered");
    const g2 = await lb.client.open(o2, allocateRingPages(lb.memory, 4096));
    new FakePeer(next, () => enc("new"));
    expect(dec((await new RequestChannel(g2).request(enc("?"))).payload)).toBe("new");
    expect(errors).toEqual([]);
    expect(lb.client.counters.violations).toBe(0);
  });

  it("a re-offer withdrawn before it was sent is released without a message", async () => {
    const lb = await createLoopback();
    const key = { interfaceId: testGuid(0x78), instanceId: testGuid() };
    const { host } = await openPair(lb, key);
    lb.server.revoke(host);
    const next = lb.server.offer(key);
    lb.server.revoke(next);
    expect(next.state).toBe("released");
    await tick();
    await tick();
    expect(lb.client.offers()).toEqual([]);
  });

  it("offering a key that is live is a caller error", async () => {
    const lb = await createLoopback();
    const key = { interfaceId: testGuid(0x79), instanceId: testGuid() };
    lb.server.offer(key);
    expect(() => lb.server.offer(key)).toThrow(/INVALID_STATE/);
  });
});

describe("hostile peers", () => {
  it("malformed control messages are counted, answered with failures where due, never thrown", async () => {
    const lb = await createLoopback();
    const { host } = await openPair(lb);
    const replies: number[] = [];
    lb.guestControl.onMessage((m) => {
      const d = decodeMessage(m);
      if (!("code" in d)) replies.push(d.type === MessageType.GPADL_CREATED ? d.status : -d.type);
    });
    const errors: VmbusError[] = [];
    lb.server.onError((e) => errors.push(e));
    for (const m of hostileControlMessages(host.channelId)) expect(lb.guestControl.post(m)).toBe(true);
    await tick();
    expect(lb.server.counters.violations).toBeGreaterThanOrEqual(9);
    expect(errors.length).toBe(lb.server.counters.violations);
    // the overflowing body and the inconsistent range both got GPADL_CREATED with a failure status
    expect(replies.filter((s) => s === 0xc0000001).length).toBe(2);
    expect(host.state).toBe("open");
  });

  it("a corrupt incoming ring on the host revokes the channel; the guest sees a rescind", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb, {}, 4096);
    const hostReq = new RequestChannel(host, { onPacket: () => {} });
    const guestReq = new RequestChannel(guest);
    const inflight = guestReq.request(enc("x"));
    await tick();
    new HostilePeer(host.ringMemory!.incoming).writeDescriptor({ off8: 1, len8: 4 });
    guest.signalPeer();
    await expect(inflight).rejects.toMatchObject({ code: VmbusErrorCode.CHANNEL_REVOKED });
    expect(host.error?.code).toBe(VmbusErrorCode.DESCRIPTOR_INVALID);
    expect(lb.server.counters.ringViolations).toBe(1);
    expect(hostReq.inFlight).toBe(0);
    await tick();
    expect(host.state).toBe("released");
  });

  it("a hostile host that corrupts the guest's incoming write index makes the guest close, not throw", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb, {}, 4096);
    new RequestChannel(guest);
    new HostilePeer(host.ringMemory!.outgoing).setControl("WRITE_INDEX", 12);
    host.signalPeer();
    await tick();
    await tick();
    expect(guest.error?.code).toBe(VmbusErrorCode.RING_INDEX_INVALID);
    await tick();
    expect(guest.state).toBe("offered");
    expect(host.state).toBe("offered");
  });

  it("a guest message before INITIATE_CONTACT is a violation", async () => {
    const t = createLocalTransport();
    const server = new VmbusServer({ ...t.host, mapGpadl: () => undefined });
    t.guest.control.post(encodeMessage({ type: MessageType.REQUEST_OFFERS }));
    await tick();
    expect(server.counters.violations).toBe(1);
  });
});

describe("close racing a rescind", () => {
  it("a close in progress when the rescind arrives resolves; the late TORNDOWN is not a violation", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb);
    const errs: string[] = [];
    lb.client.onError((e) => errs.push(`client ${e.message}`));
    lb.server.onError((e) => errs.push(`server ${e.message}`));
    const closing = guest.close(); // CLOSE_CHANNEL + GPADL_TEARDOWN queued
    lb.server.revoke(host); // RESCIND queued before the host sees the close
    await closing;
    await tick();
    await tick();
    expect(errs).toEqual([]);
    expect(guest.state).toBe("revoked");
    expect(host.state).toBe("released");
    expect(lb.client.counters.violations).toBe(0);
    expect(lb.server.counters.violations).toBe(0);
  });
});
