// The VM's thread: fetches the guest from the page's origin, builds a
// hypervisor-monolithic Vm from bytes (its browser-safe main entry) and runs
// it; console output goes to the page, keyboard input comes back.
import { loadElf } from "@ringzero/cpu-core";
import { openImage, RemoteHost } from "@ringzero/disk-formats";
import { Vm } from "@ringzero/hypervisor-monolithic";
import { arrayGuestMemory, VirtioBlk, VirtioMmioTransport } from "@ringzero/virtio";
import { type FromWorker, GUESTS, type ToWorker } from "./protocol.js";

interface WorkerScope {
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
}
const scope = self as unknown as WorkerScope;

const STATS_MS = 1000;
let vm: Vm | undefined;
const pending: Uint8Array[] = [];

// The UART transmits byte by byte: one message per byte would cost the page a
// message and a terminal write each, so output is batched and sent when the
// vCPU loop next yields to the event loop (every 20 ms of guest time, or idle).
let out: number[] = [];
let flushQueued = false;
function flush(): void {
  flushQueued = false;
  if (out.length === 0) return;
  const bytes = Uint8Array.from(out);
  out = [];
  scope.postMessage({ type: "out", bytes }, [bytes.buffer]);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function boot(m: Extract<ToWorker, { type: "boot" }>): Promise<void> {
  const g = GUESTS[m.guest];
  scope.postMessage({ type: "status", text: `fetching ${m.guest}` });
  const kernel = await fetchBytes(new URL(g.kernel, import.meta.url).href);
  const initrd = "initrd" in g ? await fetchBytes(new URL(g.initrd, import.meta.url).href) : undefined;
  const v = new Vm({
    memory: m.memory,
    sbi: true,
    consoleOut: (b) => {
      for (const x of b) out.push(x);
      if (!flushQueued) {
        flushQueued = true;
        setTimeout(flush, 0);
      }
    },
  });
  if (m.disk) {
    // Read lazily (File slices or Range requests); writes go to an in-memory overlay (the file is never written).
    // A URL is its own name for RemoteHost (HttpRangeStore: aligned 64 KiB Range requests, cached).
    const name = "url" in m.disk ? m.disk.url : m.disk.name;
    // fetch passed bound: disk-formats calls its default (globalThis.fetch) unbound, which a
    // browser rejects ("Illegal invocation"; Node does not care).
    const host = new RemoteHost("url" in m.disk ? {} : { [name]: m.disk.file }, {
      fetch: (input, init) => fetch(input, init),
    });
    const image = await openImage(host, name, { readOnly: false });
    v.onStop(() => image.close());
    const memory = arrayGuestMemory(v.bus.ramBase, new Uint8Array(v.bus.buffer, 0, v.bus.ramSize));
    const t = new VirtioMmioTransport({ device: new VirtioBlk({ backend: image, serial: "ringzero-vda" }), memory });
    t.attachIrq(v.attachVirtio(7, t)); // before loadLinux, so the device tree lists it; slot 7 as createVm's first drive
    scope.postMessage({ type: "status", text: `disk ${name}: ${image.format}, ${image.size()} bytes` });
  }
  if (m.guest === "linux") v.loadLinux({ kernel, initrd, append: m.append });
  else v.boot(Number(loadElf(v.bus, kernel).entry), 0);
  vm = v;
  for (const b of pending.splice(0)) v.sendInput(b);
  scope.postMessage({ type: "status", text: `running ${m.guest}` });
  const ticker = setInterval(() => scope.postMessage({ type: "stats", stats: v.stats() }), STATS_MS);
  const { status, reason } = await v.start();
  clearInterval(ticker);
  flush();
  scope.postMessage({ type: "stats", stats: v.stats() });
  scope.postMessage({ type: "exit", status, reason, mips: v.stats().mips });
}

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "input") {
    if (vm) vm.sendInput(m.bytes);
    else pending.push(m.bytes);
  } else if (m.type === "boot") {
    if (vm) return; // one VM per worker: the page makes a new worker to boot again
    boot(m).catch((err: unknown) =>
      scope.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) }),
    );
  }
};
