// A channel's data plane served away from its control plane: packets both
// ways through a DataPlaneChannel, a "killed" server end (detached with a
// request read but unanswered) followed by rescind and re-offer, and a
// corrupt ring reported once.
import { describe, expect, it } from "vitest";
import { channelDataPlane, DataPlaneChannel } from "./dataplane.js";
import { type VmbusError, VmbusErrorCode } from "./errors.js";
import { RequestChannel } from "./requests.js";
import {
  allocateRingPages,
  createLoopback,
  FakePeer,
  HostilePeer,
  openPair,
  testGuid,
  waitForOffer,
} from "./testing/index.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b).replace(/\0+$/, "");
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("DataPlaneChannel", () => {
  it("serves requests over the rings of a channel whose control plane stays with the server", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb);
    const plane = channelDataPlane(host);
    expect(plane).toBeDefined();
    const dp = new DataPlaneChannel(plane!, lb.hostControl);
    host.onSignal(() => dp.deliverSignal());
    new FakePeer(dp, (p) => enc(`echo ${dec(p.payload)}`));
    const rc = new RequestChannel(guest);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => rc.request(enc(`r${i}`))));
    expect(answers.map((p) => dec(p.payload))).toEqual(Array.from({ length: 50 }, (_, i) => `echo r${i}`));
    expect(dp.state).toBe("open");
    dp.detach();
    expect(dp.state).toBe("released");
  });

  it("a server end that dies with a request in flight: rescind fails it, the re-offer serves it again", async () => {
    const lb = await createLoopback();
    const instanceId = testGuid();
    const interfaceId = testGuid(0xdef);
    const { host, guest } = await openPair(lb, { interfaceId, instanceId });
    const dp = new DataPlaneChannel(channelDataPlane(host)!, lb.hostControl);
    host.onSignal(() => dp.deliverSignal());
    // The dying end reads the request and never answers.
    const seen: string[] = [];
    dp.onSignal(() => dp.receive((p) => seen.push(dec(p.payload))));
    const rc = new RequestChannel(guest);
    const lost = rc.request(enc("in flight"));
    await tick();
    expect(seen).toEqual(["in flight"]);
    dp.detach();
    lb.server.revoke(host);
    await expect(lost).rejects.toMatchObject({ code: VmbusErrorCode.CHANNEL_REVOKED });
    // The owner offers the device again; the guest releases the ID, gets the offer, reopens.
    const again = lb.server.offer({ interfaceId, instanceId });
    const offer = await waitForOffer(lb.client, again.channelId);
    const reopened = await lb.client.open(offer, allocateRingPages(lb.memory));
    const dp2 = new DataPlaneChannel(channelDataPlane(again)!, lb.hostControl);
    again.onSignal(() => dp2.deliverSignal());
    new FakePeer(dp2, (p) => enc(`again ${dec(p.payload)}`));
    const p = await new RequestChannel(reopened).request(enc("in flight"));
    expect(dec(p.payload)).toBe("again in flight");
    expect(again.channelId).toBe(host.channelId);
  });

  it("a corrupt incoming ring is reported once and reads stop", async () => {
    const lb = await createLoopback();
    const { host, guest } = await openPair(lb);
    const plane = channelDataPlane(host)!;
    const errors: VmbusError[] = [];
    const dp = new DataPlaneChannel(plane, lb.hostControl, (e) => errors.push(e));
    host.onSignal(() => dp.deliverSignal());
    let packets = 0;
    dp.onSignal(() => dp.receive(() => packets++));
    new HostilePeer(plane.incoming).setControl("WRITE_INDEX", 12); // not 8-byte aligned
    guest.signalPeer();
    await tick();
    guest.signalPeer();
    await tick();
    expect(packets).toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe(VmbusErrorCode.RING_INDEX_INVALID);
  });

  it("has no data plane before the channel opens", async () => {
    const lb = await createLoopback();
    const host = lb.server.offer({ interfaceId: testGuid(1), instanceId: testGuid() });
    expect(channelDataPlane(host)).toBeUndefined();
  });
});
