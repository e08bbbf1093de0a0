// The VM's thread: fetches the guest from the page's origin and runs it under
// the hypervisor the page chose. mono: a hypervisor-monolithic Vm built from
// bytes (its browser-safe main entry) runs right here. micro: this thread is
// the microkernel (partition-parent's createMicroVm), and the parent
// partition, the child's VP and each VSP are Workers of their own
// (micro-parent.js, micro-vp.js, micro-vsp.js, the paravisor micro-paravisor.js).
// Console output goes to the page, keyboard input comes back.
import { loadElf } from "@ringzero/cpu-core";
import { openImage, RemoteHost } from "@ringzero/disk-formats";
import { webThreads } from "@ringzero/hypervisor-micro";
import { Vm, type VmStats } from "@ringzero/hypervisor-monolithic";
import { createMicroVm, type MicroVm, type MicroVmStats } from "@ringzero/partition-parent";
import { arrayGuestMemory, VirtioBlk, VirtioMmioTransport } from "@ringzero/virtio";
import { type FromWorker, GUESTS, type PanelStats, type ToWorker } from "./protocol.js";

interface WorkerScope {
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
}
const scope = self as unknown as WorkerScope;

const STATS_MS = 1000;
let vm: { sendInput(b: Uint8Array): void } | undefined;
/** The VM's stats as the panel shows them, now (set once a VM runs). */
let statsNow: (() => Promise<PanelStats>) | undefined;
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
function consoleOut(b: Uint8Array): void {
  for (const x of b) out.push(x);
  if (!flushQueued) {
    flushQueued = true;
    setTimeout(flush, 0);
  }
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** Vm.stats() as the panel shows it: every exit but the end of a run slice ("budget") counts. */
export function monoPanel(st: VmStats): PanelStats {
  const exits: Record<string, number> = {};
  let total = 0;
  for (const [k, n] of Object.entries(st.exits)) {
    if (n > 0) exits[k] = n;
    if (k !== "budget") total += n;
  }
  return {
    hypervisor: "mono",
    mips: st.mips,
    instructions: st.instructions,
    runSeconds: st.runSeconds,
    idleSeconds: st.idleSeconds,
    exitsTotal: total,
    exits,
    more: { "SBI calls": st.sbiCalls },
  };
}

/** MicroVm.stats() as the panel shows it: the child VP's exits by where they were handled. */
export function microPanel(st: MicroVmStats): PanelStats {
  const vp = st.vp;
  const n = (k: string) => vp[k] ?? 0;
  const exits = {
    microkernel: n("exitsMicrokernel"),
    paravisor: n("exitsParavisor"),
    intercept: n("exitsIntercept"),
    wfi: n("exitsWfi"),
  };
  const runSeconds = n("runMicros") / 1e6;
  const instructions = n("instructions");
  return {
    hypervisor: "micro",
    mips: runSeconds > 0 ? instructions / runSeconds / 1e6 : 0,
    instructions,
    runSeconds,
    idleSeconds: n("idleMicros") / 1e6,
    exitsTotal: exits.microkernel + exits.paravisor + exits.intercept + exits.wfi,
    exits,
    more: {
      "intercept wait ms": Math.round(n("interceptWaitMicros") / 1000),
      hypercalls: Object.values(st.kernel.hypercalls).reduce((a, b) => a + b, 0),
      partitions: st.kernel.partitions,
    },
  };
}

async function bootMono(m: Extract<ToWorker, { type: "boot" }>, kernel: Uint8Array, initrd?: Uint8Array) {
  const v = new Vm({ memory: m.memory, sbi: true, consoleOut });
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
  statsNow = async () => monoPanel(v.stats());
  for (const b of pending.splice(0)) v.sendInput(b);
  scope.postMessage({ type: "status", text: `running ${m.guest} (mono)` });
  const ticker = setInterval(() => scope.postMessage({ type: "stats", stats: monoPanel(v.stats()) }), STATS_MS);
  const { status, reason } = await v.start();
  clearInterval(ticker);
  flush();
  const st = monoPanel(v.stats());
  scope.postMessage({ type: "stats", stats: st });
  scope.postMessage({ type: "exit", status, reason, mips: st.mips });
}

async function bootMicro(m: Extract<ToWorker, { type: "boot" }>, kernel: Uint8Array, initrd?: Uint8Array) {
  const here = (f: string) => new URL(f, import.meta.url);
  // The drive's path is the URL, or the picked file's name (its Blob goes to the storage VSP's Worker).
  const disk = m.disk ? ("url" in m.disk ? { path: m.disk.url } : { path: m.disk.name, file: m.disk.file }) : undefined;
  const v: MicroVm = await createMicroVm(
    {
      kernel,
      initrd,
      memory: m.memory,
      append: m.guest === "linux" ? m.append : undefined,
      drives: disk ? [{ path: disk.path }] : [],
    },
    {
      consoleOut,
      paravisor: here("micro-paravisor.js").href,
      host: { threads: webThreads(), parentModule: here("micro-parent.js"), vpModule: here("micro-vp.js") },
      files: disk?.file ? { [disk.path]: disk.file } : undefined,
    },
  );
  if (disk) scope.postMessage({ type: "status", text: `disk ${disk.path}: served by the storage VSP` });
  vm = v;
  statsNow = async () => microPanel(await v.stats());
  for (const b of pending.splice(0)) v.sendInput(b);
  scope.postMessage({ type: "status", text: `running ${m.guest} (micro)` });
  let busy = false;
  const ticker = setInterval(() => {
    if (busy) return;
    busy = true;
    void v
      .stats()
      .then((st) => scope.postMessage({ type: "stats", stats: microPanel(st) }))
      .finally(() => {
        busy = false;
      });
  }, STATS_MS);
  const { status, reason } = await v.start();
  clearInterval(ticker);
  flush();
  const st = microPanel(await v.stats());
  scope.postMessage({ type: "stats", stats: st });
  scope.postMessage({ type: "exit", status, reason, mips: st.mips });
}

async function boot(m: Extract<ToWorker, { type: "boot" }>): Promise<void> {
  const g = GUESTS[m.guest];
  scope.postMessage({ type: "status", text: `fetching ${m.guest}` });
  const kernel = await fetchBytes(new URL(g.kernel, import.meta.url).href);
  const initrd = "initrd" in g ? await fetchBytes(new URL(g.initrd, import.meta.url).href) : undefined;
  if (m.hypervisor === "micro") await bootMicro(m, kernel, initrd);
  else await bootMono(m, kernel, initrd);
}

let booted = false;
scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "input") {
    if (vm) vm.sendInput(m.bytes);
    else pending.push(m.bytes);
  } else if (m.type === "stats") {
    void statsNow?.().then((stats) => scope.postMessage({ type: "stats", stats, asked: true }));
  } else if (m.type === "boot") {
    if (booted) return; // one VM per worker: the page makes a new worker to boot again
    booted = true;
    boot(m).catch((err: unknown) =>
      scope.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) }),
    );
  }
};
