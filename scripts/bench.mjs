// `pnpm bench [PACKAGE...] [-- ARGS]`: builds everything, then runs each
// workspace package's `bench` script one after another (never in parallel:
// benchmarks on a shared machine are noisy enough). ARGS go to every bench.
// Each bench prints its own figures and ratios against a reference (QEMU,
// qemu-img, native) measured in the same run.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const argv = process.argv.slice(2);
const dash = argv.indexOf("--");
const only = dash < 0 ? argv : argv.slice(0, dash);
const pass = dash < 0 ? [] : argv.slice(dash + 1);

const benches = [];
for (const group of ["packages", "apps"]) {
  for (const dir of readdirSync(group)) {
    const pj = join(group, dir, "package.json");
    if (!existsSync(pj)) continue;
    const p = JSON.parse(readFileSync(pj, "utf8"));
    if (p.scripts?.bench && (only.length === 0 || only.includes(dir) || only.includes(p.name))) {
      benches.push({ dir: join(group, dir), name: p.name });
    }
  }
}
if (benches.length === 0) {
  console.error(`bench: no package with a bench script matches ${only.join(" ")}`);
  process.exit(2);
}
const b = spawnSync("pnpm", ["exec", "turbo", "run", "build", "--output-logs=errors-only"], {
  stdio: ["ignore", 2, 2],
});
if (b.status !== 0) process.exit(b.status ?? 1);
let status = 0;
for (const { dir, name } of benches) {
  console.log(`\n=== ${name} ===`);
  const r = spawnSync("pnpm", ["run", "--silent", "bench", ...pass], { cwd: dir, stdio: "inherit" });
  if (r.status !== 0) status = 1;
}
process.exitCode = status;
