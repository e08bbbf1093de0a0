// Test helpers: run Debian's qemu-img / qemu-io (qemu-utils) as the reference.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

export const HAVE_QEMU = has("qemu-img") && has("qemu-io");
if (!HAVE_QEMU && process.env.CI) {
  throw new Error("qemu-img/qemu-io not found: CI must install qemu-utils (scripts/setup.sh)");
}

export function qemuImg(
  args: string[],
  opts: { allowFail?: boolean } = {},
): { stdout: string; stderr: string; status: number } {
  const r = spawnSync("qemu-img", args, { encoding: "utf8" });
  if (r.status !== 0 && !opts.allowFail)
    throw new Error(`qemu-img ${args.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

export function qemuIo(file: string, cmds: string[], format = "qcow2"): string {
  const args = ["-f", format];
  for (const c of cmds) args.push("-c", c);
  args.push(file);
  const out = execFileSync("qemu-io", args, { encoding: "utf8" });
  if (/error|fail|pattern verification/i.test(out)) throw new Error(`qemu-io ${cmds.join("; ")}: ${out}`);
  return out;
}

/** Runs `qemu-img check` and returns its parsed JSON plus exit status. */
export function qemuCheck(
  file: string,
  format = "qcow2",
  withText = false,
): { status: number; json: Record<string, unknown>; text: string } {
  const r = qemuImg(["check", "-f", format, "--output", "json", file], { allowFail: true });
  const text = withText ? qemuImg(["check", "-f", format, file], { allowFail: true }).stdout : "";
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = { parseError: r.stdout + r.stderr };
  }
  return { status: r.status, json, text };
}

export function tempDir(prefix = "rz-disk-"): { dir: string; path: (n: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Index of the first differing byte, or -1 when equal (vitest's toEqual is slow on MiB-sized arrays). */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  if (
    Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0
  )
    return -1;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
