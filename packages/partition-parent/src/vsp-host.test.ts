// What a VSP successor's immediate start relies on (vsp-host.ts onExit): a
// worker terminated with file writes queued on libuv's thread pool has none
// left by its "exit" event — Node cancels the queued ones and waits for the
// running ones as it ends the worker's environment — so a successor that
// opens the same file then sees no late write from the dead worker.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "rz-vsp-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A worker writing 1 MiB chunks, 16 at a time on the thread pool, round and round a 64 MiB file. */
function writer(file: string): Worker {
  return new Worker(
    `const { open } = require("node:fs/promises");
     const { parentPort } = require("node:worker_threads");
     (async () => {
       const fh = await open(${JSON.stringify(file)}, "w+");
       const chunk = new Uint8Array(1 << 20);
       parentPort.postMessage("writing");
       for (let i = 0; ; i++) {
         chunk.fill(i & 0xff);
         await Promise.all(Array.from({ length: 16 }, (_, k) => fh.write(chunk, 0, chunk.length, ((i * 16 + k) % 64) << 20)));
       }
     })();`,
    { eval: true },
  );
}

describe("a killed VSP worker's file I/O", () => {
  it("is over by its exit event: the file does not change afterwards (16 writes in flight at the kill)", async () => {
    for (let run = 0; run < 3; run++) {
      const file = join(dir, `f${run}`);
      const w = writer(file);
      await new Promise((r) => w.once("message", r));
      await new Promise((r) => setTimeout(r, 20 + 20 * run));
      const exited = new Promise((r) => w.once("exit", r));
      void w.terminate();
      await exited;
      const atExit = readFileSync(file);
      await new Promise((r) => setTimeout(r, 300));
      expect(atExit.length).toBeGreaterThan(0);
      expect(Buffer.compare(atExit, readFileSync(file)), `run ${run}`).toBe(0);
    }
  });
});
