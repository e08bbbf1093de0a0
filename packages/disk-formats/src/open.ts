// Opening and creating images by name through a StoreHost: format probing
// and backing chains (with cycle detection and a depth limit).
import type { FormatName } from "./backend.js";
import { DiskError, DiskErrorCode } from "./errors.js";
import { isParallels, ParallelsImage } from "./formats/parallels.js";
import { isQcow2 } from "./formats/qcow2/header.js";
import { Qcow2Image } from "./formats/qcow2/image.js";
import { RawImage } from "./formats/raw.js";
import { isVdi, VdiImage } from "./formats/vdi.js";
import { isVhdx, VhdxImage } from "./formats/vhdx.js";
import { isVmdkDescriptor, isVmdkSparse, VmdkImage, type VmdkSubformat } from "./formats/vmdk.js";
import { isVpcFooter, isVpcHead, VpcImage } from "./formats/vpc.js";
import { type ByteStore, readFull, type StoreHost } from "./io/store.js";

export type Image = RawImage | Qcow2Image | VdiImage | VpcImage | VmdkImage | ParallelsImage | VhdxImage;

/** Backing chains deeper than this are refused (hostile images chaining to themselves through renamed copies). */
export const DEFAULT_MAX_CHAIN_DEPTH = 64;

export interface OpenOptions {
  /** Format; probed from the content when absent (qcow2 magic, else raw). */
  format?: FormatName;
  readOnly?: boolean;
  /** Do not open backing files (their data reads as zeros). */
  noBacking?: boolean;
  /**
   * Opened to be checked (qemu's BDRV_O_CHECK): damage that the format's
   * check() reports (VHDX BAT entries past the end of the file) does not
   * refuse the open.
   */
  forCheck?: boolean;
  /**
   * Opened to salvage what can be read (read-only; `ringzero-img convert
   * --salvage`): damage that would refuse the open but concerns only some
   * data (VDI blocks past the end of the file) makes the reads of that data
   * fail with a `DiskError` instead.
   */
  salvage?: boolean;
  maxChainDepth?: number;
}

const FORMATS: readonly string[] = ["raw", "qcow2", "vdi", "vpc", "vmdk", "parallels", "vhdx"];

function checkFormat(name: string, where: Record<string, unknown>): FormatName {
  if (!FORMATS.includes(name))
    throw new DiskError(
      DiskErrorCode.UNSUPPORTED,
      { format: name, ...where },
      `unknown or unsupported format '${name}'`,
    );
  return name as FormatName;
}

/** Guesses the format: qcow2, VDI, VHD, VHDX, VMDK and Parallels by their magic (VHD also by a valid footer at the end), anything else is raw. */
export async function probeFormat(store: ByteStore): Promise<FormatName> {
  const head = new Uint8Array(0x48);
  await readFull(store, 0, head);
  if (isQcow2(head)) return "qcow2";
  if (isVdi(head)) return "vdi";
  if (isVpcHead(head)) return "vpc";
  if (isVmdkSparse(head) || isVmdkDescriptor(head)) return "vmdk";
  if (isParallels(head)) return "parallels";
  if (isVhdx(head)) return "vhdx";
  // A fixed VHD has its footer only at the end (qemu-img probes those as raw; a checksummed footer is conclusive).
  const size = await store.size();
  if (size >= 1024) {
    const tail = new Uint8Array(512);
    await readFull(store, size - 512, tail);
    if (isVpcFooter(tail)) return "vpc";
  }
  return "raw";
}

/** Opens an image and its backing chain. Backing files are always opened read-only. */
export async function openImage(host: StoreHost, name: string, options: OpenOptions = {}): Promise<Image> {
  const maxDepth = options.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
  const seen = new Set<string>();
  const opened: Image[] = [];
  try {
    return await openLayer(host, name, options.format, options.readOnly ?? false, 0);
  } catch (e) {
    for (const img of opened.reverse()) await img.close().catch(() => {});
    throw e;
  }

  async function openLayer(
    h: StoreHost,
    file: string,
    format: FormatName | undefined,
    readOnly: boolean,
    depth: number,
  ): Promise<Image> {
    const key = await h.canonical(file);
    if (seen.has(key))
      throw new DiskError(
        DiskErrorCode.BACKING_CYCLE,
        { format: format ?? "unknown", file, depth },
        "backing chain loops",
      );
    if (depth > maxDepth)
      throw new DiskError(
        DiskErrorCode.BACKING_TOO_DEEP,
        { format: format ?? "unknown", file, depth, maxDepth },
        "backing chain too deep",
      );
    seen.add(key);
    const store = await h.open(file, { readOnly });
    let img: Image;
    try {
      const fmt = format ?? (await probeFormat(store));
      img =
        fmt === "qcow2"
          ? await Qcow2Image.open(store, { readOnly })
          : fmt === "vdi"
            ? await VdiImage.open(store, { readOnly, salvage: !!options.salvage })
            : fmt === "vpc"
              ? await VpcImage.open(store, { readOnly })
              : fmt === "vmdk"
                ? await VmdkImage.open(store, { readOnly, host: h, name: file })
                : fmt === "parallels"
                  ? await ParallelsImage.open(store, { readOnly })
                  : fmt === "vhdx"
                    ? await VhdxImage.open(store, { readOnly, forCheck: !!options.forCheck })
                    : await RawImage.open(store, { readOnly });
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
    opened.push(img);
    if ((img instanceof Qcow2Image || img instanceof VpcImage) && img.backingFile !== null && !options.noBacking) {
      const bfile = h.resolve(file, img.backingFile);
      if (!(await h.exists(bfile)))
        throw new DiskError(
          DiskErrorCode.NOT_FOUND,
          {
            format: img.format,
            ...(img instanceof Qcow2Image ? { offset: img.header.backingFileOffset } : {}),
            file: bfile,
          },
          "backing file not found",
        );
      const bfmt = img.backingFormat !== null ? checkFormat(img.backingFormat, { file: bfile }) : undefined;
      img.attachBacking(await openLayer(h, bfile, bfmt, true, depth + 1));
    }
    return img;
  }
}

export interface CreateOptions {
  format: FormatName;
  /** Virtual size; for a qcow2 with a backing file, defaults to the backing file's size. */
  size?: number;
  backingFile?: string;
  backingFormat?: FormatName;
  /** VDI: preallocate every block (qemu-img's static=on). */
  vdi?: { fixed?: boolean };
  /** VHD: fixed instead of dynamic; forceSize keeps the exact size (no CHS rounding). */
  vpc?: { fixed?: boolean; forceSize?: boolean };
  /** VHDX: fixed instead of dynamic, block size (qemu-img's default by disk size). */
  vhdx?: { fixed?: boolean; blockSize?: number };
  /** Parallels cluster size (1 MiB by default). */
  parallels?: { clusterSize?: number };
  /** VMDK subformat (monolithicSparse by default). */
  vmdk?: { subformat?: VmdkSubformat };
  /** qcow2 options. */
  qcow2?: {
    version?: 2 | 3;
    clusterBits?: number;
    refcountOrder?: number;
    lazyRefcounts?: boolean;
    extendedL2?: boolean;
  };
}

/** Creates an image file; returns it opened read-write (with its backing chain). */
export async function createImage(host: StoreHost, name: string, options: CreateOptions): Promise<Image> {
  let size = options.size;
  let backingFormat = options.backingFormat;
  if (options.backingFile !== undefined && options.format === "vpc") {
    // A VHD differencing disk: the parent must be a VHD.
    const parent = await openImage(host, host.resolve(name, options.backingFile), { readOnly: true, format: "vpc" });
    try {
      const store = await host.create(name);
      const child = await VpcImage.createDifferencing(store, parent as VpcImage, options.backingFile);
      await child.close();
    } finally {
      await parent.close();
    }
    return openImage(host, name, { format: "vpc" });
  }
  if (options.backingFile !== undefined) {
    if (options.format !== "qcow2")
      throw new DiskError(DiskErrorCode.INVALID_OPTIONS, { format: options.format }, "backing files need qcow2 or vpc");
    const bpath = host.resolve(name, options.backingFile);
    const backing = await openImage(host, bpath, {
      readOnly: true,
      ...(backingFormat ? { format: backingFormat } : {}),
    });
    backingFormat ??= backing.format;
    size ??= backing.size();
    await backing.close();
  }
  if (size === undefined)
    throw new DiskError(DiskErrorCode.INVALID_OPTIONS, { format: options.format }, "a size is required");
  const store = await host.create(name);
  if (options.format === "raw") return RawImage.create(store, { size });
  if (options.format === "vdi") return VdiImage.create(store, { size, fixed: options.vdi?.fixed ?? false });
  if (options.format === "vpc") return VpcImage.create(store, { size, ...options.vpc });
  if (options.format === "vhdx") return VhdxImage.create(store, { size, ...options.vhdx });
  if (options.format === "parallels") return ParallelsImage.create(store, { size, ...options.parallels });
  if (options.format === "vmdk") return VmdkImage.create(store, { size, ...options.vmdk }, { host, name });
  const img = await Qcow2Image.create(store, {
    size,
    ...options.qcow2,
    ...(options.backingFile !== undefined ? { backingFile: options.backingFile, backingFormat } : {}),
  });
  await img.close();
  return openImage(host, name, { format: "qcow2" });
}
