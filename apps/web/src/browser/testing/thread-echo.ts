// A web Worker for web.test.ts's check of hypervisor-micro's webThreads (the
// same script as the package's Node fixture, src/fixtures/echo-thread.mjs):
// echoes, answers through shared memory, exits, throws or rejects on request.
import { webThreadSelf } from "@ringzero/hypervisor-micro";

const self = await webThreadSelf();
const { shared, greeting } = self.data as { shared: SharedArrayBuffer; greeting: string };
const words = new Int32Array(shared);
self.onMessage((message) => {
  const m = message as { kind: string; text?: string; code?: number };
  if (m.kind === "echo") self.postMessage({ kind: "echo", text: `${greeting} ${m.text}` });
  else if (m.kind === "atomics") {
    // Blocks this Worker until the creator stores 1 and notifies (Atomics.wait: allowed in a worker).
    Atomics.wait(words, 0, 0);
    Atomics.store(words, 1, Atomics.load(words, 0) + 41);
    Atomics.notify(words, 1);
  } else if (m.kind === "exit") self.exit(m.code ?? 0);
  else if (m.kind === "throw") throw new Error("thrown on request");
  else if (m.kind === "reject") void Promise.reject(new Error("rejected on request"));
});
self.postMessage({ kind: "started" });
