// `pnpm bench`: ringzero against QEMU on the same guests in the same run.
// CPU: ../shared/bench's rzbench (M-mode bare and S-mode Sv39), whole-process
// wall time, median of N runs; instructions are ringzero's exact count (both
// machines execute the same deterministic program).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const cli = join(here, "..", "cli.js");

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    full: { type: "boolean", default: false },
    "elf-dir": { type: "string" },
  },
});
const runs = Math.max(1, Number(values.runs));
const elfDir = values["elf-dir"] ?? process.env.RZ_BENCH_DIR ?? join(repo, "..", "shared", "bench", "elf");
const scale = values.full ? "s10" : "s1";
const interactive = process.stderr.isTTY;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function timeCommand(
  cmd: string,
  args: string[],
): { seconds: number; stdout: string; stderr: string; status: number | null } {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600_000, stdio: ["ignore", "pipe", "pipe"] });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  return { seconds, stdout: r.stdout ?? "", stderr: r.stderr ?? "", status: r.status };
}

function progress(text: string): void {
  if (interactive) process.stderr.write(`\r\x1b[K${text}`);
}

interface Row {
  name: string;
  instructions: number;
  rz: number;
  qemu: number | undefined;
}

const rows: Row[] = [];
let failed = false;
for (const name of [`rzbench-${scale}.elf`, `rzbench-sv39-${scale}.elf`]) {
  const elf = join(elfDir, name);
  if (!existsSync(elf)) {
    console.error(`bench: ${elf} not found (set RZ_BENCH_DIR or --elf-dir)`);
    process.exit(1);
  }
  const rzTimes: number[] = [];
  let instructions = 0;
  for (let i = 0; i < runs; i++) {
    progress(`${name}: ringzero run ${i + 1}/${runs}`);
    const r = timeCommand(process.execPath, [cli, "run", "--bios", "none", "--kernel", elf, "--stats"]);
    if (r.status !== 0 || !r.stdout.includes("PASS")) {
      console.error(`\nbench: ringzero failed on ${name} (status ${r.status})\n${r.stdout}\n${r.stderr}`);
      failed = true;
      break;
    }
    instructions = Number(/(\d+) instructions/.exec(r.stderr)?.[1] ?? 0);
    rzTimes.push(r.seconds);
  }
  const qemuTimes: number[] = [];
  const haveQemu = spawnSync("sh", ["-c", "command -v qemu-system-riscv64"]).status === 0;
  for (let i = 0; haveQemu && i < runs; i++) {
    progress(`${name}: qemu run ${i + 1}/${runs}`);
    const r = timeCommand("qemu-system-riscv64", [
      "-M",
      "virt",
      "-m",
      "256M",
      "-nographic",
      "-bios",
      "none",
      "-kernel",
      elf,
    ]);
    if (r.status !== 0 || !r.stdout.includes("PASS")) {
      console.error(`\nbench: qemu failed on ${name} (status ${r.status})`);
      break;
    }
    qemuTimes.push(r.seconds);
  }
  progress("");
  if (rzTimes.length) {
    rows.push({ name, instructions, rz: median(rzTimes), qemu: qemuTimes.length ? median(qemuTimes) : undefined });
  }
}

const fmt = (n: number, d = 2) => n.toFixed(d);
console.log(`\nCPU: rzbench (${scale}), whole-process wall time, median of ${runs}`);
console.log(
  [
    "guest".padEnd(24),
    "instructions".padStart(13),
    "ringzero s".padStart(11),
    "MIPS".padStart(8),
    "qemu s".padStart(8),
    "qemu MIPS".padStart(10),
    "qemu/ringzero".padStart(14),
  ].join(" "),
);
for (const r of rows) {
  const mips = r.instructions / r.rz / 1e6;
  const qm = r.qemu ? r.instructions / r.qemu / 1e6 : undefined;
  console.log(
    [
      r.name.padEnd(24),
      String(r.instructions).padStart(13),
      fmt(r.rz).padStart(11),
      fmt(mips, 1).padStart(8),
      (r.qemu ? fmt(r.qemu) : "n/a").padStart(8),
      (qm ? fmt(qm, 1) : "n/a").padStart(10),
      (r.qemu ? `${fmt(r.rz / r.qemu, 1)}x slower` : "n/a").padStart(14),
    ].join(" "),
  );
}
process.exitCode = failed ? 1 : 0;
