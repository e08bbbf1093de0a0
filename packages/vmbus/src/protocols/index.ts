// ringzero's device protocols over VMBus channels: what a VSC in a child
// partition's paravisor and a VSP in the parent say to each other for
// storage, network, console and entropy. Little-endian, versioned by the
// interface GUID, every decoder total (malformed input -> undefined, never a
// throw). Modelled on Hyper-V's storvsc/netvsc split: requests carry the
// guest's buffers as GPA-direct ranges (vmbus.md §2.6) so the VSP moves data
// straight into guest memory; small messages travel in-band.

/** Interface (class) GUIDs of the offers. */
export const DeviceInterface = {
  storage: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a31",
  network: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a32",
  console: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a33",
  rng: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a34",
  /** A 9P2000.L file server: one whole T-message per request, the R-message in its completion (both framed). */
  ninep: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a35",
  /**
   * Memory balloon control (Hyper-V's dynamic memory VSP role): the parent asks
   * the paravisor's balloon to grow or shrink and reads its state back.
   */
  balloon: "0b3f6a1c-7d3e-4f0a-9a57-72696e677a36",
} as const;
export type DeviceKind = keyof typeof DeviceInterface;

/** The instance GUID of device `index` of a kind (stable across VSP restarts, so a re-offer matches). */
export function deviceInstanceId(kind: DeviceKind, index: number): string {
  const k = Object.keys(DeviceInterface).indexOf(kind);
  const tail = ((k << 8) | (index & 0xff)).toString(16).padStart(12, "0");
  return `72696e67-7a65-726f-8000-${tail}`;
}

// ---- storage ----------------------------------------------------------------

export const StorageOp = { READ: 1, WRITE: 2, FLUSH: 3, DISCARD: 4, WRITE_ZEROES: 5, INFO: 6 } as const;
export type StorageOp = (typeof StorageOp)[keyof typeof StorageOp];
const STORAGE_OPS = new Set<number>(Object.values(StorageOp));

export const StorageStatus = { OK: 0, IO_ERROR: 1, UNSUPPORTED: 2, BAD_REQUEST: 3, READ_ONLY: 4 } as const;
export type StorageStatus = (typeof StorageStatus)[keyof typeof StorageStatus];

export const STORAGE_FLAG_MAY_UNMAP = 1;
export const STORAGE_REQUEST_SIZE = 24;

/** {op u32, flags u32, offset u64, length u64}; READ/WRITE name the data as GPA-direct ranges. */
export interface StorageRequest {
  readonly op: StorageOp;
  readonly flags: number;
  readonly offset: number;
  readonly length: number;
}

export function encodeStorageRequest(r: StorageRequest): Uint8Array {
  const b = new Uint8Array(STORAGE_REQUEST_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, r.op, true);
  v.setUint32(4, r.flags, true);
  v.setBigUint64(8, BigInt(r.offset), true);
  v.setBigUint64(16, BigInt(r.length), true);
  return b;
}

export function decodeStorageRequest(b: Uint8Array): StorageRequest | undefined {
  if (b.length < STORAGE_REQUEST_SIZE) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const op = v.getUint32(0, true);
  if (!STORAGE_OPS.has(op)) return undefined;
  const offset = v.getBigUint64(8, true);
  const length = v.getBigUint64(16, true);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER) || length > 0xffff_ffffn) return undefined;
  return { op: op as StorageOp, flags: v.getUint32(4, true), offset: Number(offset), length: Number(length) };
}

/** Completion: {status u32, reserved u32, size u64 (INFO), flags u32 (INFO: bit 0 read-only), reserved u32}. */
export interface StorageCompletion {
  readonly status: StorageStatus;
  readonly size?: number;
  readonly readOnly?: boolean;
}

export function encodeStorageCompletion(c: StorageCompletion): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, c.status, true);
  v.setBigUint64(8, BigInt(c.size ?? 0), true);
  v.setUint32(16, c.readOnly ? 1 : 0, true);
  return b;
}

export function decodeStorageCompletion(b: Uint8Array): StorageCompletion | undefined {
  if (b.length < 24) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const status = v.getUint32(0, true);
  if (status > StorageStatus.READ_ONLY) return undefined;
  const size = v.getBigUint64(8, true);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { status: status as StorageStatus, size: Number(size), readOnly: (v.getUint32(16, true) & 1) === 1 };
}

// ---- network, console --------------------------------------------------------
// One in-band packet per Ethernet frame (network) or per chunk of bytes
// (console), both directions; no completions: a full ring drops (network) or
// queues (console), as a NIC without receive buffers would. A packet's payload
// is padded to 8 bytes on the ring (§ ring layout), so each one starts with
// {length u32, reserved u32} and the data follows.

/** The 8-byte header in front of a network frame or console chunk of `length` bytes. */
export function encodeDataHeader(length: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, length, true);
  return b;
}

/** The data of a framed payload, or undefined when its length exceeds `max` or the payload. */
export function decodeFramed(payload: Uint8Array, max: number): Uint8Array | undefined {
  if (payload.length < 8) return undefined;
  const n = (payload[0] | (payload[1] << 8) | (payload[2] << 16) | (payload[3] << 24)) >>> 0;
  if (n > max || n > payload.length - 8) return undefined;
  return payload.subarray(8, 8 + n);
}

/** Largest frame a network packet carries (Ethernet + VLAN tag, no FCS). */
export const NETWORK_MAX_FRAME = 1518 + 4;
/** Largest console chunk per packet. */
export const CONSOLE_MAX_CHUNK = 4096;
/** Largest 9P message (msize) a ninep channel carries either way; its rings hold two of them. */
export const NINEP_MAX_MESSAGE = 256 * 1024;

// ---- rng ---------------------------------------------------------------------

/** Request: {length u32} (1..RNG_MAX_REQUEST); completion: the bytes. */
export const RNG_MAX_REQUEST = 4096;

export function encodeRngRequest(length: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, length, true);
  return b;
}

export function decodeRngRequest(b: Uint8Array): number | undefined {
  if (b.length < 4) return undefined;
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
  return n >= 1 && n <= RNG_MAX_REQUEST ? n : undefined;
}

// ---- balloon -------------------------------------------------------------------

/** Parent -> child requests: set the target (pages) or just report. */
export const BalloonOp = { SET_TARGET: 1, STATUS: 2 } as const;
export type BalloonOp = (typeof BalloonOp)[keyof typeof BalloonOp];
export const BALLOON_REQUEST_SIZE = 8;
export const BALLOON_STATUS_SIZE = 40;

/** {op u32, pages u32}: pages is the balloon's target size in 4 KiB pages (SET_TARGET). */
export function encodeBalloonRequest(op: BalloonOp, pages = 0): Uint8Array {
  const b = new Uint8Array(BALLOON_REQUEST_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, op, true);
  v.setUint32(4, pages >>> 0, true);
  return b;
}

export function decodeBalloonRequest(b: Uint8Array): { op: BalloonOp; pages: number } | undefined {
  if (b.length < BALLOON_REQUEST_SIZE) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const op = v.getUint32(0, true);
  if (op !== BalloonOp.SET_TARGET && op !== BalloonOp.STATUS) return undefined;
  return { op: op as BalloonOp, pages: v.getUint32(4, true) };
}

/** The balloon as the child's paravisor sees it (virtio-balloon's config and counters). */
export interface BalloonStatus {
  /** num_pages: the target in 4 KiB pages. */
  readonly target: number;
  /** actual, as the guest driver last wrote it. */
  readonly actual: number;
  readonly balloonPages: number;
  readonly inflatedPages: number;
  readonly deflatedPages: number;
  readonly releasedBytes: number;
  readonly badPfns: number;
}

/** Completion: {target u32, actual u32, balloonPages u32, inflated u32, deflated u32, badPfns u32, releasedBytes u64, 0 u64}. */
export function encodeBalloonStatus(s: BalloonStatus): Uint8Array {
  const b = new Uint8Array(BALLOON_STATUS_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, s.target >>> 0, true);
  v.setUint32(4, s.actual >>> 0, true);
  v.setUint32(8, s.balloonPages >>> 0, true);
  v.setUint32(12, s.inflatedPages >>> 0, true);
  v.setUint32(16, s.deflatedPages >>> 0, true);
  v.setUint32(20, s.badPfns >>> 0, true);
  v.setBigUint64(24, BigInt(Math.max(0, Math.floor(s.releasedBytes))), true);
  return b;
}

export function decodeBalloonStatus(b: Uint8Array): BalloonStatus | undefined {
  if (b.length < BALLOON_STATUS_SIZE) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const released = v.getBigUint64(24, true);
  if (released > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return {
    target: v.getUint32(0, true),
    actual: v.getUint32(4, true),
    balloonPages: v.getUint32(8, true),
    inflatedPages: v.getUint32(12, true),
    deflatedPages: v.getUint32(16, true),
    badPfns: v.getUint32(20, true),
    releasedBytes: Number(released),
  };
}
