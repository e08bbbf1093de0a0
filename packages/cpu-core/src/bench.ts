// `pnpm bench cpu-core [-- --runs N --elf-dir DIR --full]`: rzbench (../shared/bench, M-mode and
// S-mode Sv39) on both engines, runs alternating between them, each in a fresh process: "cold" is
// the first run there (JIT not warmed up, every trace compiled), "warm" a second run of the same
// guest in that process (a long-running guest's steady state); MIPS from ringzero's exact
// instruction count over the process's CPU time for the run (loading, translation and V8's
// compiler threads included), median of N.
// Reports the translator's cache figures for its last run.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Engine } from "./hart/translator.js";
import { runElf } from "./testing/machine.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    full: { type: "boolean", default: false },
    "elf-dir": { type: "string" },
    engine: { type: "string" },
    /** Internal: one run of ELF under ENGINE in this process, JSON on stdout. */
    child: { type: "string" },
  },
});

interface RunResult {
  code: number | undefined;
  pass: boolean;
  output: string;
  instret: number;
  /** CPU seconds of the first run in a fresh process (cold) and of a second one after it (warm). */
  seconds: number;
  warmSeconds: number;
  stats: ReturnType<ReturnType<typeof runElf>["hart"]["translatorStats"]>;
}

if (values.child !== undefined) {
  const elf = new Uint8Array(readFileSync(values.child));
  const once = () => {
    const c0 = process.cpuUsage();
    const r = runElf(elf, { maxInstructions: 1e12, ramSize: 256 << 20, hart: { engine: values.engine as Engine } });
    const c = process.cpuUsage(c0);
    // CPU time of this process (user + system: V8's compiler threads count too), not wall time:
    // the machine is shared, and other tenants' load moves wall time by ±50 %
    return { r, seconds: (c.user + c.system) / 1e6 };
  };
  const cold = once();
  // the same guest again in this process: V8's JIT is warm and the WebAssembly modules of the
  // same code are in V8's cache (a long-running guest's steady state)
  const warm = once();
  const r = cold.r;
  const out: RunResult = {
    code: r.code,
    pass: r.output.includes("PASS") && warm.r.output === r.output,
    output: r.output,
    instret: r.instret,
    seconds: cold.seconds,
    warmSeconds: warm.seconds,
    stats: r.hart.translatorStats(),
  };
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}
const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
const elfDir = values["elf-dir"] ?? process.env.RZ_BENCH_DIR ?? join(repo, "..", "shared", "bench", "elf");
const runs = Math.max(1, Number(values.runs));
const scale = values.full ? "s10" : "s1";
const engines: Engine[] =
  values.engine === "interpreter" || values.engine === "translator" ? [values.engine] : ["interpreter", "translator"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

let failed = false;
for (const name of [`rzbench-${scale}.elf`, `rzbench-sv39-${scale}.elf`]) {
  const path = join(elfDir, name);
  if (!existsSync(path)) {
    console.error(`bench: ${path} not found (set RZ_BENCH_DIR or --elf-dir)`);
    process.exit(1);
  }
  const mips = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  const warmMips = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  let stats = "";
  let instructions = 0;
  for (let i = 0; i < runs; i++) {
    for (const engine of engines) {
      const r = JSON.parse(
        execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", path, "--engine", engine], {
          encoding: "utf8",
          maxBuffer: 64 << 20,
        }),
      ) as RunResult;
      const s = r.seconds;
      if (r.code !== 0 || !r.pass) {
        console.error(`bench: ${name} failed under ${engine} (code ${r.code})\n${r.output}`);
        failed = true;
        break;
      }
      instructions = r.instret;
      mips.get(engine)?.push(r.instret / s / 1e6);
      warmMips.get(engine)?.push(r.instret / r.warmSeconds / 1e6);
      const st = r.stats;
      if (st) {
        const lookups = st.lookups || 1;
        stats =
          `blocks ${st.blocksTranslated} (${st.wasmBlocks} WebAssembly), ${st.instructionsTranslated} insns, ` +
          `${(st.hostCodeBytes / 1024).toFixed(0)} KiB host code, ` +
          `compile ${st.compileMs.toFixed(0)} ms, hit rate ${((100 * st.hits) / lookups).toFixed(2)} %, ` +
          `in blocks ${((100 * st.blockInstructions) / r.instret).toFixed(2)} %, ` +
          `${(st.blockInstructions / (st.blockCalls || 1)).toFixed(1)} insns per call, interpreted ${st.interpreted}, ` +
          `page invalidations ${st.pageInvalidations}, flushes ${st.flushes}, fence.i ${st.fences}`;
      }
    }
  }
  console.log(`${name}: ${instructions} instructions, median of ${runs}`);
  for (const [label, m] of [
    ["cold", mips],
    ["warm", warmMips],
  ] as const) {
    const med = engines.map((e) => median(m.get(e) ?? [0]));
    engines.forEach((e, i) => {
      const all = (m.get(e) ?? []).map((v) => v.toFixed(1)).join(" ");
      console.log(`  ${label} ${e.padEnd(12)} ${med[i].toFixed(1).padStart(7)} MIPS  (${all})`);
    });
    if (engines.length === 2) console.log(`  ${label} translator/interpreter ${(med[1] / med[0]).toFixed(2)}x`);
  }
  if (stats) console.log(`  translator: ${stats}`);
}
process.exitCode = failed ? 1 : 0;
