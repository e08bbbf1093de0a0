// Messages between the page (console, controls) and the Worker that runs the VM.
import type { VmStats } from "@ringzero/hypervisor-monolithic";

/** The guests the page can boot; each is fetched from the page's own origin. */
export const GUESTS = {
  /** The embedded demo guest of `ringzero run` (an S-mode ELF on the built-in SBI). */
  hello: { kernel: "guests/hello.elf" },
  /** The Linux guest kit (`pnpm guest:linux`): Image + busybox initramfs, console on ttyS0. */
  linux: { kernel: "kit/Image", initrd: "kit/initramfs.cpio.gz" },
} as const;

export type GuestName = keyof typeof GUESTS;

export function isGuestName(s: string | null): s is GuestName {
  return s !== null && Object.hasOwn(GUESTS, s);
}

export type ToWorker =
  | {
      readonly type: "boot";
      readonly guest: GuestName;
      readonly memory: number;
      readonly append: string;
      /**
       * A disk image (any format disk-formats opens), a file the user picked or
       * an http(s) URL read by Range requests: /dev/vda, writes kept in memory.
       */
      readonly disk?: { readonly name: string; readonly file: Blob } | { readonly url: string };
    }
  | { readonly type: "input"; readonly bytes: Uint8Array };

export type FromWorker =
  | { readonly type: "out"; readonly bytes: Uint8Array }
  | { readonly type: "status"; readonly text: string }
  /** The VM's counters, about once a second while it runs and once at power-off. */
  | { readonly type: "stats"; readonly stats: VmStats }
  | { readonly type: "exit"; readonly status: number; readonly reason: string; readonly mips: number }
  | { readonly type: "error"; readonly message: string };
