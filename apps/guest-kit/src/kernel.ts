// The guest kernel: Debian's linux-source-6.1 cross-built with
// gcc-riscv64-linux-gnu from tinyconfig plus the project's fragment.
// Resumable: the source tree is extracted once, the build directory (O=) is
// kept, and make only redoes what is missing.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hashInputs, removeStaleTemps } from "./cache.js";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";
import { checkKconfig, formatMismatches, mergeKconfig, parseKconfigFragment } from "./kconfig.js";
import { requireTools, run } from "./run.js";

export const LINUX_SOURCE_PACKAGE = "linux-source-6.1";
export const LINUX_SOURCE_TARBALL = "/usr/src/linux-source-6.1.tar.xz";
export const CROSS_COMPILE = "riscv64-linux-gnu-";
/** Bump when the recipe below changes in a way that changes the Image. */
const KERNEL_RECIPE = "1";

/** The project's own fragment, shipped in the package's config/ folder. */
export const KCONFIG_FRAGMENT_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "linux-6.1-riscv-guest.config",
);

export interface KernelInputs {
  readonly fragment: string;
  readonly linuxSourceVersion: string;
  readonly crossGccVersion: string;
}

export async function dpkgVersion(pkg: string): Promise<string> {
  requireTools(["dpkg-query"]);
  try {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a dpkg-query format, not a template
    const v = (await run("dpkg-query", ["-W", "-f=${Version}", pkg])).toString("utf8").trim();
    if (v !== "") return v;
  } catch {
    // fall through
  }
  throw new GuestKitError(
    GuestKitErrorCode.TOOL_MISSING,
    { packages: [pkg] },
    `install with: apt-get install -y ${pkg}`,
  );
}

export async function kernelInputs(): Promise<KernelInputs> {
  requireTools([`${CROSS_COMPILE}gcc`]);
  const gcc = (await run(`${CROSS_COMPILE}gcc`, ["--version"])).toString("utf8").split("\n")[0];
  return {
    fragment: readFileSync(KCONFIG_FRAGMENT_PATH, "utf8"),
    linuxSourceVersion: await dpkgVersion(LINUX_SOURCE_PACKAGE),
    crossGccVersion: gcc,
  };
}

export function kernelKey(inputs: KernelInputs): string {
  return hashInputs({ recipe: KERNEL_RECIPE, ...inputs });
}

export interface KernelBuildResult {
  readonly image: string;
  readonly buildDir: string;
  /** Fragment options checked in .config. */
  readonly optionsChecked: number;
  readonly seconds: number;
}

export type Progress = (message: string) => void;

/** Builds (or finds) `Image` under `<cacheDir>/kernel/<key>/`. Call under the cache lock. */
export async function buildKernel(
  cacheDir: string,
  inputs: KernelInputs,
  progress: Progress = () => {},
): Promise<KernelBuildResult> {
  const started = Date.now();
  requireTools([`${CROSS_COMPILE}gcc`, "make", "gcc", "flex", "bison", "bc", "tar", "xz"]);
  const fragment = parseKconfigFragment(inputs.fragment);

  // 1. Extract the source tree once per linux-source version.
  const srcRoot = join(cacheDir, "src");
  const srcDir = join(srcRoot, `linux-source-${inputs.linuxSourceVersion}`);
  if (!existsSync(join(srcDir, ".ringzero-extracted"))) {
    if (!existsSync(LINUX_SOURCE_TARBALL)) {
      throw new GuestKitError(GuestKitErrorCode.TOOL_MISSING, {
        missing: [LINUX_SOURCE_TARBALL],
        packages: [LINUX_SOURCE_PACKAGE],
      });
    }
    progress(`kernel: extracting ${LINUX_SOURCE_TARBALL}`);
    removeStaleTemps(srcRoot);
    const tmp = `${srcDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await run("tar", ["-xJf", LINUX_SOURCE_TARBALL, "-C", tmp, "--strip-components=1"]);
    writeFileSync(join(tmp, ".ringzero-extracted"), `${inputs.linuxSourceVersion}\n`);
    rmSync(srcDir, { recursive: true, force: true });
    renameSync(tmp, srcDir);
  }

  // 2. Configure once per key: tinyconfig, merge the fragment, olddefconfig, check.
  const key = kernelKey(inputs);
  const buildDir = join(cacheDir, "kernel", key);
  const log = join(buildDir, "build.log");
  const make = (targets: string[], onOutput?: (s: string) => void) =>
    run("make", ["-C", srcDir, `O=${buildDir}`, "ARCH=riscv", `CROSS_COMPILE=${CROSS_COMPILE}`, ...targets], {
      logFile: log,
      onOutput,
      env: { ...process.env, KBUILD_BUILD_USER: "ringzero", KBUILD_BUILD_HOST: "guest-kit", LC_ALL: "C" },
    });
  const configured = join(buildDir, ".ringzero-configured");
  if (!existsSync(configured)) {
    progress("kernel: tinyconfig + fragment + olddefconfig");
    rmSync(buildDir, { recursive: true, force: true });
    mkdirSync(buildDir, { recursive: true });
    await make(["tinyconfig"]);
    const dotConfig = join(buildDir, ".config");
    writeFileSync(dotConfig, mergeKconfig(readFileSync(dotConfig, "utf8"), fragment));
    await make(["olddefconfig"]);
    const bad = checkKconfig(readFileSync(dotConfig, "utf8"), fragment);
    if (bad.length > 0) {
      throw new GuestKitError(
        GuestKitErrorCode.KCONFIG_DROPPED,
        { dropped: bad.map((b) => b.name), dotConfig },
        `${bad.length} fragment option(s) did not land in .config:\n${formatMismatches(bad)}`,
      );
    }
    writeFileSync(configured, `${fragment.length} options checked\n`);
  }

  // 3. make Image (incremental: an interrupted build resumes).
  const image = join(buildDir, "arch", "riscv", "boot", "Image");
  const done = join(buildDir, ".ringzero-image-done");
  if (!existsSync(done) || !existsSync(image)) {
    const jobs = Math.max(1, cpus().length);
    progress(`kernel: make -j${jobs} Image (several minutes; log: ${log})`);
    let compiled = 0;
    await make([`-j${jobs}`, "Image"], (chunk) => {
      const n = chunk.split("\n").filter((l) => /^\s+(CC|AS|LD|AR)\s/.test(l)).length;
      if (n > 0) {
        compiled += n;
        progress(`kernel: ${compiled} objects built`);
      }
    });
    writeFileSync(done, "");
  }
  return { image, buildDir, optionsChecked: fragment.length, seconds: (Date.now() - started) / 1000 };
}
