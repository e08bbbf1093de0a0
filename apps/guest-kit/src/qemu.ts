// Boots the kit on QEMU's virt board (the reference the ringzero hypervisors
// are measured against) and drives its console through stdin.
import { spawn } from "node:child_process";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";
import { LINUX_KIT_APPEND, LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "./initramfs.js";
import { requireTools } from "./run.js";

export interface QemuBootOptions {
  readonly image: string;
  readonly initrd: string;
  /** Shell commands typed one at a time, each after a prompt; the last may power off. */
  readonly commands: readonly string[];
  readonly memory?: string;
  readonly append?: string;
  /** Whole-run limit (default 120 s). */
  readonly timeoutMs?: number;
}

export interface QemuBootResult {
  /** Everything the console printed. */
  readonly output: string;
  /** Wall time from spawning QEMU to the first shell prompt. */
  readonly promptMs: number;
  readonly exitCode: number | null;
}

export function qemuArgs(o: Pick<QemuBootOptions, "image" | "initrd" | "memory" | "append">): string[] {
  return [
    "-M",
    "virt",
    "-m",
    o.memory ?? "256M",
    "-bios",
    "default",
    "-nographic",
    "-kernel",
    o.image,
    "-initrd",
    o.initrd,
    "-append",
    o.append ?? LINUX_KIT_APPEND,
  ];
}

/** Boots with `-bios default` (OpenSBI), waits for the marker and prompt, types the commands, waits for exit. */
export function bootOnQemu(o: QemuBootOptions): Promise<QemuBootResult> {
  requireTools(["qemu-system-riscv64"]);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("qemu-system-riscv64", qemuArgs(o), { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    let promptMs = -1;
    let sent = 0;
    let markerAt = -1;
    const fail = (why: string) => {
      child.kill("SIGKILL");
      reject(
        new GuestKitError(
          GuestKitErrorCode.COMMAND_FAILED,
          { cmd: "qemu-system-riscv64", why },
          `console output (tail):\n${output.slice(-3000)}`,
        ),
      );
    };
    const timer = setTimeout(() => fail(`timeout after ${o.timeoutMs ?? 120_000} ms`), o.timeoutMs ?? 120_000);
    const prompts = () => (markerAt < 0 ? 0 : output.slice(markerAt).split(LINUX_KIT_PROMPT).length - 1);
    child.stdout.on("data", (b: Buffer) => {
      output += b.toString("latin1");
      if (markerAt < 0) markerAt = output.indexOf(LINUX_KIT_MARKER);
      const n = prompts();
      if (n > 0 && promptMs < 0) promptMs = performance.now() - started;
      // One command per prompt: the n-th prompt means the (n-1)-th command finished.
      if (n > sent && sent < o.commands.length) {
        child.stdin.write(`${o.commands[sent]}\n`);
        sent++;
      }
    });
    child.stderr.on("data", (b: Buffer) => {
      output += b.toString("latin1");
    });
    child.stdin.on("error", () => {}); // QEMU exiting while we type
    child.on("error", (e) => fail(e.message));
    child.on("close", (code) => {
      clearTimeout(timer);
      if (promptMs < 0) fail(`exited (status ${code}) before the shell prompt`);
      else resolve({ output, promptMs, exitCode: code });
    });
  });
}
