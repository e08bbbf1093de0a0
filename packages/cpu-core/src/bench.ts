// `pnpm bench cpu-core [-- --runs N --elf-dir DIR --full]`: rzbench (../shared/bench, M-mode and
// S-mode Sv39) on both engines, runs alternating between them, each in a fresh process: "cold" is
// the first run there (JIT not warmed up, every trace compiled), "warm" a second run of the same
// guest in that process (a long-running guest's steady state); MIPS from ringzero's exact
// instruction count over the process's CPU time for the run (loading, translation and V8's
// compiler threads included), median of N.
// Reports the translator's cache figures for its last run.
// `--codegen`: in this process instead, the translator's code generators on every 2-byte start in
// rzbench's code: the JavaScript back end's generate() (the reference) and the WebAssembly back
// end's generateWasm() (µs per start tried: most are not a trace) and blockModule() (batches of
// 16, µs per trace), medians of 15 rounds.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseElf } from "./elf.js";
import { compressedTable } from "./hart/compressed.js";
import { type Engine, generate } from "./hart/translator.js";
import { wasmApi } from "./hart/wasm-api.js";
import { blockModule, generateWasm, type WasmLayout } from "./hart/wasm-block.js";
import { runElf } from "./testing/machine.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    full: { type: "boolean", default: false },
    "elf-dir": { type: "string" },
    engine: { type: "string" },
    codegen: { type: "boolean", default: false },
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

/** µs per trace of the code generators on rzbench's code (see the header). */
function codegen(path: string): void {
  if (wasmApi === undefined) throw new Error("bench --codegen: no WebAssembly");
  const elf = new Uint8Array(readFileSync(path));
  const image = parseElf(elf);
  const ramSize = 1 << 22;
  const pages = (ramSize >> 16) + 1;
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages });
  const ram = new Uint8Array(memory.buffer, 0, ramSize);
  const starts: number[] = [];
  const base = Math.min(...image.segments.map((g) => g.paddr));
  for (const g of image.segments) {
    const at = g.paddr - base;
    if (at + g.fileSize > ramSize) continue;
    ram.set(elf.subarray(g.offset, g.offset + g.fileSize), at);
    // PF_X
    if (g.flags & 1) for (let o = at; o < at + g.fileSize; o += 2) starts.push(o);
  }
  const src = { u16: new Uint16Array(memory.buffer, 0, ramSize >> 1), ctab: compressedTable(), magic: false };
  const layout: WasmLayout = {
    memory,
    shared: false,
    pages,
    xBase: ramSize,
    ctlBase: ramSize + 256,
    fBase: ramSize + 512,
    cacheBase: ramSize + 4096,
  };
  const bodies: number[][] = [];
  for (const s of starts) {
    const g = generateWasm(s, src, layout);
    if (g.body !== undefined && !g.fp) bodies.push(g.body);
  }
  const js: number[] = [];
  const gen: number[] = [];
  const asm: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = performance.now();
    for (const s of starts) generate(s, src);
    const t1 = performance.now();
    for (const s of starts) generateWasm(s, src, layout);
    const t2 = performance.now();
    for (let i = 0; i < bodies.length; i += 16) blockModule(bodies.slice(i, i + 16), layout);
    const t3 = performance.now();
    js.push(((t1 - t0) * 1000) / starts.length);
    gen.push(((t2 - t1) * 1000) / starts.length);
    asm.push(((t3 - t2) * 1000) / bodies.length);
  }
  const [j, g, a] = [median(js), median(gen), median(asm)];
  console.log(`${path}: ${starts.length} starts, ${bodies.length} WebAssembly traces, median of 15 rounds`);
  console.log(`  JavaScript generate()    ${j.toFixed(2).padStart(7)} us/start (reference)`);
  console.log(`  generateWasm()           ${g.toFixed(2).padStart(7)} us/start  ${(g / j).toFixed(2)}x`);
  console.log(
    `  blockModule() (16/batch) ${a.toFixed(2).padStart(7)} us/trace  ${(a / j).toFixed(2)}x the reference's us/start`,
  );
}

if (values.codegen) {
  codegen(join(elfDir, `rzbench-${scale}.elf`));
  process.exit(0);
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
