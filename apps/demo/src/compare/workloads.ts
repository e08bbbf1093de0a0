// The workloads compare runs under each hypervisor, and how each turns a VM
// run into measures. Everything here is measured on this machine, now.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { VmConfigInput } from "@ringzero/platform";
import { type IoSetup, ioCommands } from "../bench/guest-io.js";
import { type GeneratedGuests, writeGuests } from "./guests.js";
import {
  EXIT_KINDS,
  EXIT_PATHS,
  type Hypervisor,
  na,
  type Outcome,
  type Sample,
  type Section,
  value,
} from "./measures.js";
import { initrdWithRzio, parseRzio, rzioCommand, rzioFailure } from "./rzio.js";
import { countTcb, findWorkspacePackages, TCB_ROOT } from "./tcb.js";
import { runVm, type VmRun } from "./vmrun.js";

// The guest kit's /init marker and prompt (apps/guest-kit: LINUX_KIT_MARKER, LINUX_KIT_PROMPT).
export const KIT_MARKER = "ringzero-guest: init done";
export const KIT_PROMPT = "rz# ";

const MiB = 1024 * 1024;

/** The CPU workload: a bare-metal ELF such as rzbench (M-mode, no SBI), or the generated ALU loop. */
export type CpuGuest = { readonly kind: "elf"; readonly path: string } | { readonly kind: "loop" };

export interface WorkloadContext {
  readonly memory: number;
  readonly embedded: string;
  readonly guests: GeneratedGuests;
  readonly cpu: CpuGuest;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly append?: string;
  /** Scratch disk and HTTP server for the Linux I/O rows (blk, net). */
  readonly io?: IoSetup;
  readonly linuxTimeoutMs: number;
  readonly sections: ReadonlySet<Section>;
  /** Where the repository's sources are looked up for the TCB. */
  readonly sourceFrom: string;
}

export interface Workload {
  readonly id: string;
  /** The measures this workload produces (ids in MEASURES). */
  readonly measures: readonly string[];
  /** Static figures are measured once, not per run. */
  readonly once?: boolean;
  /** Short workloads get one discarded run per hypervisor first (cold JIT and module loading). */
  readonly warmup?: boolean;
  run(hv: Hypervisor, ctx: WorkloadContext): Promise<Sample>;
}

const GUEST_TIMEOUT_MS = 120_000;

function ended(r: VmRun, what: string): string | undefined {
  if (r.timedOut) return `${what} did not power off within the timeout`;
  if (r.status !== 0) return `${what} ended with status ${r.status} (${r.reason}${r.detail ? `: ${r.detail}` : ""})`;
  return undefined;
}

const start: Workload = {
  id: "start",
  warmup: true,
  measures: ["start.create", "start.first"],
  async run(hv, ctx) {
    const r = await runVm(hv, { memory: ctx.memory, kernel: ctx.guests.start }, GUEST_TIMEOUT_MS);
    const bad = ended(r, "the start guest");
    if (bad) return { "start.create": na(bad), "start.first": na(bad) };
    return {
      "start.create": value(r.createMs),
      "start.first": r.firstOutputMs === undefined ? na("no console byte came") : value(r.firstOutputMs),
    };
  },
};

/**
 * Popek–Goldberg efficiency: the share of instructions that ran without an
 * exit, in percent. Every exit but a budget one (a slice ending) stopped an
 * instruction.
 */
function direct(s: VmRun["stats"]): Outcome {
  const trapped = s.totalExits - (s.exitsByKind.budget ?? 0);
  return s.instructions > 0 ? value((1 - trapped / s.instructions) * 100) : na("no instructions counted");
}

const EMBEDDED_IDS = [
  "exits.total",
  "exits.rate",
  "exits.direct",
  ...EXIT_KINDS.map((k) => `exits.kind.${k}`),
  ...EXIT_PATHS.map((p) => `exits.path.${p}`),
  "exits.rtt",
  "exits.hypercalls",
  "exits.sbi",
  "exits.wall",
  "mem.rss",
];

const embedded: Workload = {
  id: "embedded",
  warmup: true,
  measures: EMBEDDED_IDS,
  async run(hv, ctx) {
    const r = await runVm(hv, { memory: ctx.memory, kernel: ctx.embedded }, GUEST_TIMEOUT_MS);
    const bad = ended(r, "the embedded guest");
    if (bad) return Object.fromEntries(EMBEDDED_IDS.map((id) => [id, na(bad)]));
    const s = r.stats;
    const perSecond = (n: number) => (s.runSeconds > 0 ? value(n / s.runSeconds) : na("no vCPU run time recorded"));
    const out: Sample = {
      "exits.total": value(s.totalExits),
      "exits.rate": perSecond(s.totalExits),
      "exits.direct": direct(s),
      "exits.wall": value(r.wallMs),
      "mem.rss": value(r.rssDelta / MiB),
    };
    for (const k of EXIT_KINDS) {
      const n = s.exitsByKind[k];
      out[`exits.kind.${k}`] =
        n === undefined
          ? na("micro counts these exits by path (microkernel/paravisor/intercept), not by kind")
          : perSecond(n);
    }
    for (const p of EXIT_PATHS) {
      const n = s.exitsByPath[p];
      out[`exits.path.${p}`] =
        n !== undefined
          ? perSecond(n)
          : hv === "monolithic"
            ? na("no such path: mono handles every exit inline")
            : na("no inline path: every exit goes to the microkernel, the paravisor or the parent");
    }
    if (hv === "micro") {
      const total = Object.values(s.hypercalls ?? {}).reduce((a, b) => a + b, 0);
      out["exits.hypercalls"] = value(total);
      const ic = s.exitsByPath.intercept ?? 0;
      out["exits.rtt"] =
        ic > 0 && s.interceptWaitSeconds !== undefined
          ? value((s.interceptWaitSeconds / ic) * 1e6)
          : na("no intercepts in this run");
      out["exits.sbi"] = na("not counted by MicroVm.stats() (SBI ecalls are in the microkernel path)");
    } else {
      out["exits.hypercalls"] = na("no microkernel: device models are direct calls");
      out["exits.rtt"] = na("no round trip: exits are handled inline by direct calls");
      out["exits.sbi"] = s.sbiCalls === undefined ? na("not counted") : value(s.sbiCalls);
    }
    return out;
  },
};

const cpu: Workload = {
  id: "cpu",
  measures: ["cpu.mips", "cpu.wall", "cpu.direct", "exits.per-minstr"],
  async run(hv, ctx) {
    const config: VmConfigInput =
      ctx.cpu.kind === "elf"
        ? { memory: ctx.memory, kernel: ctx.cpu.path, bios: "none" }
        : { memory: ctx.memory, kernel: ctx.guests.loop };
    const r = await runVm(hv, config, 600_000);
    const bad = ended(r, "the CPU guest");
    if (bad) return { "cpu.mips": na(bad), "cpu.wall": na(bad), "cpu.direct": na(bad), "exits.per-minstr": na(bad) };
    const s = r.stats;
    return {
      "cpu.mips": s.runSeconds > 0 ? value(s.instructions / s.runSeconds / 1e6) : na("no vCPU run time recorded"),
      "cpu.wall": value(r.wallMs / 1000),
      "cpu.direct": direct(s),
      "exits.per-minstr": value(s.totalExits / (s.instructions / 1e6)),
    };
  },
};

let tcbCache: Map<string, Sample> | undefined;
const tcb: Workload = {
  id: "tcb",
  measures: ["tcb.lines", "tcb.files"],
  once: true,
  async run(hv, ctx) {
    if (!tcbCache) {
      tcbCache = new Map();
      const packages = findWorkspacePackages(ctx.sourceFrom);
      for (const h of ["monolithic", "micro"] as const) {
        if (!packages) {
          const why = na("the ringzero sources are not beside this install (run from the repository)");
          tcbCache.set(h, { "tcb.lines": why, "tcb.files": why });
          continue;
        }
        const c = countTcb(packages, TCB_ROOT[h]);
        tcbCache.set(h, { "tcb.lines": value(c.lines), "tcb.files": value(c.files) });
      }
    }
    return tcbCache.get(hv) as Sample;
  },
};

/** Seconds one guest command (a transfer, ping) may take before the session is given up. */
export const COMMAND_TIMEOUT_MS = 120_000;

interface LinuxSession {
  readonly run: VmRun;
  readonly out: string;
  readonly promptMs?: number;
  /** The command that did not come back to a prompt within COMMAND_TIMEOUT_MS. */
  readonly stuck?: string;
}

/**
 * Boots the kit and types `commands` one per shell prompt. The boot gets
 * `bootTimeoutMs` to reach the prompt and each command COMMAND_TIMEOUT_MS;
 * then the VM is stopped and the session says where it stood.
 */
function linuxSession(
  hv: Hypervisor,
  config: VmConfigInput,
  commands: readonly string[],
  bootTimeoutMs: number,
  commandTimeoutMs = COMMAND_TIMEOUT_MS,
): Promise<LinuxSession> {
  let out = "";
  let sent = 0;
  let promptMs: number | undefined;
  let stuck: string | undefined;
  const t0 = performance.now();
  let watchdog: NodeJS.Timeout | undefined;
  let control: { send(t: string): void; stop(): void } | undefined;
  const total = bootTimeoutMs + commands.length * commandTimeoutMs + 10_000;
  return runVm(hv, config, total, {
    attach(c) {
      control = c;
      watchdog = setTimeout(() => c.stop(), bootTimeoutMs);
    },
    onOutput(bytes) {
      out += Buffer.from(bytes).toString("latin1");
      const at = out.indexOf(KIT_MARKER);
      const prompts = at < 0 ? 0 : out.slice(at).split(KIT_PROMPT).length - 1;
      if (prompts > 0 && promptMs === undefined) promptMs = performance.now() - t0;
      if (prompts > sent && sent < commands.length) {
        const cmd = commands[sent++];
        clearTimeout(watchdog);
        if (cmd !== "poweroff -f") {
          watchdog = setTimeout(() => {
            stuck = cmd;
            control?.stop();
          }, commandTimeoutMs);
        }
        control?.send(`${cmd}\n`);
      }
    },
  })
    .then((run) => ({ run, out, promptMs, stuck }))
    .finally(() => clearTimeout(watchdog));
}

/** The first words of a shell command, for a reason text. */
function brief(cmd: string): string {
  const first = cmd.split(";").find((p) => /wget|dd |ping|udhcpc|rzio/.test(p)) ?? cmd;
  return first.trim().replace(/\s+/g, " ").slice(0, 60);
}

/** Guest seconds each random I/O run lasts (rzio's CLOCK_MONOTONIC). */
const RANDOM_SECONDS = 3;

/** "RZIO tag BYTES T0 T1" lines (guest uptime seconds) → MB/s. */
function ioRate(out: string, tag: string): number | undefined {
  const m = new RegExp(`RZIO ${tag} (\\d+) ([\\d.]+) ([\\d.]+)`).exec(out);
  if (!m) return undefined;
  return Number(m[1]) / Math.max(0.01, Number(m[3]) - Number(m[2])) / 1e6;
}

const LINUX_IDS: Record<"boot" | "blk" | "net", string[]> = {
  boot: ["boot.shell"],
  blk: ["blk.read", "blk.write", "blk.randread", "blk.randwrite", "blk.signals"],
  net: ["net.down", "net.up", "net.ping"],
};

const linux: Workload = {
  id: "linux",
  measures: [...Object.values(LINUX_IDS).flat(), "mem.linux"],
  async run(hv, ctx) {
    const want = (["boot", "blk", "net"] as const).filter((s) => ctx.sections.has(s));
    const ids = [...want.flatMap((s) => LINUX_IDS[s]), ...(ctx.sections.has("mem") ? ["mem.linux"] : [])];
    if (!ctx.kernel) {
      const why = na("needs --kernel Image --initrd FILE (the Linux guest kit: pnpm guest:linux --print-path)");
      return Object.fromEntries(ids.map((id) => [id, why]));
    }
    const blk = want.includes("blk") && ctx.io !== undefined;
    const net = want.includes("net") && ctx.io !== undefined;
    // guest-io's script, one command per prompt: 0 DHCP, 1 blk read, 2 blk write, 3 TCP down, 4 TCP up, 5 ping, 6 poweroff
    const all = ctx.io ? ioCommands(ctx.io) : [];
    // The random I/O tool needs the kit's initramfs to append itself to.
    const random = blk && ctx.initrd !== undefined;
    const commands = [
      ...(net ? [all[0]] : []),
      ...(blk ? [all[1], all[2]] : []),
      ...(random ? [rzioCommand("read", RANDOM_SECONDS), rzioCommand("write", RANDOM_SECONDS)] : []),
      ...(net ? [all[3], all[4], all[5]] : []),
      "poweroff -f",
    ];
    const config: VmConfigInput = {
      memory: ctx.memory,
      kernel: ctx.kernel,
      initrd:
        random && ctx.initrd ? initrdWithRzio(ctx.initrd, join(ctx.guests.dir, "initrd-rzio.cpio.gz")) : ctx.initrd,
      append: ctx.append,
      drives: blk && ctx.io ? [{ path: ctx.io.image, format: "raw" }] : [],
      net: net ? { mode: "user" } : undefined,
    };
    const s = await linuxSession(hv, config, commands, ctx.linuxTimeoutMs);
    const out: Sample = {};
    if (s.promptMs === undefined) {
      const tail = s.out.replace(/\r/g, "").trim().split("\n").slice(-1)[0]?.slice(0, 100) ?? "";
      const why =
        s.run.timedOut || s.run.reason === "stopped"
          ? `no shell prompt within ${Math.round(ctx.linuxTimeoutMs / 1000)} s${tail ? ` (last console line: "${tail}")` : " (no console output)"}`
          : `the guest ended before its shell prompt: status ${s.run.status} (${s.run.reason}${s.run.detail ? `: ${s.run.detail}` : ""})`;
      return Object.fromEntries(ids.map((id) => [id, na(why)]));
    }
    if (want.includes("boot")) out["boot.shell"] = value(s.promptMs / 1000);
    if (ctx.sections.has("mem")) out["mem.linux"] = value(s.run.rssDelta / MiB);
    const missing = (what: string) =>
      na(
        s.stuck !== undefined
          ? `${what}: the guest command did not finish within ${COMMAND_TIMEOUT_MS / 1000} s (stopped at: ${brief(s.stuck)})`
          : `${what}: no figure in the guest's output (the session ended ${s.run.timedOut ? "by timeout" : s.run.reason})`,
      );
    const rate = (id: string, tag: string) => {
      const r = ioRate(s.out, tag);
      out[id] = r === undefined ? missing(tag) : value(r);
    };
    if (want.includes("blk")) {
      if (!blk)
        out["blk.read"] =
          out["blk.write"] =
          out["blk.randread"] =
          out["blk.randwrite"] =
          out["blk.signals"] =
            na("no scratch disk");
      else {
        rate("blk.read", "blkread");
        rate("blk.write", "blkwrite");
        for (const kind of ["read", "write"] as const) {
          const id = `blk.rand${kind}`;
          const r = parseRzio(s.out, kind);
          const failed = rzioFailure(s.out);
          if (!random) out[id] = na("needs --initrd (rzio is appended to the initramfs)");
          else if (r === undefined) out[id] = failed ? na(failed) : missing(`rzio ${kind}`);
          else if (r.errors > 0) out[id] = na(`rzio ${kind}: ${r.errors} of ${r.ops + r.errors} requests failed`);
          else out[id] = value(r.ops / r.seconds);
        }
        const bus = s.run.stats.vmbus;
        out["blk.signals"] =
          hv === "monolithic"
            ? na("no channels: the device model calls the image inline")
            : bus && bus.storageRequests > 0
              ? value(bus.signals / bus.storageRequests)
              : na("no storage requests counted");
      }
    }
    if (want.includes("net")) {
      if (!net) out["net.down"] = out["net.up"] = out["net.ping"] = na("no HTTP server");
      else {
        rate("net.down", "netdown");
        rate("net.up", "netup");
        const ping = /RZIO ping round-trip min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(s.out);
        out["net.ping"] = ping ? value(Number(ping[1])) : missing("ping");
      }
    }
    return out;
  },
};

/** The `ringzero` CLI beside this module (dist/cli.js; from the sources, the built one). */
function cliPath(): string {
  const here = new URL(import.meta.url);
  return fileURLToPath(here.pathname.endsWith(".ts") ? new URL("../../dist/cli.js", here) : new URL("../cli.js", here));
}

/** The guest's read loop: 40 times 4 MiB from /dev/vda, out of the page cache; errors counted. */
const FAULT_LOOP =
  "i=0; bad=0; while [ $i -lt 40 ]; do echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=65536 count=64 2>/dev/null || bad=$((bad+1)); i=$((i+1)); done; echo RZFAULT bad=$bad";

/**
 * Kill the storage back end mid-I/O (`vsp kill storage` on the monitor, the
 * same command under both): micro restarts the VSP and the guest's reads go
 * on; mono's back end runs in the VM's own process, which dies with it. The
 * VM runs as a child `ringzero run` process so that a death is a row, not
 * the end of compare.
 */
const fault: Workload = {
  id: "fault",
  measures: ["fault.survives", "fault.restart"],
  async run(hv, ctx) {
    const both = (why: string) => ({ "fault.survives": na(why), "fault.restart": na(why) });
    if (!ctx.kernel) return both("needs --kernel Image --initrd FILE (the Linux guest kit)");
    if (!ctx.io) return both("no scratch disk");
    const dir = mkdtempSync(join(tmpdir(), "rz-compare-fault-"));
    const sock = join(dir, "monitor.sock");
    const args = [cliPath(), "run", "--hypervisor", hv, "--kernel", ctx.kernel, "--memory", String(ctx.memory)];
    if (ctx.initrd) args.push("--initrd", ctx.initrd);
    if (ctx.append) args.push("--append", ctx.append);
    args.push("--drive", `${ctx.io.image},format=raw`, "--monitor", sock);
    const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("latin1");
    });
    child.stderr.resume();
    child.stdin.on("error", () => {});
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const until = async (test: () => boolean, ms: number) => {
      const t0 = performance.now();
      while (!test() && child.exitCode === null && performance.now() - t0 < ms) await sleep(20);
      return test();
    };
    try {
      const prompt = () => out.slice(Math.max(0, out.indexOf(KIT_MARKER))).includes(KIT_PROMPT);
      if (!(await until(prompt, ctx.linuxTimeoutMs))) return both("no shell prompt");
      child.stdin.write(`${FAULT_LOOP}\n`);
      await sleep(500);
      const mon = connect(sock);
      let reply = "";
      mon.setEncoding("utf8");
      mon.on("data", (d: string) => {
        reply += d;
      });
      mon.on("error", () => {});
      const t0 = performance.now();
      mon.write("vsp kill storage\n");
      const answered = await until(() => /(^|\n)(ok|error: .*)\n/.test(reply), 30_000);
      const restartMs = performance.now() - t0;
      mon.destroy();
      const done = await until(() => /RZFAULT bad=\d+/.test(out), 120_000);
      const bad = /RZFAULT bad=(\d+)/.exec(out);
      if (done && bad && child.exitCode === null) {
        child.stdin.write("poweroff -f\n");
        await Promise.race([exited, sleep(10_000)]);
        const survived = Number(bad[1]) === 0;
        return {
          "fault.survives": value(survived ? 1 : 0),
          "fault.restart": answered ? value(restartMs) : na("the monitor did not answer"),
        };
      }
      if (child.exitCode !== null || (await Promise.race([exited.then(() => true), sleep(2000).then(() => false)])))
        return { "fault.survives": value(0), "fault.restart": na("the VM died with its back end") };
      return both("the guest's read loop did not finish within 120 s");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export const WORKLOADS: readonly Workload[] = [start, embedded, cpu, tcb, linux, fault];

export { writeGuests };
