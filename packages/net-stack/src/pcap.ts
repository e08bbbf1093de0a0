// A tap that records every frame crossing a backend, into a pcap writer (the
// classic libpcap format: magic 0xa1b2c3d4, version 2.4, LINKTYPE_ETHERNET = 1).
// The writer to a host file, PcapWriter, is in pcap-file.ts (the "./node" entry).
import type { FrameReceiver, NetBackend } from "./backend.js";

export const LINKTYPE_ETHERNET = 1;

/** Where `capture` records frames: a {@link PcapWriter} (./node), or anything with its `write`. */
export interface FrameRecorder {
  write(frame: Uint8Array): void;
}

/** Wraps `inner` so every frame in both directions is also written to `pcap`. */
export function capture(inner: NetBackend, pcap: FrameRecorder): NetBackend {
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
