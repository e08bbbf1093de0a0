// Worker thread of WorkerCompressor: compresses what the main thread posts
// with node:zlib, the parameters of the inline (pako) path: qcow2 clusters
// raw deflate with QEMU's 4 KiB window and memory level 9 (qcow2_compress),
// VMDK grains zlib streams at the defaults. node:zlib is zlib itself, about
// 6x pako here, and gave the same bytes as pako on the bench's clusters
// (worker-compressor.test.ts compares them).

import { parentPort } from "node:worker_threads";
import { deflateRawSync, deflateSync } from "node:zlib";

interface Job {
  id: number;
  kind: "qcow2" | "zlib";
  data: Uint8Array;
}

const port = parentPort;
if (port)
  port.on("message", (job: Job) => {
    try {
      const z = job.kind === "zlib" ? deflateSync(job.data) : deflateRawSync(job.data, { windowBits: 12, memLevel: 9 });
      // A copy of its own (a Buffer may share its memory with others), moved back to the main thread.
      const out = new Uint8Array(z);
      port.postMessage({ id: job.id, out }, [out.buffer]);
    } catch (e) {
      port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
