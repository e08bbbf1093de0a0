// Checks that every public workspace package is publishable: publint on the
// package, then `pnpm pack` each one, install all tarballs into an empty
// temporary project with npm, and import every package from there.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const pkgs = [];
for (const group of ["packages", "apps"]) {
  const base = join(root, group);
  if (!existsSync(base)) continue;
  for (const d of readdirSync(base)) {
    const file = join(base, d, "package.json");
    if (!existsSync(file)) continue;
    const pj = JSON.parse(readFileSync(file, "utf8"));
    if (!pj.private) pkgs.push({ dir: join(base, d), name: pj.name });
  }
}
const work = mkdtempSync(join(tmpdir(), "rz-publish-"));
let failures = 0;
function problem(message) {
  failures++;
  console.error(`publish check: ${message}`);
}
const zodRange = JSON.parse(readFileSync(join(pkgs[0].dir, "package.json"), "utf8")).dependencies?.zod;
try {
  const tarballs = [];
  for (const p of pkgs) {
    try {
      execFileSync("pnpm", ["exec", "publint", "--strict", p.dir], { cwd: root, stdio: "pipe" });
    } catch (e) {
      failures++;
      console.error(`publint ${p.name}:\n${e.stdout}${e.stderr}`);
    }
    const out = execFileSync("pnpm", ["pack", "--pack-destination", work], { cwd: p.dir, encoding: "utf8" });
    const tgz = out.trim().split("\n").pop().trim();
    const tarball = tgz.startsWith("/") ? tgz : join(work, tgz);
    tarballs.push(tarball);
    // Metadata npm users expect, and a tarball with only what a user runs.
    const pj = JSON.parse(readFileSync(join(p.dir, "package.json"), "utf8"));
    for (const field of ["license", "repository", "homepage", "bugs", "keywords"]) {
      if (!pj[field]) problem(`${p.name}: package.json has no "${field}"`);
    }
    if (pj.repository && !pj.repository.directory) problem(`${p.name}: repository has no "directory"`);
    if (pj.dependencies?.zod && pj.dependencies.zod !== zodRange) {
      problem(`${p.name}: zod ${pj.dependencies.zod}, other packages ${zodRange}`);
    }
    for (const bin of Object.values(pj.bin ?? {})) {
      if (bin.startsWith("./")) problem(`${p.name}: bin ${bin} is rewritten by npm publish (write it without "./")`);
    }
    const files = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" }).split("\n");
    if (!files.includes("package/LICENSE")) problem(`${p.name}: no LICENSE in the tarball`);
    for (const f of files) {
      if (/\.d\.ts\.map$|\.test\.|test-linux|testing-internal|\/bench\/main\./.test(f))
        problem(`${p.name}: ships ${f}`);
    }
    for (const f of files.filter((f) => f.endsWith(".js.map"))) {
      const map = JSON.parse(execFileSync("tar", ["xzOf", tarball, f], { encoding: "utf8" }));
      if (!map.sourcesContent) problem(`${p.name}: ${f} has no sourcesContent`);
      break;
    }
  }
  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "rz-consumer", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs], {
    cwd: app,
    stdio: "inherit",
  });
  for (const p of pkgs) {
    const probe = `const m = await import(${JSON.stringify(p.name)}); if (Object.keys(m).length === 0) throw new Error("no exports");`;
    try {
      execFileSync("node", ["--input-type=module", "-e", probe], { cwd: app, stdio: "pipe" });
      console.log(`publish check: ${p.name} packs, installs and imports`);
    } catch (e) {
      failures++;
      console.error(`import ${p.name} from its tarball failed:\n${e.stderr}`);
    }
  }
  // The commands, as npm installed them: --version answers with the package's version.
  for (const p of pkgs) {
    const pj = JSON.parse(readFileSync(join(p.dir, "package.json"), "utf8"));
    for (const bin of Object.keys(pj.bin ?? {})) {
      try {
        const out = execFileSync(join(app, "node_modules", ".bin", bin), ["--version"], { encoding: "utf8" });
        if (out !== `${bin} version ${pj.version}\n`) problem(`${bin} --version printed ${JSON.stringify(out)}`);
        else console.log(`publish check: ${bin} --version runs from the installed tarball`);
      } catch (e) {
        problem(`${bin} --version from the installed tarball failed:\n${e.stderr ?? e.message}`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failures > 0) {
  console.error(`publish check: ${failures} problem(s)`);
  process.exit(1);
}
