// Enforces the dependency rules of the target architecture (§2): which
// @ringzero package may depend on which, read from every package.json, and
// that nothing deep-imports another package's internals.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");

interface Pkg {
  dir: string;
  name: string;
  short: string;
  deps: string[];
  exportsKeys: string[];
}

function loadPackages(): Pkg[] {
  const out: Pkg[] = [];
  for (const group of ["packages", "apps"]) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base)) {
      const file = join(base, d, "package.json");
      if (!existsSync(file)) continue;
      const pj = JSON.parse(readFileSync(file, "utf8"));
      const all = { ...pj.dependencies, ...pj.peerDependencies, ...pj.optionalDependencies };
      out.push({
        dir: join(base, d),
        name: pj.name,
        short: String(pj.name).replace("@ringzero/", ""),
        deps: Object.keys(all)
          .filter((n) => n.startsWith("@ringzero/"))
          .map((n) => n.replace("@ringzero/", "")),
        exportsKeys: Object.keys(pj.exports ?? {}),
      });
    }
  }
  return out;
}

/** Allowed @ringzero dependencies per package (ARCHITECTURE.md §2). Unlisted packages may not depend on the hypervisors. */
const ALLOWED: Record<string, readonly string[]> = {
  "cpu-core": [],
  platform: ["cpu-core"],
  "hypervisor-micro": ["cpu-core", "platform"],
  "hypervisor-monolithic": ["cpu-core", "platform", "virtio", "disk-formats", "net-stack"],
  vmbus: [],
  virtio: [],
  "disk-formats": [],
  "net-stack": [],
  "partition-child": ["cpu-core", "platform", "hypervisor-micro", "vmbus", "virtio"],
  "partition-parent": ["cpu-core", "platform", "hypervisor-micro", "vmbus", "virtio", "disk-formats", "net-stack"],
};
const HYPERVISORS = ["hypervisor-micro", "hypervisor-monolithic", "partition-child", "partition-parent"];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(e)) out.push(p);
  }
  return out;
}

describe("architecture §2 dependency rules", () => {
  const pkgs = loadPackages();

  it("finds the workspace packages", () => {
    expect(pkgs.map((p) => p.short)).toContain("cpu-core");
  });

  for (const p of pkgs) {
    it(`${p.name} depends only on what §2 allows`, () => {
      const allowed = ALLOWED[p.short];
      if (allowed) {
        expect(p.deps.filter((d) => !allowed.includes(d))).toEqual([]);
      } else if (!p.dir.includes(`${join(root, "apps")}`)) {
        // A library not named in §2: it must stay a library for anyone.
        expect(p.deps.filter((d) => HYPERVISORS.includes(d))).toEqual([]);
      }
    });

    it(`${p.name} imports other packages only through their public exports`, () => {
      const bad: string[] = [];
      for (const f of sourceFiles(join(p.dir, "src"))) {
        const text = readFileSync(f, "utf8");
        for (const m of text.matchAll(/from\s+["'](@ringzero\/[^"']+)["']/g)) {
          const spec = m[1];
          const [, name, ...rest] = spec.split("/");
          const target = pkgs.find((q) => q.short === name);
          const sub = rest.length ? `./${rest.join("/")}` : ".";
          if (!target || !target.exportsKeys.includes(sub)) bad.push(`${f}: ${spec}`);
          if (target && !p.deps.includes(target.short) && target.name !== p.name) {
            const pj = JSON.parse(readFileSync(join(p.dir, "package.json"), "utf8"));
            if (!pj.devDependencies?.[target.name]) bad.push(`${f}: ${spec} is not a declared dependency`);
          }
        }
      }
      expect(bad).toEqual([]);
    });
  }
});
