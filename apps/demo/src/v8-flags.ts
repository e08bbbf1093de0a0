// V8 settings for the ringzero process, imported by cli.ts before its other modules (ES modules
// run in import order), so they hold before any guest code is translated. V8's flags are the
// process's: the partition threads of --hypervisor micro have them too. Not part of a library: a
// program that embeds cpu-core keeps its own V8 settings.
import { setFlagsFromString } from "node:v8";

/**
 * How many bytes of WebAssembly a function runs before V8 compiles it again with TurboFan: 11
 * times V8 11's default (1,800,000). A Linux boot makes ~3,500 traces, most of which run a few
 * thousand times and are done; with the default, V8's helper threads compiled many of them
 * again for little gain. Linux kit boots, 6 alternating each (load 4, another job on one of
 * the 2 cores): main-thread CPU 1.25 s either way, all threads 2.10 → 1.81 s, wall 2.09 →
 * 1.89 s. (Read at each tier-up check, so it holds though set after start-up.)
 */
setFlagsFromString("--wasm-tiering-budget=20000000");
