#!/usr/bin/env node
import { writeSync } from "node:fs";
import { main } from "./main.js";

// Guest console bytes are buffered and flushed per line (or 4 KiB) so a chatty
// guest does not cost a system call per character.
const buf = new Uint8Array(4096);
let len = 0;
const flush = () => {
  let off = 0;
  while (off < len) off += writeSync(1, buf, off, len - off);
  len = 0;
};
let status: number;
try {
  status = await main(process.argv.slice(2), {
    stdout: (bytes) => {
      for (const b of bytes) {
        buf[len++] = b;
        if (b === 10 || len === buf.length) flush();
      }
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
