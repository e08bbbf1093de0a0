// ensureLinuxKit: the cached kit, or build it. The key hashes every input
// (kernel source version, cross compiler, Kconfig fragment, busybox suite,
// initramfs recipe) so a changed input builds a new kit; a matching key never
// rebuilds. Building needs the network only for busybox.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { BUSYBOX_CODENAME, BUSYBOX_PACKAGE, fetchBusybox } from "./busybox.js";
import { guestLinuxCacheDir, hashInputs, removeStaleTemps, withLock } from "./cache.js";
import { sha256Hex } from "./debian.js";
import {
  buildInitramfs,
  INIT_SCRIPT,
  LINUX_KIT_APPEND,
  LINUX_KIT_MARKER,
  LINUX_KIT_PROMPT,
  parseAppletList,
  UDHCPC_SCRIPT,
} from "./initramfs.js";
import {
  buildKernel,
  KCONFIG_FRAGMENT_PATH,
  kernelInputs,
  kernelKey,
  LINUX_SOURCE_PACKAGE,
  type Progress,
} from "./kernel.js";
import { ensureDebianPackages, KIT_BUILD_PACKAGES, requireTools, run } from "./run.js";

/** Bump when the initramfs layout changes in a way the scripts' text does not show. */
const INITRAMFS_RECIPE = "2"; // 2: /etc/udhcpc/default.script (Debian busybox's default path)

export const linuxKitManifestSchema = z.object({
  kind: z.literal("ringzero-linux-guest-kit"),
  key: z.string().regex(/^[0-9a-f]{16}$/),
  dir: z.string(),
  image: z.string(),
  initrd: z.string(),
  append: z.string(),
  marker: z.string(),
  prompt: z.string(),
  builtAt: z.string(),
  buildSeconds: z.number(),
  kernel: z.object({
    sourcePackage: z.string(),
    sourceVersion: z.string(),
    crossGcc: z.string(),
    fragment: z.string(),
    optionsChecked: z.number().int(),
    imageBytes: z.number().int(),
    imageSha256: z.string(),
  }),
  busybox: z.object({
    package: z.string(),
    version: z.string(),
    suite: z.string(),
    debSha256: z.string(),
    releaseSigners: z.array(z.string()),
    applets: z.number().int(),
  }),
  initramfs: z.object({ bytes: z.number().int(), sha256: z.string() }),
});
export type LinuxKitManifest = z.infer<typeof linuxKitManifestSchema>;

export interface LinuxKitOptions {
  /** Defaults to `$RINGZERO_CACHE/guest-linux` or `~/.cache/ringzero/guest-linux`. */
  readonly cacheDir?: string;
  /** Progress lines (a build takes minutes); silent by default. */
  readonly progress?: Progress;
}

/** The cache key and directory of the kit for this machine's inputs (no build). */
export async function linuxKitLocation(options: LinuxKitOptions = {}): Promise<{ key: string; dir: string }> {
  const cacheDir = options.cacheDir ?? guestLinuxCacheDir();
  const kin = await kernelInputs();
  const key = hashInputs({
    kernel: kernelKey(kin),
    busybox: `${BUSYBOX_PACKAGE}/${BUSYBOX_CODENAME}/riscv64`,
    initramfs: INITRAMFS_RECIPE,
    init: INIT_SCRIPT,
    udhcpc: UDHCPC_SCRIPT,
  });
  return { key, dir: join(cacheDir, key) };
}

function readManifest(dir: string): LinuxKitManifest | undefined {
  const path = join(dir, "manifest.json");
  if (!existsSync(path)) return undefined;
  try {
    const m = linuxKitManifestSchema.parse(JSON.parse(readFileSync(path, "utf8")));
    return existsSync(m.image) && existsSync(m.initrd) ? m : undefined;
  } catch {
    return undefined; // a damaged manifest means: build again
  }
}

/** The kit's manifest, building the kit first if the cache has none for the current key. */
export async function ensureLinuxKitManifest(options: LinuxKitOptions = {}): Promise<LinuxKitManifest> {
  const cacheDir = options.cacheDir ?? guestLinuxCacheDir();
  const progress = options.progress ?? (() => {});
  // The key needs linux-source-6.1's and the cross compiler's versions.
  await ensureDebianPackages(KIT_BUILD_PACKAGES, progress);
  const { key, dir } = await linuxKitLocation({ cacheDir });
  const cached = readManifest(dir);
  if (cached) return cached;
  return withLock(
    cacheDir,
    async () => {
      const again = readManifest(dir); // built by the process we waited for
      if (again) return again;
      const started = Date.now();
      removeStaleTemps(cacheDir);
      const kin = await kernelInputs();
      const kernel = await buildKernel(cacheDir, kin, progress);
      const busybox = await fetchBusybox(cacheDir, progress);

      requireTools(["qemu-riscv64"]);
      progress("initramfs: busybox --list-full (qemu-riscv64)");
      const applets = parseAppletList((await run("qemu-riscv64", [busybox.binary, "--list-full"])).toString("utf8"));
      if (applets.length < 100) throw new Error(`busybox --list-full gave only ${applets.length} applets`);
      const initramfs = buildInitramfs(readFileSync(busybox.binary), applets);

      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      copyFileSync(kernel.image, join(tmp, "Image"));
      writeFileSync(join(tmp, "initramfs.cpio.gz"), initramfs);
      const imageBytes = readFileSync(kernel.image);
      const manifest: LinuxKitManifest = {
        kind: "ringzero-linux-guest-kit",
        key,
        dir,
        image: join(dir, "Image"),
        initrd: join(dir, "initramfs.cpio.gz"),
        append: LINUX_KIT_APPEND,
        marker: LINUX_KIT_MARKER,
        prompt: LINUX_KIT_PROMPT,
        builtAt: new Date().toISOString(),
        buildSeconds: Math.round((Date.now() - started) / 100) / 10,
        kernel: {
          sourcePackage: LINUX_SOURCE_PACKAGE,
          sourceVersion: kin.linuxSourceVersion,
          crossGcc: kin.crossGccVersion,
          fragment: KCONFIG_FRAGMENT_PATH,
          optionsChecked: kernel.optionsChecked,
          imageBytes: imageBytes.length,
          imageSha256: sha256Hex(imageBytes),
        },
        busybox: {
          package: BUSYBOX_PACKAGE,
          version: busybox.version,
          suite: busybox.suite,
          debSha256: busybox.debSha256,
          releaseSigners: [...busybox.signers],
          applets: applets.length,
        },
        initramfs: { bytes: initramfs.length, sha256: sha256Hex(initramfs) },
      };
      writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      progress(`kit: ready in ${dir}`);
      return manifest;
    },
    undefined,
    (pid) => progress(`waiting for the build in process ${pid}`),
  );
}

/** The kernel Image and gzip initramfs of the Linux guest kit, built on first use (minutes) and cached. */
export async function ensureLinuxKit(options: LinuxKitOptions = {}): Promise<{ image: string; initrd: string }> {
  const m = await ensureLinuxKitManifest(options);
  return { image: m.image, initrd: m.initrd };
}
