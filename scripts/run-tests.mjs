// Runs vitest over every project and prints one plain closing line
// ("tests: N passed, N failed, N skipped") that CI can read.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "rz-vitest-"));
const out = join(dir, "results.json");
const args = [
  "vitest",
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${out}`,
  ...process.argv.slice(2),
];
// Under CI the opt-in interop tests that need the Linux guest kit run too
// (the kit is built and cached by apps/guest-kit; the demo's tests need it anyway).
const env = { ...process.env };
if (process.env.CI === "true" && !env.RINGZERO_9P_LINUX_KIT) {
  const kit = spawnSync(process.execPath, ["apps/guest-kit/dist/cli.js", "--print-path"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (kit.status !== 0) {
    console.error("run-tests: building the Linux guest kit failed");
    process.exit(1);
  }
  env.RINGZERO_9P_LINUX_KIT = kit.stdout.trim();
}
const r = spawnSync("pnpm", ["exec", ...args], { stdio: "inherit", env });
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const j = JSON.parse(readFileSync(out, "utf8"));
  passed = j.numPassedTests;
  failed = j.numFailedTests;
  skipped = j.numPendingTests + j.numTodoTests;
} catch {
  failed = Math.max(failed, 1);
}
rmSync(dir, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(r.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
