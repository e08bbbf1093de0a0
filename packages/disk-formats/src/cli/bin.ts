#!/usr/bin/env node
// ringzero-img executable.
import "./v8-flags.js"; // first: V8 settings for this process (v8-flags.ts)
import { runCli } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  // A getter: process.stdout is built on first use, and for a pipe that loads node's net and stream
  // modules (about 8 ms of CPU at start-up); only `-p` asks, and convert prints nothing otherwise.
  get isTTY() {
    return process.stdout.isTTY === true;
  },
});
