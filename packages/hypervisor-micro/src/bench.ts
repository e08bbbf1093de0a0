// `pnpm bench hypervisor-micro` (node dist/bench.js): the credit scheduler
// with the CPU benchmark (rzbench-s10 from ../shared/bench, else an ALU loop)
// in child partitions of a bare microkernel. Each case prints, per partition,
// the target and the measured CPU share (CPU time of the VP's thread over the
// window's wall time; 100 % = one host CPU), the time it spent parked for
// credit, the host's steal (runnable, but the host OS ran something else) and
// guest MIPS; then the check of issue 9 (weights within 10 % of their ratio,
// a cap within 5 points).
// Options: --ms N (window per case, default 3000), --warmup N (default 500).
import type { Microkernel } from "./kernel.js";
import type { ScheduleInput } from "./sched.js";
import {
  type CpuShare,
  cpuKernel,
  cpuWorkload,
  idleWorkload,
  measureShares,
  startCpuPartition,
} from "./testing/cpu-guest.js";

const args = process.argv.slice(2);
const opt = (name: string, d: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const MS = opt("ms", 3000);
const WARMUP = opt("warmup", 500);

interface Case {
  readonly label: string;
  readonly budget: number;
  readonly parts: readonly { name: string; schedule: ScheduleInput; target: number; idle?: boolean }[];
  readonly check: (xs: CpuShare[]) => string;
}

const ratioCheck = (xs: CpuShare[], want: number) => {
  const r = xs[0].share / xs[1].share;
  return `ratio ${r.toFixed(2)} (target ${want.toFixed(2)}, off ${(100 * Math.abs(r / want - 1)).toFixed(1)} %, ${
    Math.abs(r / want - 1) <= 0.1 ? "within 10 %" : "NOT within 10 %"
  })`;
};
const capCheck = (xs: CpuShare[], cap: number) => {
  const d = 100 * (xs[0].share - cap);
  return `off ${d >= 0 ? "+" : ""}${d.toFixed(1)} points (${Math.abs(d) <= 5 ? "within 5 points" : "NOT within 5 points"})`;
};

const CASES: Case[] = [
  {
    label: "weights 2:1, budget 45 %",
    budget: 45,
    parts: [
      { name: "heavy", schedule: { weight: 512 }, target: 0.3 },
      { name: "light", schedule: { weight: 256 }, target: 0.15 },
    ],
    check: (xs) => ratioCheck(xs, 2),
  },
  {
    label: "weights 2:1, budget 100 %",
    budget: 100,
    parts: [
      { name: "heavy", schedule: { weight: 512 }, target: 2 / 3 },
      { name: "light", schedule: { weight: 256 }, target: 1 / 3 },
    ],
    check: (xs) => ratioCheck(xs, 2),
  },
  {
    label: "cap 25 %",
    budget: 0,
    parts: [{ name: "capped", schedule: { capPercent: 25 }, target: 0.25 }],
    check: (xs) => capCheck(xs, 0.25),
  },
  {
    label: "cap 25 % beside an uncapped one",
    budget: 0,
    parts: [
      { name: "capped", schedule: { capPercent: 25 }, target: 0.25 },
      { name: "free", schedule: {}, target: Number.NaN },
    ],
    check: (xs) => capCheck(xs, 0.25),
  },
  {
    label: "weights 1:1, budget 60 %, one partition idle in WFI (its share goes to the busy one)",
    budget: 60,
    parts: [
      { name: "busy", schedule: {}, target: 0.6 },
      { name: "idle", schedule: {}, target: 0, idle: true },
    ],
    check: (xs) => `busy got ${(100 * xs[0].share).toFixed(1)} % of the 60 % budget (a fixed split would give 30 %)`,
  },
  {
    label: "no schedule (as before)",
    budget: 0,
    parts: [{ name: "free", schedule: {}, target: Number.NaN }],
    check: () => "unmetered: the host OS alone decides",
  },
];

const pct = (x: number) => (Number.isNaN(x) ? "   -  " : `${(100 * x).toFixed(1).padStart(5)} %`);

async function runCase(c: Case, workload: ReturnType<typeof cpuWorkload>): Promise<void> {
  const k: Microkernel = cpuKernel(c.budget);
  try {
    const ids = c.parts.map((p) => startCpuPartition(k, p.name, p.idle ? idleWorkload() : workload, p.schedule));
    const t0 = performance.now();
    while (ids.some((id) => !k.vpCounters(id, 0)?.instructions) && performance.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, WARMUP));
    const xs = await measureShares(k, ids, MS);
    console.log(`\n${c.label}`);
    console.log("  partition  weight  cap   target   measured  parked  steal   MIPS");
    xs.forEach((x, i) => {
      const p = c.parts[i];
      const st = k.stats().scheduler.partitions.find((q) => q.partitionId === x.partitionId);
      console.log(
        `  ${p.name.padEnd(9)}  ${String(st?.weight ?? "").padStart(6)}  ${String(st?.capPercent || "-").padStart(3)}  ${pct(
          p.target,
        )}  ${pct(x.share)}  ${pct(x.parked)} ${pct(x.steal)}  ${x.mips.toFixed(0).padStart(5)}`,
      );
    });
    console.log(`  ${c.check(xs)}`);
  } finally {
    await k.shutdown();
  }
}

const workload = cpuWorkload();
console.log(
  `Credit scheduler: ${workload.name} in child partitions, ${MS} ms window per case; share = CPU time of the VP thread / wall time (100 % = one host CPU); period 20 ms`,
);
for (const c of CASES) await runCase(c, workload);
process.exit(0);
