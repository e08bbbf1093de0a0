import { describe, expect, it } from "vitest";
import { VIRTIO_MMIO_MAGIC } from "./index.js";

describe("virtio package", () => {
  it("exports the virtio-mmio magic value 'virt'", () => {
    expect(VIRTIO_MMIO_MAGIC).toBe(0x74726976);
  });
});
