#!/usr/bin/env node
// `pnpm web`: build the Linux guest kit if needed, build the page, serve it on
// 127.0.0.1 (cross-origin isolated) and print the URL.
import { dirname } from "node:path";
import { ensureLinuxKit } from "@ringzero/guest-kit";
import { buildPage } from "./build.js";
import { servePage } from "./serve.js";

const USAGE = "usage: pnpm web [--port N]   (default 8080; 0 takes any free port)";

function parsePort(argv: string[]): number | undefined {
  if (argv.length === 0) return 8080;
  if (argv.length === 2 && argv[0] === "--port" && /^\d{1,5}$/.test(argv[1]) && Number(argv[1]) < 65536) {
    return Number(argv[1]);
  }
  return undefined;
}

const port = parsePort(process.argv.slice(2).filter((a) => a !== "--"));
if (port === undefined) {
  console.error(USAGE);
  process.exit(2);
}
const kit = await ensureLinuxKit({ progress: (m) => console.error(m) });
const page = await buildPage();
for (const [f, n] of Object.entries(page.files)) console.error(`  ${f.padEnd(20)} ${(n / 1024).toFixed(1)} KB`);
try {
  const s = await servePage({ www: page.dir, kitDir: dirname(kit.image), port });
  console.log(`ringzero web: ${s.url}  (Ctrl-C stops)`);
  console.log(`  demo guest: ${s.url}?guest=hello   Linux guest kit: ${s.url}?guest=linux`);
  console.log(`  under the microkernel: ${s.url}?guest=linux&hypervisor=micro   compare: tick "measure", boot both`);
} catch (e) {
  const code = (e as NodeJS.ErrnoException).code;
  console.error(`ringzero web: cannot listen on 127.0.0.1:${port}: ${code ?? (e as Error).message}`);
  process.exit(1);
}
