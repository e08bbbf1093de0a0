// The Linux guest kit booted by the real `ringzero` process under
// hypervisor-monolithic, driven through a pipe on stdin the way a script
// drives it: one command per shell prompt, `poweroff -f` ends the process
// with status 0. Runs under CI=true; locally RINGZERO_SKIP_LINUX=1 skips it.
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ensureLinuxKit, LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "@ringzero/guest-kit";
import { beforeAll, describe, expect, it } from "vitest";

const skip = process.env.RINGZERO_SKIP_LINUX === "1" && process.env.CI !== "true";
const root = resolve(import.meta.dirname, "../../..");
const cli = resolve(import.meta.dirname, "../dist/cli.js");

interface Session {
  status: number | null;
  /** Console output with terminal escapes removed (busybox asks for the cursor position after each prompt). */
  out: string;
  promptMs: number;
}

/** Runs `ringzero run ARGS`, typing each command after the next shell prompt. */
function drive(args: string[], commands: string[], timeoutMs = 240_000): Promise<Session> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let raw = "";
    let err = "";
    let sent = 0;
    let promptMs = -1;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`timed out after ${timeoutMs} ms; console tail:\n${raw.slice(-2000)}\nstderr:\n${err}`));
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => {
      raw += b.toString("latin1");
      const at = raw.indexOf(LINUX_KIT_MARKER);
      const prompts = at < 0 ? 0 : raw.slice(at).split(LINUX_KIT_PROMPT).length - 1;
      if (prompts > 0 && promptMs < 0) promptMs = performance.now() - t0;
      if (prompts > sent && sent < commands.length) child.stdin.write(`${commands[sent++]}\n`);
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.stdin.on("error", () => {});
    child.on("close", (status) => {
      clearTimeout(timer);
      done({ status, out: raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, ""), promptMs });
    });
  });
}

describe.skipIf(skip)("Linux on hypervisor-monolithic (ringzero run --kernel Image --initrd)", () => {
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    kit = await ensureLinuxKit({ progress: (m) => /objects built$/.test(m) || console.log(m) });
    // The test runs the real command, so it needs the built CLI (turbo's cache makes this quick after `pnpm build`).
    const b = spawnSync(
      "pnpm",
      ["exec", "turbo", "run", "build", "--filter=@ringzero/demo...", "--output-logs=errors-only"],
      {
        cwd: root,
        encoding: "utf8",
      },
    );
    if (b.status !== 0) throw new Error(`building the ringzero CLI failed:\n${b.stdout}\n${b.stderr}`);
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
