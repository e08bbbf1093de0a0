// Spawning host tools: a missing tool is a typed error naming its Debian
// package; a failing command carries the tail of its output.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";

/** Host tool -> Debian package (the same pairs as scripts/setup.sh's table). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  "riscv64-linux-gnu-gcc": "gcc-riscv64-linux-gnu",
  make: "make",
  gcc: "gcc",
  flex: "flex",
  bison: "bison",
  bc: "bc",
  tar: "tar",
  xz: "xz-utils",
  gpgv: "gpgv",
  "dpkg-deb": "dpkg",
  "dpkg-query": "dpkg",
  "qemu-riscv64": "qemu-user",
  "qemu-system-riscv64": "qemu-system-misc",
  cpio: "cpio",
};

export function hasTool(tool: string): boolean {
  const r = spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool], { stdio: "ignore" });
  return r.status === 0;
}

export function requireTools(tools: readonly string[]): void {
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new GuestKitError(
      GuestKitErrorCode.TOOL_MISSING,
      { missing, packages },
      `install with: apt-get install -y ${packages.join(" ")} (or run scripts/setup.sh)`,
    );
  }
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr to this file instead of keeping them in memory. */
  readonly logFile?: string;
  /** Called with each chunk of output (progress display). */
  readonly onOutput?: (chunk: string) => void;
  readonly input?: Buffer;
}

/** Runs a command to completion; resolves with its stdout (unless logged to a file). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: "a" }) : undefined;
    const out: Buffer[] = [];
    let tail = "";
    const keepTail = (b: Buffer) => {
      tail = (tail + b.toString("utf8")).slice(-4000);
      opts.onOutput?.(b.toString("utf8"));
    };
    child.stdout?.on("data", (b: Buffer) => {
      if (log) log.write(b);
      else out.push(b);
      keepTail(b);
    });
    child.stderr?.on("data", (b: Buffer) => {
      log?.write(b);
      keepTail(b);
    });
    if (opts.input) child.stdin?.end(opts.input);
    child.on("error", (e) => {
      log?.end();
      reject(new GuestKitError(GuestKitErrorCode.COMMAND_FAILED, { cmd, args }, e.message));
    });
    child.on("close", (status, signal) => {
      const finish = () => {
        if (status === 0) resolve(Buffer.concat(out));
        else
          reject(
            new GuestKitError(
              GuestKitErrorCode.COMMAND_FAILED,
              { cmd, args: args.slice(0, 8), status, signal, logFile: opts.logFile },
              `last output:\n${tail}`,
            ),
          );
      };
      if (log) log.end(finish);
      else finish();
    });
  });
}

/** Debian packages the kit build needs (linux-source-6.1 provides no command, so it is checked here). */
export const KIT_BUILD_PACKAGES = [
  "linux-source-6.1",
  "gcc-riscv64-linux-gnu",
  "gcc",
  "libc6-dev",
  "make",
  "flex",
  "bison",
  "bc",
  "xz-utils",
  "gpgv",
  "debian-archive-keyring",
  "qemu-user",
] as const;

/** Which of `packages` dpkg does not report as installed. */
export async function missingDebianPackages(packages: readonly string[]): Promise<string[]> {
  requireTools(["dpkg-query"]);
  // One query for all; dpkg-query exits 1 when some package is unknown but
  // still prints the known ones.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a dpkg-query format, not a template
  const r = spawnSync("dpkg-query", ["-W", "-f=${Package}\t${Status}\n", ...packages], { encoding: "utf8" });
  const installed = new Set(
    (r.stdout ?? "")
      .split("\n")
      .map((l) => l.split("\t"))
      .filter(([, status]) => status?.endsWith(" installed"))
      .map(([name]) => name.split(":")[0]),
  );
  return packages.filter((p) => !installed.has(p));
}

/**
 * The kit's apt step: installs missing build packages when running as root
 * (CI, containers); otherwise a typed error says what to install.
 */
export async function ensureDebianPackages(
  packages: readonly string[],
  progress: (m: string) => void = () => {},
): Promise<void> {
  const missing = await missingDebianPackages(packages);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !hasTool("apt-get")) {
    throw new GuestKitError(
      GuestKitErrorCode.TOOL_MISSING,
      { packages: missing },
      `install with: sudo apt-get install -y ${missing.join(" ")}`,
    );
  }
  progress(`apt-get install ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
  try {
    await install();
  } catch {
    await run("apt-get", ["update", "-qq"], { env });
    await install();
  }
}
