// virtio-console (virtio 1.2 §5.3), port 0 only (no MULTIPORT): receiveq0
// carries host input to the guest, transmitq0 guest output to the host.
// Linux binds it to the next free hvc index (hvc0, or hvc1 when
// CONFIG_HVC_RISCV_SBI has taken hvc0 for the SBI console).

import { VirtioDeviceId } from "../constants.js";
import { VirtioDevice } from "../device.js";
import { parseConfig } from "../errors.js";
import { gather, scatter } from "../virtqueue.js";
import * as z from "../zod.js";

/** Feature bits (§5.3.3). */
export const VirtioConsoleFeature = { SIZE: 0, MULTIPORT: 1, EMERG_WRITE: 2 } as const;

/** Config offsets (§5.3.4). */
export const VirtioConsoleConfig = { cols: 0, rows: 2, max_nr_ports: 4, emerg_wr: 8, size: 12 } as const;

const RX = 0;
const TX = 1;

export interface VirtioConsoleOptions {
  /** Receives guest output (a fresh copy per buffer). */
  output?: (data: Uint8Array) => void;
  /** Offer VIRTIO_CONSOLE_F_SIZE with this size. */
  size?: { cols: number; rows: number };
  /** Host input kept while the guest has no receive buffers (default 64 KiB); beyond it input is dropped and counted. */
  inputLimit?: number;
  /** QueueNumMax (default 64). */
  queueSize?: number;
}

const Schema = z.object({
  output: z.optional(z.custom<(d: Uint8Array) => void>((f) => typeof f === "function")),
  size: z.optional(
    z.object({
      cols: z.int().check(z.minimum(0), z.maximum(0xffff)),
      rows: z.int().check(z.minimum(0), z.maximum(0xffff)),
    }),
  ),
  inputLimit: z._default(z.int().check(z.minimum(1), z.maximum(1 << 26)), 65536),
  queueSize: z._default(
    z.int().check(
      z.minimum(2),
      z.maximum(32768),
      z.refine((n) => (n & (n - 1)) === 0, "power of 2"),
    ),
    64,
  ),
});

export interface VirtioConsoleStats {
  bytesOut: number;
  bytesIn: number;
  /** Host input dropped because the pending buffer was full. */
  inputDropped: number;
  emergencyWrites: number;
  /** Output callbacks that threw. */
  outputErrors: number;
}

export class VirtioConsole extends VirtioDevice {
  readonly deviceId = VirtioDeviceId.console;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly config = new Uint8Array(VirtioConsoleConfig.size);
  readonly stats: VirtioConsoleStats = {
    bytesOut: 0,
    bytesIn: 0,
    inputDropped: 0,
    emergencyWrites: 0,
    outputErrors: 0,
  };
  private readonly output: (data: Uint8Array) => void;
  private readonly inputLimit: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(options: VirtioConsoleOptions = {}) {
    super();
    const o = parseConfig(Schema, options, "virtio-console");
    this.output = o.output ?? (() => {});
    this.inputLimit = o.inputLimit;
    this.queueMaxSizes = [o.queueSize, o.queueSize];
    let f = 1n << BigInt(VirtioConsoleFeature.EMERG_WRITE);
    if (o.size) {
      f |= 1n << BigInt(VirtioConsoleFeature.SIZE);
      this.writeSize(o.size.cols, o.size.rows);
    }
    this.deviceFeatures = f;
    new DataView(this.config.buffer).setUint32(VirtioConsoleConfig.max_nr_ports, 1, true);
  }

  /** Host input (keyboard) for the guest. Kept (bounded) until the guest posts receive buffers. */
  input(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data.slice();
    const room = this.inputLimit - this.pendingBytes;
    if (bytes.length > room) this.stats.inputDropped += bytes.length - Math.max(room, 0);
    const kept = bytes.subarray(0, Math.max(room, 0));
    if (kept.length > 0) {
      this.pending.push(kept);
      this.pendingBytes += kept.length;
    }
    this.deliver();
  }

  /** Bytes of host input waiting for receive buffers. */
  get pendingInput(): number {
    return this.pendingBytes;
  }

  /** Changes the console size (only meaningful when constructed with `size`). */
  resize(cols: number, rows: number): void {
    this.writeSize(cols, rows);
    this.configChanged();
  }

  override writeConfig(offset: number, size: number, value: number): boolean {
    // §5.3.4: emerg_wr writes one character, with VIRTIO_CONSOLE_F_EMERG_WRITE.
    if (
      offset === VirtioConsoleConfig.emerg_wr &&
      size === 4 &&
      this.active?.hasFeature(VirtioConsoleFeature.EMERG_WRITE)
    ) {
      this.stats.emergencyWrites++;
      this.stats.bytesOut++;
      this.emit(Uint8Array.of(value & 0xff));
      return true;
    }
    return false;
  }

  notify(queueIndex: number): void {
    if (queueIndex === TX) this.transmit();
    else if (queueIndex === RX) this.deliver();
  }

  protected override onReset(): void {
    // Input typed before the driver comes up is kept for it.
  }

  private transmit(): void {
    const ctx = this.active;
    const q = ctx?.queues[TX];
    if (!ctx || !q) return;
    let pushed = false;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      if (chain.writableLength > 0) ctx.count("wrongDirection");
      const data = new Uint8Array(chain.readableLength);
      gather(chain.readable, 0, data);
      this.stats.bytesOut += data.length;
      if (data.length > 0) this.emit(data);
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
    while (this.pendingBytes > 0) {
      const chain = q.pop();
      if (!chain) break;
      if (chain.readableLength > 0) ctx.count("wrongDirection");
      let written = 0;
      while (this.pending.length > 0 && written < chain.writableLength) {
        const head = this.pending[0] as Uint8Array;
        const n = scatter(chain.writable, written, head);
        written += n;
        this.pendingBytes -= n;
        if (n === head.length) this.pending.shift();
        else this.pending[0] = head.subarray(n);
      }
      this.stats.bytesIn += written;
      q.push(chain, written);
      pushed = true;
    }
    if (pushed) ctx.signalUsed(q);
  }

  private emit(data: Uint8Array): void {
    try {
      this.output(data);
    } catch {
      // A failing host sink loses output, never the guest's device.
      this.stats.outputErrors++;
    }
  }

  private writeSize(cols: number, rows: number): void {
    const v = new DataView(this.config.buffer);
    v.setUint16(VirtioConsoleConfig.cols, cols, true);
    v.setUint16(VirtioConsoleConfig.rows, rows, true);
  }
}
