// Checks that every package's main entry bundles for the browser: esbuild
// --bundle --platform=browser --format=esm --minify over src/index.ts (the
// "@ringzero/source" condition, so no build is needed), failing on any import
// of a Node built-in (node:fs, zlib, worker_threads, ...). Prints the minified
// and gzip size of each bundle. Node-only code belongs at a package's "./node"
// subpath, which this check leaves out. It also fails when a main entry pulls
// in zod's classic API (~440 KB minified): packages validate with `zod/mini`.
//
//   node scripts/check-browser.mjs            check and print the sizes
//   node scripts/check-browser.mjs --readme   also write them into each README
//                                             (between the browser-size markers)
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const writeReadme = process.argv.includes("--readme");
/**
 * Packages whose main entry is Node-only by design, with the reason (their
 * README says so too). They are still bundled and their sizes printed, but a
 * Node built-in there is not a failure.
 */
const NODE_ONLY = {};
/** Node-only globals a browser bundle must not touch (a built-in import is caught separately). */
const NODE_GLOBALS = /(?<![.\w$])(?:Buffer\.|process\.(?!env\b)\w+|setImmediate\()/g;
const START = "<!-- browser-size:start -->";
const END = "<!-- browser-size:end -->";

const pkgs = [];
for (const d of readdirSync(join(root, "packages")).sort()) {
  const dir = join(root, "packages", d);
  const file = join(dir, "package.json");
  if (!existsSync(file)) continue;
  const pj = JSON.parse(readFileSync(file, "utf8"));
  const entry = pj.exports?.["."]?.["@ringzero/source"];
  if (!pj.private && entry) pkgs.push({ dir, name: pj.name, entry: join(dir, entry) });
}

/** zod's classic API in a bundle's inputs (zod/mini, zod/v4/core and the locales are fine). */
const ZOD_CLASSIC = /node_modules\/zod\/(?:v4\/classic|v3)\/|node_modules\/zod\/(?:index|v4\/index)\.js$/;

/** Records who imports zod's classic API ("zod", "zod/v4", "zod/v3"). */
function zodClassic(found) {
  return {
    name: "zod-classic",
    setup(b) {
      b.onResolve({ filter: /^zod(?:\/v4|\/v3|\/v4\/classic)?$/ }, (args) => {
        found.push(`${args.path} (imported by ${relative(root, args.importer)})`);
        return undefined;
      });
    },
  };
}

/** Marks every Node built-in external and records who imported it. */
function nodeBuiltins(found) {
  return {
    name: "node-builtins",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (!isBuiltin(args.path)) return undefined;
        found.push(`${args.path} (imported by ${relative(root, args.importer)})`);
        return { path: args.path, external: true };
      });
    },
  };
}

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
let failures = 0;
const rows = [];
for (const p of pkgs) {
  const found = [];
  const zodImports = [];
  let code;
  try {
    const r = await build({
      entryPoints: [p.entry],
      bundle: true,
      platform: "browser",
      format: "esm",
      minify: true,
      write: false,
      logLevel: "silent",
      conditions: ["@ringzero/source"],
      metafile: true,
      plugins: [nodeBuiltins(found), zodClassic(zodImports)],
    });
    code = r.outputFiles[0].contents;
    const out = Object.values(r.metafile.outputs)[0];
    p.inputs = out.inputs;
    // What the bundle still imports: a Node built-in that tree shaking dropped is no problem.
    const left = new Set(out.imports.filter((i) => i.external).map((i) => i.path));
    for (let k = found.length - 1; k >= 0; k--) if (!left.has(found[k].split(" ")[0])) found.splice(k, 1);
  } catch (e) {
    failures++;
    console.error(`check-browser: ${p.name}: esbuild failed:\n${e.message}`);
    continue;
  }
  const globals = [...new Set(new TextDecoder().decode(code).match(NODE_GLOBALS) ?? [])];
  if (NODE_ONLY[p.name]) {
    console.log(`check-browser: ${p.name} is Node-only (${NODE_ONLY[p.name]})`);
  } else if (found.length || globals.length) {
    failures++;
    console.error(`check-browser: ${p.name}: its main entry needs Node:`);
    for (const f of [...new Set(found)]) console.error(`  ${f}`);
    for (const g of globals) console.error(`  global ${g}`);
  }
  if (Object.keys(p.inputs).some((f) => ZOD_CLASSIC.test(f))) {
    failures++;
    console.error(`check-browser: ${p.name}: its main entry pulls in zod's classic API (use zod/mini):`);
    for (const f of [...new Set(zodImports)]) console.error(`  ${f}`);
  }
  const gz = gzipSync(code, { level: 9 }).length;
  const zod = Object.entries(p.inputs)
    .filter(([f]) => f.includes("node_modules/zod/") || f.includes("/zod@"))
    .reduce((n, [, v]) => n + v.bytesInOutput, 0);
  rows.push({ name: p.name, min: code.length, gz, zod });
  p.zod = zod;
  p.min = code.length;
  p.gz = gz;
}

console.log("package                          minified      gzip   (of the minified: zod)");
for (const r of rows)
  console.log(`${r.name.padEnd(32)} ${kb(r.min).padStart(9)} ${kb(r.gz).padStart(9)}   ${kb(r.zod)}`);

if (writeReadme) {
  for (const p of pkgs) {
    if (p.min === undefined) continue;
    const file = join(p.dir, "README.md");
    if (!existsSync(file)) continue;
    const text = readFileSync(file, "utf8");
    const i = text.indexOf(START);
    const j = text.indexOf(END);
    if (i < 0 || j < i) continue;
    const body = `\n| entry | minified | minified + gzip | of the minified, zod |\n| --- | --- | --- | --- |\n| \`${p.name}\` | ${kb(p.min)} | ${kb(p.gz)} | ${kb(p.zod)} |\n`;
    writeFileSync(file, text.slice(0, i + START.length) + body + text.slice(j));
  }
}

if (failures) {
  console.error(`check-browser: ${failures} failure(s): main entries not browser-safe or with zod classic`);
  process.exit(1);
}
const nodeOnly = rows.filter((r) => NODE_ONLY[r.name]).length;
console.log(
  `check-browser: ${rows.length - nodeOnly} main entries bundle for the browser with no Node built-ins (${nodeOnly} Node-only by design)`,
);
