// virtio-rng, the entropy device (virtio 1.2 §5.4): one request queue of
// device-writable buffers that the device fills with random bytes.

import { VirtioDeviceId } from "../constants.js";
import { VirtioDevice } from "../device.js";
import { parseConfig } from "../errors.js";
import * as z from "../zod.js";

export interface VirtioRngOptions {
  /** Fills a buffer with entropy (default: globalThis.crypto.getRandomValues). */
  source?: (buf: Uint8Array) => void;
  /** QueueNumMax (power of 2, default 64). */
  queueSize?: number;
  /** Most bytes given per request (default 64 KiB). */
  maxBytesPerRequest?: number;
}

const Schema = z.object({
  source: z.optional(z.custom<(buf: Uint8Array) => void>((f) => typeof f === "function")),
  queueSize: z._default(
    z.int().check(
      z.minimum(1),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    64,
  ),
  maxBytesPerRequest: z._default(z.int().check(z.minimum(1), z.maximum(1 << 24)), 65536),
});

export interface VirtioRngStats {
  requests: number;
  bytes: number;
}

function cryptoFill(buf: Uint8Array): void {
  // getRandomValues fills at most 65536 bytes per call.
  for (let off = 0; off < buf.length; off += 65536) {
    globalThis.crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + 65536)));
  }
}

export class VirtioRng extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.entropy;
  readonly deviceFeatures = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly config = new Uint8Array(0);
  readonly stats: VirtioRngStats = { requests: 0, bytes: 0 };
  private readonly source: (buf: Uint8Array) => void;
  private readonly maxBytes: number;

  constructor(options: VirtioRngOptions = {}) {
    super();
    const o = parseConfig(Schema, options, "virtio-rng");
    this.queueMaxSizes = [o.queueSize];
    this.source = o.source ?? cryptoFill;
    this.maxBytes = o.maxBytesPerRequest;
  }

  notify(queueIndex: number): void {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    let pushed = false;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      // §5.4.6.1: the device writes only into device-writable buffers.
      if (chain.readableLength > 0) ctx.count("wrongDirection");
      let written = 0;
      for (const b of chain.writable) {
        if (written >= this.maxBytes) break;
        const part = b.subarray(0, Math.min(b.length, this.maxBytes - written));
        this.source(part);
        written += part.length;
      }
      this.stats.requests++;
      this.stats.bytes += written;
      q.push(chain, written);
      pushed = true;
    }
    if (pushed) ctx.signalUsed(q);
  }
}
