// VMBus control messages (vmbus.md §2.2, §2.3): an 8-byte header {msgtype u32,
// padding u32} then a fixed body, little-endian, at most 240 bytes (the SynIC
// message payload, §2.1). Encoders throw only for caller bugs (bad GUID
// strings, oversize fields); decoders validate and return a VmbusError value.
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { decodeGpaRanges, encodeGpaRanges, type GpaRange } from "./gpa.js";

/** Maximum control message size: the 240-byte HV_MESSAGE payload (TLFS hv_message). */
export const MAX_MESSAGE_SIZE = 240;
export const MESSAGE_HEADER_SIZE = 8;

/** Message types (Linux hyperv.h enum vmbus_channel_message_type; OpenVMM protocol.rs MessageType). */
export const MessageType = {
  OFFER_CHANNEL: 1,
  RESCIND_CHANNEL_OFFER: 2,
  REQUEST_OFFERS: 3,
  ALL_OFFERS_DELIVERED: 4,
  OPEN_CHANNEL: 5,
  OPEN_CHANNEL_RESULT: 6,
  CLOSE_CHANNEL: 7,
  GPADL_HEADER: 8,
  GPADL_BODY: 9,
  GPADL_CREATED: 10,
  GPADL_TEARDOWN: 11,
  GPADL_TORNDOWN: 12,
  RELID_RELEASED: 13,
  INITIATE_CONTACT: 14,
  VERSION_RESPONSE: 15,
  UNLOAD: 16,
  UNLOAD_COMPLETE: 17,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Protocol versions, major << 16 | minor (OpenVMM vmbus_core Version). */
export const VmbusVersion = {
  WIN7: 0x0001_0001,
  WIN8: 0x0002_0004,
  WIN8_1: 0x0003_0000,
  WIN10: 0x0004_0000,
  WIN10_RS3: 0x0004_0001,
  V5_0: 0x0005_0000,
  V5_1: 0x0005_0001,
  V5_2: 0x0005_0002,
  IRON: 0x0005_0003,
  COPPER: 0x0006_0000,
} as const;

/** NTSTATUS values used in status fields. */
export const Status = { SUCCESS: 0, UNSUCCESSFUL: 0xc000_0001 } as const;

/** Body sizes after the header (vmbus.md §2.3). */
const BODY = {
  [MessageType.OFFER_CHANNEL]: 188,
  [MessageType.RESCIND_CHANNEL_OFFER]: 4,
  [MessageType.REQUEST_OFFERS]: 0,
  [MessageType.ALL_OFFERS_DELIVERED]: 0,
  [MessageType.OPEN_CHANNEL]: 140,
  [MessageType.OPEN_CHANNEL_RESULT]: 12,
  [MessageType.CLOSE_CHANNEL]: 4,
  [MessageType.GPADL_HEADER]: 12,
  [MessageType.GPADL_BODY]: 8,
  [MessageType.GPADL_CREATED]: 12,
  [MessageType.GPADL_TEARDOWN]: 8,
  [MessageType.GPADL_TORNDOWN]: 4,
  [MessageType.RELID_RELEASED]: 4,
  [MessageType.INITIATE_CONTACT]: 32,
  [MessageType.VERSION_RESPONSE]: 8,
  [MessageType.UNLOAD]: 0,
  [MessageType.UNLOAD_COMPLETE]: 0,
} as const satisfies Record<MessageType, number>;

/** Size of the user-defined / user-data areas of OFFER_CHANNEL and OPEN_CHANNEL. */
export const USER_DATA_SIZE = 120;
/** GPADL_HEADER carries at most 27 u64 of ranges, GPADL_BODY 28 PFNs (vmbus.md §2.4). */
export const GPADL_HEADER_MAX_DATA = 27 * 8;
export const GPADL_BODY_MAX_PFNS = 28;

export interface OfferChannel {
  type: typeof MessageType.OFFER_CHANNEL;
  interfaceId: string;
  instanceId: string;
  flags: number;
  mmioMegabytes: number;
  userDefined: Uint8Array;
  subchannelIndex: number;
  mmioMegabytesOptional: number;
  channelId: number;
  monitorId: number;
  monitorAllocated: boolean;
  isDedicated: boolean;
  connectionId: number;
}
export interface RescindChannelOffer {
  type: typeof MessageType.RESCIND_CHANNEL_OFFER;
  channelId: number;
}
export interface RequestOffers {
  type: typeof MessageType.REQUEST_OFFERS;
}
export interface AllOffersDelivered {
  type: typeof MessageType.ALL_OFFERS_DELIVERED;
}
export interface OpenChannel {
  type: typeof MessageType.OPEN_CHANNEL;
  channelId: number;
  openId: number;
  ringGpadlId: number;
  targetVp: number;
  /** Page offset of the host->guest ring inside the ring GPADL. */
  downstreamPageOffset: number;
  userData: Uint8Array;
}
export interface OpenChannelResult {
  type: typeof MessageType.OPEN_CHANNEL_RESULT;
  channelId: number;
  openId: number;
  status: number;
}
export interface CloseChannel {
  type: typeof MessageType.CLOSE_CHANNEL;
  channelId: number;
}
export interface GpadlHeader {
  type: typeof MessageType.GPADL_HEADER;
  channelId: number;
  gpadlId: number;
  /** Total bytes of the encoded ranges across header and bodies. */
  rangeBufLen: number;
  rangeCount: number;
  /** The first part of the encoded ranges (a multiple of 8 bytes). */
  data: Uint8Array;
}
export interface GpadlBody {
  type: typeof MessageType.GPADL_BODY;
  msgNumber: number;
  gpadlId: number;
  /** Further encoded bytes (raw u64 PFNs). */
  data: Uint8Array;
}
export interface GpadlCreated {
  type: typeof MessageType.GPADL_CREATED;
  channelId: number;
  gpadlId: number;
  status: number;
}
export interface GpadlTeardown {
  type: typeof MessageType.GPADL_TEARDOWN;
  channelId: number;
  gpadlId: number;
}
export interface GpadlTorndown {
  type: typeof MessageType.GPADL_TORNDOWN;
  gpadlId: number;
}
export interface RelidReleased {
  type: typeof MessageType.RELID_RELEASED;
  channelId: number;
}
export interface InitiateContact {
  type: typeof MessageType.INITIATE_CONTACT;
  version: number;
  targetVp: number;
  /** >= 5.0: SINT and VTL for host->guest messages (the union's other arm is the interrupt page GPA). */
  sint: number;
  vtl: number;
  /** Copper feature flags (OpenVMM TargetInfo.feature_flags). */
  featureFlags: number;
  monitorPage1: bigint;
  monitorPage2: bigint;
}
export interface VersionResponse {
  type: typeof MessageType.VERSION_RESPONSE;
  versionSupported: boolean;
  connectionState: number;
  messageConnectionId: number;
  /** Copper VersionResponse2 supported_features; 0 when absent. */
  supportedFeatures: number;
}
export interface Unload {
  type: typeof MessageType.UNLOAD;
}
export interface UnloadComplete {
  type: typeof MessageType.UNLOAD_COMPLETE;
}

export type ControlMessage =
  | OfferChannel
  | RescindChannelOffer
  | RequestOffers
  | AllOffersDelivered
  | OpenChannel
  | OpenChannelResult
  | CloseChannel
  | GpadlHeader
  | GpadlBody
  | GpadlCreated
  | GpadlTeardown
  | GpadlTorndown
  | RelidReleased
  | InitiateContact
  | VersionResponse
  | Unload
  | UnloadComplete;

/** Input of encodeMessage: optional fields default to 0 / empty. */
export type ControlMessageInput =
  | (Pick<OfferChannel, "type" | "interfaceId" | "instanceId" | "channelId"> & Partial<OfferChannel>)
  | (Pick<OpenChannel, "type" | "channelId" | "ringGpadlId" | "downstreamPageOffset"> & Partial<OpenChannel>)
  | (Pick<InitiateContact, "type" | "version"> & Partial<InitiateContact>)
  | (Pick<VersionResponse, "type" | "versionSupported"> & Partial<VersionResponse>)
  | Exclude<ControlMessage, OfferChannel | OpenChannel | InitiateContact | VersionResponse>;

// --- GUIDs (Windows layout: first three fields little-endian) ---

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Encodes a GUID string into 16 bytes at `out[offset]` (mixed-endian as in Windows GUID / Linux guid_t). */
export function writeGuid(out: Uint8Array, offset: number, guid: string): void {
  if (!GUID_RE.test(guid)) throw new VmbusError(VmbusErrorCode.MESSAGE_INVALID, { guid }, "not a GUID string");
  const hex = guid.replace(/-/g, "");
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) out[offset + i] = b[order[i]];
}

/** Decodes 16 bytes into a lower-case GUID string. */
export function readGuid(bytes: Uint8Array, offset: number): string {
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += bytes[offset + order[i]].toString(16).padStart(2, "0");
  }
  return s;
}

function u8field(v: number | undefined, max: number, name: string): number {
  const x = v ?? 0;
  if (!Number.isInteger(x) || x < 0 || x > max)
    throw new VmbusError(VmbusErrorCode.MESSAGE_INVALID, { [name]: x }, "field out of range");
  return x;
}

/** Encodes one control message (header included). Throws VmbusError for caller bugs. */
export function encodeMessage(m: ControlMessageInput): Uint8Array {
  const t = m.type;
  let extra = 0;
  if (t === MessageType.GPADL_HEADER || t === MessageType.GPADL_BODY) extra = m.data.length;
  if (t === MessageType.VERSION_RESPONSE && m.supportedFeatures) extra = 4;
  const out = new Uint8Array(MESSAGE_HEADER_SIZE + BODY[t] + extra);
  if (out.length > MAX_MESSAGE_SIZE) {
    throw new VmbusError(
      VmbusErrorCode.MESSAGE_TOO_LONG,
      { type: t, length: out.length },
      "control message over 240 bytes",
    );
  }
  const dv = new DataView(out.buffer);
  dv.setUint32(0, t, true);
  const B = MESSAGE_HEADER_SIZE;
  const u32 = (off: number, v: number | undefined, name: string) =>
    dv.setUint32(B + off, u8field(v, 0xffff_ffff, name), true);
  const u16 = (off: number, v: number | undefined, name: string) =>
    dv.setUint16(B + off, u8field(v, 0xffff, name), true);
  const bytes = (off: number, v: Uint8Array | undefined, max: number) => {
    if (!v) return;
    if (v.length > max)
      throw new VmbusError(VmbusErrorCode.MESSAGE_INVALID, { length: v.length, max }, "user data too long");
    out.set(v, B + off);
  };
  switch (m.type) {
    case MessageType.OFFER_CHANNEL: // Linux hyperv.h struct vmbus_channel_offer_channel
      writeGuid(out, B + 0, m.interfaceId);
      writeGuid(out, B + 16, m.instanceId);
      u16(48, m.flags, "flags");
      u16(50, m.mmioMegabytes, "mmioMegabytes");
      bytes(52, m.userDefined, USER_DATA_SIZE);
      u16(172, m.subchannelIndex, "subchannelIndex");
      u16(174, m.mmioMegabytesOptional, "mmioMegabytesOptional");
      u32(176, m.channelId, "channelId");
      out[B + 180] = u8field(m.monitorId, 0xff, "monitorId");
      out[B + 181] = m.monitorAllocated ? 1 : 0;
      u16(182, m.isDedicated === false ? 0 : 1, "isDedicated");
      u32(184, m.connectionId ?? m.channelId, "connectionId");
      break;
    case MessageType.RESCIND_CHANNEL_OFFER:
    case MessageType.CLOSE_CHANNEL:
    case MessageType.RELID_RELEASED:
      u32(0, m.channelId, "channelId");
      break;
    case MessageType.OPEN_CHANNEL: // struct vmbus_channel_open_channel
      u32(0, m.channelId, "channelId");
      u32(4, m.openId ?? m.channelId, "openId"); // Linux uses open_id = channel ID
      u32(8, m.ringGpadlId, "ringGpadlId");
      u32(12, m.targetVp, "targetVp");
      u32(16, m.downstreamPageOffset, "downstreamPageOffset");
      bytes(20, m.userData, USER_DATA_SIZE);
      break;
    case MessageType.OPEN_CHANNEL_RESULT:
      u32(0, m.channelId, "channelId");
      u32(4, m.openId, "openId");
      u32(8, m.status, "status");
      break;
    case MessageType.GPADL_HEADER: // struct vmbus_channel_gpadl_header
      u32(0, m.channelId, "channelId");
      u32(4, m.gpadlId, "gpadlId");
      u16(8, m.rangeBufLen, "rangeBufLen");
      u16(10, m.rangeCount, "rangeCount");
      out.set(m.data, B + 12);
      break;
    case MessageType.GPADL_BODY: // struct vmbus_channel_gpadl_body
      u32(0, m.msgNumber, "msgNumber");
      u32(4, m.gpadlId, "gpadlId");
      out.set(m.data, B + 8);
      break;
    case MessageType.GPADL_CREATED:
      u32(0, m.channelId, "channelId");
      u32(4, m.gpadlId, "gpadlId");
      u32(8, m.status, "status");
      break;
    case MessageType.GPADL_TEARDOWN:
      u32(0, m.channelId, "channelId");
      u32(4, m.gpadlId, "gpadlId");
      break;
    case MessageType.GPADL_TORNDOWN:
      u32(0, m.gpadlId, "gpadlId");
      break;
    case MessageType.INITIATE_CONTACT: // struct vmbus_channel_initiate_contact; OpenVMM TargetInfo
      u32(0, m.version, "version");
      u32(4, m.targetVp, "targetVp");
      out[B + 8] = u8field(m.sint ?? 2, 0xff, "sint"); // VMBUS_MESSAGE_SINT
      out[B + 9] = u8field(m.vtl, 0xff, "vtl");
      u32(12, m.featureFlags, "featureFlags");
      dv.setBigUint64(B + 16, m.monitorPage1 ?? 0n, true);
      dv.setBigUint64(B + 24, m.monitorPage2 ?? 0n, true);
      break;
    case MessageType.VERSION_RESPONSE: // struct vmbus_channel_version_response (+ Copper supported_features)
      out[B + 0] = m.versionSupported ? 1 : 0;
      out[B + 1] = u8field(m.connectionState, 0xff, "connectionState");
      u32(4, m.messageConnectionId, "messageConnectionId");
      if (extra) u32(8, m.supportedFeatures, "supportedFeatures");
      break;
    case MessageType.REQUEST_OFFERS:
    case MessageType.ALL_OFFERS_DELIVERED:
    case MessageType.UNLOAD:
    case MessageType.UNLOAD_COMPLETE:
      break;
  }
  return out;
}

function invalid(detail: string, context: Record<string, unknown>): VmbusError {
  return new VmbusError(VmbusErrorCode.MESSAGE_INVALID, context, detail);
}

/**
 * Decodes and validates one control message. Short, oversize and unknown
 * messages come back as a VmbusError (never thrown). Longer-than-needed bodies
 * are accepted (later protocol versions append fields).
 */
export function decodeMessage(msg: Uint8Array): ControlMessage | VmbusError {
  if (msg.length < MESSAGE_HEADER_SIZE) {
    return new VmbusError(VmbusErrorCode.MESSAGE_TOO_SHORT, { length: msg.length }, "shorter than the header");
  }
  if (msg.length > MAX_MESSAGE_SIZE) {
    return new VmbusError(VmbusErrorCode.MESSAGE_TOO_LONG, { length: msg.length });
  }
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const type = dv.getUint32(0, true);
  if (!Object.hasOwn(BODY, type)) return new VmbusError(VmbusErrorCode.MESSAGE_UNKNOWN, { type });
  const need = MESSAGE_HEADER_SIZE + BODY[type as MessageType];
  if (msg.length < need) return new VmbusError(VmbusErrorCode.MESSAGE_TOO_SHORT, { type, length: msg.length, need });
  const B = MESSAGE_HEADER_SIZE;
  const u32 = (off: number) => dv.getUint32(B + off, true);
  const u16 = (off: number) => dv.getUint16(B + off, true);
  switch (type) {
    case MessageType.OFFER_CHANNEL:
      return {
        type,
        interfaceId: readGuid(msg, B),
        instanceId: readGuid(msg, B + 16),
        flags: u16(48),
        mmioMegabytes: u16(50),
        userDefined: msg.slice(B + 52, B + 52 + USER_DATA_SIZE),
        subchannelIndex: u16(172),
        mmioMegabytesOptional: u16(174),
        channelId: u32(176),
        monitorId: msg[B + 180],
        monitorAllocated: msg[B + 181] !== 0,
        isDedicated: u16(182) !== 0,
        connectionId: u32(184),
      };
    case MessageType.RESCIND_CHANNEL_OFFER:
    case MessageType.CLOSE_CHANNEL:
    case MessageType.RELID_RELEASED:
      return { type, channelId: u32(0) };
    case MessageType.REQUEST_OFFERS:
    case MessageType.ALL_OFFERS_DELIVERED:
    case MessageType.UNLOAD:
    case MessageType.UNLOAD_COMPLETE:
      return { type };
    case MessageType.OPEN_CHANNEL:
      return {
        type,
        channelId: u32(0),
        openId: u32(4),
        ringGpadlId: u32(8),
        targetVp: u32(12),
        downstreamPageOffset: u32(16),
        userData: msg.slice(B + 20, B + 20 + USER_DATA_SIZE),
      };
    case MessageType.OPEN_CHANNEL_RESULT:
      return { type, channelId: u32(0), openId: u32(4), status: u32(8) };
    case MessageType.GPADL_HEADER: {
      const rangeBufLen = u16(8);
      const rangeCount = u16(10);
      const data = msg.slice(B + 12);
      // vmbus.md §2.4: ranges are u64-granular; the header carries min(total, 27 u64).
      if (rangeCount === 0 || rangeBufLen % 8 !== 0 || rangeBufLen < 16 * rangeCount) {
        return invalid("GPADL header range fields inconsistent", { rangeBufLen, rangeCount });
      }
      if (data.length % 8 !== 0 || data.length > rangeBufLen) {
        return invalid("GPADL header data length", { rangeBufLen, data: data.length });
      }
      return { type, channelId: u32(0), gpadlId: u32(4), rangeBufLen, rangeCount, data };
    }
    case MessageType.GPADL_BODY: {
      const data = msg.slice(B + 8);
      if (data.length % 8 !== 0 || data.length === 0) return invalid("GPADL body data length", { data: data.length });
      return { type, msgNumber: u32(0), gpadlId: u32(4), data };
    }
    case MessageType.GPADL_CREATED:
      return { type, channelId: u32(0), gpadlId: u32(4), status: u32(8) };
    case MessageType.GPADL_TEARDOWN:
      return { type, channelId: u32(0), gpadlId: u32(4) };
    case MessageType.GPADL_TORNDOWN:
      return { type, gpadlId: u32(0) };
    case MessageType.INITIATE_CONTACT:
      return {
        type,
        version: u32(0),
        targetVp: u32(4),
        sint: msg[B + 8],
        vtl: msg[B + 9],
        featureFlags: u32(12),
        monitorPage1: dv.getBigUint64(B + 16, true),
        monitorPage2: dv.getBigUint64(B + 24, true),
      };
    case MessageType.VERSION_RESPONSE:
      return {
        type,
        versionSupported: msg[B] !== 0,
        connectionState: msg[B + 1],
        messageConnectionId: u32(4),
        supportedFeatures: msg.length >= B + 12 ? u32(8) : 0,
      };
  }
  return new VmbusError(VmbusErrorCode.MESSAGE_UNKNOWN, { type });
}

/**
 * Splits a GPADL into GPADL_HEADER + GPADL_BODY messages (Linux channel.c
 * create_gpadl_header): the header carries up to 27 u64 of encoded ranges,
 * each body up to 28.
 */
export function encodeGpadlMessages(channelId: number, gpadlId: number, ranges: readonly GpaRange[]): Uint8Array[] {
  if (ranges.length === 0 || ranges.length > 0xffff) {
    throw new VmbusError(VmbusErrorCode.MESSAGE_INVALID, { ranges: ranges.length }, "GPADL needs 1..65535 ranges");
  }
  const all = encodeGpaRanges(ranges);
  if (all.length > 0xffff)
    throw new VmbusError(VmbusErrorCode.MESSAGE_INVALID, { bytes: all.length }, "GPADL too large");
  const first = Math.min(all.length, GPADL_HEADER_MAX_DATA);
  const out = [
    encodeMessage({
      type: MessageType.GPADL_HEADER,
      channelId,
      gpadlId,
      rangeBufLen: all.length,
      rangeCount: ranges.length,
      data: all.subarray(0, first),
    }),
  ];
  let msgNumber = 1;
  for (let pos = first; pos < all.length; pos += GPADL_BODY_MAX_PFNS * 8) {
    const data = all.subarray(pos, Math.min(all.length, pos + GPADL_BODY_MAX_PFNS * 8));
    out.push(encodeMessage({ type: MessageType.GPADL_BODY, msgNumber: msgNumber++, gpadlId, data }));
  }
  return out;
}

/** Reassembles a GPADL from its header and bodies; `add` returns the ranges when complete. */
export class GpadlAssembly {
  readonly channelId: number;
  readonly gpadlId: number;
  readonly #buf: Uint8Array;
  readonly #count: number;
  #filled: number;

  constructor(h: GpadlHeader) {
    this.channelId = h.channelId;
    this.gpadlId = h.gpadlId;
    this.#buf = new Uint8Array(h.rangeBufLen);
    this.#buf.set(h.data);
    this.#filled = h.data.length;
    this.#count = h.rangeCount;
  }

  get complete(): boolean {
    return this.#filled === this.#buf.length;
  }

  /** Adds a body; returns an error if it overflows the announced length. */
  add(b: GpadlBody): VmbusError | undefined {
    if (this.#filled + b.data.length > this.#buf.length) {
      return invalid("GPADL body beyond range_buflen", { gpadlId: this.gpadlId });
    }
    this.#buf.set(b.data, this.#filled);
    this.#filled += b.data.length;
    return undefined;
  }

  /** Decodes the ranges once complete: every byte must belong to a range. */
  ranges(): GpaRange[] | VmbusError {
    const r = decodeGpaRanges(this.#buf, 0, this.#count);
    if (r instanceof VmbusError) return r;
    if (r.end !== this.#buf.length) return invalid("GPADL trailing bytes", { gpadlId: this.gpadlId, end: r.end });
    return r.ranges;
  }
}
