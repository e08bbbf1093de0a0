// virtio-blk (virtio 1.2 §5.2). One request queue; every request is
// header (16 readable bytes) + data + status (1 writable byte, last).

import type { BlockBackend } from "../backends/block.js";
import { VirtioDeviceId } from "../constants.js";
import { VirtioDevice, type VirtioDeviceContext } from "../device.js";
import { parseConfig } from "../errors.js";
import { type DescriptorChain, gather, type SplitQueue, scatter } from "../virtqueue.js";
import * as z from "../zod.js";

/** Feature bits (§5.2.3). */
export const VirtioBlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Request types (§5.2.6). */
export const VirtioBlkType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
} as const;

/** Status byte values (§5.2.6). */
export const VirtioBlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** Config space offsets (§5.2.4, struct virtio_blk_config). */
export const VirtioBlkConfig = {
  capacity: 0,
  size_max: 8,
  seg_max: 12,
  blk_size: 20,
  max_discard_sectors: 36,
  max_discard_seg: 40,
  discard_sector_alignment: 44,
  max_write_zeroes_sectors: 48,
  max_write_zeroes_seg: 52,
  write_zeroes_may_unmap: 56,
  /** Through the secure-erase fields, so every offset Linux may read exists. */
  size: 72,
} as const;

const SECTOR = 512;
const HEADER = 16;
/** GET_ID returns a 20-byte, NUL-padded string (§5.2.6). */
const ID_BYTES = 20;
const DWZ_SEGMENT = 16;
const WZ_FLAG_UNMAP = 1;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /** Offer the disk read-only even when the back end is writable. */
  readOnly?: boolean;
  /** GET_ID answer, at most 20 bytes of ASCII. */
  serial?: string;
  /** QueueNumMax (power of 2, default 128); seg_max is this minus 2. */
  queueSize?: number;
  /** size_max: largest segment the driver may use (default 1 MiB). */
  sizeMax?: number;
  /** Logical block size reported in blk_size (default 512). */
  blockSize?: number;
  /** Offer DISCARD (default true unless read-only). */
  discard?: boolean;
  /** Offer WRITE_ZEROES (default true unless read-only). */
  writeZeroes?: boolean;
  /** max_discard_sectors / max_write_zeroes_sectors (default 4194304 = 2 GiB). */
  maxRangeSectors?: number;
  /** max_discard_seg / max_write_zeroes_seg (default 32). */
  maxRangeSegments?: number;
}

const Schema = z.object({
  backend: z.custom<BlockBackend>(
    (b) =>
      typeof b === "object" &&
      b !== null &&
      typeof (b as BlockBackend).readInto === "function" &&
      typeof (b as BlockBackend).size === "function",
  ),
  readOnly: z._default(z.boolean(), false),
  serial: z._default(z.string().check(z.maxLength(ID_BYTES), z.regex(/^[\x20-\x7e]*$/)), ""),
  queueSize: z._default(
    z.int().check(
      z.minimum(4),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    128,
  ),
  sizeMax: z._default(z.int().check(z.minimum(4096), z.maximum(0xffff_ffff)), 1 << 20),
  blockSize: z._default(
    z.int().check(z.refine((n) => n >= 512 && n <= 65536 && (n & (n - 1)) === 0, "power of 2 in 512..65536")),
    512,
  ),
  discard: z.optional(z.boolean()),
  writeZeroes: z.optional(z.boolean()),
  maxRangeSectors: z._default(z.int().check(z.minimum(1), z.maximum(0xffff_ffff)), 4194304),
  maxRangeSegments: z._default(z.int().check(z.minimum(1), z.maximum(4096)), 32),
});

export interface VirtioBlkStats {
  reads: number;
  writes: number;
  flushes: number;
  getIds: number;
  discards: number;
  writeZeroes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests answered with S_IOERR (guest or back end). */
  ioErrors: number;
  /** Requests answered with S_UNSUPP. */
  unsupported: number;
  /** Back-end promises that rejected. */
  backendErrors: number;
  inFlight: number;
}

export class VirtioBlk extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.block;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config = new Uint8Array(VirtioBlkConfig.size);
  readonly readOnly: boolean;
  readonly stats: VirtioBlkStats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    getIds: 0,
    discards: 0,
    writeZeroes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    ioErrors: 0,
    unsupported: 0,
    backendErrors: 0,
    inFlight: 0,
  };
  private readonly backend: BlockBackend;
  private readonly serial: Uint8Array;
  private readonly maxRangeSectors: number;
  private readonly maxRangeSegments: number;

  constructor(options: VirtioBlkOptions) {
    super();
    const o = parseConfig(Schema, options, "virtio-blk");
    this.backend = o.backend;
    this.readOnly = o.readOnly || o.backend.readOnly;
    this.serial = new TextEncoder().encode(o.serial);
    this.queueMaxSizes = [o.queueSize];
    this.maxRangeSectors = o.maxRangeSectors;
    this.maxRangeSegments = o.maxRangeSegments;
    const F = VirtioBlkFeature;
    let f = bit(F.SIZE_MAX) | bit(F.SEG_MAX) | bit(F.BLK_SIZE) | bit(F.FLUSH);
    if (this.readOnly) f |= bit(F.RO);
    if (o.discard ?? !this.readOnly) f |= bit(F.DISCARD);
    if (o.writeZeroes ?? !this.readOnly) f |= bit(F.WRITE_ZEROES);
    this.deviceFeatures = f;
    const c = new DataView(this.config.buffer);
    const C = VirtioBlkConfig;
    c.setBigUint64(C.capacity, BigInt(Math.floor(o.backend.size() / SECTOR)), true);
    c.setUint32(C.size_max, o.sizeMax, true);
    c.setUint32(C.seg_max, o.queueSize - 2, true);
    c.setUint32(C.blk_size, o.blockSize, true);
    c.setUint32(C.max_discard_sectors, o.maxRangeSectors, true);
    c.setUint32(C.max_discard_seg, o.maxRangeSegments, true);
    c.setUint32(C.discard_sector_alignment, o.blockSize / SECTOR, true);
    c.setUint32(C.max_write_zeroes_sectors, o.maxRangeSectors, true);
    c.setUint32(C.max_write_zeroes_seg, o.maxRangeSegments, true);
    c.setUint8(C.write_zeroes_may_unmap, 1);
  }

  /** Capacity in 512-byte sectors, as in the config space. */
  get capacity(): number {
    return Number(new DataView(this.config.buffer).getBigUint64(VirtioBlkConfig.capacity, true));
  }

  /** Re-reads the back end's size (after a host-side resize) and tells the driver. */
  refreshCapacity(): void {
    const sectors = BigInt(Math.floor(this.backend.size() / SECTOR));
    new DataView(this.config.buffer).setBigUint64(VirtioBlkConfig.capacity, sectors, true);
    this.configChanged();
  }

  notify(queueIndex: number): void {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    for (let chain = q.pop(); chain; chain = q.pop()) this.handle(ctx, q, chain);
  }

  private handle(ctx: VirtioDeviceContext, q: SplitQueue, chain: DescriptorChain): void {
    // §5.2.6: the status byte is the last device-writable byte.
    if (chain.writableLength < 1) {
      ctx.fail("wrongDirection");
      return;
    }
    const done = (status: number, dataWritten = 0): void => {
      this.complete(ctx, q, chain, status, dataWritten);
    };
    if (chain.readableLength < HEADER) {
      ctx.count("malformedRequest");
      done(VirtioBlkStatus.IOERR);
      return;
    }
    const hdr = new Uint8Array(HEADER);
    gather(chain.readable, 0, hdr);
    const hv = new DataView(hdr.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getBigUint64(8, true);
    const inLen = chain.writableLength - 1;
    const outLen = chain.readableLength - HEADER;
    const T = VirtioBlkType;
    switch (type) {
      case T.IN: {
        if (outLen !== 0) {
          this.guestError(ctx, "wrongDirection", done);
          return;
        }
        const off = this.range(sector, inLen);
        if (off === undefined || inLen % SECTOR !== 0) {
          this.guestError(ctx, "malformedRequest", done);
          return;
        }
        this.stats.reads++;
        const readv = this.backend.readv;
        if (readv) {
          // Zero-copy: the back end fills the guest's buffers (all but the status byte).
          const bufs = firstBytes(chain.writable, inLen);
          this.run(
            done,
            attempt(() => readv.call(this.backend, off, bufs)),
            () => {
              this.stats.bytesRead += inLen;
              chain.writable.forEach((b, i) => {
                if (b.length > 0) ctx.memory.written?.(chain.writableAddrs[i] as number, b.length);
              });
              return true;
            },
            inLen,
          );
          return;
        }
        const buf = new Uint8Array(inLen);
        // Bounce buffer: guest memory is written only if the device was not reset meanwhile.
        this.run(
          done,
          attempt(() => this.backend.readInto(off, buf)),
          () => {
            if (!q.isLive(chain)) return false;
            scatter(chain.writable, 0, buf);
            this.stats.bytesRead += inLen;
            return true;
          },
          inLen,
        );
        return;
      }
      case T.OUT: {
        if (inLen !== 0) {
          this.guestError(ctx, "wrongDirection", done);
          return;
        }
        // §5.2.6.2: a write to a read-only device fails with IOERR and writes nothing.
        if (this.readOnly) {
          done(this.fail(VirtioBlkStatus.IOERR));
          return;
        }
        const off = this.range(sector, outLen);
        if (off === undefined || outLen % SECTOR !== 0) {
          this.guestError(ctx, "malformedRequest", done);
          return;
        }
        this.stats.writes++;
        const writev = this.backend.writev;
        if (writev) {
          const bufs = firstBytes(skipBytes(chain.readable, HEADER), outLen);
          this.run(
            done,
            attempt(() => writev.call(this.backend, off, bufs)),
            () => {
              this.stats.bytesWritten += outLen;
              return true;
            },
          );
          return;
        }
        const data = new Uint8Array(outLen);
        gather(chain.readable, HEADER, data);
        this.run(
          done,
          attempt(() => this.backend.write(off, data)),
          () => {
            this.stats.bytesWritten += outLen;
            return true;
          },
        );
        return;
      }
      case T.FLUSH:
        if (!ctx.hasFeature(VirtioBlkFeature.FLUSH)) {
          done(this.fail(VirtioBlkStatus.UNSUPP));
          return;
        }
        this.stats.flushes++;
        // A flush of a read-only disk succeeds (nothing to flush).
        this.run(done, this.readOnly ? Promise.resolve() : attempt(() => this.backend.flush()), () => true);
        return;
      case T.GET_ID: {
        const id = new Uint8Array(Math.min(ID_BYTES, inLen));
        id.set(this.serial.subarray(0, id.length));
        scatter(chain.writable, 0, id);
        this.stats.getIds++;
        done(VirtioBlkStatus.OK, id.length);
        return;
      }
      case T.DISCARD:
      case T.WRITE_ZEROES:
        this.rangeRequest(ctx, chain, type, outLen, inLen, done);
        return;
      default:
        // §5.2.6.2: unknown request types are answered with UNSUPP.
        done(this.fail(VirtioBlkStatus.UNSUPP));
    }
  }

  /** DISCARD and WRITE_ZEROES: a list of {sector u64, num_sectors u32, flags u32} (§5.2.6). */
  private rangeRequest(
    ctx: VirtioDeviceContext,
    chain: DescriptorChain,
    type: number,
    outLen: number,
    inLen: number,
    done: (status: number) => void,
  ): void {
    const isDiscard = type === VirtioBlkType.DISCARD;
    const feature = isDiscard ? VirtioBlkFeature.DISCARD : VirtioBlkFeature.WRITE_ZEROES;
    if (!ctx.hasFeature(feature)) {
      done(this.fail(VirtioBlkStatus.UNSUPP));
      return;
    }
    if (inLen !== 0) {
      this.guestError(ctx, "wrongDirection", done);
      return;
    }
    if (outLen === 0 || outLen % DWZ_SEGMENT !== 0) {
      this.guestError(ctx, "malformedRequest", done);
      return;
    }
    const n = outLen / DWZ_SEGMENT;
    if (n > this.maxRangeSegments) {
      done(this.fail(VirtioBlkStatus.UNSUPP));
      return;
    }
    if (this.readOnly) {
      done(this.fail(VirtioBlkStatus.IOERR));
      return;
    }
    const raw = new Uint8Array(outLen);
    gather(chain.readable, HEADER, raw);
    const v = new DataView(raw.buffer);
    const ops: { off: number; len: number; unmap: boolean }[] = [];
    for (let i = 0; i < n; i++) {
      const sector = v.getBigUint64(16 * i, true);
      const sectors = v.getUint32(16 * i + 8, true);
      const flags = v.getUint32(16 * i + 12, true);
      // §5.2.6.2: unknown flags -> UNSUPP; discard with the unmap flag -> UNSUPP.
      if (flags & ~WZ_FLAG_UNMAP || (isDiscard && flags & WZ_FLAG_UNMAP)) {
        done(this.fail(VirtioBlkStatus.UNSUPP));
        return;
      }
      const off = this.range(sector, sectors * SECTOR);
      if (off === undefined || sectors > this.maxRangeSectors) {
        this.guestError(ctx, "malformedRequest", done);
        return;
      }
      ops.push({ off, len: sectors * SECTOR, unmap: (flags & WZ_FLAG_UNMAP) !== 0 });
    }
    if (isDiscard) this.stats.discards++;
    else this.stats.writeZeroes++;
    const work = (async () => {
      for (const op of ops) {
        if (isDiscard) await this.backend.discard(op.off, op.len);
        else await this.backend.writeZeroes(op.off, op.len, { mayUnmap: op.unmap });
      }
    })();
    this.run(done, work, () => true);
  }

  /** Byte offset of [sector, sector + bytes) when it lies inside the disk. */
  private range(sector: bigint, bytes: number): number | undefined {
    const cap = BigInt(this.capacity);
    const sectors = BigInt(Math.ceil(bytes / SECTOR));
    if (sector > cap || sector + sectors > cap) return;
    return Number(sector) * SECTOR;
  }

  private run(
    done: (status: number, dataWritten?: number) => void,
    work: Promise<void>,
    onOk: () => boolean,
    dataWritten = 0,
  ): void {
    this.stats.inFlight++;
    work.then(
      () => {
        this.stats.inFlight--;
        if (onOk()) done(VirtioBlkStatus.OK, dataWritten);
      },
      () => {
        this.stats.inFlight--;
        this.stats.backendErrors++;
        done(this.fail(VirtioBlkStatus.IOERR));
      },
    );
  }

  private guestError(
    ctx: VirtioDeviceContext,
    counter: "wrongDirection" | "malformedRequest",
    done: (s: number) => void,
  ): void {
    ctx.count(counter);
    done(this.fail(VirtioBlkStatus.IOERR));
  }

  private fail(status: number): number {
    if (status === VirtioBlkStatus.IOERR) this.stats.ioErrors++;
    else if (status === VirtioBlkStatus.UNSUPP) this.stats.unsupported++;
    return status;
  }

  /** Writes the status byte and returns the chain (nothing if the device was reset meanwhile). */
  private complete(
    ctx: VirtioDeviceContext,
    q: SplitQueue,
    chain: DescriptorChain,
    status: number,
    dataWritten: number,
  ): void {
    if (!ctx.live || !q.isLive(chain)) return;
    const last = lastByte(chain.writable);
    if (last) {
      last.buf[last.index] = status;
      ctx.memory.written?.((chain.writableAddrs[last.desc] as number) + last.index, 1);
    }
    q.push(chain, dataWritten + 1);
    ctx.signalUsed(q);
  }
}

/** The first `n` bytes of a buffer list, as views (no copy). */
function firstBytes(bufs: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = n;
  for (const b of bufs) {
    if (left <= 0) break;
    const take = Math.min(b.length, left);
    if (take > 0) out.push(b.subarray(0, take));
    left -= take;
  }
  return out;
}

/** The buffer list without its first `n` bytes, as views. */
function skipBytes(bufs: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = n;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(b.subarray(skip));
    skip = 0;
  }
  return out;
}

function lastByte(bufs: readonly Uint8Array[]): { buf: Uint8Array; index: number; desc: number } | undefined {
  for (let i = bufs.length - 1; i >= 0; i--) {
    const b = bufs[i] as Uint8Array;
    if (b.length > 0) return { buf: b, index: b.length - 1, desc: i };
  }
  return;
}

/** Starts back-end work; a synchronous throw becomes a rejection (never thrown into the MMIO path). */
function attempt(work: () => Promise<void>): Promise<void> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e);
  }
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}
