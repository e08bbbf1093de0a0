// The child's end (the VSC), run by partition-child's paravisor in the child
// partition's VP thread: a virtio entropy device (virtio 1.2 §5.4, device
// ID 4) whose bytes come from the parent's counter VSP over the VMBus
// channel. Linux's unmodified virtio-rng driver binds to it (/dev/hwrng).
//
// `Reissuing` (partition-child) holds the requests in flight when the parent
// rescinds the channel (its VSP was killed or restarted) and issues them
// again on the re-offered one: the guest sees latency, not an error.
import { Reissuing } from "@ringzero/partition-child";
import { VirtioDevice, VirtioDeviceId } from "@ringzero/virtio";
import { RequestChannel } from "@ringzero/vmbus";
import { decodeReply, encodeRequest, MAX_BYTES } from "./protocol.mjs";

const TIMEOUT_MS = 10_000;

class CounterVsc extends Reissuing {
  counters = { requests: 0, bytes: 0, errors: 0, reissued: 0, reconnects: 0 };

  constructor(channel) {
    super(new RequestChannel(channel, { timeoutMs: TIMEOUT_MS }), TIMEOUT_MS, () => new Error("no counter VSP"));
  }

  /** Up to `n` bytes from the VSP. */
  async take(n) {
    this.counters.requests++;
    const p = await this.issue(encodeRequest(Math.min(n, MAX_BYTES)));
    const bytes = decodeReply(p.payload);
    if (!bytes) throw new Error("a malformed reply");
    this.counters.bytes += bytes.length;
    return bytes;
  }
}

class RemoteRng extends VirtioDevice {
  deviceId = VirtioDeviceId.entropy;
  deviceFeatures = 0n; // §5.4.3: none
  queueMaxSizes = [64]; // §5.4.2: requestq
  config = new Uint8Array(0); // §5.4.4: none

  constructor(vsc) {
    super();
    this.vsc = vsc;
  }

  notify(queueIndex) {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      const done = (written) => {
        if (!ctx.live) return; // the driver reset the device meanwhile: drop the late answer
        q.push(chain, written);
        ctx.signalUsed(q);
      };
      this.vsc.take(chain.writableLength).then(
        (bytes) => {
          let o = 0;
          for (const buf of chain.writable) {
            const part = bytes.subarray(o, o + buf.length);
            buf.set(part);
            o += part.length;
          }
          done(o);
        },
        () => done(0),
      );
    }
  }
}

/** What the paravisor calls with the opened channel: the device the guest sees, and how it follows restarts. */
export function createVsc({ channel }) {
  const vsc = new CounterVsc(channel);
  return {
    device: new RemoteRng(vsc),
    counters: vsc.counters,
    detach: () => vsc.detach(),
    attach: (ch) => vsc.attach(ch),
  };
}
