// Test doubles for code that talks to a NetBackend (published at
// "@ringzero/net-stack/testing", STYLE.md 8): a virtio-net device test can
// plug a RecordingBackend in and inspect or inject frames.
import { createSocket, type Socket as DgramSocket } from "node:dgram";
import type { FrameReceiver, NetBackend } from "./backend.js";

/** Records every frame sent to it and lets the test deliver frames to the attached receiver. */
export class RecordingBackend implements NetBackend {
  /** Copies of the frames the NIC sent, in order. */
  readonly sent: Uint8Array[] = [];
  closed = false;
  private receiver: FrameReceiver | null = null;

  send(frame: Uint8Array): void {
    if (!this.closed) this.sent.push(frame.slice());
  }

  setReceiver(receiver: FrameReceiver | null): void {
    this.receiver = receiver;
  }

  get attached(): boolean {
    return this.receiver !== null;
  }

  /** Delivers `frame` to the NIC; returns false when no receiver is attached. */
  inject(frame: Uint8Array): boolean {
    if (!this.receiver || this.closed) return false;
    this.receiver(frame.slice());
    return true;
  }

  close(): void {
    this.closed = true;
    this.receiver = null;
  }
}

/** Returns every frame the NIC sends straight back to it (a cable looped onto itself). */
export class LoopbackBackend implements NetBackend {
  private receiver: FrameReceiver | null = null;
  private closed = false;

  send(frame: Uint8Array): void {
    if (!this.closed && this.receiver) this.receiver(frame.slice());
  }

  setReceiver(receiver: FrameReceiver | null): void {
    this.receiver = receiver;
  }

  close(): void {
    this.closed = true;
    this.receiver = null;
  }
}

/**
 * A tiny authoritative DNS server on 127.0.0.1 (an ephemeral UDP port) for
 * tests of the forwarder: A records from `records` (name → IPv4), NXDOMAIN
 * for everything else (RFC 1035 §4.1). Close the socket when done.
 */
export function startTestDnsServer(records: Readonly<Record<string, string>>): Promise<DgramSocket> {
  const s = createSocket("udp4");
  s.on("message", (q, r) => {
    if (q.length < 12) return;
    let i = 12;
    const labels: string[] = [];
    while (i < q.length && q[i] !== 0 && labels.length < 20) {
      labels.push(q.subarray(i + 1, i + 1 + (q[i] as number)).toString());
      i += 1 + (q[i] as number);
    }
    if (i + 5 > q.length) return;
    const qEnd = i + 5;
    const qtype = q.readUInt16BE(i + 1);
    const addr = records[labels.join(".").toLowerCase()];
    const found = addr !== undefined && qtype === 1;
    const head = Buffer.from(q.subarray(0, qEnd));
    head[2] = 0x84 | ((q[2] as number) & 1); // QR, AA, RD copied
    head[3] = found ? 0x80 : 0x83; // RA; NOERROR or NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(found ? 1 : 0, 6);
    head.writeUInt32BE(0, 8);
    const ans = found
      ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...addr.split(".").map(Number)])
      : Buffer.alloc(0);
    s.send(Buffer.concat([head, ans]), r.port, r.address);
  });
  return new Promise((res) => s.bind(0, "127.0.0.1", () => res(s)));
}
