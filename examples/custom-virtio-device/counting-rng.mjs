// A virtio device of your own, in one class: an entropy device (virtio 1.2
// §5.4, device ID 4) whose "entropy" is a counter — byte n is n mod 256 — so
// a test can tell exactly what the guest read. A teaching device, not a
// source of randomness. Linux's unmodified virtio-rng driver binds to it and
// serves it as /dev/hwrng.
//
// Load it into the linux-vmm example: node ../linux-vmm/vmm.mjs … --device ./counting-rng.mjs
import { VirtioDevice, VirtioDeviceId } from "@ringzero/virtio";

export class CountingRng extends VirtioDevice {
  deviceId = VirtioDeviceId.entropy;
  deviceFeatures = 0n; // no feature bits of its own (§5.4.3)
  queueMaxSizes = [64]; // one queue: requestq (§5.4.2)
  config = new Uint8Array(0); // no configuration space (§5.4.4)
  next = 0;
  requests = 0;

  /** The driver queued buffers on `queueIndex` and notified: fill each, give it back, interrupt. */
  notify(queueIndex) {
    const ctx = this.active;
    const q = ctx?.queues[queueIndex];
    if (!ctx || !q) return;
    let used = false;
    // pop() hands out descriptor chains already checked against guest RAM (loops, lengths, direction).
    for (let chain = q.pop(); chain; chain = q.pop()) {
      let written = 0;
      for (const buf of chain.writable) {
        for (let i = 0; i < buf.length; i++) buf[i] = this.next++ & 0xff;
        written += buf.length;
      }
      q.push(chain, written); // into the used ring with the byte count (§2.7.8)
      this.requests++;
      used = true;
    }
    if (used) ctx.signalUsed(q); // the used-buffer interrupt, if the driver wants one (§2.7.10)
  }
}

/** What linux-vmm's --device loads. */
export function createDevice() {
  return new CountingRng();
}
