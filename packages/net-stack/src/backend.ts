// The frame-level boundary between a guest NIC and whatever carries its
// frames (this stack, a virtual switch port, a socket transport). One narrow
// interface (STYLE.md 1): a virtio-net device implements the NIC side
// structurally and needs nothing else from this package.

/** Receives one Ethernet II frame (destination MAC first, no FCS, no virtio-net header). */
export type FrameReceiver = (frame: Uint8Array) => void;

/**
 * Moves Ethernet frames between a guest NIC and a network.
 * - `send(frame)`: the NIC transmitted `frame`. Never throws; malformed frames are counted and dropped.
 *   The callee may keep a reference only until it returns (copy if it must keep the bytes).
 * - `setReceiver(fn)`: the function the network calls with frames for the NIC (the callee owns those
 *   bytes). `null` detaches; frames arriving while detached are dropped. The receiver may call
 *   `send()` synchronously.
 * - `close()`: releases host resources; further `send` calls are ignored.
 */
export interface NetBackend {
  send(frame: Uint8Array): void;
  setReceiver(receiver: FrameReceiver | null): void;
  close(): void;
}
