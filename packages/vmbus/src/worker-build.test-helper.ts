// Node 20 cannot run .ts in a Worker: tests transpile this package's sources
// (type stripping only, per file, with the TypeScript compiler the workspace
// already has) into a temporary directory and start workers from there.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

let built: string | undefined;

/** Transpiles src/**.ts (tests excluded) once per process; returns the output directory. */
export function buildForWorkers(): string {
  if (built) return built;
  const src = fileURLToPath(new URL(".", import.meta.url));
  const out = mkdtempSync(join(tmpdir(), "vmbus-workers-"));
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && !e.name.endsWith(".test-helper.ts")) {
        const js = ts.transpileModule(readFileSync(p, "utf8"), {
          compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
          fileName: p,
        }).outputText;
        const dest = join(out, relative(src, p)).replace(/\.ts$/, ".js");
        mkdirSync(join(dest, ".."), { recursive: true });
        writeFileSync(dest, js);
      }
    }
  };
  walk(src);
  writeFileSync(join(out, "package.json"), '{"type":"module"}\n');
  built = out;
  return out;
}
