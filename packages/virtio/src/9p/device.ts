// virtio-9p, the 9P transport device. virtio 1.2 §5 reserves device ID 9 for
// it but has no section on it; the layout here is the one Linux
// (net/9p/trans_virtio.c) and QEMU (hw/9pfs/virtio-9p-device.c) agree on.
// One request queue: each chain carries one whole T-message in its
// device-readable buffers followed by device-writable buffers for the whole
// R-message. Linux's zero-copy path puts the reply header (11 bytes) in one
// buffer and the payload in user pages, so the reply is scattered across all
// writable buffers in order.

import { featureBit, VirtioDeviceId } from "../constants.js";
import { VirtioDevice, type VirtioDeviceContext } from "../device.js";
import { parseConfig } from "../errors.js";
import { type DescriptorChain, gather, type SplitQueue, scatter } from "../virtqueue.js";
import * as z from "../zod.js";
import { Errno } from "./errno.js";
import { encodeRlerror, NOTAG } from "./protocol.js";

/** Feature bit: the config space holds a mount tag (VIRTIO_9P_MOUNT_TAG). */
export const VIRTIO_9P_MOUNT_TAG = 0;

/** Whatever answers 9P messages: a {@link NinePServer}, or a proxy to one in another partition. */
export interface NinePHandler {
  handle(request: Uint8Array): Promise<Uint8Array>;
}

/** Config space: `le16 tag_len; u8 tag[tag_len]` (struct virtio_9p_config). */
export function ninePConfigBytes(mountTag: string): Uint8Array {
  const tag = new TextEncoder().encode(mountTag);
  const out = new Uint8Array(2 + tag.length);
  new DataView(out.buffer).setUint16(0, tag.length, true);
  out.set(tag, 2);
  return out;
}

const MountTag = z.string().check(
  z.minLength(1),
  z.refine((s) => new TextEncoder().encode(s).length <= 255, "at most 255 bytes"),
  z.refine((s) => !/[\s\0]/.test(s), "no whitespace or NUL (it is the mount source)"),
);

const Schema = z.object({
  handler: z.custom<NinePHandler>((h) => typeof (h as NinePHandler | null)?.handle === "function"),
  mountTag: MountTag,
  queueSize: z._default(
    z.int().check(
      z.minimum(2),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    128,
  ),
  /** Readable bytes taken from one chain; more is a malformed request (the server sees a lying size). */
  maxRequestBytes: z._default(z.int().check(z.minimum(4096), z.maximum(1 << 24)), 512 * 1024),
});
export type Virtio9pOptions = z.input<typeof Schema>;

export interface Virtio9pStats {
  requests: number;
  /** Replies cut short because the writable buffers were smaller. */
  truncatedReplies: number;
}

export class Virtio9p extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.ninep;
  readonly deviceFeatures = featureBit(VIRTIO_9P_MOUNT_TAG);
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly stats: Virtio9pStats = { requests: 0, truncatedReplies: 0 };
  private readonly handler: NinePHandler;
  private readonly maxRequest: number;

  constructor(options: Virtio9pOptions) {
    super();
    const o = parseConfig(Schema, options, "virtio-9p");
    this.handler = o.handler;
    this.queueMaxSizes = [o.queueSize];
    this.config = ninePConfigBytes(o.mountTag);
    this.maxRequest = o.maxRequestBytes;
  }

  notify(queueIndex: number): void {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    for (let chain = q.pop(); chain; chain = q.pop()) this.request(ctx, q, chain);
  }

  private request(ctx: VirtioDeviceContext, q: SplitQueue, chain: DescriptorChain): void {
    this.stats.requests++;
    const req = new Uint8Array(Math.min(chain.readableLength, this.maxRequest + 1));
    gather(chain.readable, 0, req);
    if (chain.writableLength < 11) {
      // Not even room for Rlerror: return the buffer empty (Linux sees an EIO-like failure).
      ctx.count("wrongDirection");
      q.push(chain, 0);
      ctx.signalUsed(q);
      return;
    }
    this.handler
      .handle(req)
      .catch(() => encodeRlerror(req.length >= 7 ? (req[5] as number) | ((req[6] as number) << 8) : NOTAG, Errno.EIO))
      .then((reply) => {
        if (!ctx.live || !q.isLive(chain)) return;
        const n = scatter(chain.writable, 0, reply);
        if (n < reply.length) {
          this.stats.truncatedReplies++;
          ctx.count("malformedRequest");
        }
        q.push(chain, n);
        ctx.signalUsed(q);
      });
  }
}
