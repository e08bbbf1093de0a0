// Cache layout outside the repository and a cross-process build lock.
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";

/** `$RINGZERO_CACHE/guest-linux`, default `~/.cache/ringzero/guest-linux`. */
export function guestLinuxCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.RINGZERO_CACHE && env.RINGZERO_CACHE !== "" ? env.RINGZERO_CACHE : join(homedir(), ".cache", "ringzero");
  return join(base, "guest-linux");
}

/** A short stable hash of named inputs (order-independent in the record's keys). */
export function hashInputs(inputs: Readonly<Record<string, string>>): string {
  const h = createHash("sha256");
  for (const k of Object.keys(inputs).sort()) h.update(`${k}\0${inputs[k]}\0`);
  return h.digest("hex").slice(0, 16);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Holds `<dir>/build.lock` while `fn` runs. A lock left by a dead process is
 * taken over; a live holder is waited for (a test and the CLI may race).
 */
export async function withLock<T>(
  dir: string,
  fn: () => Promise<T>,
  waitMs = 90 * 60_000,
  onWait?: (pid: number) => void,
): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "build.lock");
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let pid = Number.NaN;
      try {
        pid = Number.parseInt(readFileSync(path, "utf8"), 10);
      } catch {
        continue; // removed between open and read
      }
      if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new GuestKitError(GuestKitErrorCode.LOCK_TIMEOUT, { path, pid });
      if (!told) onWait?.(pid);
      told = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

/** Removes `*.tmp-<pid>` leftovers of interrupted builds in `dir` (call while holding the lock). */
export function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const n of readdirSync(dir)) {
    if (/\.tmp-\d+$/.test(n)) rmSync(join(dir, n), { recursive: true, force: true });
  }
}
