#!/usr/bin/env node
// ringzero-img executable.
import "./v8-flags.js"; // first: V8 settings for this process (v8-flags.ts)
import { runCli } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  isTTY: process.stdout.isTTY === true,
});
