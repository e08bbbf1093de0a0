// Compression across cores: a pool of worker threads (node:worker_threads)
// running io/compress-worker.js. Node-only ("./node" entry).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Os from "node:os";
import { fileURLToPath } from "node:url";
import type * as WorkerThreads from "node:worker_threads";
import type { CompressKind, Compressor } from "../compress.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import * as z from "../zod.js";

// node:worker_threads and node:os are loaded when a WorkerCompressor is made, not when this module
// is: ringzero-img imports it for `convert -c` only, and loading them took about 4 ms of every start.
const load = createRequire(import.meta.url);

const WorkerCompressorOptions = z.strictObject({
  /** Worker threads (default: the cores Node sees, at most 8). */
  threads: z.optional(z.int().check(z.minimum(1), z.maximum(64))),
  /** The worker script (default: compress-worker.js beside this module, or beside the CLI's bundle). */
  workerUrl: z.optional(z.instanceof(URL)),
});
export type WorkerCompressorOptions = z.infer<typeof WorkerCompressorOptions>;

const Reply = z.object({
  id: z.int(),
  out: z.optional(z.instanceof(Uint8Array)),
  error: z.optional(z.string()),
});

interface Pending {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
  worker: number;
}

/**
 * A Compressor over worker threads: each request goes to the worker with the
 * fewest in flight; its input is copied when posted. The workers use
 * node:zlib with the inline compressor's parameters (see compress-worker.ts).
 * close() ends the workers; a worker that dies fails its requests
 * (`UNSUPPORTED`).
 */
export class WorkerCompressor implements Compressor {
  private readonly workers: WorkerThreads.Worker[] = [];
  private readonly inFlight: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  constructor(options: WorkerCompressorOptions = {}) {
    const o = WorkerCompressorOptions.parse(options);
    // One per core: on 2 busy cores, `convert -c` of 256 MiB took 28 s inline (pako), 5.0 s with
    // one worker, 3.1 s with two, 5.0 s with four (medians of 3).
    const { Worker } = load("node:worker_threads") as typeof WorkerThreads;
    const threads = o.threads ?? Math.min(8, (load("node:os") as typeof Os).availableParallelism());
    const url = o.workerUrl ?? WorkerCompressor.defaultWorkerUrl();
    for (let i = 0; i < threads; i++) {
      const w = new Worker(url);
      w.on("message", (m: unknown) => this.settle(m));
      w.on("error", (e) => this.fail(i, e));
      w.on("exit", (code) => {
        if (!this.closed) this.fail(i, new Error(`compression worker exited (${code})`));
      });
      this.workers.push(w);
      this.inFlight.push(0);
    }
  }

  /** compress-worker.js beside this module (the library) or beside the bundled CLI. */
  static defaultWorkerUrl(): URL {
    return new URL("./compress-worker.js", import.meta.url);
  }

  /** Whether the default worker script exists (it does not when running from TypeScript sources). */
  static available(url: URL = WorkerCompressor.defaultWorkerUrl()): boolean {
    return url.protocol === "file:" && existsSync(fileURLToPath(url));
  }

  compress(kind: CompressKind, data: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new DiskError(DiskErrorCode.CLOSED, { format: "compress" }));
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.inFlight[i]! < this.inFlight[w]!) w = i;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      this.inFlight[w]!++;
      // A copy of just these bytes, moved to the worker (posting a view would clone its whole buffer).
      const copy = data.slice();
      this.workers[w]!.postMessage({ id, kind, data: copy }, [copy.buffer]);
    });
  }

  private settle(m: unknown): void {
    const r = Reply.safeParse(m);
    if (!r.success) return;
    const p = this.pending.get(r.data.id);
    if (!p) return;
    this.pending.delete(r.data.id);
    this.inFlight[p.worker]!--;
    if (r.data.out) p.resolve(r.data.out);
    else
      p.reject(
        new DiskError(DiskErrorCode.UNSUPPORTED, { format: "compress" }, r.data.error ?? "no output from worker"),
      );
  }

  private fail(worker: number, e: Error): void {
    for (const [id, p] of this.pending)
      if (p.worker === worker) {
        this.pending.delete(id);
        p.reject(new DiskError(DiskErrorCode.UNSUPPORTED, { format: "compress" }, e.message));
      }
    this.inFlight[worker] = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) p.reject(new DiskError(DiskErrorCode.CLOSED, { format: "compress" }));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
