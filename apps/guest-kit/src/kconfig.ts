// Kconfig fragments: parse, merge into a .config, and check that every
// option really landed (tinyconfig drops options whose dependencies are off).
import { GuestKitError, GuestKitErrorCode } from "./errors.js";

/** One fragment line: `CONFIG_X=value` or `# CONFIG_X is not set` (value null). */
export interface KconfigOption {
  readonly name: string;
  readonly value: string | null;
  readonly line: number;
}

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/** Parses a fragment; other comments and blank lines are ignored, anything else is an error. */
export function parseKconfigFragment(text: string): KconfigOption[] {
  const options: KconfigOption[] = [];
  const seen = new Map<string, number>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    const lineNo = i + 1;
    const set = SET.exec(line);
    const unset = set ? null : UNSET.exec(line);
    let opt: KconfigOption;
    if (set) {
      if (set[2] === "") throw malformed(lineNo, raw, "empty value");
      opt = { name: set[1], value: set[2], line: lineNo };
    } else if (unset) {
      opt = { name: unset[1], value: null, line: lineNo };
    } else if (line === "" || line.startsWith("#")) {
      return;
    } else {
      throw malformed(lineNo, raw, "not a Kconfig assignment");
    }
    const prev = seen.get(opt.name);
    if (prev !== undefined) throw malformed(lineNo, raw, `duplicate of line ${prev}`);
    seen.set(opt.name, lineNo);
    options.push(opt);
  });
  return options;
}

function malformed(line: number, text: string, why: string): GuestKitError {
  return new GuestKitError(GuestKitErrorCode.KCONFIG_MALFORMED, { line, text: text.slice(0, 200) }, why);
}

/** Reads a .config into name -> value (null for `is not set`). */
export function readDotConfig(text: string): Map<string, string | null> {
  const map = new Map<string, string | null>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const m = SET.exec(line);
    if (m) map.set(m[1], m[2]);
    else {
      const u = UNSET.exec(line);
      if (u) map.set(u[1], null);
    }
  }
  return map;
}

/** Replaces the fragment's symbols in a .config (as scripts/kconfig/merge_config.sh does). */
export function mergeKconfig(dotConfig: string, fragment: readonly KconfigOption[]): string {
  const names = new Set(fragment.map((o) => o.name));
  const kept = dotConfig.split("\n").filter((raw) => {
    const line = raw.trim();
    const m = SET.exec(line) ?? UNSET.exec(line);
    return !(m && names.has(m[1]));
  });
  while (kept.length > 0 && kept[kept.length - 1] === "") kept.pop();
  const added = fragment.map((o) => (o.value === null ? `# ${o.name} is not set` : `${o.name}=${o.value}`));
  return `${[...kept, ...added].join("\n")}\n`;
}

export interface KconfigMismatch {
  readonly name: string;
  readonly wanted: string | null;
  /** What .config says (null: not set; undefined: absent). */
  readonly got: string | null | undefined;
}

/**
 * Every `=value` line must appear verbatim; every `is not set` line must be
 * unset or absent (an absent symbol is one that is not visible, hence off).
 */
export function checkKconfig(dotConfig: string, fragment: readonly KconfigOption[]): KconfigMismatch[] {
  const have = readDotConfig(dotConfig);
  const bad: KconfigMismatch[] = [];
  for (const o of fragment) {
    const got = have.get(o.name);
    const ok = o.value === null ? got === null || got === undefined : got === o.value;
    if (!ok) bad.push({ name: o.name, wanted: o.value, got });
  }
  return bad;
}

export function formatMismatches(bad: readonly KconfigMismatch[]): string {
  return bad
    .map(
      (b) =>
        `  ${b.name}: wanted ${b.wanted ?? "not set"}, got ${b.got === undefined ? "absent" : (b.got ?? "not set")}`,
    )
    .join("\n");
}
