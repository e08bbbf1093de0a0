// virtio-balloon (virtio 1.2 §5.5): inflateq (0), deflateq (1) and statsq
// (2, VIRTIO_BALLOON_F_STATS_VQ). The host sets a target in num_pages; the
// guest reports `actual`. Inflated pages are released: zero-filled in guest
// RAM (the honest release for a flat ArrayBuffer) and counted.

import { VirtioDeviceId } from "../constants.js";
import { VirtioDevice, type VirtioDeviceContext } from "../device.js";
import { parseConfig } from "../errors.js";
import { type DescriptorChain, gather, type SplitQueue } from "../virtqueue.js";
import * as z from "../zod.js";

/** Feature bits (§5.5.3). */
export const VirtioBalloonFeature = {
  MUST_TELL_HOST: 0,
  STATS_VQ: 1,
  DEFLATE_ON_OOM: 2,
  FREE_PAGE_HINT: 3,
  PAGE_POISON: 4,
  PAGE_REPORTING: 5,
} as const;

/** Config offsets (§5.5.4). */
export const VirtioBalloonConfig = {
  num_pages: 0,
  actual: 4,
  free_page_hint_cmd_id: 8,
  poison_val: 12,
  size: 16,
} as const;

/** Balloon page frames are always 4 KiB (§5.5.6). */
export const VIRTIO_BALLOON_PAGE_SIZE = 4096;

/** Statistic tags (§5.5.6.3) by name. */
export const VirtioBalloonStatTag = {
  swapIn: 0,
  swapOut: 1,
  majorFaults: 2,
  minorFaults: 3,
  freeMemory: 4,
  totalMemory: 5,
  availableMemory: 6,
  diskCaches: 7,
  hugetlbAllocations: 8,
  hugetlbFailures: 9,
  oomKills: 10,
  allocStalls: 11,
  asyncScans: 12,
  directScans: 13,
  asyncReclaims: 14,
  directReclaims: 15,
} as const;

const INFLATE = 0;
const STATS = 2;
const STAT_ENTRY = 10;

export interface VirtioBalloonOptions {
  /** Offer VIRTIO_BALLOON_F_STATS_VQ (default true). */
  statsQueue?: boolean;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default false). */
  deflateOnOom?: boolean;
  /** QueueNumMax (default 128). */
  queueSize?: number;
}

const Schema = z.object({
  statsQueue: z._default(z.boolean(), true),
  deflateOnOom: z._default(z.boolean(), false),
  queueSize: z._default(
    z.int().check(
      z.minimum(2),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    128,
  ),
});

export interface VirtioBalloonStats {
  /** Pages currently in the balloon (released from the guest). */
  balloonPages: number;
  inflatedPages: number;
  deflatedPages: number;
  /** Bytes zero-filled when pages were released. */
  releasedBytes: number;
  /** PFNs outside guest RAM, or deflated without having been inflated. */
  badPfns: number;
}

/** The guest's last statistics report: values by tag name (unknown tags as `tag<N>`). */
export interface GuestMemoryStats {
  readonly values: Readonly<Record<string, bigint>>;
  /** Reports received so far. */
  readonly reports: number;
}

export class VirtioBalloon extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.balloon;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config = new Uint8Array(VirtioBalloonConfig.size);
  readonly stats: VirtioBalloonStats = {
    balloonPages: 0,
    inflatedPages: 0,
    deflatedPages: 0,
    releasedBytes: 0,
    badPfns: 0,
  };
  private readonly pages = new Set<number>();
  private guestStats: Record<string, bigint> = {};
  private reports = 0;
  private heldStats: DescriptorChain | undefined;
  private waiters: ((s: GuestMemoryStats) => void)[] = [];

  constructor(options: VirtioBalloonOptions = {}) {
    super();
    const o = parseConfig(Schema, options, "virtio-balloon");
    let f = 0n;
    if (o.statsQueue) f |= 1n << BigInt(VirtioBalloonFeature.STATS_VQ);
    if (o.deflateOnOom) f |= 1n << BigInt(VirtioBalloonFeature.DEFLATE_ON_OOM);
    this.deviceFeatures = f;
    this.queueMaxSizes = o.statsQueue ? [o.queueSize, o.queueSize, o.queueSize] : [o.queueSize, o.queueSize];
  }

  /** num_pages: the host's target balloon size in 4 KiB pages. */
  get target(): number {
    return new DataView(this.config.buffer).getUint32(VirtioBalloonConfig.num_pages, true);
  }

  /** `actual` as the guest last wrote it. */
  get actual(): number {
    return new DataView(this.config.buffer).getUint32(VirtioBalloonConfig.actual, true);
  }

  /** Asks the guest to grow or shrink the balloon to `pages` 4 KiB pages (config change). */
  setTarget(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0 || pages > 0xffff_ffff) return;
    new DataView(this.config.buffer).setUint32(VirtioBalloonConfig.num_pages, pages, true);
    this.configChanged();
  }

  /** The guest's last memory statistics. */
  get guestMemoryStats(): GuestMemoryStats {
    return { values: { ...this.guestStats }, reports: this.reports };
  }

  /**
   * Asks the guest for fresh statistics (§5.5.6.3): returns the held stats
   * buffer; resolves with the next report. Resolves with the current
   * (possibly empty) stats at once when the driver has no stats buffer queued.
   */
  requestStats(): Promise<GuestMemoryStats> {
    const ctx = this.active;
    const chain = this.heldStats;
    const q = ctx?.queues[STATS];
    if (!ctx || !q || !chain || !q.isLive(chain)) return Promise.resolve(this.guestMemoryStats);
    this.heldStats = undefined;
    const p = new Promise<GuestMemoryStats>((r) => this.waiters.push(r));
    q.push(chain, 0);
    ctx.signalUsed(q);
    return p;
  }

  override writeConfig(offset: number, size: number, value: number): boolean {
    // `actual` is the only driver-writable field (§5.5.4).
    if (offset === VirtioBalloonConfig.actual && size === 4) {
      new DataView(this.config.buffer).setUint32(VirtioBalloonConfig.actual, value, true);
      return true;
    }
    return false;
  }

  notify(queueIndex: number): void {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    if (queueIndex === STATS) {
      if (ctx.hasFeature(VirtioBalloonFeature.STATS_VQ)) this.readStats(ctx, q);
      return;
    }
    let pushed = false;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      this.pfns(ctx, chain, queueIndex === INFLATE);
      q.push(chain, 0);
      pushed = true;
    }
    if (pushed) ctx.signalUsed(q);
  }

  protected override onReset(): void {
    // A reset guest owns all its memory again (§5.5.6.1: pages are the guest's after reset).
    this.pages.clear();
    this.stats.balloonPages = 0;
    this.heldStats = undefined;
    new DataView(this.config.buffer).setUint32(VirtioBalloonConfig.actual, 0, true);
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r(this.guestMemoryStats);
  }

  private pfns(ctx: VirtioDeviceContext, chain: DescriptorChain, inflate: boolean): void {
    if (chain.writableLength > 0) ctx.count("wrongDirection");
    if (chain.readableLength % 4 !== 0) ctx.count("malformedRequest");
    const raw = new Uint8Array(chain.readableLength - (chain.readableLength % 4));
    gather(chain.readable, 0, raw);
    const v = new DataView(raw.buffer);
    for (let off = 0; off < raw.length; off += 4) {
      const pfn = v.getUint32(off, true);
      if (inflate) {
        const page = ctx.memory.view(pfn * VIRTIO_BALLOON_PAGE_SIZE, VIRTIO_BALLOON_PAGE_SIZE);
        if (!page) {
          this.stats.badPfns++;
          continue;
        }
        page.fill(0);
        ctx.memory.written?.(pfn * VIRTIO_BALLOON_PAGE_SIZE, VIRTIO_BALLOON_PAGE_SIZE);
        this.stats.releasedBytes += VIRTIO_BALLOON_PAGE_SIZE;
        this.stats.inflatedPages++;
        this.pages.add(pfn);
      } else {
        if (!this.pages.delete(pfn)) {
          this.stats.badPfns++;
          continue;
        }
        this.stats.deflatedPages++;
      }
    }
    this.stats.balloonPages = this.pages.size;
  }

  private readStats(ctx: VirtioDeviceContext, q: SplitQueue): void {
    let got = false;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      got = true;
      if (this.heldStats && q.isLive(this.heldStats)) {
        // §5.5.6.3: one stats buffer at a time; give back the older one.
        q.push(this.heldStats, 0);
        ctx.signalUsed(q);
      }
      const n = Math.floor(Math.min(chain.readableLength, 64 * STAT_ENTRY) / STAT_ENTRY);
      const raw = new Uint8Array(n * STAT_ENTRY);
      gather(chain.readable, 0, raw);
      const v = new DataView(raw.buffer);
      const names = Object.entries(VirtioBalloonStatTag);
      const values: Record<string, bigint> = {};
      for (let i = 0; i < n; i++) {
        const tag = v.getUint16(i * STAT_ENTRY, true);
        const name = names.find(([, t]) => t === tag)?.[0] ?? `tag${tag}`;
        values[name] = v.getBigUint64(i * STAT_ENTRY + 2, true);
      }
      this.guestStats = values;
      this.reports++;
      this.heldStats = chain;
    }
    if (!got) return;
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r(this.guestMemoryStats);
  }
}
