// `pnpm bench disk-formats`: ringzero-img against qemu-img in the same run.
// A 1 GiB raw image with realistic data and holes (40% pseudo-random runs,
// 20% text-like runs, 40% holes; deterministic) is generated once in the
// temporary directory; then, median of N runs each:
// - convert: `ringzero-img convert` (this package's built CLI, a process per
//   run) against `qemu-img convert`, taking turns at going first, same input file, same output format,
//   both with their defaults (qemu-img: 8 coroutines, cache=unsafe target;
//   ringzero-img: no fsync of the target either); `-c` compresses on both
//   sides (qemu-img: its thread pool; ringzero-img: a worker per core). MB/s = virtual bytes / wall
//   time (1 MB = 10^6 bytes). Each ringzero output is checked once with
//   `qemu-img compare` against the source, outside the timing.
// - random 4 KiB reads: the same list of aligned offsets over the whole disk
//   (holes included) through qcow2 and VMDK images qemu-img wrote: the
//   library in-process (openImage + readInto, open and close included)
//   against qemu-io fed the same `read` commands on stdin (process start
//   included), both through the host page cache (qemu-io -t writeback).
// Everything lives in one directory under os.tmpdir(), removed at the end.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { NodeFileHost } from "../io/node-file.js";
import { openImage } from "../open.js";

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "..", "cli", "bin.cjs");
const KiB = 1024;
const MiB = 1024 * KiB;

// `pnpm --filter @ringzero/disk-formats bench -- --runs 5` hands the script the `--` too (pnpm 9+).
const argv = process.argv.slice(2);
const { values } = parseArgs({
  args: argv[0] === "--" ? argv.slice(1) : argv,
  options: {
    runs: { type: "string", default: "3" },
    size: { type: "string", default: "1024" }, // MiB
    reads: { type: "string", default: "20000" },
    dir: { type: "string" },
  },
});
const runs = Math.max(1, Number(values.runs));
const size = Math.max(64, Number(values.size)) * MiB;
const reads = Math.max(100, Number(values.reads));
const interactive = process.stderr.isTTY === true;

function progress(text: string): void {
  if (interactive) process.stderr.write(`\r\x1b[K${text}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * CPU seconds (user + system) of this process's waited-for children so far: /proc/self/stat's
 * cutime and cstime, in USER_HZ ticks (100 per second on Linux); null elsewhere.
 */
function childrenCpu(): number | null {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[13]) + Number(f[14])) / 100; // fields 16 and 17 of proc(5)
  } catch {
    return null;
  }
}

/**
 * Free page reporting passes so far (virtio-balloon: the guest hands free memory back to the
 * host, and the next writer whose page-cache pages come from it pays the host's faults in its
 * copy). This sandbox's kernel counts them in /sys/module/page_reporting/parameters/passes;
 * null where there is no such counter. A conversion during which a pass ran copied into the
 * page cache 3-14x slower in measurements (README, fifth round), whichever tool it was.
 */
const PASSES = "/sys/module/page_reporting/parameters/passes";
function reportingPasses(): number | null {
  try {
    return Number(readFileSync(PASSES, "utf8"));
  } catch {
    return null;
  }
}

function run(
  cmd: string,
  args: string[],
  input?: string,
  env?: NodeJS.ProcessEnv,
): { seconds: number; cpu: number | null; passes: number | null; stdout: string; stderr: string } {
  const p0 = reportingPasses();
  const c0 = childrenCpu();
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    input,
    env,
    maxBuffer: 256 * MiB,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const c1 = childrenCpu();
  const p1 = reportingPasses();
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return {
    seconds,
    cpu: c0 === null || c1 === null ? null : c1 - c0,
    passes: p0 === null || p1 === null ? null : p1 - p0,
    stdout: r.stdout,
    stderr: r.stderr,
  };
}

for (const tool of ["qemu-img", "qemu-io"])
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} not found (Debian package qemu-utils)`);
    process.exit(1);
  }

const base = values.dir ?? tmpdir();
const fs = statfsSync(base);
const free = fs.bavail * fs.bsize;
// source raw + qcow2/vmdk fixtures + one output at a time, each at most 60% of the size allocated
const need = 4 * size;
if (free < need) {
  console.error(`bench: ${base} has ${(free / 2 ** 30).toFixed(1)} GiB free, ${(need / 2 ** 30).toFixed(1)} needed`);
  process.exit(1);
}
const dir = mkdtempSync(join(base, "rz-disk-bench-"));
const cleanup = () => rmSync(dir, { recursive: true, force: true });
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

/** xorshift32 stream: deterministic pseudo-random words. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Writes the sparse source image: runs of 64 KiB..2 MiB, each random data (40%), text (20%) or a hole (40%). */
function generate(file: string): { data: number; text: number; holes: number } {
  const next = rng(0x5eed);
  const words = ["the", "disk", "sector", "cluster", "qemu", "ringzero", "image", "table", "refcount", "0x1f", "\n"];
  let textPool = "";
  while (textPool.length < 2 * MiB) textPool += `${words[next() % words.length]} ${next() % 1000} `;
  const text = new TextEncoder().encode(textPool);
  const fd = openSync(file, "w");
  const stats = { data: 0, text: 0, holes: 0 };
  const buf = new Uint8Array(2 * MiB);
  const words32 = new Uint32Array(buf.buffer);
  try {
    let pos = 0;
    while (pos < size) {
      const len = Math.min((1 + (next() % 32)) * 64 * KiB, size - pos);
      const kind = next() % 10;
      if (kind < 4) {
        for (let i = 0; i < len / 4; i++) words32[i] = next();
        writeSync(fd, buf, 0, len, pos);
        stats.data += len;
      } else if (kind < 6) {
        const at = next() % (text.length - len);
        writeSync(fd, text, at, len, pos);
        stats.text += len;
      } else stats.holes += len;
      pos += len;
    }
  } finally {
    closeSync(fd);
  }
  truncateSync(file, size);
  return stats;
}

interface Row {
  name: string;
  unit: "MB/s" | "IOPS";
  rz: number;
  qemu: number;
  /** Median CPU seconds (user + system) per conversion, ringzero-img and qemu-img, where known. */
  cpu?: [number, number];
  /** Runs of ringzero-img and of qemu-img during which a free page reporting pass ran, where counted. */
  hit?: [number, number];
}
const rows: Row[] = [];

try {
  const raw = join(dir, "src.raw");
  progress("generating the source image");
  const st = generate(raw);
  const qcow2 = join(dir, "src.qcow2");
  const vmdk = join(dir, "src.vmdk");
  progress("preparing qcow2 and vmdk fixtures with qemu-img");
  run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", raw, vmdk]);

  const conversions: Array<[string, string, string, string, string[]]> = [
    ["raw -> qcow2", raw, "raw", "qcow2", []],
    ["qcow2 -> vmdk", qcow2, "qcow2", "vmdk", []],
    ["qcow2 -> vhdx", qcow2, "qcow2", "vhdx", []],
    ["raw -> vdi", raw, "raw", "vdi", []],
    ["raw -> qcow2 -c", raw, "raw", "qcow2", ["-c"]],
  ];
  for (const [name, src, inFmt, outFmt, extra] of conversions) {
    const out = join(dir, `out.${outFmt}`);
    const rz: number[] = [];
    const qemu: number[] = [];
    const rzCpu: number[] = [];
    const qemuCpu: number[] = [];
    const hit: [number, number] | undefined = reportingPasses() === null ? undefined : [0, 0];
    const ours = (i: number) => {
      rmSync(out, { force: true });
      const r = run(process.execPath, [cli, "convert", "-f", inFmt, "-O", outFmt, ...extra, src, out]);
      rz.push(r.seconds);
      if (r.cpu !== null) rzCpu.push(r.cpu);
      if (hit && r.passes) hit[0]++;
      if (i === 0) {
        const cmp = run("qemu-img", ["compare", "-f", inFmt, "-F", outFmt, src, out]);
        if (!cmp.stdout.includes("Images are identical")) throw new Error(`ringzero-img ${name}: output differs`);
      }
      rmSync(out, { force: true });
    };
    const theirs = () => {
      rmSync(out, { force: true });
      const r = run("qemu-img", ["convert", "-f", inFmt, "-O", outFmt, ...extra, src, out]);
      qemu.push(r.seconds);
      if (r.cpu !== null) qemuCpu.push(r.cpu);
      if (hit && r.passes) hit[1]++;
      rmSync(out, { force: true });
    };
    for (let i = 0; i < runs; i++) {
      progress(`convert ${name}: run ${i + 1}/${runs}`);
      // Alternating which tool goes first: the second one's output lands on the pages the first freed.
      if (i % 2 === 0) {
        ours(i);
        theirs();
      } else {
        theirs();
        ours(i);
      }
    }
    rows.push({
      name: `convert ${name}`,
      unit: "MB/s",
      rz: size / 1e6 / median(rz),
      qemu: size / 1e6 / median(qemu),
      ...(rzCpu.length === runs && qemuCpu.length === runs ? { cpu: [median(rzCpu), median(qemuCpu)] } : {}),
      ...(hit ? { hit } : {}),
    });
  }

  const next = rng(0xbe11c);
  const offsets = Array.from({ length: reads }, () => (next() % (size / 4096)) * 4096);
  const commands = `${offsets.map((o) => `read -q ${o} 4k`).join("\n")}\n`;
  const host = new NodeFileHost();
  for (const [fmt, file] of [
    ["qcow2", qcow2],
    ["vmdk", vmdk],
  ] as const) {
    const rz: number[] = [];
    const qemu: number[] = [];
    for (let i = 0; i < runs; i++) {
      progress(`random 4 KiB reads through ${fmt}: run ${i + 1}/${runs}`);
      const t = process.hrtime.bigint();
      const img = await openImage(host, file, { readOnly: true, format: fmt });
      const buf = new Uint8Array(4096);
      for (const o of offsets) await img.readInto(o, buf);
      await img.close();
      rz.push(Number(process.hrtime.bigint() - t) / 1e9);
      const q = run("qemu-io", ["-r", "-f", fmt, "-t", "writeback", file], commands);
      if (/error|fail/i.test(q.stdout + q.stderr)) throw new Error(`qemu-io: ${q.stdout.slice(0, 500)}${q.stderr}`);
      qemu.push(q.seconds);
    }
    rows.push({
      name: `${reads} random 4 KiB reads, ${fmt}`,
      unit: "IOPS",
      rz: reads / median(rz),
      qemu: reads / median(qemu),
    });
  }
  // What Node's own start costs each ringzero-img run here (not timed in any figure above): an empty
  // script, as the conversions ran it, and without NODE_EXTRA_CA_CERTS when that is set (node then
  // loads the named CA bundle at every start, before any script runs).
  progress("node start-up");
  const start: number[] = [];
  const bare: number[] = [];
  const startWall: number[] = [];
  const bareWall: number[] = [];
  const withoutCa = { ...process.env };
  delete withoutCa.NODE_EXTRA_CA_CERTS;
  for (let i = 0; i < 2 * runs + 1; i++) {
    const c = run(process.execPath, ["-e", "0"]);
    startWall.push(c.seconds);
    if (c.cpu !== null) start.push(c.cpu);
    if (process.env.NODE_EXTRA_CA_CERTS) {
      const b = run(process.execPath, ["-e", "0"], undefined, withoutCa);
      bareWall.push(b.seconds);
      if (b.cpu !== null) bare.push(b.cpu);
    }
  }
  progress("");
  if (interactive) process.stderr.write("\r\x1b[K");
  const pct = (n: number) => `${Math.round((100 * n) / size)}%`;
  console.log(
    `disk-formats: ${size / MiB} MiB image (${pct(st.data)} random data, ${pct(st.text)} text, ${pct(st.holes)} holes), median of ${runs} runs`,
  );
  console.log(
    "  convert: ringzero-img (this package's CLI, a process per run) vs qemu-img convert; wall time, and CPU time (user + system, from /proc)",
  );
  console.log("  reads: the library in-process vs qemu-io (same offsets on stdin), page cache on both sides");
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(
    `  ${"".padEnd(w)}  ${"ringzero".padStart(14)}  ${"qemu".padStart(14)}  qemu/ringzero  CPU s: ringzero / qemu (ratio)`,
  );
  for (const r of rows) {
    const f = (v: number) => `${v.toFixed(r.unit === "IOPS" ? 0 : 1)} ${r.unit}`.padStart(14);
    const cpu = r.cpu ? `  ${r.cpu[0].toFixed(2)} / ${r.cpu[1].toFixed(2)} (${(r.cpu[0] / r.cpu[1]).toFixed(2)})` : "";
    const hit = r.hit ? `  reporting passes in runs: ${r.hit[0]} / ${r.hit[1]}` : "";
    console.log(
      `  ${r.name.padEnd(w)}  ${f(r.rz)}  ${f(r.qemu)}  ${(r.qemu / r.rz).toFixed(2).padStart(13)}${cpu}${hit}`,
    );
  }
  if (rows.some((r) => r.hit))
    console.log(
      "  reporting passes in runs: runs (ringzero / qemu) during which the guest's free page reporting ran; such a run's copy into the page cache costs several times more",
    );
  const secs = (wall: number[], cpu: number[]) =>
    `${median(wall).toFixed(3)} s wall${cpu.length > 0 ? `, ${median(cpu).toFixed(2)} s CPU` : ""}`;
  console.log(
    `  node start-up (node -e 0), part of every ringzero-img run above: ${secs(startWall, start)}${
      bareWall.length > 0 ? `; without NODE_EXTRA_CA_CERTS (set here): ${secs(bareWall, bare)}` : ""
    }`,
  );
} catch (e) {
  if (interactive) process.stderr.write("\r\x1b[K");
  console.error(`bench: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
