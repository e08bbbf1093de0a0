// V8 settings for the ringzero-img process, imported by bin.ts before the CLI's modules (ES
// modules run in import order), so they hold before any of its functions run. Not part of the
// library: a program that imports the package keeps its own V8 settings.
import { setFlagsFromString } from "node:v8";

/**
 * How much bytecode a function runs before V8 considers optimizing it with TurboFan: 64 times
 * V8 11's default of 66 KiB. A conversion is a short process whose hot loops are few and mostly
 * native (memcmp, the thread pool's copies), and TurboFan compiled 20 of its functions on
 * background threads, about 0.1 s of CPU on a 2-core machine (perf, qcow2→vhdx: 108 ms of the
 * V8 helper threads' samples against 260 ms on the main thread). With this budget 2 are
 * compiled. 9 alternating runs each, median wall time on the 1 GiB bench image: raw→qcow2 0.61 →
 * 0.56 s, qcow2→vhdx 0.59 → 0.49 s, qcow2→vmdk 0.69 → 0.57 s, raw→vdi 0.54 → 0.49 s; `-c` the
 * same. A long run still gets its hot functions optimized, a little later. (V8 flags set after
 * start-up are unsupported in general; this one is read at each tier-up check, and
 * `--trace-opt` shows it taking effect.)
 */
const INTERRUPT_BUDGET = 64 * 66 * 1024;

setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);

/**
 * V8 verifies the checksum of a code cache before using it (code-cache.ts): release builds skip
 * it by default, and a cache with one byte flipped in its payload crashed node 20. Part of V8's
 * flag hash, so the build's training run (train-code-cache.ts) sets it too, by importing this.
 */
setFlagsFromString("--verify-snapshot-checksum");
