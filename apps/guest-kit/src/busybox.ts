// busybox-static for riscv64 from Debian trixie, from the mirror the
// machine's apt uses; every byte verified down the chain
// InRelease (gpgv) -> Packages.gz (SHA256 in Release) -> .deb (SHA256 in Packages).
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  DEBIAN_KEYRING,
  debianMirror,
  download,
  findPackage,
  parseAptSources,
  parseRelease,
  readAptSources,
  sha256Hex,
  verifyHash,
} from "./debian.js";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";
import type { Progress } from "./kernel.js";
import { requireTools, run } from "./run.js";

export const BUSYBOX_PACKAGE = "busybox-static";
export const BUSYBOX_CODENAME = "trixie";
const ARCH = "riscv64";
const PACKAGES_PATH = `main/binary-${ARCH}/Packages.gz`;

export interface BusyboxResult {
  /** Path of the extracted riscv64 `busybox` binary (in the cache). */
  readonly binary: string;
  readonly version: string;
  readonly debSha256: string;
  /** The suite whose index was used (`trixie`, or `stable` when its Codename is trixie). */
  readonly suite: string;
  /** Fingerprints of the good signatures on InRelease. */
  readonly signers: readonly string[];
}

/** Verifies an InRelease file with gpgv and the Debian archive keyring; returns the signed text. */
export async function verifyInRelease(
  inRelease: Buffer,
  workDir: string,
): Promise<{ text: string; signers: string[] }> {
  requireTools(["gpgv"]);
  if (!existsSync(DEBIAN_KEYRING)) {
    throw new GuestKitError(GuestKitErrorCode.TOOL_MISSING, {
      missing: [DEBIAN_KEYRING],
      packages: ["debian-archive-keyring"],
    });
  }
  const file = join(workDir, "InRelease");
  const out = join(workDir, "Release");
  writeFileSync(file, inRelease);
  rmSync(out, { force: true });
  let status: string;
  try {
    status = (await run("gpgv", ["--status-fd", "1", "--keyring", DEBIAN_KEYRING, "--output", out, file])).toString(
      "utf8",
    );
  } catch (e) {
    throw new GuestKitError(GuestKitErrorCode.SIGNATURE_INVALID, { file }, (e as Error).message.slice(0, 2000));
  }
  const signers = [...status.matchAll(/^\[GNUPG:\] VALIDSIG ([0-9A-F]{40})/gm)].map((m) => m[1]);
  if (signers.length === 0)
    throw new GuestKitError(GuestKitErrorCode.SIGNATURE_INVALID, { file }, "no VALIDSIG from gpgv");
  return { text: readFileSync(out, "utf8"), signers };
}

/** Fetches, verifies and extracts busybox-static into `<cacheDir>/downloads/`. */
export async function fetchBusybox(cacheDir: string, progress: Progress = () => {}): Promise<BusyboxResult> {
  requireTools(["dpkg-deb"]);
  const mirror = debianMirror(parseAptSources(readAptSources()));
  const downloads = join(cacheDir, "downloads");
  mkdirSync(downloads, { recursive: true });
  const work = mkdtempSync(join(downloads, "tmp-"));
  try {
    let lastError: unknown;
    // trixie first; its index was once seen out of step with its Release
    // file during a mirror sync, and the alias `stable` (Codename trixie) serves the same packages.
    for (const suite of [BUSYBOX_CODENAME, "stable"]) {
      try {
        progress(`busybox: ${suite} InRelease`);
        const { text, signers } = await verifyInRelease(
          await download(`${mirror}/dists/${suite}/InRelease`, 16 << 20),
          work,
        );
        const release = parseRelease(text);
        if (release.codename !== BUSYBOX_CODENAME) {
          throw new GuestKitError(GuestKitErrorCode.INDEX_MALFORMED, {
            suite,
            codename: release.codename,
            want: BUSYBOX_CODENAME,
          });
        }
        const want = release.sha256.get(PACKAGES_PATH);
        if (!want) throw new GuestKitError(GuestKitErrorCode.INDEX_MALFORMED, { suite, missing: PACKAGES_PATH });
        progress(`busybox: ${suite} ${PACKAGES_PATH} (${(want.size / 1e6).toFixed(1)} MB)`);
        const gz = await download(`${mirror}/dists/${suite}/${PACKAGES_PATH}`, want.size + 1);
        verifyHash(gz, want, `${suite}/${PACKAGES_PATH}`);
        const entry = findPackage(gunzipSync(gz, { maxOutputLength: 512 << 20 }).toString("utf8"), BUSYBOX_PACKAGE);
        if (entry.Architecture !== ARCH) {
          throw new GuestKitError(GuestKitErrorCode.INDEX_MALFORMED, {
            package: BUSYBOX_PACKAGE,
            architecture: entry.Architecture,
          });
        }
        const binary = join(
          downloads,
          `busybox-${entry.Version.replace(/[^A-Za-z0-9.+~-]/g, "_")}-${entry.SHA256.slice(0, 12)}-${ARCH}`,
        );
        if (!existsSync(binary)) {
          const debPath = join(downloads, entry.Filename.split("/").pop() ?? "busybox.deb");
          const cachedDeb: Buffer | undefined = existsSync(debPath) ? readFileSync(debPath) : undefined;
          if (!cachedDeb || sha256Hex(cachedDeb) !== entry.SHA256) {
            progress(`busybox: ${entry.Filename}`);
            const deb = await download(`${mirror}/${entry.Filename}`, entry.Size + 1);
            verifyHash(deb, { sha256: entry.SHA256, size: entry.Size }, entry.Filename);
            writeFileSync(debPath, deb);
          }
          const x = join(work, "x");
          await run("dpkg-deb", ["-x", debPath, x]);
          // usr/bin since trixie's merged /usr; bin before it.
          const extracted =
            [join(x, "usr", "bin", "busybox"), join(x, "bin", "busybox")].find((p) => existsSync(p)) ?? "";
          if (extracted === "")
            throw new GuestKitError(
              GuestKitErrorCode.INDEX_MALFORMED,
              { deb: debPath },
              "no usr/bin/busybox in the package",
            );
          checkRiscv64Elf(readFileSync(extracted), extracted);
          copyFileSync(extracted, `${binary}.tmp`);
          renameSync(`${binary}.tmp`, binary);
        }
        return { binary, version: entry.Version, debSha256: entry.SHA256, suite, signers };
      } catch (e) {
        lastError = e;
        if (
          !(e instanceof GuestKitError) ||
          (e.code !== GuestKitErrorCode.HASH_MISMATCH && e.code !== GuestKitErrorCode.DOWNLOAD_FAILED)
        )
          throw e;
        progress(`busybox: ${suite} failed (${e.code}), trying the next suite`);
      }
    }
    throw lastError;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** ELF64, little-endian, EM_RISCV (243), executable: the System V gABI header fields. */
export function checkRiscv64Elf(b: Uint8Array, what: string): void {
  const ok =
    b.length > 64 &&
    b[0] === 0x7f &&
    b[1] === 0x45 &&
    b[2] === 0x4c &&
    b[3] === 0x46 &&
    b[4] === 2 &&
    b[5] === 1 &&
    (b[18] | (b[19] << 8)) === 243;
  if (!ok)
    throw new GuestKitError(GuestKitErrorCode.INDEX_MALFORMED, { file: what }, "not a little-endian ELF64 RISC-V file");
}
