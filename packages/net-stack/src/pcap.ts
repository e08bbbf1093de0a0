// A pcap writer (the classic libpcap format: magic 0xa1b2c3d4, version 2.4,
// LINKTYPE_ETHERNET = 1), and a tap that records every frame crossing a backend.
import { closeSync, openSync, writeSync } from "node:fs";
import type { FrameReceiver, NetBackend } from "./backend.js";
import { NetError, NetErrorCode } from "./errors.js";

export const LINKTYPE_ETHERNET = 1;

export class PcapWriter {
  private fd: number | null;

  /** Opens (truncates) `path` and writes the global header. */
  constructor(
    path: string,
    private readonly snaplen = 65535,
  ) {
    try {
      this.fd = openSync(path, "w");
    } catch (e) {
      throw new NetError(NetErrorCode.HOST_RESOURCE, { path }, (e as Error).message);
    }
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8); // thiszone
    h.writeUInt32LE(0, 12); // sigfigs
    h.writeUInt32LE(snaplen, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, h);
  }

  /** Appends one frame; `timeMs` defaults to now. */
  write(frame: Uint8Array, timeMs = Date.now()): void {
    if (this.fd === null) return;
    const cap = Math.min(frame.length, this.snaplen);
    const r = Buffer.alloc(16 + cap);
    const sec = Math.floor(timeMs / 1000);
    r.writeUInt32LE(sec >>> 0, 0);
    r.writeUInt32LE(Math.floor((timeMs - sec * 1000) * 1000), 4);
    r.writeUInt32LE(cap, 8);
    r.writeUInt32LE(frame.length, 12);
    r.set(frame.subarray(0, cap), 16);
    writeSync(this.fd, r);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Wraps `inner` so every frame in both directions is also written to `pcap`. */
export function capture(inner: NetBackend, pcap: PcapWriter): NetBackend {
  return {
    send(frame) {
      pcap.write(frame);
      inner.send(frame);
    },
    setReceiver(r: FrameReceiver | null) {
      inner.setReceiver(
        r
          ? (frame) => {
              pcap.write(frame);
              r(frame);
            }
          : null,
      );
    },
    close() {
      inner.close();
    },
  };
}
