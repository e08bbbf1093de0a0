// The creator's side of web.test.ts's webThreads check, run on the page: it
// spawns thread-echo.js and reports what it saw (the test asserts on it).
import { type HostThread, webThreads } from "@ringzero/hypervisor-micro";

const ECHO = new URL("./thread-echo.js", import.meta.url);

function next(t: HostThread, kind: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const off = t.onMessage((m) => {
      if ((m as { kind?: string }).kind !== kind) return;
      off();
      resolve(m as Record<string, unknown>);
    });
  });
}

const exited = (t: HostThread) => new Promise<number>((r) => t.onExit(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function started(data: unknown): Promise<HostThread> {
  const t = webThreads().spawn(ECHO, data);
  await next(t, "started");
  return t;
}

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const shared = new SharedArrayBuffer(8);
  const t = await started({ shared, greeting: "hello" });
  const reply = next(t, "echo");
  t.postMessage({ kind: "echo", text: "world" });
  out.echo = (await reply).text;
  const words = new Int32Array(shared);
  t.postMessage({ kind: "atomics" });
  await sleep(50);
  out.beforeNotify = Atomics.load(words, 1);
  Atomics.store(words, 0, 1);
  Atomics.notify(words, 0);
  for (let i = 0; i < 200 && Atomics.load(words, 1) === 0; i++) await sleep(10);
  out.afterNotify = Atomics.load(words, 1);
  const code = exited(t);
  t.postMessage({ kind: "exit", code: 7 });
  out.exitCode = await code;
  out.aliveAfterExit = t.alive;
  out.lateExitCode = await exited(t); // a listener added after the end still hears the code

  for (const kind of ["throw", "reject"] as const) {
    const w = await started({ shared: new SharedArrayBuffer(8), greeting: "" });
    const errors: string[] = [];
    w.onError((e) => errors.push(e.message));
    const c = exited(w);
    w.postMessage({ kind });
    out[`${kind}Exit`] = await c;
    out[`${kind}Errors`] = errors;
  }

  const blocked = await started({ shared: new SharedArrayBuffer(8), greeting: "" });
  blocked.postMessage({ kind: "atomics" }); // waits forever: only terminate() ends it
  const c = exited(blocked);
  await blocked.terminate();
  out.terminateExit = await c;
  return out;
}
