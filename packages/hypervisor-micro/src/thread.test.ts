import { describe, expect, it } from "vitest";
import type { HostThread } from "./thread.js";
import { nodeThreads } from "./thread-node.js";

const FIXTURE = new URL("./fixtures/echo-thread.mjs", import.meta.url);

function next(t: HostThread, kind: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const off = t.onMessage((m) => {
      if ((m as { kind?: string }).kind !== kind) return;
      off();
      resolve(m as Record<string, unknown>);
    });
  });
}

function exited(t: HostThread): Promise<number> {
  return new Promise((r) => t.onExit(r));
}

describe("nodeThreads", () => {
  it("starts a module with its start data, exchanges messages and shared memory, ends with its code", async () => {
    const shared = new SharedArrayBuffer(8);
    const t = nodeThreads({ execArgv: [] }).spawn(FIXTURE, { shared, greeting: "hello" });
    await next(t, "started");
    const reply = next(t, "echo");
    t.postMessage({ kind: "echo", text: "world" });
    expect((await reply).text).toBe("hello world");
    // The thread blocks in Atomics.wait until we store and notify; it answers through the same buffer.
    const words = new Int32Array(shared);
    t.postMessage({ kind: "atomics" });
    await new Promise((r) => setTimeout(r, 50));
    expect(Atomics.load(words, 1)).toBe(0);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    const deadline = Date.now() + 5000;
    while (Atomics.load(words, 1) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(Atomics.load(words, 1)).toBe(42);
    const code = exited(t);
    t.postMessage({ kind: "exit", code: 7 });
    expect(await code).toBe(7);
    expect(t.alive).toBe(false);
    expect(await exited(t)).toBe(7); // a listener added after the end still hears the code
  });

  it("reports an uncaught error, then the exit", async () => {
    const t = nodeThreads({ execArgv: [] }).spawn(FIXTURE, { shared: new SharedArrayBuffer(8), greeting: "" });
    await next(t, "started");
    const errors: Error[] = [];
    t.onError((e) => errors.push(e));
    const code = exited(t);
    t.postMessage({ kind: "throw" });
    expect(await code).toBe(1);
    expect(errors.map((e) => e.message)).toEqual(["thrown on request"]);
  });

  it("terminate() ends a thread wherever it is", async () => {
    const t = nodeThreads({ execArgv: [] }).spawn(FIXTURE, { shared: new SharedArrayBuffer(8), greeting: "" });
    await next(t, "started");
    t.postMessage({ kind: "atomics" }); // blocked in Atomics.wait, never notified
    const code = exited(t);
    await t.terminate();
    expect(await code).toBe(1);
    expect(t.alive).toBe(false);
  });
});
