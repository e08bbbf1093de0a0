// The counter service's wire format, shared by both ends. The channel type is
// the offer's interface GUID (vmbus.md §2.3): the VSC checks it, so a channel
// of another kind is never taken for this one.
export const COUNTER_INTERFACE = "c0a7e100-5eed-4c0d-9e00-000000000001";

/** The most bytes one request may ask for (well inside a 16 KiB ring). */
export const MAX_BYTES = 1024;

/** Request: {count u32}. */
export function encodeRequest(count) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, count, true);
  return b;
}

/** The count a request asks for, capped at MAX_BYTES; undefined if malformed. */
export function decodeRequest(payload) {
  if (payload.length < 4) return undefined;
  return Math.min(new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true), MAX_BYTES);
}

/** Completion: {length u32, bytes}: VMBus pads payloads to 8 bytes, so the length travels with them. */
export function encodeReply(bytes) {
  const b = new Uint8Array(4 + bytes.length);
  new DataView(b.buffer).setUint32(0, bytes.length, true);
  b.set(bytes, 4);
  return b;
}

/** The bytes of a completion; undefined if malformed (a length past the payload). */
export function decodeReply(payload) {
  if (payload.length < 4) return undefined;
  const n = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
  return n <= payload.length - 4 ? payload.subarray(4, 4 + n) : undefined;
}
