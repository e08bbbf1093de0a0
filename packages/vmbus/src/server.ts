// Host side of the control plane (the VSP owner): version negotiation,
// offers, GPADLs, open/close, rescind and re-offer. Modeled on OpenVMM's
// vmbus_server channels.rs (vmbus.md §2.2, §2.2a, §4); kept small.
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
  encodeMessage,
  GpadlAssembly,
  MessageType,
  type OpenChannel,
  Status,
  VmbusVersion,
} from "./messages.js";
import { RING_CONTROL_SIZE, RingReader, RingWriter } from "./ring.js";

export interface ServerOfferOptions {
  /** Interface (class) GUID: which driver binds. */
  interfaceId: string;
  /** Instance GUID: which device. */
  instanceId: string;
  /** Up to 120 bytes given to the guest driver with the offer. */
  userDefined?: Uint8Array;
  subchannelIndex?: number;
  flags?: number;
  /**
   * Decides whether an OPEN_CHANNEL is accepted (e.g. the device checks the
   * user data); default accept. Called with the channel in state "opening".
   */
  accept?: (channel: ServerChannel, userData: Uint8Array) => boolean;
}

export interface VmbusServerCounters {
  messagesIn: number;
  messagesOut: number;
  /** Messages that were malformed or not valid in the current state (counted, ignored). */
  violations: number;
  /** revoke() calls for a channel object that no longer holds its ID (sequence mismatch). */
  staleRevokes: number;
  /** Ring violations that made the server revoke a channel. */
  ringViolations: number;
}

/** Versions the server accepts, newest first. */
export const SERVER_VERSIONS: readonly number[] = [
  VmbusVersion.COPPER,
  VmbusVersion.IRON,
  VmbusVersion.V5_2,
  VmbusVersion.V5_1,
  VmbusVersion.V5_0,
  VmbusVersion.WIN10_RS3,
  VmbusVersion.WIN10,
];

/** One offered device channel on the host side. */
export class ServerChannel extends Channel {
  readonly interfaceId: string;
  readonly instanceId: string;
  readonly subchannelIndex: number;
  /** Offer sequence number: a late revoke of an older offer that used the same ID is ignored (OV-PR#1815). */
  readonly sequence: number;
  /** @internal */ readonly options: ServerOfferOptions;
  /** @internal GPADLs the guest created for this channel. */ readonly gpadls = new Map<number, readonly GpaRange[]>();
  /** @internal */ readonly assembling = new Map<number, GpadlAssembly>();
  /** @internal */ openGpadlId = -1;
  /** @internal teardown asked while the GPADL backs the open ring: answer after close. */ deferredTeardown =
    new Set<number>();
  /** @internal the instance queued to take this ID once the guest releases it. */ reoffer: ServerChannel | undefined;
  /** @internal */ userData: Uint8Array = new Uint8Array(0);

  constructor(
    channelId: number,
    state: ChannelState,
    signals: SignalTransport,
    options: ServerOfferOptions,
    sequence: number,
    onViolation: (c: ServerChannel, e: VmbusError) => void,
  ) {
    super(channelId, state, signals);
    this.options = options;
    this.interfaceId = options.interfaceId.toLowerCase();
    this.instanceId = options.instanceId.toLowerCase();
    this.subchannelIndex = options.subchannelIndex ?? 0;
    this.sequence = sequence;
    this.onViolation = (e) => onViolation(this, e);
  }

  /** The user data the guest passed in OPEN_CHANNEL (120 bytes). */
  get openUserData(): Uint8Array {
    return this.userData;
  }
}

export interface VmbusServerOptions {
  control: ControlTransport;
  signals: SignalTransport;
  /** One contiguous view of the pages, or undefined if not granted. */
  mapGpadl(ranges: readonly GpaRange[]): Uint8Array | undefined;
  /** Accepted protocol versions (default SERVER_VERSIONS). */
  versions?: readonly number[];
  /** Connection ID returned in VERSION_RESPONSE (default 1). */
  messageConnectionId?: number;
  /** Copy-mode transports (sockets) mirror ring memory through this hook. */
  mirror?: RingMirror & { attach(channelId: number, outgoing: Uint8Array, incoming: Uint8Array): void };
}

/** Host side (the VSP owner): offers channels, accepts GPADLs and opens; maps GPADL pages through the caller's mapper. */
export class VmbusServer {
  readonly counters: VmbusServerCounters = {
    messagesIn: 0,
    messagesOut: 0,
    violations: 0,
    staleRevokes: 0,
    ringViolations: 0,
  };
  readonly #o: VmbusServerOptions;
  readonly #poster: ControlPoster;
  /** Channel ID -> the instance holding it (revoked instances keep it until RELID_RELEASED). */
  readonly #byId = new Map<number, ServerChannel>();
  #sequence = 0;
  #version = 0;
  #offersRequested = false;
  readonly #errorListeners: ((e: VmbusError) => void)[] = [];

  constructor(o: VmbusServerOptions) {
    this.#o = o;
    this.#poster = new ControlPoster(o.control);
    o.control.onMessage((m) => this.#onMessage(m));
    o.signals.onSignal((id) => this.#byId.get(id)?.deliverSignal());
  }

  /** Negotiated protocol version, 0 before INITIATE_CONTACT succeeded. */
  get version(): number {
    return this.#version;
  }

  /** Channels holding an ID (including revoked ones waiting for release). */
  channels(): ServerChannel[] {
    return [...this.#byId.values()];
  }

  /** Protocol errors from the guest (also counted in `counters.violations`). */
  onError(cb: (e: VmbusError) => void): void {
    this.#errorListeners.push(cb);
  }

  /**
   * Offers a channel. If the same (interface, instance, subchannel) is still
   * revoked and waiting for the guest's RELID_RELEASED, the new instance is
   * "reoffered" and sent, with the same channel ID, when the release arrives
   * (vmbus.md §4, OpenVMM Reoffered).
   */
  offer(o: ServerOfferOptions): ServerChannel {
    const key = offerKey(o.interfaceId, o.instanceId, o.subchannelIndex ?? 0);
    for (const ch of this.#byId.values()) {
      if (offerKey(ch.interfaceId, ch.instanceId, ch.subchannelIndex) !== key) continue;
      if (ch.state === "revoked" && ch.reoffer === undefined) {
        const next = this.#newChannel(ch.channelId, "reoffered", o);
        ch.reoffer = next;
        return next;
      }
      throw new VmbusError(VmbusErrorCode.INVALID_STATE, { key, state: ch.state }, "channel already offered");
    }
    let id = 1;
    while (this.#byId.has(id)) id++;
    const ch = this.#newChannel(id, "offered", o);
    this.#byId.set(id, ch);
    if (this.#offersRequested) this.#sendOffer(ch); // hot add
    return ch;
  }

  #newChannel(id: number, state: ChannelState, o: ServerOfferOptions): ServerChannel {
    return new ServerChannel(id, state, this.#o.signals, o, ++this.#sequence, (c, e) => {
      this.counters.ringViolations++;
      this.#report(e);
      this.revoke(c);
    });
  }

  /**
   * Revokes (rescinds) a channel: pending GPADL creations fail, pending
   * teardowns are answered, RESCIND is sent, and the ID stays reserved until
   * RELID_RELEASED (vmbus.md §4). A revoke for an instance that no longer holds
   * its ID (a late revoke racing a re-offer) is ignored and counted.
   */
  revoke(channel: ServerChannel): void {
    const holder = this.#byId.get(channel.channelId);
    if (channel.state === "reoffered" && holder?.reoffer === channel) {
      holder.reoffer = undefined; // withdrawn before it was ever sent
      channel.setState("released");
      return;
    }
    if (
      holder !== channel ||
      holder.sequence !== channel.sequence ||
      channel.state === "revoked" ||
      channel.state === "released"
    ) {
      this.counters.staleRevokes++;
      return;
    }
    for (const a of channel.assembling.values()) {
      this.#post({
        type: MessageType.GPADL_CREATED,
        channelId: channel.channelId,
        gpadlId: a.gpadlId,
        status: Status.UNSUCCESSFUL,
      });
    }
    channel.assembling.clear();
    for (const g of channel.deferredTeardown) this.#post({ type: MessageType.GPADL_TORNDOWN, gpadlId: g });
    channel.deferredTeardown.clear();
    channel.setState("revoked");
    if (this.#offersRequested) {
      this.#post({ type: MessageType.RESCIND_CHANNEL_OFFER, channelId: channel.channelId });
    } else {
      this.#release(channel); // the guest never saw it
    }
  }

  #report(e: VmbusError): void {
    for (const l of this.#errorListeners) l(e);
  }

  #violation(detail: string, context: Record<string, unknown>): void {
    this.counters.violations++;
    this.#report(new VmbusError(VmbusErrorCode.PROTOCOL_VIOLATION, context, detail));
  }

  #post(m: ControlMessageInput): void {
    this.counters.messagesOut++;
    this.#poster.post(encodeMessage(m));
  }

  #sendOffer(ch: ServerChannel): void {
    this.#post({
      type: MessageType.OFFER_CHANNEL,
      interfaceId: ch.interfaceId,
      instanceId: ch.instanceId,
      channelId: ch.channelId,
      subchannelIndex: ch.subchannelIndex,
      flags: ch.options.flags ?? 0,
      userDefined: ch.options.userDefined,
      connectionId: ch.channelId,
      isDedicated: true,
    });
  }

  #onMessage(raw: Uint8Array): void {
    this.counters.messagesIn++;
    const m = decodeMessage(raw);
    if (m instanceof VmbusError) {
      this.counters.violations++;
      this.#report(m);
      return;
    }
    if (this.#version === 0 && m.type !== MessageType.INITIATE_CONTACT) {
      this.#violation("message before INITIATE_CONTACT", { type: m.type });
      return;
    }
    this.#dispatch(m);
  }

  #dispatch(m: ControlMessage): void {
    switch (m.type) {
      case MessageType.INITIATE_CONTACT: {
        const ok = (this.#o.versions ?? SERVER_VERSIONS).includes(m.version);
        if (ok) this.#version = m.version;
        this.#post({
          type: MessageType.VERSION_RESPONSE,
          versionSupported: ok,
          connectionState: 0,
          messageConnectionId: this.#o.messageConnectionId ?? 1,
        });
        return;
      }
      case MessageType.REQUEST_OFFERS:
        this.#offersRequested = true;
        for (const ch of this.#byId.values()) if (ch.state !== "revoked") this.#sendOffer(ch);
        this.#post({ type: MessageType.ALL_OFFERS_DELIVERED });
        return;
      case MessageType.GPADL_HEADER: {
        const ch = this.#byId.get(m.channelId);
        if (
          !ch ||
          ch.state === "revoked" ||
          ch.gpadls.has(m.gpadlId) ||
          ch.assembling.has(m.gpadlId) ||
          this.#gpadlInUse(m.gpadlId)
        ) {
          // Unknown channel, duplicate ID, or revoked (the host still answers GPADLs in flight: OV-PR#1100).
          this.#post({
            type: MessageType.GPADL_CREATED,
            channelId: m.channelId,
            gpadlId: m.gpadlId,
            status: Status.UNSUCCESSFUL,
          });
          return;
        }
        const a = new GpadlAssembly(m);
        ch.assembling.set(m.gpadlId, a);
        if (a.complete) this.#gpadlComplete(ch, a);
        return;
      }
      case MessageType.GPADL_BODY: {
        for (const ch of this.#byId.values()) {
          const a = ch.assembling.get(m.gpadlId);
          if (!a) continue;
          const e = a.add(m);
          if (e) {
            ch.assembling.delete(m.gpadlId);
            this.counters.violations++;
            this.#report(e);
            this.#post({
              type: MessageType.GPADL_CREATED,
              channelId: ch.channelId,
              gpadlId: m.gpadlId,
              status: Status.UNSUCCESSFUL,
            });
          } else if (a.complete) {
            this.#gpadlComplete(ch, a);
          }
          return;
        }
        this.#violation("GPADL_BODY for no pending GPADL", { gpadlId: m.gpadlId });
        return;
      }
      case MessageType.GPADL_TEARDOWN: {
        const ch = this.#byId.get(m.channelId);
        if (!ch || !ch.gpadls.has(m.gpadlId)) {
          this.#violation("GPADL_TEARDOWN of an unknown GPADL", { channelId: m.channelId, gpadlId: m.gpadlId });
          return;
        }
        if (ch.openGpadlId === m.gpadlId && (ch.state === "open" || ch.state === "opening")) {
          ch.deferredTeardown.add(m.gpadlId); // answered when the channel closes
          return;
        }
        ch.gpadls.delete(m.gpadlId);
        this.#post({ type: MessageType.GPADL_TORNDOWN, gpadlId: m.gpadlId });
        return;
      }
      case MessageType.OPEN_CHANNEL:
        this.#open(m);
        return;
      case MessageType.CLOSE_CHANNEL: {
        const ch = this.#byId.get(m.channelId);
        if (!ch || ch.state !== "open") {
          // Closing a closed channel is a no-op (a guest whose open timed out closes to be sure).
          if (ch?.state !== "revoked" && ch?.state !== "offered")
            this.#violation("CLOSE_CHANNEL of a channel that is not open", { channelId: m.channelId });
          return;
        }
        this.#close(ch);
        return;
      }
      case MessageType.RELID_RELEASED: {
        const ch = this.#byId.get(m.channelId);
        if (!ch || ch.state !== "revoked") {
          this.#violation("RELID_RELEASED for a channel that is not revoked", { channelId: m.channelId });
          return;
        }
        this.#release(ch);
        return;
      }
      case MessageType.UNLOAD:
        // vmbus.md §2.2a step 9: tear the connection down; offers stay with the host.
        for (const ch of [...this.#byId.values()]) {
          if (ch.state === "open" || ch.state === "opening") this.#close(ch);
          ch.gpadls.clear();
          ch.assembling.clear();
          ch.deferredTeardown.clear();
          if (ch.state === "revoked") this.#release(ch);
        }
        this.#offersRequested = false;
        this.#version = 0;
        this.#post({ type: MessageType.UNLOAD_COMPLETE });
        return;
      default:
        this.#violation("host-to-guest message received by the host", { type: m.type });
    }
  }

  #gpadlInUse(gpadlId: number): boolean {
    for (const ch of this.#byId.values()) if (ch.gpadls.has(gpadlId) || ch.assembling.has(gpadlId)) return true;
    return false;
  }

  #gpadlComplete(ch: ServerChannel, a: GpadlAssembly): void {
    ch.assembling.delete(a.gpadlId);
    const ranges = a.ranges();
    let status: number = Status.SUCCESS;
    if (ranges instanceof VmbusError) {
      this.counters.violations++;
      this.#report(ranges);
      status = Status.UNSUCCESSFUL;
    } else {
      ch.gpadls.set(a.gpadlId, ranges);
    }
    this.#post({ type: MessageType.GPADL_CREATED, channelId: ch.channelId, gpadlId: a.gpadlId, status });
  }

  #open(m: OpenChannel): void {
    const ch = this.#byId.get(m.channelId);
    if (!ch || ch.state === "revoked") return; // OpenVMM: a revoked channel's open is not answered
    const fail = (detail: string) => {
      this.#violation(detail, { channelId: m.channelId, gpadlId: m.ringGpadlId });
      this.#post({
        type: MessageType.OPEN_CHANNEL_RESULT,
        channelId: m.channelId,
        openId: m.openId,
        status: Status.UNSUCCESSFUL,
      });
    };
    if (ch.state !== "offered") {
      fail("OPEN_CHANNEL while not closed");
      return;
    }
    const ranges = ch.gpadls.get(m.ringGpadlId);
    if (!ranges) {
      fail("OPEN_CHANNEL with an unknown ring GPADL");
      return;
    }
    // OpenVMM gpadl_ring.rs: one page-aligned range, split at the downstream page offset.
    if (ranges.length !== 1 || ranges[0].byteOffset !== 0 || ranges[0].byteCount % PAGE_SIZE !== 0) {
      fail("ring GPADL must be one page-aligned range");
      return;
    }
    const total = ranges[0].byteCount;
    const split = m.downstreamPageOffset * PAGE_SIZE;
    if (!ringGeometryOk(split) || !ringGeometryOk(total - split)) {
      fail("ring sizes are not control page + power of two");
      return;
    }
    const mem = this.#o.mapGpadl(ranges);
    if (!mem || mem.length !== total) {
      fail("ring GPADL pages not granted");
      return;
    }
    ch.setState("opening");
    // Guest->host ring at page 0 is the server's incoming ring; host->guest at the offset is its outgoing ring (§2.4).
    const incoming = mem.subarray(0, split);
    const outgoing = mem.subarray(split, total);
    ch.attachRings(new RingWriter(outgoing), new RingReader(incoming));
    ch.ringMemory = { outgoing, incoming };
    ch.openGpadlId = m.ringGpadlId;
    ch.userData = m.userData;
    const accepted = ch.options.accept ? ch.options.accept(ch, m.userData) : true;
    if (!accepted) {
      ch.setState("offered");
      ch.openGpadlId = -1;
      this.#post({
        type: MessageType.OPEN_CHANNEL_RESULT,
        channelId: m.channelId,
        openId: m.openId,
        status: Status.UNSUCCESSFUL,
      });
      return;
    }
    if (this.#o.mirror) {
      this.#o.mirror.attach(ch.channelId, outgoing, incoming);
      ch.mirror = this.#o.mirror;
    }
    this.#post({
      type: MessageType.OPEN_CHANNEL_RESULT,
      channelId: m.channelId,
      openId: m.openId,
      status: Status.SUCCESS,
    });
    ch.setState("open");
  }

  #close(ch: ServerChannel): void {
    ch.setState("closing");
    ch.openGpadlId = -1;
    for (const g of ch.deferredTeardown) {
      ch.gpadls.delete(g);
      this.#post({ type: MessageType.GPADL_TORNDOWN, gpadlId: g });
    }
    ch.deferredTeardown.clear();
    ch.setState("offered");
  }

  #release(ch: ServerChannel): void {
    ch.gpadls.clear(); // accepted GPADLs are dropped without teardown once the guest releases (§4)
    ch.assembling.clear();
    this.#byId.delete(ch.channelId);
    ch.setState("released");
    const next = ch.reoffer;
    ch.reoffer = undefined;
    if (next) {
      this.#byId.set(next.channelId, next);
      next.setState("offered");
      if (this.#offersRequested) this.#sendOffer(next);
    }
  }
}

function offerKey(i: string, n: string, s: number): string {
  return `${i.toLowerCase()}/${n.toLowerCase()}/${s}`;
}

function ringGeometryOk(bytes: number): boolean {
  const data = bytes - RING_CONTROL_SIZE;
  return data >= 4096 && (data & (data - 1)) === 0;
}
