// Loads the CLI bundle (ringzero-img.cjs) with V8's code cache (ringzero-img.cjs.cache), both
// beside bin.cjs: the bytecode of the functions a conversion runs is deserialized instead of parsed
// and compiled at start-up. The cache is written by the package's build (train-code-cache.ts) with
// the Node that built it; V8 refuses a cache made by another V8 version, with other V8 flags or
// for other source text (`cachedDataRejected`), and then compiles the bundle as it would without
// one. A missing or unreadable cache file is the same case. A release build of V8 checks the
// cache's length, versions and flags but not its checksum (one flipped byte in the middle of the
// cache crashed node 20 with SIGSEGV) unless `--verify-snapshot-checksum` is set, which v8-flags.ts
// does (a corrupt cache is then refused like a stale one; a SHA-256 in JavaScript instead loaded
// node:crypto, 5-7 ms of the start). Only the CLI process uses this; the library is imported as
// ES modules.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Script } from "node:vm";
import type { runCli } from "./main.js";

/** What the bundle exports (its entry is main.ts). */
export interface CliBundle {
  runCli: typeof runCli;
}

/** The code cache's state for this process: used, refused by V8, or no file. */
export type CacheState = "accepted" | "rejected" | "missing";

export interface LoadedCli {
  cli: CliBundle;
  /** The compiled bundle, for `createCachedData()` (train-code-cache.ts). */
  script: Script;
  cache: CacheState;
}

/** The cache file of a bundle. */
export function cachePath(bundle: string): string {
  return `${bundle}.cache`;
}

/**
 * Compiles and runs the CommonJS bundle at `bundle` (an absolute path) in this context, with its
 * code cache when there is one. The wrapper is CommonJS's own, on the bundle's first line, so
 * line numbers in stack traces are the bundle's; it must stay the same text for the cache to match.
 */
export function loadCli(bundle: string): LoadedCli {
  const source = readFileSync(bundle, "utf8");
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cachePath(bundle));
  } catch {
    cachedData = undefined;
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  });
  const module = { exports: {} as CliBundle };
  const run = script.runInThisContext() as (
    exports: object,
    require: NodeJS.Require,
    module: { exports: CliBundle },
    filename: string,
    dirname: string,
  ) => void;
  run(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  return {
    cli: module.exports,
    script,
    cache: cachedData === undefined ? "missing" : script.cachedDataRejected === true ? "rejected" : "accepted",
  };
}
