// The Linux guest kit under both engines with time derived from instructions
// (`--deterministic`): the interpreter and the binary translator must print the
// same console lines up to the same instruction count, and the translator must
// have run the boot's hot code in WebAssembly traces. The printk timestamps are
// compared apart: they move by a few microseconds from run to run under either
// engine (the virtio devices complete host I/O at host-timed points).
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { LINUX_KIT_PROMPT } from "@ringzero/guest-kit";
import { beforeAll, describe, expect, it } from "vitest";
import { prepareLinux, skipLinux as skip } from "./test-linux.js";

const cli = resolve(import.meta.dirname, "../dist/cli.js");

describe.skipIf(skip)("Linux under both engines (--deterministic)", () => {
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    kit = await prepareLinux();
  }, 90 * 60_000);

  it("the same console and instret to the shell prompt from the interpreter and the translator", () => {
    const run = (engine: string) =>
      spawnSync(
        process.execPath,
        [
          cli,
          "run",
          "--kernel",
          kit.image,
          "--initrd",
          kit.initrd,
          "--deterministic",
          "--engine",
          engine,
          "--max-instructions",
          "140000000",
          "--stats",
        ],
        { encoding: "latin1", input: "", timeout: 240_000 },
      );
    const i = run("interpreter");
    const t = run("translator");
    // --max-instructions ends the run with status 124
    expect(i.status).toBe(124);
    expect(t.status).toBe(124);
    expect(i.stdout).toContain(LINUX_KIT_PROMPT);
    const lines = (s: string) => s.replace(/^\[ *\d+\.\d+\] /gm, "");
    expect(lines(t.stdout)).toBe(lines(i.stdout));
    // the boot's clock: the same to a millisecond at the prompt
    const last = (s: string) => Number([...s.matchAll(/^\[ *(\d+\.\d+)\]/gm)].at(-1)?.[1]);
    expect(Math.abs(last(t.stdout) - last(i.stdout))).toBeLessThan(0.001);
    const instret = (s: string) => /ringzero: (\d+) instructions/.exec(s)?.[1];
    expect(instret(t.stderr)).toBe(instret(i.stderr));
    const traces = /translator: blocks (\d+) \((\d+) WebAssembly\)/.exec(t.stderr);
    expect(Number(traces?.[2])).toBeGreaterThan(100);
  }, 600_000);

  it("under micro the child's translator runs WebAssembly traces too (RAM in a shared WebAssembly.Memory)", () => {
    const t = spawnSync(
      process.execPath,
      [
        cli,
        "run",
        "--hypervisor",
        "micro",
        "--kernel",
        kit.image,
        "--initrd",
        kit.initrd,
        "--deterministic",
        "--engine",
        "translator",
        "--max-instructions",
        "140000000",
        "--stats",
      ],
      { encoding: "latin1", input: "", timeout: 240_000 },
    );
    expect(t.status).toBe(124);
    expect(t.stdout).toContain(LINUX_KIT_PROMPT);
    const traces = /translator: blocks (\d+) \((\d+) WebAssembly\)/.exec(t.stderr);
    expect(Number(traces?.[2])).toBeGreaterThan(100);
    // every block the boot compiled went to WebAssembly (F/D blocks would stay JavaScript; the kit has none hot)
    expect(Number(traces?.[2])).toBeGreaterThan(0.9 * Number(traces?.[1]));
  }, 300_000);
});
