// Test helper (not part of the package's API): runs the real `ringzero`
// process on the Linux guest kit and types one shell command per prompt.
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ensureLinuxKit, LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "@ringzero/guest-kit";

export const skipLinux = process.env.RINGZERO_SKIP_LINUX === "1" && process.env.CI !== "true";
const root = resolve(import.meta.dirname, "../../..");
const cli = resolve(import.meta.dirname, "../dist/cli.js");

export interface Session {
  status: number | null;
  /** Console output with terminal escapes and CRs removed. */
  out: string;
  promptMs: number;
}

/** Builds (or finds) the kit and the CLI; call from beforeAll with a long timeout. */
export async function prepareLinux(): Promise<{ image: string; initrd: string }> {
  const kit = await ensureLinuxKit({ progress: (m) => /objects built$/.test(m) || console.log(m) });
  const b = spawnSync(
    "pnpm",
    ["exec", "turbo", "run", "build", "--filter=@ringzero/demo...", "--output-logs=errors-only"],
    { cwd: root, encoding: "utf8" },
  );
  if (b.status !== 0) throw new Error(`building the ringzero CLI failed:\n${b.stdout}\n${b.stderr}`);
  return kit;
}

/**
 * Runs `ringzero run ARGS`, typing each command after the next shell prompt.
 * A command may be a function of the console so far and the VM's process
 * id: it runs (and is awaited) at that prompt and
 * returns the line to type.
 */
export function drive(
  args: string[],
  commands: (string | ((out: string, pid: number) => string | Promise<string>))[],
  timeoutMs = 240_000,
): Promise<Session> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let raw = "";
    let err = "";
    let sent = 0;
    let busy = false;
    let promptMs = -1;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`timed out after ${timeoutMs} ms; console tail:\n${raw.slice(-2000)}\nstderr:\n${err}`));
    }, timeoutMs);
    const clean = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
    const pump = async () => {
      if (busy) return;
      const at = raw.indexOf(LINUX_KIT_MARKER);
      const prompts = at < 0 ? 0 : raw.slice(at).split(LINUX_KIT_PROMPT).length - 1;
      if (prompts > 0 && promptMs < 0) promptMs = performance.now() - t0;
      if (prompts > sent && sent < commands.length) {
        const c = commands[sent++];
        busy = true;
        let line: string;
        try {
          line = typeof c === "string" ? c : await c(clean(raw), child.pid as number);
        } catch (e) {
          clearTimeout(timer);
          child.kill("SIGKILL");
          fail(e);
          return;
        }
        busy = false;
        child.stdin.write(`${line}\n`);
        void pump();
      }
    };
    child.stdout.on("data", (b: Buffer) => {
      raw += b.toString("latin1");
      void pump();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.stdin.on("error", () => {});
    child.on("close", (status) => {
      clearTimeout(timer);
      done({ status, out: clean(raw) + (err ? `\n[stderr]\n${err}` : ""), promptMs });
    });
  });
}
