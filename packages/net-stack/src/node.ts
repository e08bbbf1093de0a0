// Node entry of @ringzero/net-stack: everything of the main entry, plus what
// needs host sockets and files. These names were exported from the main entry
// before; only the import path changes.

export { connectSwitch, listenSwitch, switchEndpoint } from "./endpoint.js";
export { hostResolver } from "./host-resolver.js";
export * from "./index.js";
export { PcapWriter } from "./pcap-file.js";
export { StreamTransport, type StreamTransportOptions } from "./transport.js";
export { type HostForwardBinding, UserNet } from "./user-net.js";
