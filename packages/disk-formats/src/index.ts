// Public surface of @ringzero/disk-formats (the Node file store is at "./node", test doubles at "./testing").
export { allocationMap, type BlockBackend, type Extent, FormatName, type ReadPart } from "./backend.js";
export { type CompressKind, type Compressor, inlineCompressor } from "./compress.js";
export { DiskError, DiskErrorCode, type DiskErrorContext, MAX_OFFSET } from "./errors.js";
export { ParallelsImage } from "./formats/parallels.js";
export type { Qcow2Header } from "./formats/qcow2/header.js";
export { type Qcow2CheckResult, type Qcow2CreateOptions, Qcow2Image } from "./formats/qcow2/image.js";
export type { Qcow2Snapshot } from "./formats/qcow2/snapshots.js";
export { RawImage } from "./formats/raw.js";
export { VdiImage } from "./formats/vdi.js";
export { VhdxImage } from "./formats/vhdx.js";
export { type VmdkCreateOptions, VmdkImage, type VmdkSubformat } from "./formats/vmdk.js";
export { VpcImage, vhdGeometry } from "./formats/vpc.js";
export { type FatEntry, FatFs, FLOPPY, type FloppyFormat } from "./fs/fat.js";
export { buildIso, type IsoEntry, type IsoFile, IsoFs } from "./fs/iso9660.js";
export { MemoryHost, MemoryStore } from "./io/memory.js";
export { BlobStore, HttpRangeStore, type HttpStoreOptions, OverlayStore, RemoteHost } from "./io/remote.js";
export { type ByteStore, readFull, readFullv, type StoreHost } from "./io/store.js";
export {
  type CreateOptions,
  createImage,
  DEFAULT_MAX_CHAIN_DEPTH,
  type Image,
  type OpenOptions,
  openImage,
  probeFormat,
} from "./open.js";
export { parseSize, sizeToStr } from "./sizes.js";
