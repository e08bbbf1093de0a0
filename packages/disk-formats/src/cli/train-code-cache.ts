// Build step (package.json "build"): writes ringzero-img.cjs.cache, the V8 code cache bin.ts loads
// the CLI bundle with (code-cache.ts). V8 compiles functions lazily, when first called, and a cache
// made right after compiling holds the top level only; so this runs the commands a user runs most
// (convert between the formats, info, check, map, compare) on a small image in a temporary
// directory, in this process, and then saves the bytecode of every function compiled so far.
// `node dist/cli/train-code-cache.js`; not part of the published package.
import "./v8-flags.js"; // the same V8 flags as bin.ts: V8 refuses a cache made under other flags
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cachePath, loadCli } from "./code-cache.js";

const bundle = fileURLToPath(new URL("./ringzero-img.cjs", import.meta.url));
rmSync(cachePath(bundle), { force: true });
const { cli, script } = loadCli(bundle);

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "rz-img-cache-"));
try {
  // 8 MiB raw: runs of pseudo-random bytes, text and holes, so that the copy's data, zero and hole
  // paths all run.
  const raw = join(dir, "src.raw");
  const bytes = new Uint8Array(8 * MiB);
  let x = 0x5eed;
  for (let at = 0; at < bytes.length; at += MiB) {
    const kind = (at / MiB) % 3;
    for (let i = at; i < at + MiB && kind !== 2; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      bytes[i] = kind === 0 ? x >>> 24 : 0x61 + ((x >>> 24) % 26);
    }
  }
  writeFileSync(raw, bytes);
  const quiet = { stdout: () => {}, stderr: () => {}, isTTY: false };
  const run = async (...argv: string[]) => {
    const code = await cli.runCli(argv, quiet);
    if (code !== 0) throw new Error(`train-code-cache: ringzero-img ${argv.join(" ")} exited with ${code}`);
  };
  const q = join(dir, "a.qcow2");
  await run("convert", "-f", "raw", "-O", "qcow2", raw, q);
  for (const fmt of ["vhdx", "vmdk", "vdi", "vpc", "raw"]) {
    const out = join(dir, `b.${fmt}`);
    await run("convert", "-f", "qcow2", "-O", fmt, q, out);
    await run("info", out);
  }
  await run("convert", "-f", "raw", "-O", "vdi", raw, join(dir, "c.vdi"));
  await run("convert", "-f", "vhdx", "-O", "qcow2", join(dir, "b.vhdx"), join(dir, "d.qcow2"));
  await run("check", q);
  await run("map", q);
  await run("compare", "-f", "raw", "-F", "qcow2", raw, q);
  await run("create", "-q", "-f", "qcow2", join(dir, "e.qcow2"), "64M");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// A write cut short is refused by V8 (its length, or with the flags of v8-flags.ts its checksum).
writeFileSync(cachePath(bundle), script.createCachedData());
