// Test doubles for packages that use @ringzero/vmbus (STYLE.md §8: published
// at ./testing). A loopback bus (server + client over the same-thread
// transport, flat guest memory), a fake peer that records and answers, and a
// hostile peer that corrupts rings and control messages.
import type { Channel, ControlTransport, SignalTransport } from "../channel.js";
import { type ClientChannel, type ClientOffer, VmbusClient } from "../client.js";
import { type GpaRange, PAGE_SIZE } from "../gpa.js";
import { FlatGuestMemory } from "../memory.js";
import { encodeGpadlMessages, encodeMessage, MessageType } from "../messages.js";
import { RequestChannel } from "../requests.js";
import { type IncomingPacket, PacketType, RING_CONTROL_SIZE, RingControl } from "../ring.js";
import { type ServerChannel, type ServerOfferOptions, VmbusServer } from "../server.js";
import { createLocalTransport } from "../transports/local.js";

export interface Loopback {
  server: VmbusServer;
  client: VmbusClient;
  memory: FlatGuestMemory;
  /** Raw access to the guest's and host's control transports (for injecting messages). */
  guestControl: ControlTransport & SignalTransport;
  hostControl: ControlTransport & SignalTransport;
}

/** A connected server/client pair in one thread over flat guest memory (default 4 MiB). */
export async function createLoopback(
  o: { memoryBytes?: number; serverVersions?: readonly number[] } = {},
): Promise<Loopback> {
  const t = createLocalTransport();
  const memory = new FlatGuestMemory(o.memoryBytes ?? 4 << 20);
  const server = new VmbusServer({ ...t.host, mapGpadl: memory.mapper, versions: o.serverVersions });
  const client = new VmbusClient({ ...t.guest });
  await client.connect();
  return {
    server,
    client,
    memory,
    guestControl: t.guest.control as ControlTransport & SignalTransport,
    hostControl: t.host.control as ControlTransport & SignalTransport,
  };
}

let instanceCounter = 0;

/** A fresh instance GUID for tests. */
export function testGuid(n = ++instanceCounter): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** Allocates ring pages (both directions of `dataSize` bytes) in guest memory. */
export function allocateRingPages(
  memory: FlatGuestMemory,
  dataSize = 64 * 1024,
): {
  ring: Uint8Array;
  ringGpadl: GpaRange;
  downstreamOffset: number;
} {
  const one = RING_CONTROL_SIZE + dataSize;
  const { view, range } = memory.allocate(2 * one);
  return { ring: view, ringGpadl: range, downstreamOffset: one };
}

/** Offers a device on the loopback's server and opens it from the client. */
export async function openPair(
  lb: Loopback,
  offer: Partial<ServerOfferOptions> = {},
  dataSize = 64 * 1024,
): Promise<{ host: ServerChannel; guest: ClientChannel; offer: ClientOffer }> {
  const host = lb.server.offer({ interfaceId: testGuid(0xabc), instanceId: testGuid(), ...offer });
  const clientOffer = await waitForOffer(lb.client, host.channelId);
  const guest = await lb.client.open(clientOffer, allocateRingPages(lb.memory, dataSize));
  return { host, guest, offer: clientOffer };
}

/** Resolves with the offer for `channelId` once the client has it. */
export function waitForOffer(client: VmbusClient, channelId: number): Promise<ClientOffer> {
  return new Promise((resolve) => {
    const off = client.onOffer((o) => {
      if (o.channelId === channelId) {
        queueMicrotask(() => off());
        resolve(o);
      }
    });
  });
}

/**
 * A scripted peer on one channel end: records every packet it receives,
 * answers requests (COMPLETION_REQUESTED) with `respond`, and can send.
 */
export class FakePeer {
  readonly requests: RequestChannel;
  readonly received: IncomingPacket[] = [];
  respond: (p: IncomingPacket) => Uint8Array | undefined;

  constructor(
    channel: ServerChannel | ClientChannel | Channel,
    respond: (p: IncomingPacket) => Uint8Array | undefined = (p) => p.payload,
  ) {
    this.respond = respond;
    this.requests = new RequestChannel(channel, {
      onPacket: (p) => {
        this.received.push(p);
        if (p.flags & 1) {
          const answer = this.respond(p);
          if (answer) this.requests.complete(p.transactionId, answer);
        }
      },
    });
  }
}

/**
 * A misbehaving peer: writes directly into ring memory and control
 * transports, bypassing every check. `mem` is one ring (control page + data).
 */
export class HostilePeer {
  readonly #mem: Uint8Array;
  readonly #dv: DataView;

  constructor(ringMemory: Uint8Array) {
    this.#mem = ringMemory;
    this.#dv = new DataView(ringMemory.buffer, ringMemory.byteOffset, ringMemory.byteLength);
  }

  get dataSize(): number {
    return this.#mem.length - RING_CONTROL_SIZE;
  }

  /** Overwrites a control-page field (byte offset from RingControl). */
  setControl(field: keyof typeof RingControl, value: number): void {
    Atomics.store(new Int32Array(this.#mem.buffer, this.#mem.byteOffset, 32), RingControl[field] / 4, value | 0);
  }

  getControl(field: keyof typeof RingControl): number {
    return Atomics.load(new Int32Array(this.#mem.buffer, this.#mem.byteOffset, 32), RingControl[field] / 4) >>> 0;
  }

  /**
   * Appends a packet with arbitrary descriptor fields at the current write
   * index and publishes `advance` bytes (default: what the descriptor claims + footer).
   */
  writeDescriptor(d: {
    type?: number;
    off8?: number;
    len8?: number;
    flags?: number;
    body?: Uint8Array;
    advance?: number;
  }): void {
    const size = this.dataSize;
    const w = (this.getControl("WRITE_INDEX") % size) & ~7;
    const off8 = d.off8 ?? 2;
    const len8 = d.len8 ?? off8 + Math.ceil((d.body?.length ?? 0) / 8);
    const put16 = (o: number, v: number) => this.#dv.setUint16(RING_CONTROL_SIZE + ((w + o) % size), v, true);
    put16(0, d.type ?? PacketType.IN_BAND);
    put16(2, off8);
    put16(4, len8);
    put16(6, d.flags ?? 0);
    const body = d.body ?? new Uint8Array(0);
    for (let i = 0; i < body.length; i++) this.#mem[RING_CONTROL_SIZE + ((w + 16 + i) % size)] = body[i];
    const advance = d.advance ?? len8 * 8 + 8;
    this.setControl("WRITE_INDEX", (w + advance) % size);
  }

  /** Flips random bytes anywhere in the data area. */
  scribble(count: number, random: () => number = Math.random): void {
    for (let i = 0; i < count; i++) {
      this.#mem[RING_CONTROL_SIZE + Math.floor(random() * this.dataSize)] = Math.floor(random() * 256);
    }
  }
}

/** Malformed control messages a hostile guest could send (each must be rejected, counted, never thrown). */
export function hostileControlMessages(channelId: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  out.push(new Uint8Array(3)); // shorter than the header
  out.push(new Uint8Array(241)); // longer than a SynIC payload
  const unknown = new Uint8Array(8);
  new DataView(unknown.buffer).setUint32(0, 999, true);
  out.push(unknown);
  out.push(
    encodeMessage({ type: MessageType.OPEN_CHANNEL, channelId, ringGpadlId: 0xdead, downstreamPageOffset: 1 }).subarray(
      0,
      20,
    ),
  );
  // GPADL header announcing more bytes than it carries, followed by an overflowing body.
  const [header] = encodeGpadlMessages(channelId, 0x77, [{ byteCount: PAGE_SIZE, byteOffset: 0, pfns: [1] }]);
  const h = header.slice();
  new DataView(h.buffer).setUint16(16, 64, true); // range_buflen 64 > 16 carried
  out.push(h);
  const body = new Uint8Array(8 + 8 + 80);
  new DataView(body.buffer).setUint32(0, MessageType.GPADL_BODY, true);
  new DataView(body.buffer).setUint32(12, 0x77, true);
  out.push(body);
  // GPADL whose range claims 2 pages with 1 PFN.
  const [bad] = encodeGpadlMessages(channelId, 0x78, [{ byteCount: PAGE_SIZE, byteOffset: 0, pfns: [1] }]);
  new DataView(bad.buffer).setUint32(20, PAGE_SIZE + 1, true);
  out.push(bad);
  // Zero range count.
  const [zero] = encodeGpadlMessages(channelId, 0x79, [{ byteCount: PAGE_SIZE, byteOffset: 0, pfns: [1] }]);
  new DataView(zero.buffer).setUint16(18, 0, true);
  out.push(zero);
  // Teardown / release / close of things that do not exist.
  out.push(encodeMessage({ type: MessageType.GPADL_TEARDOWN, channelId, gpadlId: 0x1234 }));
  out.push(encodeMessage({ type: MessageType.RELID_RELEASED, channelId: channelId + 1000 }));
  out.push(encodeMessage({ type: MessageType.CLOSE_CHANNEL, channelId: channelId + 1000 }));
  // A host-to-guest message sent to the host.
  out.push(encodeMessage({ type: MessageType.ALL_OFFERS_DELIVERED }));
  return out;
}
