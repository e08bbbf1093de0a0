// Builds the static page into dist/www: esbuild bundles the page and the
// Worker for the browser (workspace packages from their TypeScript sources,
// so no package build is needed), next to index.html and the demo guest.
import { copyFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const appDir = resolve(import.meta.dirname, "..");
/** Where `buildPage()` writes by default (what `pnpm web` serves). */
export const DEFAULT_WWW = join(appDir, "dist", "www");
/** The embedded demo guest of `ringzero run`. */
export const HELLO_ELF = resolve(appDir, "..", "demo", "guests", "hello", "hello.elf");

export interface BuiltPage {
  readonly dir: string;
  /** Output files and their sizes in bytes. */
  readonly files: Record<string, number>;
}

export async function buildPage(outDir: string = DEFAULT_WWW): Promise<BuiltPage> {
  mkdirSync(join(outDir, "guests"), { recursive: true });
  const r = await build({
    entryPoints: {
      page: join(appDir, "src", "browser", "page.ts"),
      worker: join(appDir, "src", "browser", "worker.ts"),
      // The microkernel's threads, each a Worker of its own (worker.ts is the kernel).
      "micro-parent": join(appDir, "src", "browser", "micro-parent.ts"),
      "micro-vp": join(appDir, "src", "browser", "micro-vp.ts"),
      "micro-vsp": join(appDir, "src", "browser", "micro-vsp.ts"),
      "micro-paravisor": join(appDir, "src", "browser", "micro-paravisor.ts"),
    },
    outdir: outDir,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: true,
    conditions: ["@ringzero/source"],
    metafile: true,
    logLevel: "warning",
  });
  copyFileSync(join(appDir, "static", "index.html"), join(outDir, "index.html"));
  copyFileSync(HELLO_ELF, join(outDir, "guests", "hello.elf"));
  const files: Record<string, number> = {};
  for (const [path, o] of Object.entries(r.metafile.outputs)) {
    if (!path.endsWith(".map")) files[path.slice(path.lastIndexOf("/") + 1)] = o.bytes;
  }
  return { dir: outDir, files };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = await buildPage();
  for (const [f, n] of Object.entries(b.files)) console.log(`${f.padEnd(20)} ${(n / 1024).toFixed(1)} KB`);
}
