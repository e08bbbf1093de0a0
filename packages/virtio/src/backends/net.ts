// Net back ends for virtio-net: a loopback pair and the pcap record format
// (the recorder to a host file is in net-pcap.ts, the "./node" entry).
import type { NetBackend } from "../devices/net.js";

/** A frame sink/source pair: what one end sends, the other receives. */
export class LoopbackNetBackend implements NetBackend {
  private deliver: ((frame: Uint8Array) => void) | undefined;
  peer: LoopbackNetBackend | undefined;
  /** Frames sent while no peer is connected (reflected to self when `reflect`). */
  readonly sent: Uint8Array[] = [];

  /** With `reflect`, frames the guest sends come straight back to it. */
  constructor(private readonly reflect = false) {}

  /** Two connected ends (two guests on a wire). */
  static pair(): [LoopbackNetBackend, LoopbackNetBackend] {
    const a = new LoopbackNetBackend();
    const b = new LoopbackNetBackend();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  send(frame: Uint8Array): void {
    if (this.peer) this.peer.inject(frame);
    else if (this.reflect) this.inject(frame);
    else this.sent.push(frame);
  }

  setReceiver(receiver: ((frame: Uint8Array) => void) | null): void {
    this.deliver = receiver ?? undefined;
  }

  /** Delivers `frame` to the device attached to this end. */
  inject(frame: Uint8Array): void {
    this.deliver?.(frame);
  }
}

/** pcap global header: LINKTYPE_ETHERNET, microsecond timestamps (libpcap format 2.4). */
export function pcapGlobalHeader(snaplen = 262144): Uint8Array {
  const h = new Uint8Array(24);
  const v = new DataView(h.buffer);
  v.setUint32(0, 0xa1b2c3d4, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true);
  v.setUint32(12, 0, true);
  v.setUint32(16, snaplen, true);
  v.setUint32(20, 1, true);
  return h;
}

/** One pcap record: header (ts_sec, ts_usec, incl_len, orig_len) + frame. */
export function pcapRecord(frame: Uint8Array, timeMs: number, snaplen = 262144): Uint8Array {
  const incl = Math.min(frame.length, snaplen);
  const r = new Uint8Array(16 + incl);
  const v = new DataView(r.buffer);
  const usec = Math.round(timeMs * 1000);
  v.setUint32(0, Math.floor(usec / 1e6), true);
  v.setUint32(4, usec % 1e6, true);
  v.setUint32(8, incl, true);
  v.setUint32(12, frame.length, true);
  r.set(frame.subarray(0, incl), 16);
  return r;
}
