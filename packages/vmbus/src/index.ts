// Public surface of @ringzero/vmbus (STYLE.md §8: named exports only).

export {
  Channel,
  type ChannelCounters,
  type ChannelState,
  ControlPoster,
  type ControlTransport,
  type RingMirror,
  type SignalTransport,
} from "./channel.js";
export {
  ClientChannel,
  type ClientOffer,
  type ClientOpenOptions,
  VmbusClient,
  type VmbusClientCounters,
  type VmbusClientOptions,
} from "./client.js";
export { type ChannelDataPlane, channelDataPlane, DataPlaneChannel } from "./dataplane.js";
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
export { FlatGuestMemory } from "./memory.js";
export {
  type AllOffersDelivered,
  type CloseChannel,
  type ControlMessage,
  type ControlMessageInput,
  decodeMessage,
  encodeGpadlMessages,
  encodeMessage,
  GPADL_BODY_MAX_PFNS,
  GPADL_HEADER_MAX_DATA,
  GpadlAssembly,
  type GpadlBody,
  type GpadlCreated,
  type GpadlHeader,
  type GpadlTeardown,
  type GpadlTorndown,
  type InitiateContact,
  MAX_MESSAGE_SIZE,
  MESSAGE_HEADER_SIZE,
  MessageType,
  type OfferChannel,
  type OpenChannel,
  type OpenChannelResult,
  type RelidReleased,
  type RequestOffers,
  type RescindChannelOffer,
  readGuid,
  Status,
  type Unload,
  type UnloadComplete,
  USER_DATA_SIZE,
  type VersionResponse,
  VmbusVersion,
  writeGuid,
} from "./messages.js";
export {
  RequestChannel,
  type RequestChannelOptions,
  type RequestCounters,
  type RequestOptions,
} from "./requests.js";
export {
  allocateRing,
  createPacketInfo,
  type IncomingPacket,
  isAcceptedPacketType,
  maxPayload,
  type OutgoingPacket,
  PACKET_DESCRIPTOR_SIZE,
  PACKET_FLAG_COMPLETION_REQUESTED,
  PACKET_FOOTER_SIZE,
  type PacketInfo,
  PacketType,
  packetRingSize,
  READ_NONE,
  READ_TOO_SMALL,
  RING_CONTROL_SIZE,
  RING_FEATURE_PENDING_SEND_SIZE,
  RING_MIN_DATA_SIZE,
  RingControl,
  RingReader,
  type RingReaderCounters,
  RingWriter,
  type RingWriterCounters,
} from "./ring.js";
export {
  SERVER_VERSIONS,
  ServerChannel,
  type ServerOfferOptions,
  VmbusServer,
  type VmbusServerCounters,
  type VmbusServerOptions,
} from "./server.js";
export { createLocalTransport, type LocalTransportOptions, type TransportEndpoint } from "./transports/local.js";
export { FrameKind, MAX_FRAME, SocketEndpoint, type SocketEndpointCounters } from "./transports/socket.js";
export {
  createWorkerSignalArea,
  MAX_SIGNAL_ID,
  type PortLike,
  WORKER_SIGNAL_AREA_BYTES,
  WorkerEndpoint,
  type WorkerEndpointCounters,
  type WorkerEndpointOptions,
} from "./transports/worker.js";
