// Joins two networks across processes over a byte stream (TCP on 127.0.0.1 or
// a UNIX socket). Each frame travels as a 4-byte big-endian length and the
// frame, the framing QEMU's `-netdev stream`/`socket` backends use.
import type { Duplex } from "node:stream";
import type { FrameReceiver, NetBackend } from "./backend.js";
import { DropReason, NetStats } from "./stats.js";

export interface StreamTransportOptions {
  /** Largest frame accepted from the peer; a longer length closes the stream. */
  readonly maxFrame?: number;
  /** Bytes queued toward the peer before frames are dropped. */
  readonly maxQueued?: number;
}

export class StreamTransport implements NetBackend {
  readonly stats = new NetStats();
  private receiver: FrameReceiver | null = null;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;
  private readonly maxFrame: number;
  private readonly maxQueued: number;

  constructor(
    private readonly stream: Duplex,
    opts: StreamTransportOptions = {},
  ) {
    this.maxFrame = opts.maxFrame ?? 65536;
    this.maxQueued = opts.maxQueued ?? 4 * 1024 * 1024;
    stream.on("data", (d: Buffer) => this.onData(d));
    stream.on("error", () => this.close());
    stream.on("close", () => this.close());
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.stream.writableLength > this.maxQueued) {
      this.stats.drop(DropReason.LIMIT_BUFFER);
      return;
    }
    const b = Buffer.allocUnsafe(4 + frame.length);
    b.writeUInt32BE(frame.length, 0);
    b.set(frame, 4);
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    this.stream.write(b);
  }

  setReceiver(receiver: FrameReceiver | null): void {
    this.receiver = receiver;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.destroy();
  }

  private onData(d: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    let off = 0;
    while (this.pending.length - off >= 4) {
      const len = this.pending.readUInt32BE(off);
      if (len > this.maxFrame) {
        this.stats.drop(DropReason.TRANSPORT_FRAME_TOO_LONG);
        this.close();
        return;
      }
      if (this.pending.length - off - 4 < len) break;
      const frame = new Uint8Array(this.pending.subarray(off + 4, off + 4 + len)); // a copy the receiver owns
      off += 4 + len;
      this.stats.framesIn++;
      this.stats.bytesIn += len;
      if (this.receiver) this.receiver(frame);
      else this.stats.drop(DropReason.DETACHED);
    }
    this.pending = this.pending.subarray(off);
  }
}
