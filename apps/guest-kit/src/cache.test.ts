import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { guestLinuxCacheDir, hashInputs, removeStaleTemps, withLock } from "./cache.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "rz-kitcache-"));
  dirs.push(d);
  return d;
};

describe("cache", () => {
  it("lives under RINGZERO_CACHE or ~/.cache/ringzero", () => {
    expect(guestLinuxCacheDir({ RINGZERO_CACHE: "/x/y" })).toBe("/x/y/guest-linux");
    expect(guestLinuxCacheDir({ HOME: "/h" })).toMatch(/\/\.cache\/ringzero\/guest-linux$/);
  });
  it("keys change with any input and not with key order", () => {
    const a = hashInputs({ fragment: "CONFIG_A=y", gcc: "12" });
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(hashInputs({ gcc: "12", fragment: "CONFIG_A=y" })).toBe(a);
    expect(hashInputs({ fragment: "CONFIG_A=n", gcc: "12" })).not.toBe(a);
    // the separator keeps "ab"+"c" apart from "a"+"bc"
    expect(hashInputs({ x: "ab", y: "c" })).not.toBe(hashInputs({ x: "a", y: "bc" }));
  });
  it("takes over a lock left by a dead process and releases it", async () => {
    const d = tmp();
    writeFileSync(join(d, "build.lock"), "999999999");
    const r = await withLock(d, async () => readFileSync(join(d, "build.lock"), "utf8"));
    expect(r).toBe(String(process.pid));
    expect(existsSync(join(d, "build.lock"))).toBe(false);
  });
  it("serializes two holders in one process", async () => {
    const d = tmp();
    const order: string[] = [];
    const slow = withLock(d, async () => {
      order.push("a-in");
      await new Promise((r) => setTimeout(r, 50));
      order.push("a-out");
    });
    await new Promise((r) => setTimeout(r, 10));
    let waited = false;
    const second = withLock(
      d,
      async () => order.push("b"),
      10_000,
      () => {
        waited = true;
      },
    );
    await Promise.all([slow, second]);
    expect(order).toEqual(["a-in", "a-out", "b"]);
    expect(waited).toBe(true);
  }, 10_000);
});

describe("removeStaleTemps", () => {
  it("removes only *.tmp-<pid> entries", () => {
    const d = tmp();
    mkdirSync(join(d, "abc.tmp-123"));
    writeFileSync(join(d, "abc.tmp-123", "f"), "x");
    mkdirSync(join(d, "abc"));
    writeFileSync(join(d, "keep.tmp-x"), "");
    removeStaleTemps(d);
    expect(["abc.tmp-123", "abc", "keep.tmp-x"].map((n) => existsSync(join(d, n)))).toEqual([false, true, true]);
  });
});
