// Reading the guest's kernel and initrd from host files (the parent owns the
// host's files): a RISC-V Linux Image (or Image.gz) or an ELF, as QEMU virt's
// boot path takes them. Files and gzip come from the host (images-node.ts in
// Node); a host without them takes the images as bytes, uncompressed.
import { parseElf } from "@ringzero/cpu-core";
import { detectKernelFormat, type VmConfig } from "@ringzero/platform";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";

/** Largest decompressed Image.gz accepted (a hostile file must not exhaust memory). */
const MAX_KERNEL = 256 * 1024 * 1024;

export interface GuestImages {
  readonly kind: "linux" | "elf";
  readonly kernel: Uint8Array;
  readonly initrd?: Uint8Array;
  /** ELF: the HTIF tohost symbol, if any. */
  readonly tohost?: number;
}

/** The host's file reading and gunzip (both throw on failure). */
export interface GuestImageIo {
  readFile(path: string): Uint8Array;
  gunzip(data: Uint8Array, maxOutputLength: number): Uint8Array;
}

/** A host with neither: paths cannot be read, Image.gz cannot be unpacked (pass the bytes, uncompressed). */
const NO_IO: GuestImageIo = {
  readFile: () => {
    throw Object.assign(new Error("this host reads no files: pass the image's bytes"), { code: "ENOTSUP" });
  },
  gunzip: () => {
    throw new Error("this host has no gzip: pass the uncompressed Image");
  },
};

/** Reads the kernel and initrd files of `c`, or takes the bytes the caller passed instead. */
export function readGuestImages(
  c: VmConfig,
  bytes: { kernel?: Uint8Array; initrd?: Uint8Array } = {},
  io: GuestImageIo = NO_IO,
): GuestImages {
  const readHostFile = (path: string, code: MicroVmErrorCode, what: string): Uint8Array => {
    try {
      return io.readFile(path);
    } catch (e) {
      throw new MicroVmError(
        code,
        { path },
        `cannot read ${what} ${path}: ${(e as { code?: string }).code ?? (e as Error).message}`,
      );
    }
  };
  let kernel = bytes.kernel ?? readHostFile(c.kernel, MicroVmErrorCode.KERNEL_UNREADABLE, "kernel");
  let format = detectKernelFormat(kernel);
  if (format === "gzip") {
    try {
      kernel = io.gunzip(kernel, MAX_KERNEL);
    } catch (e) {
      throw new MicroVmError(
        MicroVmErrorCode.KERNEL_FORMAT,
        { path: c.kernel },
        `cannot decompress ${c.kernel}: ${(e as Error).message}`,
      );
    }
    format = detectKernelFormat(kernel);
  }
  if (format !== "linux-image" && format !== "elf")
    throw new MicroVmError(
      MicroVmErrorCode.KERNEL_FORMAT,
      { path: c.kernel },
      `${c.kernel} is neither a RISC-V Linux Image nor an ELF file`,
    );
  const linux = format === "linux-image";
  if (linux && c.bios === "none")
    throw new MicroVmError(
      MicroVmErrorCode.BIOS_MISMATCH,
      { path: c.kernel },
      "a Linux Image needs an SBI: use bios sbi (the default), not none",
    );
  if (!linux && (c.initrd !== undefined || c.append !== undefined))
    throw new MicroVmError(
      MicroVmErrorCode.KERNEL_FORMAT,
      { path: c.kernel },
      "an initrd and a command line need a Linux Image kernel",
    );
  const initrd =
    c.initrd === undefined
      ? undefined
      : (bytes.initrd ?? readHostFile(c.initrd, MicroVmErrorCode.INITRD_UNREADABLE, "initrd"));
  const tohost = linux ? undefined : parseElf(kernel).symbols.get("tohost");
  return { kind: linux ? "linux" : "elf", kernel, initrd, tohost: tohost === undefined ? undefined : Number(tohost) };
}
