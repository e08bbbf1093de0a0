// VmConfig: one zod schema for a whole VM, shared by both hypervisors
// (ARCHITECTURE.md §4). Sizes are bytes; paths are host files.
import { z } from "zod";

const MiB = 1024 * 1024;

export const VmConfigSchema = z
  .object({
    /** Guest RAM in bytes (QEMU virt places it at 0x8000_0000). */
    memory: z
      .number()
      .int()
      .min(2 * MiB, "at least 2 MiB of RAM")
      .max(2048 * MiB, "at most 2 GiB of RAM")
      .refine((v) => v % (2 * MiB) === 0, "RAM must be a multiple of 2 MiB")
      .default(256 * MiB),
    /** Number of harts (SMP guests come later: 1 for now). */
    cpus: z.literal(1).default(1),
    /** "sbi": the hypervisor's built-in SBI, kernel in S-mode; "none": bare metal in M-mode at the ELF entry. */
    bios: z.enum(["sbi", "none"]).default("sbi"),
    kernel: z.string().min(1),
    initrd: z.string().min(1).optional(),
    /** The Linux command line (/chosen bootargs); default "console=ttyS0" for a Linux Image. */
    append: z.string().max(4096, "command line longer than Linux's 4 KiB").optional(),
    /** Where the guest console goes: the 16550 UART (ttyS0) or virtio-console (hvc0). */
    console: z.enum(["uart", "virtio"]).default("uart"),
  })
  .strict();

export type VmConfig = z.output<typeof VmConfigSchema>;
export type VmConfigInput = z.input<typeof VmConfigSchema>;
