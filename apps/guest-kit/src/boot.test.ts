// Builds the Linux guest kit (minutes the first time, cached afterwards) and
// boots it on qemu-system-riscv64 -M virt. Runs under CI=true; locally
// RINGZERO_SKIP_LINUX=1 skips it.
import { existsSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "./initramfs.js";
import { ensureLinuxKitManifest, type LinuxKitManifest } from "./kit.js";
import { bootOnQemu } from "./qemu.js";
import { hasTool } from "./run.js";

const skip = process.env.RINGZERO_SKIP_LINUX === "1" && process.env.CI !== "true";
if (skip) console.warn("guest-kit: RINGZERO_SKIP_LINUX=1, skipping the Linux kit build and QEMU boot");

describe.skipIf(skip)("Linux guest kit on QEMU virt", () => {
  let kit: LinuxKitManifest;
  beforeAll(async () => {
    kit = await ensureLinuxKitManifest({ progress: (m) => /objects built$/.test(m) || console.log(m) });
  }, 90 * 60_000);

  it("is cached with an Image and a gzip initramfs", () => {
    expect(existsSync(kit.image) && existsSync(kit.initrd)).toBe(true);
    expect(kit.kernel.optionsChecked).toBeGreaterThan(50);
    expect(kit.busybox.releaseSigners.length).toBeGreaterThan(0);
  });

  it("boots to a shell that runs uname -a and powers off", async () => {
    if (!hasTool("qemu-system-riscv64"))
      throw new Error("qemu-system-riscv64 is missing: apt-get install -y qemu-system-misc (scripts/setup.sh)");
    const r = await bootOnQemu({
      image: kit.image,
      initrd: kit.initrd,
      commands: ["uname -a", "poweroff -f"],
      timeoutMs: 120_000,
    });
    // busybox's line editor asks the terminal for the cursor position (ESC [6n) after each prompt.
    const out = r.output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
    expect(out).toContain(LINUX_KIT_MARKER);
    expect(out).toContain(`${LINUX_KIT_PROMPT}uname -a`);
    expect(out).toMatch(/Linux ringzero 6\.1\.\d+ .* riscv64 GNU\/Linux/);
    expect(r.exitCode).toBe(0);
  }, 150_000);
});
