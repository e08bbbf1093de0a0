import { describe, expect, it } from "vitest";
import { VmConfigSchema } from "./vm-config.js";

describe("VmConfig", () => {
  it("fills defaults", () => {
    expect(VmConfigSchema.parse({ kernel: "Image" })).toEqual({
      memory: 256 * 1024 * 1024,
      cpus: 1,
      bios: "sbi",
      kernel: "Image",
      console: "uart",
    });
  });
  it.each([
    [{ kernel: "Image", memory: 0 }, /at least 2 MiB/],
    [{ kernel: "Image", memory: 2 ** 40 }, /at most 2 GiB/],
    [{ kernel: "Image", memory: 17 * 1024 * 1024 }, /multiple of 2 MiB/],
    [{ kernel: "Image", append: "x".repeat(5000) }, /4 KiB/],
    [{ kernel: "" }, /kernel/],
    [{ kernel: "Image", cpus: 4 }, /cpus/],
    [{ kernel: "Image", typo: 1 }, /typo|Unrecognized/i],
  ])("rejects %j", (cfg, re) => {
    const r = VmConfigSchema.safeParse(cfg);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(re);
  });
});
