// The README's demo command on this checkout: scripts/demo.sh must install,
// build and boot the embedded guest to its last line with status 0.
// (The test command, scripts/test.sh, is what runs this very test.)
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");

describe("README commands", () => {
  it("names exactly the demo and the test script", () => {
    const readme = readFileSync(resolve(root, "README.md"), "utf8");
    const commands = [...readme.matchAll(/^bash (scripts\/\S+)/gm)].map((m) => m[1]);
    expect(commands).toEqual(["scripts/demo.sh", "scripts/test.sh"]);
  });

  it("scripts/demo.sh boots the embedded guest and exits 0", () => {
    const r = spawnSync("bash", ["scripts/demo.sh"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, RINGZERO_SKIP_APT: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 300_000,
    });
    expect(r.stdout).toContain("ringzero demo guest");
    expect(r.stdout).toMatch(/\nbye\n/);
    expect(r.status).toBe(0);
  });
});
