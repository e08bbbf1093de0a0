// Guest side of the control plane (the VSC owner): INITIATE_CONTACT with
// version walk-down, REQUEST_OFFERS, GPADL creation, open/close, and the
// rescind path (vmbus.md §2.2a, §4; Linux channel_mgmt.c, OpenVMM vmbus_client).
import {
  Channel,
  type ChannelState,
  ControlPoster,
  type ControlTransport,
  type RingMirror,
  type SignalTransport,
} from "./channel.js";
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { type GpaRange, PAGE_SIZE } from "./gpa.js";
import {
  type ControlMessage,
  type ControlMessageInput,
  decodeMessage,
  encodeGpadlMessages,
  encodeMessage,
  MessageType,
  type OfferChannel,
  Status,
} from "./messages.js";
import { RING_CONTROL_SIZE, RingReader, RingWriter } from "./ring.js";
import { SERVER_VERSIONS } from "./server.js";

/** An offer as the guest sees it (the OFFER_CHANNEL fields). */
export type ClientOffer = Readonly<Omit<OfferChannel, "type">>;

export interface ClientOpenOptions {
  /** The ring pages the client owns: outgoing ring at 0, incoming ring at downstreamOffset. */
  ring: Uint8Array;
  /** How the host finds those pages: one page-aligned range covering `ring`. */
  ringGpadl: GpaRange;
  /** Byte offset of the incoming (host->guest) ring inside `ring`, a multiple of 4096. */
  downstreamOffset: number;
  /** Up to 120 bytes of OPEN_CHANNEL user data. */
  userData?: Uint8Array;
  targetVp?: number;
  /** Per step (GPADL_CREATED, OPEN_RESULT) timeout; default 5000 ms (older Linux gives up after 5 s). */
  timeoutMs?: number;
}

export interface VmbusClientOptions {
  control: ControlTransport;
  signals: SignalTransport;
  /** Versions to propose, newest first (default: the server's list). */
  versions?: readonly number[];
  /** Timeout for each control reply; default 5000 ms. */
  timeoutMs?: number;
  /** Copy-mode transports (sockets) mirror ring memory through this hook. */
  mirror?: RingMirror & { attach(channelId: number, outgoing: Uint8Array, incoming: Uint8Array): void };
}

export interface VmbusClientCounters {
  messagesIn: number;
  messagesOut: number;
  violations: number;
  rescinds: number;
}

/** Guest end of an open channel. */
export class ClientChannel extends Channel {
  readonly offer: ClientOffer;
  readonly #client: VmbusClient;
  /** @internal */ gpadlId: number;

  constructor(offer: ClientOffer, signals: SignalTransport, client: VmbusClient, gpadlId: number) {
    super(offer.channelId, "opening", signals);
    this.offer = offer;
    this.#client = client;
    this.gpadlId = gpadlId;
    // A corrupt incoming ring: the guest cannot rescind, it closes (vmbus.md §5.10).
    this.onViolation = () => {
      void this.close().catch(() => {});
    };
  }

  /** CLOSE_CHANNEL, then GPADL_TEARDOWN -> GPADL_TORNDOWN (vmbus.md §2.2a step 7). */
  close(): Promise<void> {
    return this.#client.closeChannel(this);
  }
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: VmbusError): void;
  timer: ReturnType<typeof setTimeout>;
}

interface OfferEntry {
  offer: ClientOffer;
  channel: ClientChannel | undefined;
  /** The open in progress, rejected on rescind. */
  opening: Waiter<ClientChannel> | undefined;
}

/** Guest side (the VSC owner). */
export class VmbusClient {
  readonly counters: VmbusClientCounters = { messagesIn: 0, messagesOut: 0, violations: 0, rescinds: 0 };
  readonly #o: VmbusClientOptions;
  readonly #poster: ControlPoster;
  readonly #offers = new Map<number, OfferEntry>();
  readonly #offerListeners: ((o: ClientOffer) => void)[] = [];
  readonly #rescindListeners: ((o: ClientOffer) => void)[] = [];
  readonly #errorListeners: ((e: VmbusError) => void)[] = [];
  /** Replies keyed by kind and id. */
  readonly #waiters = new Map<string, Waiter<ControlMessage>>();
  /** Replies still owed by the host for waits already settled locally (teardown cut short by a rescind). */
  readonly #late = new Set<string>();
  /** GPADLs whose creation timed out: torn down if the host creates them after all. */
  readonly #abandoned = new Set<number>();
  #nextGpadlId = 0xe1e10; // Linux connection.c next_gpadl_handle
  #version = 0;

  constructor(o: VmbusClientOptions) {
    this.#o = o;
    this.#poster = new ControlPoster(o.control);
    o.control.onMessage((m) => this.#onMessage(m));
    o.signals.onSignal((id) => this.#offers.get(id)?.channel?.deliverSignal());
  }

  get version(): number {
    return this.#version;
  }

  /**
   * INITIATE_CONTACT from the newest version down until the host accepts
   * (Linux connection.c), then REQUEST_OFFERS; resolves after
   * ALL_OFFERS_DELIVERED with the negotiated version.
   */
  async connect(): Promise<number> {
    for (const version of this.#o.versions ?? SERVER_VERSIONS) {
      const r = await this.#request("version", 0, { type: MessageType.INITIATE_CONTACT, version, targetVp: 0 });
      if (r.type === MessageType.VERSION_RESPONSE && r.versionSupported) {
        this.#version = version;
        await this.#request("alloffers", 0, { type: MessageType.REQUEST_OFFERS });
        return version;
      }
    }
    throw new VmbusError(VmbusErrorCode.REFUSED, {}, "no protocol version accepted");
  }

  /** Tears the connection down (UNLOAD -> UNLOAD_COMPLETE); channels become revoked locally. */
  async unload(): Promise<void> {
    await this.#request("unload", 0, { type: MessageType.UNLOAD });
    for (const e of this.#offers.values())
      this.#dropOffer(e, new VmbusError(VmbusErrorCode.CLOSED, {}, "unloaded"), false);
    this.#offers.clear();
    this.#version = 0;
  }

  /** Called for every offer, including ones already received (replayed on registration). */
  onOffer(cb: (offer: ClientOffer) => void): () => void {
    this.#offerListeners.push(cb);
    for (const e of this.#offers.values()) cb(e.offer);
    return () => removeItem(this.#offerListeners, cb);
  }

  /** Called when the host rescinds an offer (after its channel, if any, went to "revoked"). */
  onRescind(cb: (offer: ClientOffer) => void): () => void {
    this.#rescindListeners.push(cb);
    return () => removeItem(this.#rescindListeners, cb);
  }

  /** Protocol errors from the host (also counted). */
  onError(cb: (e: VmbusError) => void): void {
    this.#errorListeners.push(cb);
  }

  offers(): ClientOffer[] {
    return [...this.#offers.values()].map((e) => e.offer);
  }

  /**
   * Creates the ring GPADL, initializes both ring control pages and opens the
   * channel. Rejects with CHANNEL_REVOKED if the host rescinds meanwhile,
   * REFUSED if it fails the GPADL or the open, TIMEOUT without an answer.
   */
  async open(offer: ClientOffer, o: ClientOpenOptions): Promise<ClientChannel> {
    const entry = this.#offers.get(offer.channelId);
    if (!entry || entry.offer !== offer)
      throw new VmbusError(VmbusErrorCode.INVALID_STATE, { channelId: offer.channelId }, "unknown offer");
    if (entry.channel || entry.opening)
      throw new VmbusError(VmbusErrorCode.INVALID_STATE, { channelId: offer.channelId }, "already open");
    const { ring, downstreamOffset } = o;
    if (
      downstreamOffset % PAGE_SIZE !== 0 ||
      !ringOk(downstreamOffset) ||
      !ringOk(ring.length - downstreamOffset) ||
      o.ringGpadl.byteCount !== ring.length ||
      o.ringGpadl.byteOffset !== 0
    ) {
      throw new VmbusError(
        VmbusErrorCode.RING_GEOMETRY,
        { length: ring.length, downstreamOffset },
        "ring pages and GPADL disagree",
      );
    }
    const timeoutMs = o.timeoutMs ?? this.#o.timeoutMs;
    const gpadlId = this.#nextGpadlId++;
    const channel = new ClientChannel(offer, this.#o.signals, this, gpadlId);
    let opened!: Waiter<ClientChannel>;
    const openedP = new Promise<ClientChannel>((resolve, reject) => {
      opened = { resolve, reject, timer: undefined as unknown as ReturnType<typeof setTimeout> };
    });
    entry.opening = opened;
    openedP.catch(() => {});
    const run = async () => {
      const msgs = encodeGpadlMessages(offer.channelId, gpadlId, [o.ringGpadl]);
      const created = this.#expect("gpadl", gpadlId, timeoutMs);
      for (const m of msgs) this.#postRaw(m);
      const c = await created.catch((e: VmbusError) => {
        // The host may still create it: a late GPADL_CREATED is answered with a teardown.
        if (e.code === VmbusErrorCode.TIMEOUT) this.#abandoned.add(gpadlId);
        throw e;
      });
      if (c.type !== MessageType.GPADL_CREATED || c.status !== Status.SUCCESS) {
        throw new VmbusError(VmbusErrorCode.REFUSED, { channelId: offer.channelId, gpadlId }, "GPADL refused");
      }
      // Linux zeroes the ring pages; both control pages get feature bit 0 (vmbus.md §2.5).
      const outgoing = ring.subarray(0, downstreamOffset);
      const incoming = ring.subarray(downstreamOffset);
      const writer = new RingWriter(outgoing, { initialize: true });
      new RingWriter(incoming, { initialize: true });
      channel.attachRings(writer, new RingReader(incoming));
      channel.ringMemory = { outgoing, incoming };
      if (this.#o.mirror) {
        this.#o.mirror.attach(offer.channelId, outgoing, incoming);
        channel.mirror = this.#o.mirror;
      }
      const result = await this.#request(
        "open",
        offer.channelId,
        {
          type: MessageType.OPEN_CHANNEL,
          channelId: offer.channelId,
          openId: offer.channelId,
          ringGpadlId: gpadlId,
          targetVp: o.targetVp ?? 0,
          downstreamPageOffset: downstreamOffset / PAGE_SIZE,
          userData: o.userData,
        },
        timeoutMs,
      ).catch((e: VmbusError) => {
        if (e.code === VmbusErrorCode.TIMEOUT && this.#offers.get(offer.channelId) === entry) {
          // The host may have opened it after all: close and tear the GPADL down so that the next
          // open finds the channel closed (its answers, in order, come before the next GPADL's).
          this.#late.add(`open:${offer.channelId}`);
          this.#post({ type: MessageType.CLOSE_CHANNEL, channelId: offer.channelId });
          this.#late.add(`torndown:${gpadlId}`);
          this.#post({ type: MessageType.GPADL_TEARDOWN, channelId: offer.channelId, gpadlId });
        }
        throw e;
      });
      if (result.type !== MessageType.OPEN_CHANNEL_RESULT || result.status !== Status.SUCCESS) {
        throw new VmbusError(
          VmbusErrorCode.REFUSED,
          { channelId: offer.channelId, status: result.type === MessageType.OPEN_CHANNEL_RESULT ? result.status : -1 },
          "open refused",
        );
      }
    };
    run().then(
      () => {
        if (entry.opening !== opened) return; // rescinded meanwhile
        entry.opening = undefined;
        entry.channel = channel;
        channel.setState("open");
        opened.resolve(channel);
      },
      (e: VmbusError) => {
        if (entry.opening !== opened) return;
        entry.opening = undefined;
        channel.setState("offered");
        opened.reject(e);
      },
    );
    return openedP;
  }

  /** @internal used by ClientChannel.close(). */
  async closeChannel(ch: ClientChannel): Promise<void> {
    const entry = this.#offers.get(ch.channelId);
    if (ch.state !== "open" || entry?.channel !== ch) return;
    ch.setState("closing");
    this.#post({ type: MessageType.CLOSE_CHANNEL, channelId: ch.channelId });
    try {
      await this.#request("torndown", ch.gpadlId, {
        type: MessageType.GPADL_TEARDOWN,
        channelId: ch.channelId,
        gpadlId: ch.gpadlId,
      });
    } finally {
      if (entry.channel === ch) entry.channel = undefined;
      if ((ch.state as ChannelState) === "closing") ch.setState("offered");
    }
  }

  #postRaw(m: Uint8Array): void {
    this.counters.messagesOut++;
    this.#poster.post(m);
  }

  #post(m: ControlMessageInput): void {
    this.#postRaw(encodeMessage(m));
  }

  #expect(kind: string, id: number, timeoutMs = this.#o.timeoutMs ?? 5000): Promise<ControlMessage> {
    const key = `${kind}:${id}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(key);
        reject(new VmbusError(VmbusErrorCode.TIMEOUT, { kind, id }, "no reply from the host"));
      }, timeoutMs);
      this.#waiters.get(key)?.reject(new VmbusError(VmbusErrorCode.INVALID_STATE, { kind, id }, "superseded"));
      this.#waiters.set(key, { resolve, reject, timer });
    });
  }

  #request(kind: string, id: number, m: ControlMessageInput, timeoutMs?: number): Promise<ControlMessage> {
    const p = this.#expect(kind, id, timeoutMs);
    this.#post(m);
    return p;
  }

  #settle(kind: string, id: number, m: ControlMessage): boolean {
    const key = `${kind}:${id}`;
    const w = this.#waiters.get(key);
    if (!w) return false;
    this.#waiters.delete(key);
    clearTimeout(w.timer);
    w.resolve(m);
    return true;
  }

  #violation(detail: string, context: Record<string, unknown>): void {
    this.counters.violations++;
    const e = new VmbusError(VmbusErrorCode.PROTOCOL_VIOLATION, context, detail);
    for (const l of this.#errorListeners) l(e);
  }

  #onMessage(raw: Uint8Array): void {
    this.counters.messagesIn++;
    const m = decodeMessage(raw);
    if (m instanceof VmbusError) {
      this.counters.violations++;
      for (const l of this.#errorListeners) l(m);
      return;
    }
    switch (m.type) {
      case MessageType.VERSION_RESPONSE:
        if (!this.#settle("version", 0, m)) this.#violation("unexpected VERSION_RESPONSE", {});
        return;
      case MessageType.ALL_OFFERS_DELIVERED:
        this.#settle("alloffers", 0, m); // also fine when nobody waits
        return;
      case MessageType.UNLOAD_COMPLETE:
        if (!this.#settle("unload", 0, m)) this.#violation("unexpected UNLOAD_COMPLETE", {});
        return;
      case MessageType.OFFER_CHANNEL: {
        if (this.#offers.has(m.channelId)) {
          this.#violation("OFFER_CHANNEL for an ID in use", { channelId: m.channelId });
          return;
        }
        const { type: _t, ...offer } = m;
        const entry: OfferEntry = { offer: Object.freeze(offer), channel: undefined, opening: undefined };
        this.#offers.set(m.channelId, entry);
        for (const l of this.#offerListeners.slice()) l(entry.offer);
        return;
      }
      case MessageType.RESCIND_CHANNEL_OFFER: {
        const entry = this.#offers.get(m.channelId);
        if (!entry) {
          this.#violation("RESCIND for an unknown channel", { channelId: m.channelId });
          return;
        }
        this.counters.rescinds++;
        this.#dropOffer(entry, new VmbusError(VmbusErrorCode.CHANNEL_REVOKED, { channelId: m.channelId }), true);
        return;
      }
      case MessageType.GPADL_CREATED:
        if (this.#settle("gpadl", m.gpadlId, m)) return;
        if (!this.#abandoned.delete(m.gpadlId)) {
          this.#violation("unexpected GPADL_CREATED", { gpadlId: m.gpadlId });
        } else if (m.status === Status.SUCCESS && this.#offers.has(m.channelId)) {
          this.#late.add(`torndown:${m.gpadlId}`);
          this.#post({ type: MessageType.GPADL_TEARDOWN, channelId: m.channelId, gpadlId: m.gpadlId });
        }
        return;
      case MessageType.GPADL_TORNDOWN:
        if (!this.#settle("torndown", m.gpadlId, m) && !this.#late.delete(`torndown:${m.gpadlId}`)) {
          this.#violation("unexpected GPADL_TORNDOWN", { gpadlId: m.gpadlId });
        }
        return;
      case MessageType.OPEN_CHANNEL_RESULT:
        if (!this.#settle("open", m.channelId, m) && !this.#late.delete(`open:${m.channelId}`))
          this.#violation("unexpected OPEN_CHANNEL_RESULT", { channelId: m.channelId });
        return;
      default:
        this.#violation("guest-to-host message received by the guest", { type: m.type });
    }
  }

  /**
   * Rescind path (Linux channel_mgmt.c, OpenVMM client): fail a pending open,
   * move the channel to "revoked" (its listeners fail their requests), drop
   * its GPADLs without teardown, then send RELID_RELEASED so the ID can be reused.
   */
  #dropOffer(entry: OfferEntry, reason: VmbusError, release: boolean): void {
    const id = entry.offer.channelId;
    this.#offers.delete(id);
    const opening = entry.opening;
    entry.opening = undefined;
    if (opening) opening.reject(reason);
    const w = this.#waiters.get(`open:${id}`);
    if (w) {
      clearTimeout(w.timer);
      this.#waiters.delete(`open:${id}`);
      w.reject(reason);
    }
    if (entry.channel) {
      // A close in progress ends here: the GPADL is dropped without teardown (vmbus.md §4).
      const t = this.#waiters.get(`torndown:${entry.channel.gpadlId}`);
      if (t) {
        clearTimeout(t.timer);
        this.#waiters.delete(`torndown:${entry.channel.gpadlId}`);
        this.#late.add(`torndown:${entry.channel.gpadlId}`);
        t.resolve({ type: MessageType.GPADL_TORNDOWN, gpadlId: entry.channel.gpadlId });
      }
      entry.channel.setError(reason);
      entry.channel.setState("revoked");
    }
    for (const l of this.#rescindListeners.slice()) l(entry.offer);
    if (release) this.#post({ type: MessageType.RELID_RELEASED, channelId: id });
  }
}

function ringOk(bytes: number): boolean {
  const data = bytes - RING_CONTROL_SIZE;
  return data >= 4096 && (data & (data - 1)) === 0;
}

function removeItem<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
