// `pnpm bench cpu-core [-- --runs N --elf-dir DIR --full]`: rzbench (../shared/bench, M-mode and
// S-mode Sv39) on both engines in one process, runs alternating between them; MIPS from
// ringzero's exact instruction count over this process's CPU time for the whole run (loading,
// translation and V8's compiler threads included), median of N.
// Reports the translator's cache figures for its last run.
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
  },
});
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
  const elf = new Uint8Array(readFileSync(path));
  const mips = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  let stats = "";
  let instructions = 0;
  for (let i = 0; i < runs; i++) {
    for (const engine of engines) {
      const c0 = process.cpuUsage();
      const r = runElf(elf, { maxInstructions: 1e12, ramSize: 256 << 20, hart: { engine } });
      const c = process.cpuUsage(c0);
      // CPU time of this process (user + system: V8's compiler threads count too), not wall time:
      // the machine is shared, and other tenants' load moves wall time by ±50 %
      const s = (c.user + c.system) / 1e6;
      if (r.code !== 0 || !r.output.includes("PASS")) {
        console.error(`bench: ${name} failed under ${engine} (code ${r.code})\n${r.output}`);
        failed = true;
        break;
      }
      instructions = r.instret;
      mips.get(engine)?.push(r.instret / s / 1e6);
      const st = r.hart.translatorStats();
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
  const med = engines.map((e) => median(mips.get(e) ?? [0]));
  console.log(`${name}: ${instructions} instructions, median of ${runs}`);
  engines.forEach((e, i) => {
    const all = (mips.get(e) ?? []).map((m) => m.toFixed(1)).join(" ");
    console.log(`  ${e.padEnd(12)} ${med[i].toFixed(1).padStart(7)} MIPS  (${all})`);
  });
  if (engines.length === 2) console.log(`  translator/interpreter ${(med[1] / med[0]).toFixed(2)}x`);
  if (stats) console.log(`  translator: ${stats}`);
}
process.exitCode = failed ? 1 : 0;
