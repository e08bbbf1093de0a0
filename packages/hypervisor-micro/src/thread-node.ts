// Threads as node:worker_threads workers (thread.ts has the interfaces and the
// web Worker implementation). Node only: at the package's "./node" entry.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { HostThread, ThreadSelf, ThreadSpawner, Transferable } from "./thread.js";

type NodeTransfer = NonNullable<ConstructorParameters<typeof Worker>[1]>["transferList"];

class NodeHostThread implements HostThread {
  private ended = false;
  private exitCode = 1;
  constructor(private readonly worker: Worker) {
    worker.once("exit", (code) => {
      this.ended = true;
      this.exitCode = code;
    });
  }
  get alive(): boolean {
    return !this.ended;
  }
  /** The node:worker_threads Worker (for Node-specific needs: threadId, resourceLimits). */
  get nodeWorker(): Worker {
    return this.worker;
  }
  postMessage(message: unknown, transfer: readonly Transferable[] = []): void {
    if (!this.ended) this.worker.postMessage(message, transfer as NodeTransfer);
  }
  onMessage(listener: (message: unknown) => void): () => void {
    this.worker.on("message", listener);
    return () => this.worker.off("message", listener);
  }
  onError(listener: (error: Error) => void): void {
    this.worker.on("error", listener);
  }
  onExit(listener: (code: number) => void): void {
    if (this.ended) queueMicrotask(() => listener(this.exitCode));
    else this.worker.once("exit", listener);
  }
  async terminate(): Promise<void> {
    await this.worker.terminate().catch(() => 0);
  }
}

/** Threads as node:worker_threads workers; `execArgv` defaults to builtCodeExecArgv(). */
export function nodeThreads(options: { execArgv?: string[] } = {}): ThreadSpawner {
  return {
    spawn(module, data, transfer = []) {
      const w = new Worker(module, {
        workerData: data,
        transferList: transfer as NodeTransfer,
        execArgv: options.execArgv ?? builtCodeExecArgv(),
      });
      // Reported through onError/onExit; an unlistened "error" event must not crash the creator.
      w.on("error", () => {});
      return new NodeHostThread(w);
    },
  };
}

/** The current worker thread as a ThreadSelf (its workerData is the start data). */
export function nodeThreadSelf(): ThreadSelf {
  const port = parentPort;
  if (isMainThread || !port) throw new Error("nodeThreadSelf() runs in a worker thread");
  return {
    data: workerData,
    postMessage: (m, transfer = []) => port.postMessage(m, transfer as NodeTransfer),
    onMessage: (l) => {
      port.on("message", l);
    },
    exit: (code) => process.exit(code),
  };
}

const SOURCE_CONDITION = "@ringzero/source";

/**
 * Partition threads run built JavaScript: the process's flags without a
 * "--conditions" export condition that maps workspace packages to TypeScript
 * sources (test runners set one).
 */
export function builtCodeExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--conditions" || a === "-C") {
      if (argv[i + 1] === SOURCE_CONDITION) {
        i++;
        continue;
      }
    } else if (a === `--conditions=${SOURCE_CONDITION}` || a === `-C=${SOURCE_CONDITION}`) continue;
    out.push(a);
  }
  return out;
}
