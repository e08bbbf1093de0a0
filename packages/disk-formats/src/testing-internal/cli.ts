// `ringzero-img ARGS` in this process with its output captured (the tests' one way to run the CLI).

import { runCli } from "../cli/main.js";
import type { StoreHost } from "../io/store.js";

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI on `argv` (not a terminal), on `host` when given (default: the node file host). */
export async function rzOn(host: StoreHost | undefined, ...argv: string[]): Promise<CliRun> {
  let out = "";
  let err = "";
  const code = await runCli(argv, {
    ...(host ? { host } : {}),
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
    isTTY: false,
  });
  return { code, out, err };
}

export const rz = (...argv: string[]): Promise<CliRun> => rzOn(undefined, ...argv);
