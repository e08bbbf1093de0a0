// Public surface of @ringzero/vmbus (STYLE.md §8: named exports only).
export { VmbusError, VmbusErrorCode } from "./errors.js";
export {
  decodeGpaDirectHeader,
  decodeGpaRanges,
  encodeGpaDirectHeader,
  encodeGpaRanges,
  type GpaRange,
  gpaRangeSize,
  PAGE_SIZE,
  pagesSpanned,
} from "./gpa.js";
export {
  allocateRing,
  type IncomingPacket,
  isAcceptedPacketType,
  maxPayload,
  type OutgoingPacket,
  PACKET_DESCRIPTOR_SIZE,
  PACKET_FLAG_COMPLETION_REQUESTED,
  PACKET_FOOTER_SIZE,
  PacketType,
  packetRingSize,
  RING_CONTROL_SIZE,
  RING_FEATURE_PENDING_SEND_SIZE,
  RING_MIN_DATA_SIZE,
  RingControl,
  RingReader,
  type RingReaderCounters,
  RingWriter,
  type RingWriterCounters,
} from "./ring.js";
