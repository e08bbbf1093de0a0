// Command-line conventions of `ringzero` and its commands, as QEMU's and
// qemu-img's: --version, -h/--help on stdout, one line and a pointer to
// --help for a malformed command line, exit status 1 for every usage error.
import { readFileSync } from "node:fs";
import { DemoError, DemoErrorCode } from "./errors.js";

/** The package's version (read when asked). */
export function packageVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
  } catch {
    return "unknown";
  }
}

/** qemu-img's pointer to the help of `ringzero COMMAND`. */
export function tryHelp(command?: string): string {
  return `Try 'ringzero${command ? ` ${command}` : ""} --help' for more information`;
}

/** A node:util parseArgs error as one getopt-style line plus the pointer to --help. */
export function argsError(e: unknown, command: string, args: readonly string[]): DemoError {
  const err = e as Error & { code?: string };
  const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? "";
  let line: string;
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      line = `unrecognized option '${quoted}'`;
      break;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      line = `unexpected argument '${quoted}'`;
      break;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      // "-m, --memory <value>": name the spelling the user wrote
      const names = quoted.match(/--?[\w-]+/g) ?? [quoted];
      const name = names.find((n) => args.some((a) => a === n || a.startsWith(`${n}=`))) ?? names[0];
      line = /argument missing/.test(err.message)
        ? `option '${name}' requires an argument`
        : `option '${name}' doesn't allow an argument`;
      break;
    }
    default:
      line = err.message;
  }
  return new DemoError(DemoErrorCode.USAGE, { command, code: err.code }, `${line}\n${tryHelp(command)}`);
}
