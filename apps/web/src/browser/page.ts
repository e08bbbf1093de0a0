// The page: xterm.js as the console of a VM that runs in a Worker. Keys typed
// in the terminal go to the guest's UART (Vm.sendInput); its output is written
// to the terminal. `?guest=hello|linux` boots at once (the browser test uses
// it); `?disk=URL` fills in the disk URL.
import "@xterm/xterm/css/xterm.css";
import type { VmStats } from "@ringzero/hypervisor-monolithic";
import { Terminal } from "@xterm/xterm";
import { type FromWorker, type GuestName, isGuestName, type ToWorker } from "./protocol.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusEl = $<HTMLSpanElement>("status");
const guestEl = $<HTMLSelectElement>("guest");
const bootEl = $<HTMLButtonElement>("boot");
const memoryEl = $<HTMLSelectElement>("memory");
const statsEl = $<HTMLPreElement>("stats");
const diskEl = $<HTMLInputElement>("disk");
const diskUrlEl = $<HTMLInputElement>("disk-url");
let lastStats: VmStats | undefined;

// convertEol: LF also returns the carriage, as a host tty does (onlcr) for guests that print bare LFs.
const term = new Terminal({ convertEol: true, cursorBlink: true, scrollback: 5000, fontSize: 14 });
term.open($<HTMLDivElement>("terminal"));
const encoder = new TextEncoder();
let worker: Worker | undefined;

function setStatus(text: string): void {
  statusEl.textContent = text;
}

/** The stats panel: MIPS and instructions, run/idle time, exits by kind, SBI calls. */
function showStats(st: VmStats): void {
  lastStats = st;
  const exits = Object.entries(st.exits)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `  ${k.padEnd(10)} ${n}`);
  statsEl.textContent = [
    `MIPS         ${st.mips.toFixed(1)}`,
    `instructions ${st.instructions}`,
    `run          ${st.runSeconds.toFixed(2)} s`,
    `idle (WFI)   ${st.idleSeconds.toFixed(2)} s`,
    `SBI calls    ${st.sbiCalls}`,
    "exits",
    ...exits,
  ].join("\n");
}

function send(w: Worker, m: ToWorker, transfer: Transferable[] = []): void {
  w.postMessage(m, transfer);
}

term.onData((data) => {
  if (!worker) return;
  const bytes = encoder.encode(data);
  send(worker, { type: "input", bytes }, [bytes.buffer]);
});

function boot(guest: GuestName): void {
  worker?.terminate();
  term.reset();
  lastStats = undefined;
  statsEl.textContent = "";
  const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker = w;
  w.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "out") term.write(m.bytes);
    else if (m.type === "status") setStatus(m.text);
    else if (m.type === "stats") showStats(m.stats);
    else if (m.type === "exit") setStatus(`powered off: ${m.reason} (status ${m.status}), ${m.mips.toFixed(1)} MIPS`);
    else setStatus(`error: ${m.message}`);
  };
  w.onerror = (e) => setStatus(`worker error: ${e.message}`);
  const file = diskEl.files?.[0];
  const url = diskUrlEl.value.trim();
  // A picked file wins over a URL; a relative URL is against the page.
  const disk = file ? { name: file.name, file } : url ? { url: new URL(url, location.href).href } : undefined;
  send(w, { type: "boot", guest, memory: Number(memoryEl.value) << 20, append: "console=ttyS0", disk });
  term.focus();
}

bootEl.onclick = () => {
  if (isGuestName(guestEl.value)) boot(guestEl.value);
};

if (!crossOriginIsolated) {
  setStatus("not cross-origin isolated: serve the page with COOP same-origin and COEP require-corp (pnpm web)");
}
const query = new URLSearchParams(location.search);
diskUrlEl.value = query.get("disk") ?? "";
const auto = query.get("guest");
if (isGuestName(auto)) {
  guestEl.value = auto;
  boot(auto);
}

/** For scripts and the browser test: the terminal's screen and scrollback as text. */
(globalThis as { ringzeroWeb?: unknown }).ringzeroWeb = {
  text(): string {
    const b = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  },
  status: () => statusEl.textContent ?? "",
  stats: () => lastStats,
};
