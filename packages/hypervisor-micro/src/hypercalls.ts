// The microkernel's whole ABI: one short list (ARCHITECTURE.md §4; seL4 and
// the TLFS document the exact status set of each call, so does this table).
// Codes follow the TLFS where Hyper-V has the call; ringzero's own calls use
// 0x8xxx. "slow" calls trap to the kernel thread (they change kernel tables);
// "fast" calls run on the caller's thread against shared SynIC memory, as
// Hyper-V runs HvCallSignalEvent on the calling processor.
import type { HvStatusName } from "./status.js";

export interface HypercallSpec {
  readonly code: number;
  readonly path: "slow" | "fast";
  readonly summary: string;
  /** Every status the call can return besides SUCCESS. */
  readonly errors: readonly HvStatusName[];
}

/** The root (parent) partition, created with the kernel; children get ids from 2. */
export const ROOT_PARTITION_ID = 1;

export const Hypercall = {
  CreatePartition: {
    code: 0x0040,
    path: "slow",
    summary: "create a child partition of the caller (no memory, no VPs)",
    errors: ["ACCESS_DENIED", "INVALID_PARAMETER"],
  },
  DeletePartition: {
    code: 0x0041,
    path: "slow",
    summary: "stop a child's VPs, revoke every grant of or to it, free its memory",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID"],
  },
  MapGpaPages: {
    code: 0x004b,
    path: "slow",
    summary: "back [gpa, gpa+size) of a child with new zeroed memory (ram or private)",
    errors: [
      "ACCESS_DENIED",
      "INVALID_PARTITION_ID",
      "INVALID_ALIGNMENT",
      "INVALID_PARAMETER",
      "INSUFFICIENT_MEMORY",
      "INVALID_PARTITION_STATE",
    ],
  },
  UnmapGpaPages: {
    code: 0x004c,
    path: "slow",
    summary: "remove a mapped region of a child that has no VP running and no grant on it",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_PARAMETER", "INVALID_PARTITION_STATE", "OBJECT_IN_USE"],
  },
  InstallIntercept: {
    code: 0x004d,
    path: "slow",
    summary: "route a child's MMIO accesses in [base, base+size) to the caller as intercept messages",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_PARAMETER"],
  },
  CreateVp: {
    code: 0x004e,
    path: "slow",
    summary: "create and start a VP of a child in its own worker thread, with a paravisor module",
    errors: [
      "ACCESS_DENIED",
      "INVALID_PARTITION_ID",
      "INVALID_VP_INDEX",
      "INVALID_PARTITION_STATE",
      "INVALID_PARAMETER",
    ],
  },
  GrantPages: {
    code: 0x8001,
    path: "slow",
    summary: "grant another partition read or read-write access to pages of a partition (GPADL)",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_ALIGNMENT", "INVALID_PARAMETER"],
  },
  AcceptGrant: {
    code: 0x8002,
    path: "slow",
    summary: "obtain the checked view of a grant made to the caller",
    errors: ["ACCESS_DENIED", "INVALID_PARAMETER"],
  },
  RevokeGrant: {
    code: 0x8003,
    path: "slow",
    summary: "revoke a grant the caller made (or one made to it): no new views from then on",
    errors: ["ACCESS_DENIED", "INVALID_PARAMETER"],
  },
  ConnectSint: {
    code: 0x8004,
    path: "slow",
    summary: "a connection to (partition, VP, SINT) of the caller's parent or child, for the fast calls",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_VP_INDEX", "INVALID_PARAMETER"],
  },
  StopVp: {
    code: 0x8006,
    path: "slow",
    summary: "stop a child's VP (the partition powers off)",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_VP_INDEX"],
  },
  SetPartitionSchedule: {
    code: 0x8008,
    path: "slow",
    summary: "set a child's CPU weight (relative share of the budget) and cap (% of one CPU, 0 = none)",
    errors: ["ACCESS_DENIED", "INVALID_PARTITION_ID", "INVALID_PARAMETER"],
  },
  PostMessage: {
    code: 0x00c1,
    path: "fast",
    summary: "HvCallPostMessageDirect: queue a <=240-byte message in a connected SINT's 16 buffers",
    errors: ["INVALID_PARAMETER", "INSUFFICIENT_BUFFERS"],
  },
  SignalEvent: {
    code: 0x00c0,
    path: "fast",
    summary: "HvCallSignalEventDirect: set an event flag of a connected SINT; wakes the VP on clear->set",
    errors: ["INVALID_PARAMETER"],
  },
  AssertInterrupt: {
    code: 0x0094,
    path: "fast",
    summary: "set the level of an interrupt line (PLIC source) of a child's VP",
    errors: ["INVALID_PARAMETER"],
  },
  CompleteIntercept: {
    code: 0x8007,
    path: "fast",
    summary: "answer a child VP's intercept (value for an MMIO read, a0/a1 for an SBI call)",
    errors: ["INVALID_PARAMETER"],
  },
} as const satisfies Record<string, HypercallSpec>;

export type HypercallName = keyof typeof Hypercall;
export const HYPERCALL_NAMES = Object.keys(Hypercall) as HypercallName[];

// ---- inputs and outputs of the slow calls (structured-cloneable) ----------

export interface SlowCalls {
  CreatePartition: {
    in: { name: string; schedule?: import("./sched.js").ScheduleInput };
    out: { partitionId: number };
  };
  DeletePartition: { in: { partitionId: number }; out: Record<string, never> };
  MapGpaPages: {
    in: { partitionId: number; gpa: number; size: number; kind: "ram" | "private" };
    out: Record<string, never>;
  };
  UnmapGpaPages: { in: { partitionId: number; gpa: number }; out: Record<string, never> };
  InstallIntercept: { in: { partitionId: number; base: number; size: number }; out: Record<string, never> };
  CreateVp: {
    in: {
      partitionId: number;
      vpIndex: number;
      boot: VpBoot;
      /** URL of the module that runs in the VP's thread above the guest (its paravisor). */
      paravisor?: string;
      /** Passed to the paravisor as is. */
      paravisorData?: unknown;
      /** What executes the guest's code (cpu-core's engines; default its DEFAULT_ENGINE, the translator). */
      engine?: "interpreter" | "translator";
    };
    out: VpControlTransfer;
  };
  GrantPages: {
    in: { partitionId: number; gpa: number; size: number; grantee: number; writable: boolean };
    out: { grantId: number };
  };
  AcceptGrant: { in: { grantId: number }; out: import("./memory.js").GrantTransfer };
  RevokeGrant: { in: { grantId: number }; out: Record<string, never> };
  ConnectSint: { in: { partitionId: number; vpIndex: number; sint: number }; out: SintConnectionTransfer };
  StopVp: { in: { partitionId: number; vpIndex: number }; out: Record<string, never> };
  /** Weight 1..65535 (default 256), capPercent 0..100 (default 0 = uncapped); see README "Scheduling". */
  SetPartitionSchedule: {
    in: { partitionId: number; weight?: number; capPercent?: number };
    out: Record<string, never>;
  };
}
export type SlowCallName = keyof SlowCalls;

/** How a VP starts: as firmware leaves a kernel (S-mode, SBI in the microkernel) or bare M-mode. */
export interface VpBoot {
  readonly pc: number;
  readonly a0?: number;
  readonly a1?: number;
  readonly mode: "supervisor" | "machine";
  /** Stop after this many guest instructions: the VP halts with reason "instruction-limit". */
  readonly maxInstructions?: number;
  /**
   * Time from instructions, not the host: the VP's `time` CSR and the
   * microkernel's CLINT read instret / 10 (10 MHz ticks), and WFI is a no-op
   * (the guest spins on to its timer deadline).
   */
  readonly deterministic?: boolean;
}

/** What the creator of a VP gets: its VP area (intercept completion, interrupt lines). */
export interface VpControlTransfer {
  readonly partitionId: number;
  readonly vpIndex: number;
  readonly area: SharedArrayBuffer;
}

/** A connection to one SINT of one VP (the direct forms of PostMessage and SignalEvent). */
export interface SintConnectionTransfer {
  readonly partitionId: number;
  readonly vpIndex: number;
  readonly sint: number;
  readonly area: SharedArrayBuffer;
  readonly queues: SharedArrayBuffer;
}
