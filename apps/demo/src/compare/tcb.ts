// The trusted computing base, counted from the repository's sources at run
// time: the source lines that run with full privilege.
//
// Rule (README "ringzero compare"):
//  - The privileged package's own non-test sources all count: every file of
//    hypervisor-monolithic (mono: one process, every device back end inline)
//    or of hypervisor-micro (micro: the microkernel; the partitions are not
//    trusted by it).
//  - Plus, transitively, every file of another @ringzero package that those
//    files import at run time: a named import is followed to the file that
//    defines the name (through the package's src/index.ts re-exports),
//    `import type` and `type` specifiers are not (they do not run), and a
//    file's own relative imports count whole.
//  - @ringzero/cpu-core is left out on both sides: it is the hart, the
//    "hardware with virtualization assist" (silicon on a real machine), and
//    both hypervisors run the same one. Its size is reported beside.
//  - A line counts when it is not blank and not only a comment.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Hypervisor } from "./measures.js";

export const TCB_ROOT: Record<Hypervisor, string> = {
  monolithic: "@ringzero/hypervisor-monolithic",
  micro: "@ringzero/hypervisor-micro",
};
/** Stands in for the CPU hardware on both sides (see the rule above). */
export const HARDWARE_PACKAGE = "@ringzero/cpu-core";

export interface TcbCount {
  readonly lines: number;
  readonly files: number;
  /** Lines per package. */
  readonly packages: Record<string, number>;
}

/** Non-blank lines that are not only a comment. */
export function countLines(text: string): number {
  let n = 0;
  let inBlock = false;
  for (const raw of text.split("\n")) {
    let line = raw.trim();
    if (inBlock) {
      const end = line.indexOf("*/");
      if (end < 0) continue;
      inBlock = false;
      line = line.slice(end + 2).trim();
    }
    if (line.startsWith("/*")) {
      const end = line.indexOf("*/", 2);
      if (end < 0) {
        inBlock = true;
        continue;
      }
      line = line.slice(end + 2).trim();
    }
    if (line === "" || line.startsWith("//")) continue;
    n++;
  }
  return n;
}

/** The repository root (pnpm-workspace.yaml beside packages/), walking up from `from`; undefined outside the repo. */
export function findWorkspaceRoot(from: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml")) && existsSync(join(dir, "packages"))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The workspace's package directories by name, found by walking up from `from`; undefined outside the repo. */
export function findWorkspacePackages(from: string): Map<string, string> | undefined {
  const root = findWorkspaceRoot(from);
  if (!root) return undefined;
  const pk = join(root, "packages");
  const out = new Map<string, string>();
  for (const d of readdirSync(pk)) {
    const pj = join(pk, d, "package.json");
    if (!existsSync(pj)) continue;
    const name = (JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name;
    if (name && existsSync(join(pk, d, "src"))) out.set(name, join(pk, d));
  }
  return out;
}

const isTestFile = (p: string) =>
  /\.(test|spec|bench)\.ts$/.test(p) ||
  /\/(testing|testing-internal|testdata|__tests__)\//.test(p) ||
  p.endsWith(".d.ts");

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !isTestFile(p)) out.push(p);
  }
  return out;
}

interface Import {
  readonly from: string;
  /** Runtime names imported; "*" for a namespace or star import / re-export. */
  readonly names: readonly string[];
}

/** Runtime import and re-export statements of a TypeScript file (type-only ones dropped). */
export function runtimeImports(text: string): Import[] {
  const out: Import[] = [];
  const re =
    /^\s*(import|export)\s+(type\s+)?(\*(?:\s+as\s+\w+)?|\{[^}]*\}|\w+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+\w+))?)\s*from\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) {
    if (m[2]) continue; // import type / export type
    const clause = m[3];
    if (/^\*/.test(clause)) {
      out.push({ from: m[4], names: ["*"] });
      continue;
    }
    const brace = /\{([\s\S]*)\}/.exec(clause);
    const names = brace
      ? brace[1]
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "" && !s.startsWith("type "))
          .map((s) => s.split(/\s+as\s+/)[0].trim())
      : [];
    const def = clause
      .replace(/\{[^}]*\}/, "")
      .replace(/\*\s+as\s+\w+/, "")
      .replace(/,/g, "")
      .trim();
    if (def) names.push("default");
    if (names.length > 0) out.push({ from: m[4], names });
  }
  for (const m of text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) out.push({ from: m[1], names: ["*"] });
  // dynamic import("x"): the whole module may be used
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push({ from: m[1], names: ["*"] });
  return out;
}

function resolveRelative(fromFile: string, spec: string): string | undefined {
  const base = resolve(dirname(fromFile), spec);
  for (const c of [base.replace(/\.js$/, ".ts"), `${base}.ts`, join(base, "index.ts")]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return undefined;
}

/** The source file behind a package's export `.` or `./sub` (its "@ringzero/source" condition, else src/index.ts). */
function entryFile(dir: string, sub: string | undefined): string | undefined {
  const pj = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { exports?: Record<string, unknown> };
  const e = pj.exports?.[sub ? `.${sub}` : "."];
  const src = e && typeof e === "object" ? (e as Record<string, unknown>)["@ringzero/source"] : undefined;
  const file = typeof src === "string" ? join(dir, src) : sub ? undefined : join(dir, "src", "index.ts");
  return file && existsSync(file) ? file : undefined;
}

/** Maps each name a package's src/index.ts exports to the file that defines it. */
function exportMap(indexFile: string): { names: Map<string, string>; stars: string[] } {
  const text = readFileSync(indexFile, "utf8");
  const names = new Map<string, string>();
  const stars: string[] = [];
  const re = /^\s*export\s+(type\s+)?(\*|\{[^}]*\})\s*from\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) {
    if (m[1]) continue;
    const file = resolveRelative(indexFile, m[3]);
    if (!file) continue;
    if (m[2] === "*") stars.push(file);
    else
      for (const part of m[2].slice(1, -1).split(",")) {
        const s = part.trim();
        if (s === "" || s.startsWith("type ")) continue;
        const [, alias] = s.split(/\s+as\s+/);
        names.set((alias ?? s).trim(), file);
      }
  }
  return { names, stars };
}

/** Counts the TCB of one hypervisor (see the rule at the top of this file). */
export function countTcb(packages: ReadonlyMap<string, string>, root: string): TcbCount {
  const rootDir = packages.get(root);
  if (!rootDir) throw new Error(`${root} not found in the workspace`);
  const seen = new Set<string>();
  const owner = new Map<string, string>();
  const queue: [string, string][] = sourceFiles(join(rootDir, "src")).map((f) => [f, root]);
  const maps = new Map<string, ReturnType<typeof exportMap>>();
  while (queue.length > 0) {
    const [file, pkg] = queue.pop() as [string, string];
    if (seen.has(file)) continue;
    seen.add(file);
    owner.set(file, pkg);
    for (const imp of runtimeImports(readFileSync(file, "utf8"))) {
      if (imp.from.startsWith(".")) {
        const f = resolveRelative(file, imp.from);
        if (f && !isTestFile(f)) queue.push([f, pkg]);
        continue;
      }
      const m = /^(@ringzero\/[^/]+)(\/.+)?$/.exec(imp.from);
      const name = m?.[1];
      if (!name || name === HARDWARE_PACKAGE) continue; // npm libraries (zod) and the hart are not counted
      const dir = packages.get(name);
      if (!dir) continue;
      const index = entryFile(dir, m?.[2]);
      if (!index) continue;
      let map = maps.get(index);
      if (!map) {
        map = exportMap(index);
        maps.set(index, map);
      }
      const targets = new Set<string>();
      for (const n of imp.names) {
        const f = n === "*" ? undefined : map.names.get(n);
        if (f) targets.add(f);
        else {
          // a namespace import, or a name defined in index.ts itself or behind `export *`
          targets.add(index);
          for (const s of map.stars) targets.add(s);
        }
      }
      for (const t of targets) queue.push([t, name]);
    }
  }
  let lines = 0;
  const perPackage: Record<string, number> = {};
  for (const f of seen) {
    const n = countLines(readFileSync(f, "utf8"));
    lines += n;
    const p = owner.get(f) as string;
    perPackage[p] = (perPackage[p] ?? 0) + n;
  }
  return { lines, files: seen.size, packages: perPackage };
}

/** Lines of a whole package's non-test sources (for the hardware stand-in's size). */
export function countPackage(dir: string): number {
  return sourceFiles(join(dir, "src")).reduce((n, f) => n + countLines(readFileSync(f, "utf8")), 0);
}
