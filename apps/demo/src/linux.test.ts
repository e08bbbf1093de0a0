// The Linux guest kit booted by the real `ringzero` process under
// hypervisor-monolithic, driven through a pipe on stdin the way a script
// drives it: one command per shell prompt, `poweroff -f` ends the process
// with status 0. Runs under CI=true; locally RINGZERO_SKIP_LINUX=1 skips it.
import { LINUX_KIT_MARKER } from "@ringzero/guest-kit";
import { beforeAll, describe, expect, it } from "vitest";
import { drive, prepareLinux, skipLinux as skip } from "./test-linux.js";

describe.skipIf(skip)("Linux on hypervisor-monolithic (ringzero run --kernel Image --initrd)", () => {
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    // The real command (turbo's cache makes the build quick after `pnpm build`).
    kit = await prepareLinux();
  }, 90 * 60_000);

  it("boots to a busybox shell that runs uname, /proc/cpuinfo and date, and poweroff -f exits 0", async () => {
    const s = await drive(
      ["--kernel", kit.image, "--initrd", kit.initrd, "--memory", "256M"],
      ["uname -a", "cat /proc/cpuinfo", "date -u +%Y-%m-%d", "poweroff -f"],
    );
    expect(s.out).toContain(LINUX_KIT_MARKER);
    expect(s.out).toMatch(/Linux ringzero 6\.1\.\d+ .* riscv64 GNU\/Linux/);
    // /proc/cpuinfo shows what the device tree said the hart implements (cpu-core's HART_ISA).
    expect(s.out).toMatch(/isa\s+: rv64imafdc/);
    expect(s.out).toMatch(/mmu\s+: sv48/);
    // The goldfish RTC gives the guest the host's wall clock.
    const day = new Date().toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 3_600_000).toISOString().slice(0, 10); // a run across midnight
    expect([day, yesterday]).toContain(/(\d{4}-\d\d-\d\d)\n/.exec(s.out.slice(s.out.indexOf("date -u")))?.[1]);
    expect(s.out).toContain("reboot: Power down");
    expect(s.status).toBe(0);
    console.log(`ringzero: Linux kit to the shell prompt in ${s.promptMs.toFixed(0)} ms`);
  }, 300_000);

  it("a guest-requested reboot ends the process too (status 0)", async () => {
    const s = await drive(["--kernel", kit.image, "--initrd", kit.initrd], ["reboot -f"]);
    expect(s.status).toBe(0);
  }, 300_000);
});
