// Test helper: decompile a DTB with Debian's dtc and parse dtc's dts output
// into path -> property -> value text. Not exported from the package.
import { execFileSync, spawnSync } from "node:child_process";

/** Throws a clear message when dtc is missing (CI must not skip). */
export function requireDtc(): void {
  const r = spawnSync("dtc", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error("dtc not found: install Debian's device-tree-compiler (scripts/setup.sh does)");
  }
}

/** `dtc -I dtb -O dts` of a blob: the dts text and dtc's warnings. */
export function decompile(dtb: Uint8Array): { dts: string; warnings: string } {
  const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", "-"], { input: dtb, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dtc failed: ${r.stderr}`);
  return { dts: r.stdout, warnings: r.stderr };
}

/** Compiles dts text to a DTB with dtc. */
export function compile(dts: string): Uint8Array {
  return new Uint8Array(
    execFileSync("dtc", ["-I", "dts", "-O", "dtb", "-"], { input: dts, stdio: ["pipe", "pipe", "ignore"] }),
  );
}

export type DtsTree = Map<string, Map<string, string>>;

/** Parses dtc's own dts output (one property or node per line). */
export function parseDts(dts: string): DtsTree {
  const tree: DtsTree = new Map();
  const stack: string[] = [];
  const path = () => (stack.length <= 1 ? "/" : `/${stack.slice(1).join("/")}`);
  for (const raw of dts.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("/dts-v1/") || line.startsWith("/memreserve/")) continue;
    if (line.endsWith("{")) {
      stack.push(line.slice(0, -1).trim());
      tree.set(path(), new Map());
    } else if (line === "};") {
      stack.pop();
    } else {
      const m = /^([^=;]+?)(?: = (.*))?;$/.exec(line);
      if (!m) throw new Error(`unparsed dts line: ${line}`);
      tree.get(path())?.set(m[1], m[2] ?? "");
    }
  }
  return tree;
}
