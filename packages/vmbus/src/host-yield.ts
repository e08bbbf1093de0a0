// Yielding to the host's event loop, portably (Node, browsers, workers): a
// macrotask, so timers, I/O and messages run before the callback. Node's
// setImmediate when the host has it (no clamp, runs right after I/O: the fast
// path), else a MessageChannel message (no 4 ms clamp as nested setTimeout
// has), else setTimeout. Detected once, at run time. The same few lines are
// in @ringzero/platform and @ringzero/virtio (this package depends on neither).

type Task = () => void;

function pick(): (task: Task) => void {
  const g = globalThis as { setImmediate?: (task: Task) => unknown };
  if (typeof g.setImmediate === "function") {
    const setImmediate = g.setImmediate;
    return (task) => void setImmediate(task);
  }
  if (typeof MessageChannel === "function") {
    const queue: Task[] = [];
    // The DOM's MessagePort (onmessage); Node's typings describe its own.
    const channel = new MessageChannel() as unknown as {
      port1: { onmessage: (() => void) | null };
      port2: { postMessage(message: null): void };
    };
    channel.port1.onmessage = () => queue.shift()?.();
    return (task) => {
      queue.push(task);
      channel.port2.postMessage(null);
    };
  }
  return (task) => void setTimeout(task, 0);
}

let schedule: ((task: Task) => void) | undefined;

/** Runs `task` in a later macrotask of the host's event loop. */
export function scheduleMacrotask(task: Task): void {
  schedule ??= pick();
  schedule(task);
}

/** Resolves in a later macrotask: `await yieldToHost()` lets timers, I/O and messages run. */
export function yieldToHost(): Promise<void> {
  return new Promise((resolve) => scheduleMacrotask(resolve));
}
