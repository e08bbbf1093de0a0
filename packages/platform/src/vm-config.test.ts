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
      drives: [],
      net: { mode: "none", hostfwd: [], restrict: false },
      shares: [],
      rng: false,
      balloon: false,
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
    [{ kernel: "Image", drives: [{ path: "a", format: "iso" }] }, /format/],
    [{ kernel: "Image", drives: Array.from({ length: 5 }, () => ({ path: "d.img" })) }, /at most 4 drives/],
    [{ kernel: "Image", shares: [{ path: "/tmp", tag: "a/b" }] }, /tag/],
    [
      {
        kernel: "Image",
        shares: [
          { path: "/a", tag: "t" },
          { path: "/b", tag: "t" },
        ],
      },
      /one tag/,
    ],
    [
      { kernel: "Image", net: { mode: "user", hostfwd: [{ protocol: "tcp", hostPort: 0, guestPort: 22 }] } },
      /hostPort/,
    ],
    [{ kernel: "Image", net: { mode: "user", mac: "nope" } }, /MAC/],
    [{ kernel: "Image", net: { mode: "socket" } }, /socket mode needs connect/],
    [{ kernel: "Image", net: { mode: "socket", connect: "/s", restrict: true } }, /belongs to the user mode/],
    [{ kernel: "Image", net: { mode: "user", connect: "/s" } }, /connect is for socket mode/],
    [{ kernel: "Image", net: { mode: "user", listen: "10.1.2.3:99" } }, /127\.0\.0\.1/],
    [{ kernel: "Image", net: { mode: "user", dnsUpstream: { host: "localhost" } } }, /dnsUpstream/],
    [
      {
        kernel: "Image",
        drives: [{ path: "1" }, { path: "2" }, { path: "3" }, { path: "4" }],
        shares: [{ path: "/a" }, { path: "/b" }],
        net: { mode: "user" },
        rng: true,
        balloon: true,
      },
      /9 virtio devices for 8/,
    ],
  ])("rejects %j", (cfg, re) => {
    const r = VmConfigSchema.safeParse(cfg);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(re);
  });
});
