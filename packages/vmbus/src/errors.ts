// Typed errors of @ringzero/vmbus: one closed code table (STYLE.md §9).
// Bad input from shared memory or from the peer is never thrown into a
// caller's loop: ring readers latch it (`RingReader.error`) and count it,
// decoders return it as a value. Only host-side programming mistakes (a ring
// buffer of the wrong size, a packet that can never fit) are thrown.
export const VmbusErrorCode = {
  /** Ring memory has the wrong geometry (size, power of two, alignment). */
  RING_GEOMETRY: "RING_GEOMETRY",
  /** An outgoing packet is malformed (unknown type/flags, header not a multiple of 8). */
  PACKET_INVALID: "PACKET_INVALID",
  /** An outgoing packet is larger than the ring can ever hold (vmbus.md §2.5, §2.6). */
  PACKET_TOO_LARGE: "PACKET_TOO_LARGE",
  /** A shared ring index is out of range or not 8-aligned (vmbus.md §2.5). */
  RING_INDEX_INVALID: "RING_INDEX_INVALID",
  /** A packet descriptor is inconsistent: data_offset8 < 2 or length8 < data_offset8 (vmbus.md §2.6). */
  DESCRIPTOR_INVALID: "DESCRIPTOR_INVALID",
  /** A packet claims more bytes than the ring holds between read and write index. */
  PACKET_TRUNCATED: "PACKET_TRUNCATED",
  /** A packet type outside the accepted set (vmbus.md §2.6). */
  PACKET_TYPE_UNKNOWN: "PACKET_TYPE_UNKNOWN",
  /** Packet flags other than COMPLETION_REQUESTED (vmbus.md §2.6). */
  PACKET_FLAGS_UNKNOWN: "PACKET_FLAGS_UNKNOWN",
  /** GPA range list malformed: zero ranges, offset >= page, wrong PFN count, trailing bytes (vmbus.md §2.4). */
  GPA_RANGE_INVALID: "GPA_RANGE_INVALID",
  /** A control message is shorter than its type requires (vmbus.md §2.3). */
  MESSAGE_TOO_SHORT: "MESSAGE_TOO_SHORT",
  /** A control message exceeds the 240-byte SynIC payload (vmbus.md §2.1). */
  MESSAGE_TOO_LONG: "MESSAGE_TOO_LONG",
  /** A control message type this library does not know (vmbus.md §2.2). */
  MESSAGE_UNKNOWN: "MESSAGE_UNKNOWN",
  /** A control message field is out of range (bad GUID, range count, …). */
  MESSAGE_INVALID: "MESSAGE_INVALID",
  /** The peer sent a message that is not valid in the current state. */
  PROTOCOL_VIOLATION: "PROTOCOL_VIOLATION",
  /** An API was used in a state that does not allow it. */
  INVALID_STATE: "INVALID_STATE",
  /** The channel was rescinded (revoked) by the host. */
  CHANNEL_REVOKED: "CHANNEL_REVOKED",
  /** The channel or connection was closed. */
  CLOSED: "CLOSED",
  /** A request got no answer in time. */
  TIMEOUT: "TIMEOUT",
  /** The host refused the version, a GPADL or an open. */
  REFUSED: "REFUSED",
  /** The transport failed (socket error, malformed frame). */
  TRANSPORT: "TRANSPORT",
} as const;
export type VmbusErrorCode = (typeof VmbusErrorCode)[keyof typeof VmbusErrorCode];

export class VmbusError extends Error {
  override readonly name = "VmbusError";
  constructor(
    readonly code: VmbusErrorCode,
    readonly context: Readonly<Record<string, unknown>> = {},
    detail?: string,
  ) {
    super(`${code}${detail ? `: ${detail}` : ""} ${JSON.stringify(context, bigintReplacer)}`);
  }
}

function bigintReplacer(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? `0x${v.toString(16)}` : v;
}
