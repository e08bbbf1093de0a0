#!/usr/bin/env node
// ringzero-img executable: loads the CLI bundle beside it (ringzero-img.cjs, built from main.ts)
// with V8's code cache when there is a usable one (code-cache.ts). Built as CommonJS (bin.cjs): a
// CommonJS main module starts without node's ES module loader (which also loads node:fs/promises
// and the readline and stream modules it pulls in), about 4 ms of a start.
import "./v8-flags.js"; // first: V8 settings for this process (v8-flags.ts), before the bundle is compiled
import { realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCli } from "./code-cache.js";

// The bundle beside the real file: under `node --preserve-symlinks-main` this script's own path is
// npm's link in node_modules/.bin.
const here = dirname(realpathSync(fileURLToPath(import.meta.url)));
const { cli, cache } = loadCli(join(here, "ringzero-img.cjs"));
// For tests and the bench: whether the cache was used (accepted), refused by V8, or missing.
if (process.env.RINGZERO_IMG_REPORT_CODE_CACHE === "1") process.stderr.write(`ringzero-img: code cache ${cache}\n`);

// A reader that goes away (`ringzero-img map x | head`): what is left to print is dropped, and the
// command (a conversion, say) finishes, instead of an unhandled EPIPE stack trace.
const closed = { stdout: false, stderr: false };
const writer = (name: "stdout" | "stderr") => (s: string) => {
  if (closed[name]) return;
  const stream = process[name];
  if (stream.listenerCount("error") === 0) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      closed[name] = true;
    });
  }
  stream.write(s);
};

// No top-level await: the bundle of this file is CommonJS.
void cli
  .runCli(process.argv.slice(2), {
    stdout: writer("stdout"),
    stderr: writer("stderr"),
    // A getter: process.stdout is built on first use, and for a pipe that loads node's net and stream
    // modules (about 8 ms of CPU at start-up); only `-p` asks, and convert prints nothing otherwise.
    get isTTY() {
      return process.stdout.isTTY === true;
    },
  })
  .then((code) => {
    process.exitCode = code;
  });
