// Messages between the host thread (the `ringzero` process's main thread, or
// a browser Worker, where the microkernel runs) and the parent partition's thread. These are
// host I/O (the console on stdio, power events), not guest-visible.
import type { VmConfig } from "@ringzero/platform";
import type { BalloonStatus } from "@ringzero/vmbus/protocols";
import type { CustomVspInit } from "./custom.js";

export interface ParentInit {
  readonly config: VmConfig;
  /** The kernel's and initrd's bytes when the caller passed bytes instead of paths. */
  readonly kernelBytes?: Uint8Array;
  readonly initrdBytes?: Uint8Array;
  /** URL of the child's paravisor module (partition-child's paravisor entry). */
  readonly paravisor: string;
  readonly maxInstructions?: number;
  readonly deterministic?: boolean;
  readonly engine?: "interpreter" | "translator";
  /** Drives given as Blobs (a browser's Files), by the path the VmConfig's drive names. */
  readonly files?: Readonly<Record<string, Blob>>;
  /** VSPs of the user's own (checked by createMicroVm). */
  readonly vsps?: readonly CustomVspInit[];
}

export type PowerOffReason =
  | "shutdown"
  | "reboot"
  | "finisher-pass"
  | "finisher-fail"
  | "finisher-reset"
  | "htif"
  | "stopped"
  | "instruction-limit"
  | "wfi-forever"
  | "error";

export type ToHost =
  | { readonly kind: "ready" }
  | {
      readonly kind: "error";
      readonly code: string;
      readonly message: string;
      readonly context: Record<string, unknown>;
    }
  | { readonly kind: "console"; readonly bytes: Uint8Array }
  | { readonly kind: "poweroff"; readonly status: number; readonly reason: PowerOffReason; readonly detail?: string }
  | { readonly kind: "stats"; readonly id: number; readonly stats: ParentStats }
  | { readonly kind: "vsp"; readonly id: number; readonly ok: boolean; readonly message: string }
  | { readonly kind: "balloon"; readonly id: number; readonly status?: BalloonStatus; readonly error?: string };

export type FromHost =
  | { readonly kind: "start" }
  | { readonly kind: "input"; readonly bytes: Uint8Array }
  | { readonly kind: "stop" }
  | { readonly kind: "stats"; readonly id: number }
  | { readonly kind: "vsp"; readonly id: number; readonly action: "kill" | "restart"; readonly name: string }
  | { readonly kind: "balloon"; readonly id: number; readonly pages?: number };

export interface ParentStats {
  /** Intercept messages the parent handled, by kind. */
  readonly intercepts: Record<string, number>;
  /** Intercept messages it could not decode (counted, dropped). */
  readonly badIntercepts: number;
  readonly uart: Record<string, number>;
  /** VMBus and VSP counters. */
  readonly devices?: Record<string, unknown>;
}
