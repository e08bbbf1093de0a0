import { describe, expect, it } from "vitest";
import { mockDriver } from "../testing/index.js";
import { VirtioRng } from "./rng.js";

describe("virtio-rng", () => {
  it("fills every device-writable buffer with entropy from crypto.getRandomValues", () => {
    const dev = new VirtioRng();
    const drv = mockDriver(dev);
    const q = drv.queue(0);
    q.addBuffers([], [4096, 4096], { indirect: true });
    q.kick();
    const [u] = q.collect();
    expect(u?.len).toBe(8192);
    const all = new Uint8Array(8192);
    all.set(u?.written[0] as Uint8Array, 0);
    all.set(u?.written[1] as Uint8Array, 4096);
    // The mock pre-fills 0xee; random data has many distinct byte values.
    expect(new Set(all).size).toBeGreaterThan(200);
  });

  it("caps the bytes per request", () => {
    const dev = new VirtioRng({ maxBytesPerRequest: 100 });
    const drv = mockDriver(dev);
    drv.queue(0).addBuffers([], [64, 64]);
    drv.queue(0).kick();
    const [u] = drv.queue(0).collect();
    expect(u?.len).toBe(100);
    expect(u?.written[1]?.subarray(36).every((b) => b === 0xee)).toBe(true);
  });
});
