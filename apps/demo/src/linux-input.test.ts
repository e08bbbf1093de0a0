// Console input written before the guest reads it is kept, in order, until
// Linux's 8250 driver is receiving (a tty has opened ttyS0), then fed as the
// receive FIFO drains: commands piped all at once, before boot, all run. (QEMU
// loses such input.) Runs under CI=true; locally RINGZERO_SKIP_LINUX=1 skips it.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { prepareLinux, skipLinux as skip } from "./test-linux.js";

const cli = resolve(import.meta.dirname, "../dist/cli.js");

/** Runs `ringzero run ARGS` with `input` written to its stdin at once (then closed), as `printf … | ringzero run …`. */
function pipeAtOnce(args: string[], input: string): Promise<{ status: number | null; out: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [cli, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`timed out; console tail:\n${out.slice(-2000)}`));
    }, 240_000);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("latin1");
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      done({ status, out: out.replace(/\r/g, "") });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

describe.skipIf(skip)("console input before the guest reads it (ringzero run, Linux)", () => {
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    kit = await prepareLinux();
  }, 90 * 60_000);

  for (const hv of ["monolithic", "micro"] as const) {
    it(`commands piped at once, before boot, all run in order (${hv})`, async () => {
      const r = await pipeAtOnce(
        ["--hypervisor", hv, "--kernel", kit.image, "--initrd", kit.initrd],
        "echo MARK-$((6*7))\nuname -m\necho second-$((1+1))\npoweroff -f\n",
      );
      expect(r.out).toContain("\nMARK-42\n");
      expect(r.out).toContain("\nriscv64\n");
      expect(r.out).toContain("\nsecond-2\n");
      expect(r.out.indexOf("MARK-42\n")).toBeLessThan(r.out.indexOf("second-2\n"));
      expect(r.out).toContain("reboot: Power down");
      expect(r.status).toBe(0);
    }, 300_000);
  }
});
