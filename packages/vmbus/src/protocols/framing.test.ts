import { describe, expect, it } from "vitest";
import {
  BalloonOp,
  decodeBalloonRequest,
  decodeBalloonStatus,
  decodeFramed,
  encodeBalloonRequest,
  encodeBalloonStatus,
  encodeDataHeader,
} from "./index.js";

function framed(data: Uint8Array): Uint8Array {
  // as the ring delivers it: header, data, zero padding to 8 bytes
  const out = new Uint8Array((8 + data.length + 7) & ~7);
  out.set(encodeDataHeader(data.length), 0);
  out.set(data, 8);
  return out;
}

describe("framed network and console payloads", () => {
  it("give back exactly the bytes sent, whatever the padding", () => {
    for (let n = 0; n <= 17; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => 0xa0 + i);
      expect(decodeFramed(framed(data), 64)).toEqual(data);
    }
  });

  it("refuse a short payload, a length past the payload, a length above the maximum, a length with bit 31 set", () => {
    expect(decodeFramed(new Uint8Array(7), 64)).toBeUndefined();
    const p = framed(new Uint8Array(5));
    p[0] = 9; // 8 + 9 > 16
    expect(decodeFramed(p, 64)).toBeUndefined();
    expect(decodeFramed(framed(new Uint8Array(40)), 39)).toBeUndefined();
    const big = framed(new Uint8Array(8));
    big[3] = 0x80;
    expect(decodeFramed(big, Number.MAX_SAFE_INTEGER)).toBeUndefined();
  });
});

describe("balloon control messages", () => {
  it("round-trip requests and status, values at the top of their ranges", () => {
    expect(decodeBalloonRequest(encodeBalloonRequest(BalloonOp.SET_TARGET, 0xffff_ffff))).toEqual({
      op: BalloonOp.SET_TARGET,
      pages: 0xffff_ffff,
    });
    expect(decodeBalloonRequest(encodeBalloonRequest(BalloonOp.STATUS))).toEqual({ op: BalloonOp.STATUS, pages: 0 });
    const s = {
      target: 0xffff_fffe,
      actual: 65536,
      balloonPages: 3,
      inflatedPages: 0x8000_0001,
      deflatedPages: 7,
      badPfns: 1,
      releasedBytes: 2 ** 40 + 4096,
    };
    expect(decodeBalloonStatus(encodeBalloonStatus(s))).toEqual(s);
  });

  it("refuse short buffers, unknown ops and byte counts past 2^53", () => {
    expect(decodeBalloonRequest(new Uint8Array(7))).toBeUndefined();
    const bad = encodeBalloonRequest(BalloonOp.STATUS);
    bad[0] = 3;
    expect(decodeBalloonRequest(bad)).toBeUndefined();
    expect(decodeBalloonStatus(new Uint8Array(39))).toBeUndefined();
    const huge = new Uint8Array(40);
    new DataView(huge.buffer).setBigUint64(24, 2n ** 53n, true);
    expect(decodeBalloonStatus(huge)).toBeUndefined();
  });
});
