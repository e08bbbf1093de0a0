// A pcap writer to a host file (node:fs; the package's "./node" entry): the
// classic libpcap format, magic 0xa1b2c3d4, version 2.4, LINKTYPE_ETHERNET.
import { closeSync, openSync, writeSync } from "node:fs";
import { NetError, NetErrorCode } from "./errors.js";
import { type FrameRecorder, LINKTYPE_ETHERNET } from "./pcap.js";

export class PcapWriter implements FrameRecorder {
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
