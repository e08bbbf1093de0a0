// Node entry of @ringzero/virtio: everything of the main entry, plus the back
// ends that own host resources (files, directories). These names were
// exported from the main entry before; only the import path changes.

export { type NinePGauges, NinePServer, type NinePStats } from "./9p/server.js";
export { FileBlockBackend } from "./backends/block-file.js";
export { PcapNetBackend } from "./backends/net-pcap.js";
export * from "./index.js";
