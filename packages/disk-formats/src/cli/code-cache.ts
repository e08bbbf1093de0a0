// Loads the CLI bundle (ringzero-img.cjs) with V8's code cache (ringzero-img.cjs.cache), both
// beside bin.cjs: the bytecode of the functions a conversion runs is deserialized instead of parsed
// and compiled at start-up. The cache is written by the package's build (train-code-cache.ts) with
// the Node that built it; V8 refuses a cache made by another V8 version, with other V8 flags or
// for other source text (`cachedDataRejected`), and then compiles the bundle as it would without
// one. A missing or unreadable cache file is the same case. V8 checks the data's length and
// versions, not its bytes (a release build does not verify the payload's checksum: one flipped byte
// in the middle of the cache crashed node 20 with SIGSEGV), so the file starts with the SHA-256 of
// the V8 data, checked first (under 1 ms for the 0.4 MB). Only the CLI process uses this; the
// library is imported as ES modules.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Script } from "node:vm";
import type { runCli } from "./main.js";

/** What the bundle exports (its entry is main.ts). */
export interface CliBundle {
  runCli: typeof runCli;
}

/** The code cache's state for this process: used, refused by V8, not matching its digest, or no file. */
export type CacheState = "accepted" | "rejected" | "corrupt" | "missing";

const DIGEST = 32;

/** The cache file's bytes for V8's code cache `data`: its SHA-256, then the data. */
export function cacheFile(data: Uint8Array): Buffer {
  return Buffer.concat([createHash("sha256").update(data).digest(), data]);
}

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
  let file: Buffer | undefined;
  try {
    file = readFileSync(cachePath(bundle));
  } catch {
    file = undefined;
  }
  let cachedData = file?.subarray(DIGEST);
  const corrupt =
    file !== undefined &&
    (file.length <= DIGEST || !createHash("sha256").update(cachedData!).digest().equals(file.subarray(0, DIGEST)));
  if (corrupt) cachedData = undefined;
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
    cache: corrupt
      ? "corrupt"
      : cachedData === undefined
        ? "missing"
        : script.cachedDataRejected === true
          ? "rejected"
          : "accepted",
  };
}
