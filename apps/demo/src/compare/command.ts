// `ringzero compare`: the same guests under hypervisor-monolithic and the
// microkernel, alternating, measured side by side in this process.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { argsError, tryHelp } from "../args.js";
import { type IoSetup, startIoSetup } from "../bench/guest-io.js";
import { DemoError, DemoErrorCode } from "../errors.js";
import { reported } from "../reported.js";
import { parseMemorySize } from "../size.js";
import { renderHtml } from "./html.js";
import { MEASURES, SECTIONS, type Section } from "./measures.js";
import { renderTable } from "./report.js";
import { runAll, summaries } from "./runner.js";
import { COMPARE_SCHEMA_ID, type CompareReport, CompareReportSchema } from "./schema.js";
import { renderSvg } from "./svg.js";
import { findWorkspacePackages, findWorkspaceRoot } from "./tcb.js";
import { type CpuGuest, WORKLOADS, type WorkloadContext, writeGuests } from "./workloads.js";

export const COMPARE_USAGE = `usage: ringzero compare [--runs N] [--only SECTIONS] [--kernel Image --initrd FILE [--append CMDLINE]]
                        [--cpu-elf FILE|loop] [--memory SIZE] [--linux-timeout SECONDS]
                        [--json FILE] [--svg FILE] [--html FILE]

Runs the same guests under --hypervisor monolithic and micro in this process,
alternating, N runs each (default 3), and prints per measure the median and
spread under each and the ratio micro/mono. A measure one side cannot give is
"n/a" with its reason.

  --only LIST        sections: ${SECTIONS.join(",")} (default: all)
  --kernel, --initrd the Linux rows (boot, blk, net) boot this kernel, e.g. the
                     guest kit (pnpm guest:linux --print-path: DIR/Image, DIR/initramfs.cpio.gz)
  --cpu-elf FILE     a bare-metal M-mode ELF for guest MIPS (default: rzbench-s1.elf
                     from ../shared/bench/elf or $RZ_BENCH_DIR when present);
                     "loop": a generated ALU loop (20 M instructions)
  --memory SIZE      guest RAM (default 256M)
  --linux-timeout S  seconds to wait for Linux's shell prompt (default 180)
  --json FILE        every run of every measure, the machine and versions (schema ${COMPARE_SCHEMA_ID})
  --svg FILE         a bar chart of the ratios with their spreads
  --html FILE        a self-contained page with the table and the chart
`;

const Options = z.object({
  runs: z
    .string()
    .regex(/^[1-9]\d*$/, "must be a whole number ≥ 1")
    .transform(Number)
    .default(3),
  only: z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim()))
    .pipe(z.array(z.enum(SECTIONS, { message: `sections are ${SECTIONS.join(", ")}` })))
    .optional(),
  kernel: z.string().min(1).optional(),
  initrd: z.string().min(1).optional(),
  append: z.string().optional(),
  "cpu-elf": z.string().min(1).optional(),
  memory: z.string().default("256M"),
  "linux-timeout": z.string().regex(/^\d+$/, "must be whole seconds").transform(Number).default(180),
  json: z.string().min(1).optional(),
  svg: z.string().min(1).optional(),
  html: z.string().min(1).optional(),
});

export interface CompareIo {
  stdout: (bytes: Uint8Array) => void;
  stderr: (text: string) => void;
}

const here = dirname(fileURLToPath(import.meta.url));
const embeddedGuest = join(here, "..", "..", "guests", "hello", "hello.elf");

function usage(detail: string): DemoError {
  return new DemoError(DemoErrorCode.USAGE, {}, `${detail}\n${tryHelp("compare")}`);
}

/** `ringzero compare ARGS`; resolves to the exit status. `tty` shows progress (default: stderr is a terminal). */
export async function compareCommand(
  argv: readonly string[],
  io: CompareIo,
  tty = process.stderr.isTTY === true,
): Promise<number> {
  // reported here, not by main(): `ringzero`'s bundle loads this module and its imports from
  // their own files, whose error classes are not the bundle's copies (reported.ts)
  try {
    return await compare(argv, io, tty);
  } catch (e) {
    if (!reported(e)) throw e;
    io.stderr(`ringzero: ${e.message}\n`);
    return 1;
  }
}

async function compare(argv: readonly string[], io: CompareIo, tty: boolean): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    io.stdout(new TextEncoder().encode(COMPARE_USAGE));
    return 0;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(Object.keys(Options.shape).map((k) => [k, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw argsError(e, "compare", argv);
  }
  const parsed = Options.safeParse(values);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DemoError(DemoErrorCode.USAGE, { option: i.path.join(".") }, `--${String(i.path[0])}: ${i.message}`);
  }
  const o = parsed.data;
  if ((o.initrd || o.append) && !o.kernel) throw usage("--initrd and --append need --kernel");
  for (const f of [o.kernel, o.initrd]) if (f && !existsSync(f)) throw usage(`${f}: no such file`);
  const sections = new Set<Section>(o.only ?? SECTIONS);
  const memory = parseMemorySize(o.memory);
  const cpu = cpuGuest(o["cpu-elf"]);

  const started = new Date();
  const t0 = performance.now();
  const progress = tty ? (text: string) => io.stderr(`\r\x1b[K${text}`) : undefined;
  const guests = writeGuests();
  let ioSetup: IoSetup | undefined;
  try {
    if (o.kernel && (sections.has("blk") || sections.has("net") || sections.has("fault")))
      ioSetup = await startIoSetup();
    const context: WorkloadContext = {
      memory,
      embedded: embeddedGuest,
      guests,
      cpu,
      kernel: o.kernel,
      initrd: o.initrd,
      append: o.append,
      io: ioSetup,
      linuxTimeoutMs: o["linux-timeout"] * 1000,
      sections,
      sourceFrom: here,
    };
    const records = await runAll({ runs: o.runs, workloads: WORKLOADS, context, progress });
    progress?.("");
    const summary = summaries(records);
    const report: CompareReport = CompareReportSchema.parse({
      schema: COMPARE_SCHEMA_ID,
      startedAt: started.toISOString(),
      seconds: (performance.now() - t0) / 1000,
      machine: machine(),
      versions: versions(),
      options: {
        runs: o.runs,
        sections: SECTIONS.filter((s) => sections.has(s)),
        memoryBytes: memory,
        cpuGuest: cpu.kind === "elf" ? cpu.path : "loop (generated, 20 M instructions)",
        ...(o.kernel ? { kernel: o.kernel } : {}),
        ...(o.initrd ? { initrd: o.initrd } : {}),
      },
      measures: MEASURES.filter((d) => sections.has(d.section)).map((d) => ({ ...d })),
      records,
      summary,
    });
    io.stdout(Buffer.from(renderTable(summary, o.runs).text));
    const subtitle = `median of ${o.runs} run(s), whiskers: min–max of the runs · ${report.machine.cpuModel} · ${started.toISOString().slice(0, 16)}Z`;
    const chart = o.svg || o.html ? renderSvg(summary, subtitle) : undefined;
    if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    if (o.svg && chart) writeFileSync(o.svg, chart.svg);
    if (o.html && chart) writeFileSync(o.html, renderHtml(report, chart.svg));
    return 0;
  } finally {
    progress?.("");
    ioSetup?.close();
    rmSync(guests.dir, { recursive: true, force: true });
  }
}

function cpuGuest(option: string | undefined): CpuGuest {
  if (option === "loop") return { kind: "loop" };
  if (option !== undefined) {
    if (!existsSync(option)) throw usage(`--cpu-elf ${option}: no such file`);
    return { kind: "elf", path: option };
  }
  const root = findWorkspaceRoot(here);
  const dirs = [process.env.RZ_BENCH_DIR, root && join(root, "..", "shared", "bench", "elf")];
  for (const d of dirs)
    if (d && existsSync(join(d, "rzbench-s1.elf"))) return { kind: "elf", path: join(d, "rzbench-s1.elf") };
  return { kind: "loop" };
}

function machine(): CompareReport["machine"] {
  const c = cpus();
  return {
    platform: platform(),
    arch: arch(),
    cpuModel: c[0]?.model.trim() ?? "unknown",
    cpus: c.length,
    memoryBytes: totalmem(),
    loadAverage: loadavg(),
    node: process.versions.node,
    v8: process.versions.v8,
  };
}

function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  const demo = JSON.parse(readFileSync(join(here, "..", "..", "package.json"), "utf8")) as { version: string };
  out["@ringzero/demo"] = demo.version;
  for (const [name, dir] of findWorkspacePackages(here) ?? []) {
    out[name] = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
  }
  const root = findWorkspaceRoot(here);
  if (root) {
    const g = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root, encoding: "utf8" });
    if (g.status === 0) out.git = g.stdout.trim();
  }
  return out;
}
