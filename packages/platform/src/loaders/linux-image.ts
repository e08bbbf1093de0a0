// The RISC-V Linux `Image` header (Documentation/riscv/boot-image-header.rst,
// header version 0.2): 64 bytes at the start of the flat kernel image.
//
//   0  u32 code0, code1      executable code (or "MZ" for an EFI stub)
//   8  u64 text_offset       image load offset from the start of RAM
//  16  u64 image_size        effective image size, bss included (mandatory)
//  24  u64 flags             bit 0: 1 = big-endian kernel
//  32  u32 version           major << 16 | minor
//  36  u32 res1; 40 u64 res2
//  48  u64 magic             "RISCV\0\0\0" (deprecated since 0.2)
//  56  u32 magic2            "RSC\x05"
//  60  u32 res3              PE/COFF header offset

import { PlatformError, PlatformErrorCode } from "../devices/errors.js";
import * as z from "../zod.js";

export const LINUX_IMAGE_HEADER_SIZE = 64;
export const LINUX_IMAGE_MAGIC = 0x5643534952n; // "RISCV" little-endian
export const LINUX_IMAGE_MAGIC2 = 0x05435352; // "RSC\x05" little-endian
/** Sanity bound on text_offset and image_size: no RISC-V kernel is near 4 GiB. */
const MAX_IMAGE_BYTES = 2 ** 32;

const LinuxImageHeaderSchema = z.object({
  textOffset: z.bigint().check(z.minimum(0n), z.maximum(BigInt(MAX_IMAGE_BYTES), "text_offset beyond 4 GiB")),
  // boot-image-header.rst: "Image size is mandatory for boot loader to load kernel image."
  imageSize: z
    .bigint()
    .check(
      z.minimum(1n, "image_size is 0 (mandatory since header 0.2)"),
      z.maximum(BigInt(MAX_IMAGE_BYTES), "image_size beyond 4 GiB"),
    ),
  flags: z.bigint().check(z.refine((f) => (f & 1n) === 0n, "big-endian kernel (flags bit 0)")),
  version: z.int(),
});

export interface LinuxImage {
  /** Load offset from the start of RAM. */
  readonly textOffset: number;
  /** Effective size from the header (bss included). */
  readonly imageSize: number;
  /** Bytes the kernel occupies in RAM: max(image_size, file length). */
  readonly loadSize: number;
  readonly flags: bigint;
  /** Header version as major.minor. */
  readonly version: { readonly major: number; readonly minor: number };
  /** True when the file starts with the EFI stub's "MZ". */
  readonly efiStub: boolean;
  /** The whole file. */
  readonly data: Uint8Array;
}

export type KernelFormat = "linux-image" | "elf" | "gzip" | "unknown";

/** What a kernel file looks like, from its first bytes (to pick a loader or explain a refusal). */
export function detectKernelFormat(data: Uint8Array): KernelFormat {
  if (data.length >= 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46) return "elf";
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) return "gzip";
  if (data.length >= LINUX_IMAGE_HEADER_SIZE) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (dv.getUint32(56, true) === LINUX_IMAGE_MAGIC2 || dv.getBigUint64(48, true) === LINUX_IMAGE_MAGIC)
      return "linux-image";
  }
  return "unknown";
}

/** Parses and checks an `Image` file. Throws KERNEL_INVALID with a reason a user can act on. */
export function parseLinuxImage(data: Uint8Array): LinuxImage {
  const fail = (detail: string, context: Record<string, unknown> = {}): never => {
    throw new PlatformError(PlatformErrorCode.KERNEL_INVALID, { length: data.length, ...context }, detail);
  };
  if (data.length >= 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46) {
    fail("an ELF file (vmlinux?), not a flat Image: load it as ELF or use arch/riscv/boot/Image");
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b)
    fail("gzip-compressed (Image.gz?): decompress it first");
  if (data.length < LINUX_IMAGE_HEADER_SIZE) fail("shorter than the 64-byte Image header");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const magic = dv.getBigUint64(48, true);
  const magic2 = dv.getUint32(56, true);
  if (magic2 !== LINUX_IMAGE_MAGIC2 && magic !== LINUX_IMAGE_MAGIC) {
    fail('no RISC-V Image magic ("RISCV" at 48 or "RSC\\x05" at 56)', { magic, magic2 });
  }
  const r = LinuxImageHeaderSchema.safeParse({
    textOffset: dv.getBigUint64(8, true),
    imageSize: dv.getBigUint64(16, true),
    flags: dv.getBigUint64(24, true),
    version: dv.getUint32(32, true),
  });
  if (!r.success) fail(r.error.issues.map((i) => i.message).join("; "));
  const h = r.data as z.infer<typeof LinuxImageHeaderSchema>;
  const imageSize = Number(h.imageSize);
  return {
    textOffset: Number(h.textOffset),
    imageSize,
    loadSize: Math.max(imageSize, data.length),
    flags: h.flags,
    version: { major: h.version >>> 16, minor: h.version & 0xffff },
    efiStub: data[0] === 0x4d && data[1] === 0x5a,
    data,
  };
}
