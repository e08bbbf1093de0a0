// The page: xterm.js as the console of a VM that runs in a Worker. Keys typed
// in the terminal go to the guest's UART (Vm.sendInput); its output is written
// to the terminal. `?guest=hello|linux` boots at once (the browser test uses
// it); `?hypervisor=mono|micro` picks the hypervisor, `?disk=URL` fills in the
// disk URL, `?measure=1` ticks "measure": at the Linux prompt the page takes
// its figures (compare.ts) and, once both hypervisors ran, draws the chart.
import "@xterm/xterm/css/xterm.css";
import { Terminal } from "@xterm/xterm";
import { COLORS, compareSvg, DD_COMMAND, type Measured, parseDd, type Results } from "./compare.js";
import {
  type FromWorker,
  type GuestName,
  type HypervisorName,
  isGuestName,
  isHypervisorName,
  type PanelStats,
  type ToWorker,
} from "./protocol.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusEl = $<HTMLSpanElement>("status");
const guestEl = $<HTMLSelectElement>("guest");
const bootEl = $<HTMLButtonElement>("boot");
const memoryEl = $<HTMLSelectElement>("memory");
const statsEl = $<HTMLPreElement>("stats");
const diskEl = $<HTMLInputElement>("disk");
const diskUrlEl = $<HTMLInputElement>("disk-url");
const hypervisorEl = $<HTMLSelectElement>("hypervisor");
const measureEl = $<HTMLInputElement>("measure");
const compareEl = $<HTMLDivElement>("compare");
let lastStats: PanelStats | undefined;

// convertEol: LF also returns the carriage, as a host tty does (onlcr) for guests that print bare LFs.
const term = new Terminal({ convertEol: true, cursorBlink: true, scrollback: 5000, fontSize: 14 });
term.open($<HTMLDivElement>("terminal"));
const encoder = new TextEncoder();
let worker: Worker | undefined;

function setStatus(text: string): void {
  statusEl.textContent = text;
}

/** The stats panel: MIPS and instructions, run/idle time, exits by kind, and the hypervisor's own figures. */
function showStats(st: PanelStats, asked = false): void {
  lastStats = st;
  const exits = Object.entries(st.exits)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `  ${k.padEnd(11)} ${n}`);
  const more = Object.entries(st.more).map(([k, n]) => `${k.padEnd(12)} ${n}`);
  statsEl.textContent = [
    `MIPS         ${st.mips.toFixed(1)}`,
    `hypervisor   ${st.hypervisor}`,
    `instructions ${st.instructions}`,
    `run          ${st.runSeconds.toFixed(2)} s`,
    `idle (WFI)   ${st.idleSeconds.toFixed(2)} s`,
    ...more,
    `exits        ${st.exitsTotal}`,
    ...exits,
  ].join("\n");
  if (asked) statsWaiters.shift()?.(st);
}

// ---- compare: figures of the Linux kit under each hypervisor -----------------

/** The kit's shell prompt and the line its init prints before it (apps/guest-kit LINUX_KIT_PROMPT, _MARKER). */
const PROMPT = "rz# ";
const MARKER = "ringzero-guest: init done";
const RESULTS_KEY = "ringzero-compare";
const statsWaiters: ((st: PanelStats) => void)[] = [];
let results: Results = loadResults();
/** The run being measured: its output since the last step, and what it found so far. */
let measuring:
  | {
      hv: HypervisorName;
      t0: number;
      text: string;
      phase: "boot" | "stats" | "dd";
      disk: boolean;
      found: Partial<Measured>;
    }
  | undefined;
const decoder = new TextDecoder();

function loadResults(): Results {
  try {
    const r = JSON.parse(sessionStorage.getItem(RESULTS_KEY) ?? "{}") as Results;
    return typeof r === "object" && r !== null ? r : {};
  } catch {
    return {};
  }
}

function showCompare(): void {
  const have = (Object.keys(results) as HypervisorName[]).filter((k) => results[k]);
  const names = have.map((h) => `<b style="color:${COLORS[h]}">${h}</b>`).join(", ");
  const svg = compareSvg(results);
  if (svg)
    compareEl.innerHTML = `${svg}<p>measured: ${names} (boot time from the Worker's start, kernel fetch included)</p>`;
  else
    compareEl.innerHTML = have.length
      ? `<p>measured: ${names}; boot the other hypervisor with "measure" ticked to compare</p>`
      : "";
}

function finishMeasure(): void {
  const m = measuring;
  if (!m) return;
  measuring = undefined;
  const f = m.found;
  if (f.bootMs === undefined || f.mips === undefined || f.exits === undefined) return;
  results = { ...results, [m.hv]: { bootMs: f.bootMs, mips: f.mips, exits: f.exits, diskMBps: f.diskMBps } };
  sessionStorage.setItem(RESULTS_KEY, JSON.stringify(results));
  showCompare();
}

/** Follows the console of a measured run: the prompt (boot time, then stats), then dd's summary. */
function measureOutput(bytes: Uint8Array): void {
  const m = measuring;
  if (!m) return;
  m.text += decoder.decode(bytes, { stream: true });
  if (m.phase === "boot") {
    const i = m.text.indexOf(MARKER);
    if (i < 0 || m.text.indexOf(PROMPT, i) < 0) return;
    m.found = { bootMs: performance.now() - m.t0 };
    m.phase = "stats";
    m.text = "";
    // The counters at the prompt, asked for now (the panel's are up to a second old).
    statsWaiters.push((st) => {
      m.found = { ...m.found, mips: st.mips, exits: st.exitsTotal };
      if (!m.disk) {
        finishMeasure();
        return;
      }
      m.phase = "dd";
      m.text = "";
      typeIn(`${DD_COMMAND}\r`);
    });
    if (worker) send(worker, { type: "stats" });
  } else if (m.phase === "dd") {
    // Done when the prompt is back after the command's own line.
    const nl = m.text.indexOf("\n");
    if (nl < 0 || m.text.indexOf(PROMPT, nl) < 0) return;
    m.found = { ...m.found, diskMBps: parseDd(m.text) };
    finishMeasure();
  }
}

function typeIn(s: string): void {
  if (!worker) return;
  const bytes = encoder.encode(s);
  send(worker, { type: "input", bytes }, [bytes.buffer]);
}

function send(w: Worker, m: ToWorker, transfer: Transferable[] = []): void {
  w.postMessage(m, transfer);
}

term.onData((data) => {
  if (!worker) return;
  const bytes = encoder.encode(data);
  send(worker, { type: "input", bytes }, [bytes.buffer]);
});

function boot(guest: GuestName, hypervisor: HypervisorName): void {
  worker?.terminate();
  term.reset();
  lastStats = undefined;
  statsEl.textContent = "";
  statsWaiters.length = 0;
  const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker = w;
  w.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "out") {
      term.write(m.bytes);
      measureOutput(m.bytes);
    } else if (m.type === "status") setStatus(m.text);
    else if (m.type === "stats") showStats(m.stats, m.asked);
    else if (m.type === "exit") setStatus(`powered off: ${m.reason} (status ${m.status}), ${m.mips.toFixed(1)} MIPS`);
    else setStatus(`error: ${m.message}`);
  };
  w.onerror = (e) => setStatus(`worker error: ${e.message}`);
  const file = diskEl.files?.[0];
  const url = diskUrlEl.value.trim();
  // A picked file wins over a URL; a relative URL is against the page.
  const disk = file ? { name: file.name, file } : url ? { url: new URL(url, location.href).href } : undefined;
  measuring =
    measureEl.checked && guest === "linux"
      ? { hv: hypervisor, t0: performance.now(), text: "", phase: "boot", disk: disk !== undefined, found: {} }
      : undefined;
  send(w, {
    type: "boot",
    guest,
    hypervisor,
    memory: Number(memoryEl.value) << 20,
    append: "console=ttyS0",
    disk,
  });
  term.focus();
}

bootEl.onclick = () => {
  if (isGuestName(guestEl.value) && isHypervisorName(hypervisorEl.value)) boot(guestEl.value, hypervisorEl.value);
};

if (!crossOriginIsolated) {
  setStatus("not cross-origin isolated: serve the page with COOP same-origin and COEP require-corp (pnpm web)");
}
const query = new URLSearchParams(location.search);
diskUrlEl.value = query.get("disk") ?? "";
const hvQuery = query.get("hypervisor");
if (isHypervisorName(hvQuery)) hypervisorEl.value = hvQuery;
if (query.get("measure") === "1") measureEl.checked = true;
showCompare();
const auto = query.get("guest");
if (isGuestName(auto)) {
  guestEl.value = auto;
  boot(auto, isHypervisorName(hypervisorEl.value) ? hypervisorEl.value : "mono");
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
  /** The compare figures measured so far, by hypervisor. */
  results: () => results,
  /** True while a measured run has not finished its figures. */
  measuring: () => measuring !== undefined,
};
