// A channel's data plane handed to another thread or worker: the owner of
// the control plane (VmbusServer, VmbusClient) keeps offers, GPADLs and
// states, while the rings, which are plain shared memory with Atomics
// indices (vmbus.md §2.5), are read and written elsewhere. This is how a VSP
// runs in its own worker and can be killed without taking the control plane
// (or the channel ID) with it (OpenVMM runs device back ends out of process
// the same way).
import { Channel, type ChannelState, type SignalTransport } from "./channel.js";
import type { VmbusError } from "./errors.js";
import { RingReader, RingWriter } from "./ring.js";

/** What crosses threads: structured-cloneable; the views must be of SharedArrayBuffers. */
export interface ChannelDataPlane {
  readonly channelId: number;
  /** The ring this end writes (control page + data). */
  readonly outgoing: Uint8Array;
  /** The ring this end reads. */
  readonly incoming: Uint8Array;
}

/** The data plane of an open channel, or undefined while it has no rings. */
export function channelDataPlane(channel: Channel): ChannelDataPlane | undefined {
  const m = channel.ringMemory;
  if (!m || channel.state !== "open") return undefined;
  return { channelId: channel.channelId, outgoing: m.outgoing, incoming: m.incoming };
}

/**
 * The far end of `channelDataPlane()`: an open Channel over the same ring
 * memory. Indices are taken from the control pages as they stand (a
 * successor of a killed reader resumes where the last commit left them).
 * A corrupt ring calls `onViolation` once; `detach()` ends the channel here
 * (state "closing" then "released") without touching the rings.
 */
export class DataPlaneChannel extends Channel {
  constructor(plane: ChannelDataPlane, signals: SignalTransport, onViolation: (e: VmbusError) => void = () => {}) {
    super(plane.channelId, "open", signals);
    const writer = new RingWriter(plane.outgoing);
    const reader = new RingReader(plane.incoming);
    this.attachRings(writer, reader);
    this.ringMemory = { outgoing: plane.outgoing, incoming: plane.incoming };
    let reported = false;
    this.onViolation = (e) => {
      if (reported) return;
      reported = true;
      onViolation(e);
    };
    const broken = writer.error ?? reader.error;
    if (broken) queueMicrotask(() => this.onViolation(broken));
  }

  /** Stops using the rings (the control plane closed or rescinded the channel). */
  detach(): void {
    const s: ChannelState = this.state;
    if (s === "released") return;
    this.setState("closing");
    this.setState("released");
  }
}
