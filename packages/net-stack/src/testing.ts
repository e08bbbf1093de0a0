// Test doubles for code that talks to a NetBackend (published at
// "@ringzero/net-stack/testing", STYLE.md 8): a virtio-net device test can
// plug a RecordingBackend in and inspect or inject frames.
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
