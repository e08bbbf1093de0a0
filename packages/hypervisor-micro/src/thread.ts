// Threads for the microkernel and its partitions, portably: a thread is a
// module started from a URL with some start data (structured-cloneable, may
// hold SharedArrayBuffers and transferred MessagePorts), and a message port to
// its creator. Everything else the partitions share goes through
// SharedArrayBuffer and Atomics, which Node's worker_threads and the web's
// dedicated Workers both have (HTML §10.2 "Dedicated workers"; Atomics.wait
// is allowed in a worker, not on a page's main thread).
//
// This file is browser-safe: `webThreads` and `webThreadSelf` use the web's
// Worker. The Node implementation (node:worker_threads) is thread-node.ts, at
// the package's "./node" entry.

/** A started thread, as its creator holds it. */
export interface HostThread {
  postMessage(message: unknown, transfer?: readonly Transferable[]): void;
  /** Adds a listener for the thread's messages; returns its removal. */
  onMessage(listener: (message: unknown) => void): () => void;
  /** An uncaught error in the thread (the thread then ends: exit code 1). */
  onError(listener: (error: Error) => void): void;
  /** The thread ended (its own exit, an uncaught error, or terminate()); called once. */
  onExit(listener: (code: number) => void): void;
  /** Ends the thread wherever it is; resolves once it has ended. */
  terminate(): Promise<void>;
  /** False once it has ended. */
  readonly alive: boolean;
}

/** Starts threads: `module` runs with `data` as its start data (see ThreadSelf). */
export interface ThreadSpawner {
  spawn(module: URL | string, data: unknown, transfer?: readonly Transferable[]): HostThread;
}

/** The running thread's view of itself. */
export interface ThreadSelf {
  /** The start data its creator passed. */
  readonly data: unknown;
  postMessage(message: unknown, transfer?: readonly Transferable[]): void;
  /** Messages from the creator; the ones that came before the first listener are delivered to it. */
  onMessage(listener: (message: unknown) => void): void;
  /** Ends this thread with `code` (messages posted before are delivered first). */
  exit(code: number): void;
}

/**
 * The start data of a VP thread started before its VP exists (MicrokernelOptions.spareVp): it
 * warms the hart up (cpu-core's once-per-thread warm-up, 90-150 ms) and waits for its first
 * message, `{ vpInit: VpThreadInit }`, while the parent partition starts (vp-thread.ts).
 */
export const SPARE_VP_START = { spareVp: 1 } as const;

/** What may be transferred with a message (the structural union of both hosts' transferables). */
export type Transferable = ArrayBuffer | object;

// ---- web Workers -----------------------------------------------------------

/** The parts of the web's Worker used here (the DOM typings are not in this package's lib). */
interface WebWorker {
  postMessage(message: unknown, transfer: readonly unknown[]): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  onerror: ((e: { message?: string; preventDefault?(): void }) => void) | null;
  terminate(): void;
}
type WebWorkerCtor = new (url: string | URL, options: { type: "module"; name?: string }) => WebWorker;

/** The parts of a worker's global scope used here. */
interface WorkerScope {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  addEventListener(type: string, listener: (e: { data?: unknown; reason?: unknown }) => void): void;
  removeEventListener(type: string, listener: (e: { data?: unknown }) => void): void;
  close(): void;
}

/** The envelope of the start message and of the exit notice (never a message of the caller's). */
const INIT = "__ringzeroThreadInit";
const EXIT = "__ringzeroThreadExit";
const ERROR = "__ringzeroThreadError";

function envelope(m: unknown, key: string): unknown {
  return typeof m === "object" && m !== null && key in m ? (m as Record<string, unknown>)[key] : undefined;
}

class WebHostThread implements HostThread {
  private readonly messageListeners = new Set<(m: unknown) => void>();
  private readonly errorListeners: ((e: Error) => void)[] = [];
  private readonly exitListeners: ((code: number) => void)[] = [];
  private ended = false;
  private exitCode = 1;

  constructor(private readonly worker: WebWorker) {
    worker.onmessage = (e) => {
      const code = envelope(e.data, EXIT);
      if (typeof code === "number") {
        this.end(code);
        return;
      }
      const error = envelope(e.data, ERROR);
      if (typeof error === "string") {
        this.fail(error);
        return;
      }
      for (const l of this.messageListeners) l(e.data);
    };
    // An uncaught exception, or the module failed to load: Node's worker ends then (exit code 1); so does this one.
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.fail(e.message ?? "the worker failed");
    };
  }

  get alive(): boolean {
    return !this.ended;
  }

  private fail(message: string): void {
    if (this.ended) return;
    const err = new Error(message);
    for (const l of this.errorListeners) l(err);
    this.end(1);
  }

  private end(code: number): void {
    if (this.ended) return;
    this.ended = true;
    this.exitCode = code;
    this.worker.terminate();
    for (const l of this.exitListeners.splice(0)) l(code);
  }

  postMessage(message: unknown, transfer: readonly Transferable[] = []): void {
    if (!this.ended) this.worker.postMessage(message, transfer);
  }

  onMessage(listener: (message: unknown) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  onError(listener: (error: Error) => void): void {
    this.errorListeners.push(listener);
  }

  onExit(listener: (code: number) => void): void {
    if (this.ended) queueMicrotask(() => listener(this.exitCode));
    else this.exitListeners.push(listener);
  }

  async terminate(): Promise<void> {
    // Node reports 1 for a terminated worker; so does this.
    this.end(1);
  }
}

/**
 * Threads as web Workers (module workers; nested workers where the host
 * thread is itself a worker). The start data is the first message; the
 * thread takes it with `webThreadSelf()`.
 */
export function webThreads(): ThreadSpawner {
  const Ctor = (globalThis as { Worker?: WebWorkerCtor }).Worker;
  return {
    spawn(module, data, transfer = []) {
      if (typeof Ctor !== "function") throw new Error("this host has no Worker: use nodeThreads() from ./node in Node");
      const w = new Ctor(module, { type: "module" });
      w.postMessage({ [INIT]: { data } }, transfer);
      return new WebHostThread(w);
    },
  };
}

/**
 * The current web Worker as a ThreadSelf: resolves with the start data its
 * creator (webThreads) sent. An unhandled rejection ends the thread, as in
 * Node's workers.
 */
export function webThreadSelf(): Promise<ThreadSelf> {
  const scope = globalThis as unknown as WorkerScope;
  const early: unknown[] = [];
  let listener: ((m: unknown) => void) | undefined;
  return new Promise((resolve) => {
    let started = false;
    const exit = (code: number) => {
      scope.postMessage({ [EXIT]: code });
      scope.close();
    };
    scope.addEventListener("unhandledrejection", (e) => {
      const r = e.reason as { stack?: string; message?: string } | undefined;
      scope.postMessage({ [ERROR]: String(r?.stack ?? r?.message ?? r) });
      scope.close();
    });
    scope.addEventListener("message", (e) => {
      if (!started) {
        const init = envelope(e.data, INIT) as { data: unknown } | undefined;
        if (!init) return;
        started = true;
        resolve({
          data: init.data,
          postMessage: (m, transfer = []) => scope.postMessage(m, transfer),
          onMessage: (l) => {
            listener = l;
            for (const m of early.splice(0)) l(m);
          },
          exit,
        });
        return;
      }
      if (listener) listener(e.data);
      else early.push(e.data);
    });
  });
}
