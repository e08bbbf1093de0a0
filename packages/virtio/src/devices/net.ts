// virtio-net (virtio 1.2 §5.1): receiveq0 (0) and transmitq0 (1), MAC and
// link STATUS in the config space. Every buffer starts with a 12-byte
// virtio_net_hdr (VERSION_1 layout, num_buffers included).

import { VirtioDeviceId } from "../constants.js";
import { VirtioDevice } from "../device.js";
import { parseConfig } from "../errors.js";
import { gather, scatter } from "../virtqueue.js";
import * as z from "../zod.js";

/** Feature bits (§5.1.3) used here. */
export const VirtioNetFeature = {
  CSUM: 0,
  GUEST_CSUM: 1,
  MTU: 3,
  MAC: 5,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
} as const;

/** Config offsets (§5.1.4). */
export const VirtioNetConfig = { mac: 0, status: 6, max_virtqueue_pairs: 8, mtu: 10, size: 12 } as const;

/** config.status bits. */
export const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_hdr with num_buffers (§5.1.6). */
export const VIRTIO_NET_HDR_SIZE = 12;
/** Largest Ethernet frame accepted from the guest without TSO: 14 + 65535. */
export const VIRTIO_NET_MAX_FRAME = 65549;

const RX = 0;
const TX = 1;

/** Moves Ethernet frames between the device and the host network. */
export interface NetBackend {
  /** A frame the guest transmitted (the device's copy; the back end may keep it). */
  send(frame: Uint8Array): void;
  /**
   * The device registers its receiver (null detaches): call it with each
   * frame for the guest. The shape of @ringzero/net-stack's NetBackend, so its
   * UserNet, switch ports and stream transports plug in as they are.
   */
  setReceiver(receiver: ((frame: Uint8Array) => void) | null): void;
}

export interface VirtioNetOptions {
  backend: NetBackend;
  /** "52:54:00:12:34:56" (default: a random locally administered address). */
  mac?: string;
  /** Link state at start (default up). */
  linkUp?: boolean;
  /** Frames kept while the guest has no receive buffers (default 256); beyond, dropped and counted. */
  rxQueueLimit?: number;
  /** QueueNumMax (default 256). */
  queueSize?: number;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

const Schema = z.object({
  backend: z.custom<NetBackend>(
    (b) =>
      typeof b === "object" &&
      b !== null &&
      typeof (b as NetBackend).send === "function" &&
      typeof (b as NetBackend).setReceiver === "function",
  ),
  mac: z.optional(z.string().check(z.regex(MAC_RE))),
  linkUp: z._default(z.boolean(), true),
  rxQueueLimit: z._default(z.int().check(z.minimum(1), z.maximum(1 << 16)), 256),
  queueSize: z._default(
    z.int().check(
      z.minimum(2),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    256,
  ),
});

export interface VirtioNetStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames for the guest dropped: queue full, link down, or device not running. */
  rxDropped: number;
  /** Receive buffers too small for the frame (the frame is dropped). */
  rxBufferTooSmall: number;
  /** Transmit buffers without a full header or above the size limit, or sent while the link is down. */
  txDropped: number;
  /** Frames the back end's send() threw on. */
  txErrors: number;
}

export class VirtioNet extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.net;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config = new Uint8Array(VirtioNetConfig.size);
  readonly stats: VirtioNetStats = {
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxBufferTooSmall: 0,
    txDropped: 0,
    txErrors: 0,
  };
  readonly mac: string;
  private readonly backend: NetBackend;
  private readonly rxLimit: number;
  private rxPending: Uint8Array[] = [];

  constructor(options: VirtioNetOptions) {
    super();
    const o = parseConfig(Schema, options, "virtio-net");
    this.backend = o.backend;
    this.rxLimit = o.rxQueueLimit;
    this.queueMaxSizes = [o.queueSize, o.queueSize];
    this.deviceFeatures = (1n << BigInt(VirtioNetFeature.MAC)) | (1n << BigInt(VirtioNetFeature.STATUS));
    const mac = o.mac ? o.mac.split(":").map((h) => Number.parseInt(h, 16)) : randomMac();
    this.config.set(mac, VirtioNetConfig.mac);
    this.mac = mac.map((b) => b.toString(16).padStart(2, "0")).join(":");
    this.setStatus(o.linkUp);
    this.backend.setReceiver((frame) => this.receive(frame));
  }

  get linkUp(): boolean {
    return (new DataView(this.config.buffer).getUint16(VirtioNetConfig.status, true) & VIRTIO_NET_S_LINK_UP) !== 0;
  }

  /** Sets the link state; the driver gets a config-change interrupt (§5.1.4.2). */
  setLinkUp(up: boolean): void {
    if (up === this.linkUp) return;
    this.setStatus(up);
    if (!up) this.dropPending();
    this.configChanged();
  }

  /** Frames waiting for receive buffers. */
  get rxQueued(): number {
    return this.rxPending.length;
  }

  notify(queueIndex: number): void {
    if (queueIndex === TX) this.transmit();
    else if (queueIndex === RX) this.deliver();
  }

  protected override onReset(): void {
    this.dropPending();
  }

  /** A frame from the host network for the guest. */
  private receive(frame: Uint8Array): void {
    if (!this.active || !this.linkUp || this.rxPending.length >= this.rxLimit) {
      this.stats.rxDropped++;
      return;
    }
    this.rxPending.push(frame.slice());
    this.deliver();
  }

  private transmit(): void {
    const ctx = this.active;
    const q = ctx?.queues[TX];
    if (!ctx || !q) return;
    let pushed = false;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      if (chain.writableLength > 0) ctx.count("wrongDirection");
      const len = chain.readableLength - VIRTIO_NET_HDR_SIZE;
      if (len < 0 || len > VIRTIO_NET_MAX_FRAME) {
        ctx.count("malformedRequest");
        this.stats.txDropped++;
      } else if (!this.linkUp) {
        this.stats.txDropped++;
      } else {
        // Without offloads negotiated the header carries nothing to act on.
        const frame = new Uint8Array(len);
        gather(chain.readable, VIRTIO_NET_HDR_SIZE, frame);
        this.stats.txFrames++;
        this.stats.txBytes += len;
        try {
          this.backend.send(frame);
        } catch {
          // A failing host back end loses the frame, never the guest's device.
          this.stats.txErrors++;
        }
      }
      q.push(chain, 0);
      pushed = true;
    }
    if (pushed) ctx.signalUsed(q);
  }

  private deliver(): void {
    const ctx = this.active;
    const q = ctx?.queues[RX];
    if (!ctx || !q?.enabled) return;
    let pushed = false;
    const hdr = new Uint8Array(VIRTIO_NET_HDR_SIZE);
    // §5.1.6.3.2: without MRG_RXBUF num_buffers is 1.
    new DataView(hdr.buffer).setUint16(10, 1, true);
    while (this.rxPending.length > 0) {
      const chain = q.pop();
      if (!chain) break;
      const frame = this.rxPending.shift() as Uint8Array;
      if (chain.readableLength > 0) ctx.count("wrongDirection");
      if (chain.writableLength < VIRTIO_NET_HDR_SIZE + frame.length) {
        // §5.1.6.3.1: the driver must post buffers large enough; this one is not.
        this.stats.rxBufferTooSmall++;
        this.stats.rxDropped++;
        q.push(chain, 0);
      } else {
        scatter(chain.writable, 0, hdr);
        scatter(chain.writable, VIRTIO_NET_HDR_SIZE, frame);
        this.stats.rxFrames++;
        this.stats.rxBytes += frame.length;
        q.push(chain, VIRTIO_NET_HDR_SIZE + frame.length);
      }
      pushed = true;
    }
    if (pushed) ctx.signalUsed(q);
  }

  private dropPending(): void {
    this.stats.rxDropped += this.rxPending.length;
    this.rxPending = [];
  }

  private setStatus(up: boolean): void {
    new DataView(this.config.buffer).setUint16(VirtioNetConfig.status, up ? VIRTIO_NET_S_LINK_UP : 0, true);
  }
}

function randomMac(): number[] {
  const b = new Uint8Array(6);
  globalThis.crypto.getRandomValues(b);
  // Locally administered, unicast.
  b[0] = ((b[0] as number) & 0xfc) | 0x02;
  return Array.from(b);
}
