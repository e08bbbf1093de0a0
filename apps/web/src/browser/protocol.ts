// Messages between the page (console, controls) and the Worker that runs the VM.

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

/**
 * The two architectures: hypervisor-monolithic's Vm in the Worker itself, or
 * hypervisor-micro's microkernel in the Worker with the parent partition, the
 * child's VP and the VSPs in Workers of their own (partition-parent's
 * createMicroVm on web Workers).
 */
export const HYPERVISORS = ["mono", "micro"] as const;
export type HypervisorName = (typeof HYPERVISORS)[number];

export function isHypervisorName(s: string | null): s is HypervisorName {
  return s === "mono" || s === "micro";
}

/** What the stats panel shows, the same for both hypervisors. */
export interface PanelStats {
  readonly hypervisor: HypervisorName;
  readonly mips: number;
  readonly instructions: number;
  /** Seconds the vCPU ran guest code, and slept in WFI. */
  readonly runSeconds: number;
  readonly idleSeconds: number;
  /** All exits of the vCPU (to the hypervisor, paravisor or parent), and by kind. */
  readonly exitsTotal: number;
  readonly exits: Readonly<Record<string, number>>;
  /** More figures by name (SBI calls, hypercalls, intercept wait), for the panel only. */
  readonly more: Readonly<Record<string, number>>;
}

export type ToWorker =
  | {
      readonly type: "boot";
      readonly guest: GuestName;
      readonly hypervisor: HypervisorName;
      readonly memory: number;
      readonly append: string;
      /**
       * A disk image (any format disk-formats opens), a file the user picked or
       * an http(s) URL read by Range requests: /dev/vda, writes kept in memory.
       */
      readonly disk?: { readonly name: string; readonly file: Blob } | { readonly url: string };
    }
  | { readonly type: "input"; readonly bytes: Uint8Array }
  /** Post the stats now (the page's compare takes them at the prompt). */
  | { readonly type: "stats" };

export type FromWorker =
  | { readonly type: "out"; readonly bytes: Uint8Array }
  | { readonly type: "status"; readonly text: string }
  /** The VM's counters, about once a second while it runs and once at power-off. */
  | {
      readonly type: "stats";
      readonly stats: PanelStats /** The answer to the page's "stats". */;
      readonly asked?: boolean;
    }
  | { readonly type: "exit"; readonly status: number; readonly reason: string; readonly mips: number }
  | { readonly type: "error"; readonly message: string };
