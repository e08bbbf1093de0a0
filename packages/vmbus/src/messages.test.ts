import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VmbusError, VmbusErrorCode } from "./errors.js";
import {
  type ControlMessage,
  decodeMessage,
  encodeGpadlMessages,
  encodeMessage,
  GpadlAssembly,
  type GpadlBody,
  type GpadlHeader,
  MessageType,
  readGuid,
  writeGuid,
} from "./messages.js";

const IF = "f8615163-df3e-46c5-913f-f2d2f965ed0e"; // Linux HV_NIC_GUID
const INST = "00000000-0000-4000-8000-000000000001";

describe("control messages (vmbus.md §2.2, §2.3)", () => {
  it("GUIDs use the Windows mixed-endian layout", () => {
    const b = new Uint8Array(16);
    writeGuid(b, 0, IF);
    expect(Array.from(b.subarray(0, 8))).toEqual([0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46]);
    expect(Array.from(b.subarray(8))).toEqual([0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e]);
    expect(readGuid(b, 0)).toBe(IF);
    expect(() => writeGuid(b, 0, "nope")).toThrow(VmbusError);
  });

  it("OFFER_CHANNEL is 196 bytes with the fields at the reference offsets", () => {
    const user = Uint8Array.from({ length: 120 }, (_, i) => i);
    const m = encodeMessage({
      type: MessageType.OFFER_CHANNEL,
      interfaceId: IF,
      instanceId: INST,
      channelId: 7,
      subchannelIndex: 3,
      flags: 0x10,
      userDefined: user,
      connectionId: 0x2007,
      monitorId: 9,
      monitorAllocated: true,
    });
    expect(m.length).toBe(196);
    const dv = new DataView(m.buffer);
    expect(dv.getUint32(0, true)).toBe(1);
    expect(dv.getUint16(8 + 48, true)).toBe(0x10);
    expect(m[8 + 52 + 119]).toBe(119);
    expect(dv.getUint16(8 + 172, true)).toBe(3);
    expect(dv.getUint32(8 + 176, true)).toBe(7);
    expect(m[8 + 180]).toBe(9);
    expect(m[8 + 181]).toBe(1);
    expect(dv.getUint16(8 + 182, true)).toBe(1);
    expect(dv.getUint32(8 + 184, true)).toBe(0x2007);
    const d = decodeMessage(m) as ControlMessage;
    expect(d).toMatchObject({
      type: 1,
      interfaceId: IF,
      instanceId: INST,
      channelId: 7,
      subchannelIndex: 3,
      monitorId: 9,
    });
  });

  it("fixed sizes: OPEN 148, OPEN_RESULT 20, GPADL_CREATED 20, TEARDOWN 16, INITIATE_CONTACT 40, VERSION_RESPONSE 16", () => {
    const open = encodeMessage({
      type: MessageType.OPEN_CHANNEL,
      channelId: 5,
      ringGpadlId: 0xe1e10,
      downstreamPageOffset: 17,
      targetVp: 2,
    });
    expect(open.length).toBe(148);
    const odv = new DataView(open.buffer);
    expect(odv.getUint32(8 + 4, true)).toBe(5); // open_id defaults to the channel ID (Linux)
    expect(odv.getUint32(8 + 8, true)).toBe(0xe1e10);
    expect(odv.getUint32(8 + 12, true)).toBe(2);
    expect(odv.getUint32(8 + 16, true)).toBe(17);
    expect(encodeMessage({ type: MessageType.OPEN_CHANNEL_RESULT, channelId: 1, openId: 1, status: 0 }).length).toBe(
      20,
    );
    expect(encodeMessage({ type: MessageType.GPADL_CREATED, channelId: 1, gpadlId: 2, status: 0 }).length).toBe(20);
    expect(encodeMessage({ type: MessageType.GPADL_TEARDOWN, channelId: 1, gpadlId: 2 }).length).toBe(16);
    const ic = encodeMessage({ type: MessageType.INITIATE_CONTACT, version: 0x50000, monitorPage2: 0x1000n });
    expect(ic.length).toBe(40);
    expect(ic[8 + 8]).toBe(2); // VMBUS_MESSAGE_SINT
    expect(new DataView(ic.buffer).getBigUint64(8 + 24, true)).toBe(0x1000n);
    expect(encodeMessage({ type: MessageType.VERSION_RESPONSE, versionSupported: true }).length).toBe(16);
    expect(encodeMessage({ type: MessageType.REQUEST_OFFERS }).length).toBe(8);
  });

  it("every message type round-trips", () => {
    const samples: ControlMessage[] = [
      { type: MessageType.RESCIND_CHANNEL_OFFER, channelId: 3 },
      { type: MessageType.REQUEST_OFFERS },
      { type: MessageType.ALL_OFFERS_DELIVERED },
      { type: MessageType.OPEN_CHANNEL_RESULT, channelId: 3, openId: 3, status: 0xc0000001 },
      { type: MessageType.CLOSE_CHANNEL, channelId: 3 },
      { type: MessageType.GPADL_CREATED, channelId: 3, gpadlId: 9, status: 0 },
      { type: MessageType.GPADL_TEARDOWN, channelId: 3, gpadlId: 9 },
      { type: MessageType.GPADL_TORNDOWN, gpadlId: 9 },
      { type: MessageType.RELID_RELEASED, channelId: 3 },
      {
        type: MessageType.VERSION_RESPONSE,
        versionSupported: true,
        connectionState: 0,
        messageConnectionId: 4,
        supportedFeatures: 0,
      },
      { type: MessageType.UNLOAD },
      { type: MessageType.UNLOAD_COMPLETE },
      {
        type: MessageType.INITIATE_CONTACT,
        version: 0x60000,
        targetVp: 1,
        sint: 2,
        vtl: 0,
        featureFlags: 0x8,
        monitorPage1: 1n,
        monitorPage2: 2n,
      },
    ];
    for (const m of samples) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it("GPADLs split into a header with 27 u64 and bodies with 28 PFNs, and reassemble", () => {
    const pfns = Array.from({ length: 100 }, (_, i) => 0x1000 + i);
    const msgs = encodeGpadlMessages(4, 0xe1e10, [{ byteCount: 100 * 4096, byteOffset: 0, pfns }]);
    // 8 + 800 bytes: header carries 216, then 28*8 = 224 per body -> 3 bodies.
    expect(msgs.map((m) => m.length)).toEqual([20 + 216, 16 + 224, 16 + 224, 16 + 144]);
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(240);
    const h = decodeMessage(msgs[0]) as GpadlHeader;
    expect(h).toMatchObject({ type: 8, channelId: 4, gpadlId: 0xe1e10, rangeBufLen: 808, rangeCount: 1 });
    const a = new GpadlAssembly(h);
    for (const m of msgs.slice(1)) {
      expect(a.complete).toBe(false);
      const b = decodeMessage(m) as GpadlBody;
      expect(b.gpadlId).toBe(0xe1e10);
      expect(a.add(b)).toBeUndefined();
    }
    expect(a.complete).toBe(true);
    expect(a.ranges()).toEqual([{ byteCount: 100 * 4096, byteOffset: 0, pfns }]);
  });

  it("short, long and unknown messages come back as typed errors", () => {
    const code = (m: Uint8Array) => (decodeMessage(m) as VmbusError).code;
    expect(code(new Uint8Array(7))).toBe(VmbusErrorCode.MESSAGE_TOO_SHORT);
    expect(code(new Uint8Array(241))).toBe(VmbusErrorCode.MESSAGE_TOO_LONG);
    const u = new Uint8Array(8);
    u[0] = 18;
    expect(code(u)).toBe(VmbusErrorCode.MESSAGE_UNKNOWN);
    u[0] = 0;
    expect(code(u)).toBe(VmbusErrorCode.MESSAGE_UNKNOWN);
    const offer = encodeMessage({ type: MessageType.OFFER_CHANNEL, interfaceId: IF, instanceId: INST, channelId: 1 });
    expect(code(offer.subarray(0, 195))).toBe(VmbusErrorCode.MESSAGE_TOO_SHORT);
    const rescind = encodeMessage({ type: MessageType.RESCIND_CHANNEL_OFFER, channelId: 1 });
    expect(code(rescind.subarray(0, 11))).toBe(VmbusErrorCode.MESSAGE_TOO_SHORT);
  });

  it("decoding random bytes never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 250 }), (type, bytes) => {
        if (bytes.length >= 4) new DataView(bytes.buffer).setUint32(0, type, true);
        const m = decodeMessage(bytes);
        if (!(m instanceof VmbusError)) expect(m.type).toBe(type);
      }),
      { numRuns: 5000 },
    );
  });
});
