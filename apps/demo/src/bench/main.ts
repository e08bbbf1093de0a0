// `pnpm bench`: ringzero against QEMU on the same guests in the same run.
// CPU: ../shared/bench's rzbench (M-mode bare and S-mode Sv39), whole-process
// wall time, median of N runs; instructions are ringzero's exact count (both
// machines execute the same deterministic program).
// Linux: the guest kit (pnpm guest:linux) from process start to the busybox
// prompt, ringzero under both hypervisors (monolithic and micro, built-in SBI)
// against qemu-system-riscv64 -M virt -bios default (OpenSBI), same Image and
// initramfs. I/O: virtio-blk and virtio-net throughput measured inside that
// guest (guest-io.ts), under the same three. `--only cpu,linux,io` picks sections; `--runs N` the medians.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type IoFigures, ioCommands, parseIo, runScript, startIoSetup } from "./guest-io.js";

const MiB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const cli = join(here, "..", "cli.js");

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    full: { type: "boolean", default: false },
    "elf-dir": { type: "string" },
    only: { type: "string" },
  },
});
const runs = Math.max(1, Number(values.runs));
const elfDir = values["elf-dir"] ?? process.env.RZ_BENCH_DIR ?? join(repo, "..", "shared", "bench", "elf");
const scale = values.full ? "s10" : "s1";
const interactive = process.stderr.isTTY;
// The guest kit's /init marker and prompt (apps/guest-kit: LINUX_KIT_MARKER, LINUX_KIT_PROMPT).
const MARKER = "ringzero-guest: init done";
const PROMPT = "rz# ";

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

const SECTIONS = ["cpu", "linux", "io"] as const;
const HYPERVISORS = ["monolithic", "micro"] as const;
const only = new Set((values.only ?? SECTIONS.join(",")).split(","));
if ([...only].some((o) => !(SECTIONS as readonly string[]).includes(o))) {
  console.error(`bench: --only takes a comma list of ${SECTIONS.join(", ")}`);
  process.exit(2);
}
const rows: Row[] = [];
let failed = false;
for (const name of !only.has("cpu") ? [] : [`rzbench-${scale}.elf`, `rzbench-sv39-${scale}.elf`]) {
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
if (rows.length) printCpu();
function printCpu(): void {
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
}

if (only.has("linux") || only.has("io")) {
  const kit = linuxKit();
  if (!kit) failed = true;
  else {
    if (only.has("linux") && !(await linuxBoot(kit))) failed = true;
    if (only.has("io") && !(await guestIo(kit))) failed = true;
  }
}
process.exitCode = failed ? 1 : 0;

/** Boots to the kit's shell prompt and types `poweroff -f`; status null when no prompt came. */
async function bootToPrompt(cmd: string, args: string[]) {
  const r = await runScript(cmd, args, ["poweroff -f"], MARKER, PROMPT, 300_000);
  return { ...r, status: r.promptSeconds < 0 ? null : r.status };
}

function linuxKit(): { image: string; initrd: string } | undefined {
  progress("Linux kit: pnpm guest:linux (the first build takes minutes)");
  const kitCli = join(repo, "apps", "guest-kit", "dist", "cli.js");
  const k = spawnSync(process.execPath, [kitCli, "--print-path"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (k.status !== 0) {
    console.error("bench: could not build or find the Linux guest kit (pnpm guest:linux)");
    return undefined;
  }
  const dir = k.stdout.trim();
  return { image: join(dir, "Image"), initrd: join(dir, "initramfs.cpio.gz") };
}

async function linuxBoot({ image, initrd }: { image: string; initrd: string }): Promise<boolean> {
  const rzBy = { monolithic: [] as number[], micro: [] as number[] };
  const qemu: number[] = [];
  const instructions: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternating, so both hypervisors see the same neighbours' load.
    for (const hv of i % 2 === 0 ? HYPERVISORS : [...HYPERVISORS].reverse()) {
      progress(`Linux boot: ringzero --hypervisor ${hv} run ${i + 1}/${runs}`);
      const r = await bootToPrompt(process.execPath, [
        ...[cli, "run", "--hypervisor", hv, "--kernel", image, "--initrd", initrd, "--stats"],
      ]);
      if (r.status !== 0) {
        console.error(`\nbench: ringzero (${hv}) did not boot the kit to its prompt (status ${r.status})\n${r.stderr}`);
        return false;
      }
      rzBy[hv].push(r.promptSeconds);
      if (hv === "monolithic") instructions.push(Number(/(\d+) instructions/.exec(r.stderr)?.[1] ?? 0));
    }
  }
  const rz = rzBy.monolithic;
  const haveQemu = spawnSync("sh", ["-c", "command -v qemu-system-riscv64"]).status === 0;
  for (let i = 0; haveQemu && i < runs; i++) {
    progress(`Linux boot: qemu run ${i + 1}/${runs}`);
    const r = await bootToPrompt("qemu-system-riscv64", [
      ...["-M", "virt", "-m", "256M", "-bios", "default", "-nographic"],
      ...["-kernel", image, "-initrd", initrd, "-append", "console=ttyS0"],
    ]);
    if (r.status !== 0) {
      console.error(`\nbench: qemu did not boot the kit to its prompt (status ${r.status})`);
      break;
    }
    qemu.push(r.promptSeconds);
  }
  progress("");
  const rzMedian = median(rz);
  const qMedian = qemu.length ? median(qemu) : undefined;
  console.log(`\nLinux: kit to the shell prompt, wall time from process start, median of ${runs}`);
  console.log(
    ["machine".padEnd(40), "to prompt s".padStart(12), "instructions".padStart(13), "ratio".padStart(14)].join(" "),
  );
  console.log(
    [
      "ringzero (hypervisor-monolithic, SBI)".padEnd(40),
      fmt(rzMedian).padStart(12),
      String(median(instructions)).padStart(13),
      (qMedian ? `${fmt(rzMedian / qMedian, 1)}x slower` : "n/a").padStart(14),
    ].join(" "),
  );
  const microMedian = median(rzBy.micro);
  console.log(
    [
      "ringzero (hypervisor-micro, SBI)".padEnd(40),
      fmt(microMedian).padStart(12),
      "n/a".padStart(13),
      (qMedian ? `${fmt(microMedian / qMedian, 1)}x slower` : "n/a").padStart(14),
    ].join(" "),
  );
  console.log(`${"micro / monolithic".padEnd(40)} ${`${fmt(microMedian / rzMedian, 2)}x`.padStart(12)}`);
  console.log(
    [
      "qemu-system-riscv64 -bios default".padEnd(40),
      (qMedian ? fmt(qMedian) : "n/a").padStart(12),
      "n/a".padStart(13),
      "1.0x".padStart(14),
    ].join(" "),
  );
  console.log(
    "(ringzero's count runs to power-off, a few hundred thousand past the prompt; Debian's QEMU has no TCG plugins to count)",
  );
  return true;
}

/** virtio-blk and virtio-net from inside the kit, ringzero against QEMU, median of `runs` boots each. */
async function guestIo({ image, initrd }: { image: string; initrd: string }): Promise<boolean> {
  const setup = await startIoSetup();
  try {
    const commands = ioCommands(setup);
    const rzArgs = (hv: string) => [
      ...[cli, "run", "--hypervisor", hv, "--kernel", image, "--initrd", initrd],
      ...["--drive", `${setup.image},format=raw`, "--net", "user"],
    ];
    const machines: [string, string, string[]][] = [
      ["ringzero (hypervisor-monolithic)", process.execPath, rzArgs("monolithic")],
      ["ringzero (hypervisor-micro)", process.execPath, rzArgs("micro")],
    ];
    if (spawnSync("sh", ["-c", "command -v qemu-system-riscv64"]).status === 0) {
      machines.push([
        "qemu-system-riscv64 (TCG, slirp)",
        "qemu-system-riscv64",
        [
          ...["-M", "virt", "-m", "256M", "-bios", "default", "-nographic"],
          ...["-kernel", image, "-initrd", initrd, "-append", "console=ttyS0"],
          ...["-global", "virtio-mmio.force-legacy=false"],
          ...["-drive", `file=${setup.image},format=raw,if=none,id=d0`, "-device", "virtio-blk-device,drive=d0"],
          ...["-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0"],
        ],
      ]);
    }
    const results: [string, IoFigures][] = [];
    for (const [label, cmd, args] of machines) {
      const all: IoFigures[] = [];
      for (let i = 0; i < runs; i++) {
        progress(`guest I/O: ${label} run ${i + 1}/${runs}`);
        const r = await runScript(cmd, args, commands, MARKER, PROMPT);
        const f = parseIo(r.out);
        if (!f) {
          console.error(`\nbench: ${label}: the guest I/O script did not finish\n${r.out.slice(-1500)}`);
          return false;
        }
        all.push(f);
      }
      const pick = (k: keyof IoFigures) => median(all.map((f) => f[k]));
      results.push([
        label,
        {
          blkRead: pick("blkRead"),
          blkWrite: pick("blkWrite"),
          netDown: pick("netDown"),
          netUp: pick("netUp"),
          pingMs: pick("pingMs"),
        },
      ]);
    }
    progress("");
    console.log(
      `\nGuest I/O: Linux kit, measured in the guest, median of ${runs} boots (blk ${setup.blkMiB} MiB dd O_DIRECT bs=1M; TCP ${setup.blobBytes / MiB} MiB wget via 10.0.2.2)`,
    );
    const cols = ["blk read MB/s", "blk write MB/s", "tcp down MB/s", "tcp up MB/s", "ping ms"];
    console.log(["machine".padEnd(34), ...cols.map((c) => c.padStart(15))].join(" "));
    const keys: (keyof IoFigures)[] = ["blkRead", "blkWrite", "netDown", "netUp", "pingMs"];
    for (const [label, f] of results) {
      console.log([label.padEnd(34), ...keys.map((k) => fmt(f[k], k === "pingMs" ? 2 : 1).padStart(15))].join(" "));
    }
    const ratio = (label: string, a: IoFigures, b: IoFigures) =>
      console.log([label.padEnd(34), ...keys.map((k) => `${fmt(a[k] / b[k], 2)}x`.padStart(15))].join(" "));
    const [mono, micro, q] = results.map((r) => r[1]);
    if (mono && micro) ratio("micro / monolithic", micro, mono);
    if (mono && q) ratio("monolithic / qemu", mono, q);
    if (micro && q) ratio("micro / qemu", micro, q);
    return true;
  } finally {
    setup.close();
  }
}
