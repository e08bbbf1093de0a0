// A virtio-net back end that records its traffic to a pcap file on the host
// (node:fs; the package's "./node" entry).
import { type FileHandle, open } from "node:fs/promises";
import type { NetBackend } from "../devices/net.js";
import { pcapGlobalHeader, pcapRecord } from "./net.js";

/**
 * Wraps another back end and records every frame in both directions to a
 * pcap file (write order; call close() to finish writing).
 */
export class PcapNetBackend implements NetBackend {
  private chain: Promise<void>;
  private fh: FileHandle | undefined;
  frames = 0;

  private constructor(
    private readonly inner: NetBackend,
    path: string,
    private readonly clock: () => number,
  ) {
    this.chain = open(path, "w").then(async (fh) => {
      this.fh = fh;
      await fh.write(pcapGlobalHeader());
    });
  }

  /** Records `inner`'s traffic to `path`. `clock` returns milliseconds (default Date.now). */
  static create(inner: NetBackend, path: string, clock: () => number = Date.now): PcapNetBackend {
    return new PcapNetBackend(inner, path, clock);
  }

  send(frame: Uint8Array): void {
    this.record(frame);
    this.inner.send(frame);
  }

  setReceiver(receiver: ((frame: Uint8Array) => void) | null): void {
    this.inner.setReceiver(
      receiver &&
        ((frame) => {
          this.record(frame);
          receiver(frame);
        }),
    );
  }

  /** Waits for pending writes and closes the file. */
  async close(): Promise<void> {
    await this.chain;
    await this.fh?.close();
    this.fh = undefined;
  }

  private record(frame: Uint8Array): void {
    const rec = pcapRecord(frame, this.clock());
    this.frames++;
    this.chain = this.chain.then(async () => {
      await this.fh?.write(rec);
    });
  }
}
