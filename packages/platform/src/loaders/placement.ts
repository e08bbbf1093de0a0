// Where a kernel, an initrd and a device tree go in guest RAM, and loading
// them. Rules (Documentation/riscv/boot.rst and boot-image-header.rst, Linux
// 6.1 arch/riscv/mm/init.c), placed as QEMU's hw/riscv/boot.c does so that
// both boards boot the same kernel the same way:
// - the kernel at RAM base + text_offset, which must be 2 MiB aligned on
//   RV64 (setup_vm: the kernel is mapped with PMD-sized pages);
// - the initrd at kernel + min(RAM/2, 128 MiB), past the kernel's
//   image_size, page aligned, below the device tree;
// - the device tree 8-byte aligned (libfdt) and at most 2 MiB (the early
//   FDT mapping covers one PMD), in the top 2 MiB-aligned slot of RAM below
//   3 GiB (as QEMU), or page aligned just below the top when RAM is tight.
import { PlatformError, PlatformErrorCode } from "../devices/errors.js";
import { type LinuxImage, parseLinuxImage } from "./linux-image.js";

export const MIB = 1 << 20;
/** RV64 kernel alignment (PMD_SIZE). */
export const KERNEL_ALIGN = 2 * MIB;
/** Largest device tree Linux 6.1 maps early on RISC-V. */
export const MAX_DTB_SIZE = 2 * MIB;
const PAGE = 4096;
const GIB3 = 3 * 1024 * MIB;

/** The access a loader needs to guest RAM (cpu-core's Bus satisfies it). */
export interface GuestRam {
  readonly ramBase: number;
  readonly ramSize: number;
  write(pa: number, data: Uint8Array): void;
}

export interface Range {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

export interface BootLayout {
  /** The kernel's entry point (its load address); a0 = hart id, a1 = dtb.start. */
  readonly entry: number;
  readonly kernel: Range;
  readonly initrd?: Range;
  /** The device-tree slot: `start` is where the DTB goes; it may use up to `end - start` bytes. */
  readonly dtb: Range;
}

export interface BootPlanInput {
  readonly ramBase: number;
  readonly ramSize: number;
  /** text_offset and bytes occupied (image_size, bss included). */
  readonly kernel: { readonly textOffset: number; readonly loadSize: number };
  readonly initrdSize?: number;
  /** Bytes kept for the DTB (default and maximum 2 MiB). */
  readonly dtbReserve?: number;
}

const alignDown = (v: number, a: number) => Math.floor(v / a) * a;
const alignUp = (v: number, a: number) => Math.ceil(v / a) * a;

function doesNotFit(detail: string, context: Record<string, unknown>): never {
  throw new PlatformError(PlatformErrorCode.LOAD_DOES_NOT_FIT, context, detail);
}

/** Computes where everything goes, or throws LOAD_DOES_NOT_FIT saying what is too big. */
export function planLinuxBoot(input: BootPlanInput): BootLayout {
  const { ramBase, ramSize, kernel } = input;
  const initrdSize = input.initrdSize ?? 0;
  const reserve = input.dtbReserve ?? MAX_DTB_SIZE;
  const ints = [ramBase, ramSize, kernel.textOffset, kernel.loadSize, initrdSize, reserve];
  if (
    !ints.every((n) => Number.isSafeInteger(n) && n >= 0) ||
    ramSize === 0 ||
    reserve === 0 ||
    reserve > MAX_DTB_SIZE
  ) {
    throw new PlatformError(
      PlatformErrorCode.CONFIG_INVALID,
      { ...input },
      "sizes and addresses must be non-negative integers, the DTB reserve 1..2 MiB",
    );
  }
  const ramEnd = ramBase + ramSize;
  const entry = ramBase + kernel.textOffset;
  if (entry % KERNEL_ALIGN !== 0) {
    doesNotFit("the kernel address (RAM base + text_offset) is not 2 MiB aligned", {
      ramBase,
      textOffset: kernel.textOffset,
    });
  }
  const kernelEnd = entry + kernel.loadSize;
  const afterKernel = alignUp(kernelEnd, PAGE);
  // What must lie below the DTB: the kernel, then the initrd.
  const low = afterKernel + alignUp(initrdSize, PAGE);
  const top = ramBase < GIB3 ? Math.min(ramEnd, GIB3) : ramEnd;
  if (kernelEnd > top) {
    doesNotFit("the kernel does not fit in RAM", { ramBase, ramSize, entry, loadSize: kernel.loadSize });
  }
  // QEMU's slot (2 MiB aligned) when RAM allows, else page aligned just below the top.
  let dtbStart = alignDown(top - reserve, KERNEL_ALIGN);
  if (dtbStart < low) dtbStart = alignDown(top - reserve, PAGE);
  if (dtbStart < low) {
    doesNotFit(
      initrdSize
        ? "the kernel, initrd and device tree do not fit in RAM"
        : "the kernel and device tree do not fit in RAM",
      {
        ramBase,
        ramSize,
        kernelEnd,
        initrdSize,
        dtbReserve: reserve,
      },
    );
  }
  const dtb = { start: dtbStart, end: dtbStart + reserve };
  let initrd: Range | undefined;
  if (initrdSize > 0) {
    // QEMU: kernel + min(RAM/2, 128 MiB), so the kernel's early allocations do not land on it.
    let start = alignUp(Math.max(entry + Math.min(ramSize / 2, 128 * MIB), afterKernel), PAGE);
    if (start + initrdSize > dtb.start) start = alignDown(dtb.start - initrdSize, PAGE); // fits (checked above)
    initrd = { start, end: start + initrdSize };
  }
  return { entry, kernel: { start: entry, end: kernelEnd }, initrd, dtb };
}

export interface LinuxBootInput {
  /** The `Image` file. */
  readonly kernel: Uint8Array;
  readonly initrd?: Uint8Array;
  /** Builds the DTB once the layout (initrd range for /chosen) is known. */
  readonly dtb: (layout: BootLayout) => Uint8Array;
  /** Bytes kept for the DTB (default and maximum 2 MiB; less lets a tight RAM fit). */
  readonly dtbReserve?: number;
}

export interface LoadedLinux {
  readonly image: LinuxImage;
  readonly layout: BootLayout;
  /** Size of the written DTB. */
  readonly dtbSize: number;
}

/** Parses the kernel, places kernel, initrd and DTB, and copies them into RAM. */
export function loadLinuxBoot(ram: GuestRam, input: LinuxBootInput): LoadedLinux {
  const image = parseLinuxImage(input.kernel);
  const layout = planLinuxBoot({
    ramBase: ram.ramBase,
    ramSize: ram.ramSize,
    kernel: image,
    initrdSize: input.initrd?.length,
    dtbReserve: input.dtbReserve,
  });
  const dtb = input.dtb(layout);
  if (dtb.length > layout.dtb.end - layout.dtb.start) {
    doesNotFit("the device tree is larger than its slot", {
      dtbSize: dtb.length,
      slot: layout.dtb.end - layout.dtb.start,
    });
  }
  ram.write(layout.kernel.start, image.data);
  if (input.initrd && layout.initrd) ram.write(layout.initrd.start, input.initrd);
  ram.write(layout.dtb.start, dtb);
  return { image, layout, dtbSize: dtb.length };
}

/** Copies a raw binary to a guest-physical address; LOAD_DOES_NOT_FIT when it leaves RAM. */
export function loadRaw(ram: GuestRam, address: number, data: Uint8Array): Range {
  if (!Number.isSafeInteger(address) || address < ram.ramBase || address + data.length > ram.ramBase + ram.ramSize) {
    doesNotFit("the binary does not fit in RAM at that address", {
      address,
      length: data.length,
      ramBase: ram.ramBase,
      ramSize: ram.ramSize,
    });
  }
  ram.write(address, data);
  return { start: address, end: address + data.length };
}
