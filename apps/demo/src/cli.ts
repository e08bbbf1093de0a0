#!/usr/bin/env node
import "./v8-flags.js";
import { writeSync } from "node:fs";
import { main } from "./main.js";

// Guest console bytes are buffered so a chatty guest does not cost a system
// call per character: flushed per line, at 4 KiB, and whenever the vCPU loop
// yields to the event loop (a prompt has no newline).
const buf = new Uint8Array(4096);
let len = 0;
let scheduled = false;
/** The reader of stdout went away (`ringzero … | head`): its output is dropped, as a tool killed by SIGPIPE would stop writing. */
let stdoutGone = false;
const flush = () => {
  let off = 0;
  while (off < len && !stdoutGone) {
    try {
      off += writeSync(1, buf, off, len - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EPIPE") stdoutGone = true;
      else if (code !== "EAGAIN") throw e; // (EAGAIN: a non-blocking pipe that is full)
    }
  }
  len = 0;
};
// the same for stderr (its writes are asynchronous: the error arrives as an event)
process.stderr.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
});
const flushSoon = () => {
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    flush();
  });
};
let status: number;
try {
  status = await main(process.argv.slice(2), {
    stdout: (bytes) => {
      for (const b of bytes) {
        buf[len++] = b;
        if (b === 10 || len === buf.length) flush();
      }
      if (len > 0) flushSoon();
    },
    stderr: (text) => {
      flush();
      process.stderr.write(text);
    },
    stdin: process.stdin,
  });
} finally {
  flush();
}
process.exitCode = status;
