// The CPU benchmark as child partitions of a bare microkernel, for the
// credit scheduler's test and bench: rzbench from ../shared/bench (M-mode,
// the full-size build so it outlasts any measurement window) when it is at
// hand, else an endless ALU loop; cpu-paravisor.ts sinks its UART and test
// finisher in the VP's own thread, so no parent partition takes intercepts.
// The caller plays the root partition: it makes the root's hypercalls itself.
import { existsSync, readFileSync } from "node:fs";
import { parseElf } from "@ringzero/cpu-core";
import { GrantedMemory } from "../memory.js";
import { Microkernel, ROOT_PARTITION_ID } from "../node.js";
import type { ScheduleInput } from "../sched.js";
import { unwrap } from "../status.js";

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 32 * 1024 * 1024;
const ROOT = ROOT_PARTITION_ID;

export interface CpuWorkload {
  readonly name: string;
  readonly entry: number;
  readonly segments: readonly { readonly gpa: number; readonly bytes: Uint8Array }[];
}

/** rzbench-s10.elf from $RZ_BENCH_DIR or ../shared/bench/elf, else the ALU loop. */
export function cpuWorkload(): CpuWorkload {
  const dirs = [process.env.RZ_BENCH_DIR, new URL("../../../../../shared/bench/elf/", import.meta.url).pathname];
  for (const d of dirs) {
    const path = d ? `${d.replace(/\/$/, "")}/rzbench-s10.elf` : undefined;
    if (!path || !existsSync(path)) continue;
    const image = new Uint8Array(readFileSync(path));
    const elf = parseElf(image);
    return {
      name: "rzbench-s10",
      entry: Number(elf.entry),
      segments: elf.segments
        .filter((s) => s.fileSize > 0)
        .map((s) => ({ gpa: s.paddr, bytes: image.subarray(s.offset, s.offset + s.fileSize) })),
    };
  }
  return { name: "alu-loop", entry: RAM_BASE, segments: [{ gpa: RAM_BASE, bytes: loopCode() }] };
}

/** An idle guest: enables the machine software interrupt (nobody raises it) and sleeps in WFI forever. */
export function idleWorkload(): CpuWorkload {
  const words = [
    0x0080_0293, // addi t0, zero, 8 (MSIE)
    (0x304 << 20) | (5 << 15) | (1 << 12) | 0x73, // csrw mie, t0
    0x1050_0073, // wfi
    0xffdf_f06f, // j .-4
  ];
  const out = new Uint8Array(words.length * 4);
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => {
    dv.setUint32(i * 4, w >>> 0, true);
  });
  return { name: "idle", entry: RAM_BASE, segments: [{ gpa: RAM_BASE, bytes: out }] };
}

/** addi t1,t1,1; xor t2,t2,t1; addi t0,t0,-1; j back (RV64I, unprivileged spec ch. 2), forever. */
function loopCode(): Uint8Array {
  const addi = (rd: number, rs1: number, imm: number) => ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
  const xor = (rd: number, rs1: number, rs2: number) => (rs2 << 20) | (rs1 << 15) | (4 << 12) | (rd << 7) | 0x33;
  const jal = (rd: number, off: number) =>
    (((off >> 20) & 1) << 31) |
    (((off >> 1) & 0x3ff) << 21) |
    (((off >> 11) & 1) << 20) |
    (((off >> 12) & 0xff) << 12) |
    (rd << 7) |
    0x6f;
  const words = [addi(6, 6, 1), xor(7, 7, 6), addi(5, 5, -1), jal(0, -12)];
  const out = new Uint8Array(words.length * 4);
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => {
    dv.setUint32(i * 4, w >>> 0, true);
  });
  return out;
}

/** A microkernel whose root partition is an idle thread (the caller makes the root's hypercalls). */
export function cpuKernel(cpuBudgetPercent = 0, ramMemory?: "wasm" | "buffer"): Microkernel {
  const k = new Microkernel({ memoryLimit: 256 * 1024 * 1024, cpuBudgetPercent, ramMemory });
  k.startRoot(new URL("data:text/javascript,"), null);
  return k;
}

/** Creates a child running `w` on one VP with `schedule` (and `engine`); returns its partition id. */
export function startCpuPartition(
  k: Microkernel,
  name: string,
  w: CpuWorkload,
  schedule?: ScheduleInput,
  engine?: "interpreter" | "translator",
): number {
  const id = unwrap("CreatePartition", k.hypercall(ROOT, "CreatePartition", { name, schedule })).partitionId;
  unwrap(
    "MapGpaPages",
    k.hypercall(ROOT, "MapGpaPages", { partitionId: id, gpa: RAM_BASE, size: RAM_SIZE, kind: "ram" }),
  );
  // Load through a grant the root revokes before the first instruction, as the parent partition does.
  const { grantId } = unwrap(
    "GrantPages",
    k.hypercall(ROOT, "GrantPages", { partitionId: id, gpa: RAM_BASE, size: RAM_SIZE, grantee: ROOT, writable: true }),
  );
  const mem = new GrantedMemory(unwrap("AcceptGrant", k.hypercall(ROOT, "AcceptGrant", { grantId })));
  for (const s of w.segments) {
    if (!mem.write(s.gpa, s.bytes)) throw new RangeError(`${w.name}: segment at 0x${s.gpa.toString(16)} outside RAM`);
  }
  unwrap("RevokeGrant", k.hypercall(ROOT, "RevokeGrant", { grantId }));
  unwrap(
    "CreateVp",
    k.hypercall(ROOT, "CreateVp", {
      partitionId: id,
      vpIndex: 0,
      boot: { pc: w.entry, mode: "machine" },
      paravisor: paravisorUrl(),
      engine,
    }),
  );
  return id;
}

function paravisorUrl(): string {
  const here = new URL(import.meta.url);
  // Under vitest this module runs from src/testing/*.ts; the VP thread needs the built JavaScript.
  if (here.pathname.endsWith(".ts")) return new URL("../../dist/testing/cpu-paravisor.js", here).href;
  return new URL("./cpu-paravisor.js", here).href;
}

export interface CpuShare {
  readonly partitionId: number;
  /** CPU time of the VP's thread over the window, as a fraction of the window's wall time (1 = one host CPU). */
  readonly share: number;
  /** Time the VP's thread was runnable but off the CPU (host contention), fraction of the window. */
  readonly steal: number;
  /** Time it spent parked for want of credit, fraction of the window. */
  readonly parked: number;
  /** Guest instructions per µs of the window (MIPS). */
  readonly mips: number;
}

/** Measures each partition's CPU share over `ms` of wall time. */
export async function measureShares(k: Microkernel, ids: readonly number[], ms: number): Promise<CpuShare[]> {
  const sample = () => {
    const stats = k.stats().scheduler.partitions;
    return ids.map((id) => ({
      p: stats.find((x) => x.partitionId === id),
      instructions: k.vpCounters(id, 0)?.instructions ?? 0,
    }));
  };
  const t0 = performance.now();
  const s0 = sample();
  await new Promise((r) => setTimeout(r, ms));
  const s1 = sample();
  const wall = (performance.now() - t0) * 1000;
  return ids.map((partitionId, i) => {
    const a = s0[i];
    const b = s1[i];
    const d = (f: "cpuMicros" | "parkedMicros" | "stealMicros") => ((b.p?.[f] ?? 0) - (a.p?.[f] ?? 0)) / wall;
    return {
      partitionId,
      share: d("cpuMicros"),
      steal: d("stealMicros"),
      parked: d("parkedMicros"),
      mips: (b.instructions - a.instructions) / wall,
    };
  });
}
