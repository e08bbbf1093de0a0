// What `ringzero compare` measures: one table, in report order. A measure
// belongs to a section (--only picks sections) and is produced by one
// workload; both hypervisors report every measure, as a number or as an
// explicit reason why not.

export const SECTIONS = ["start", "cpu", "exits", "mem", "tcb", "boot", "blk", "net", "fault"] as const;
export type Section = (typeof SECTIONS)[number];

export const HYPERVISORS = ["monolithic", "micro"] as const;
export type Hypervisor = (typeof HYPERVISORS)[number];

export interface MeasureDef {
  readonly id: string;
  readonly section: Section;
  /** Short table label; README "ringzero compare" says how each is measured. */
  readonly label: string;
  readonly unit: string;
  /** Which way is better, for reading the ratio ("none": a count that describes, not ranks). */
  readonly better: "lower" | "higher" | "none";
}

const m = (id: string, section: Section, label: string, unit: string, better: MeasureDef["better"]): MeasureDef => ({
  id,
  section,
  label,
  unit,
  better,
});

/** Exit kinds of cpu-core's HartExit that the embedded guest produces. */
export const EXIT_KINDS = ["mmio", "ecall", "wfi", "budget"] as const;
/** Where an exit is handled: inline in the one thread (mono), or microkernel / paravisor / parent intercept (micro). */
export const EXIT_PATHS = ["inline", "microkernel", "paravisor", "intercept"] as const;

export const MEASURES: readonly MeasureDef[] = [
  m("start.create", "start", "VM create", "ms", "lower"),
  m("start.first", "start", "start → first instruction", "ms", "lower"),
  m("cpu.mips", "cpu", "guest MIPS", "MIPS", "higher"),
  m("cpu.wall", "cpu", "CPU workload wall time", "s", "lower"),
  m("cpu.direct", "cpu", "instructions without an exit (CPU)", "%", "higher"),
  m("exits.total", "exits", "exits per run", "count", "none"),
  m("exits.rate", "exits", "exits/s", "/s", "higher"),
  m("exits.direct", "exits", "instructions without an exit (embedded)", "%", "higher"),
  ...EXIT_KINDS.map((k) => m(`exits.kind.${k}`, "exits", `exits/s kind ${k}`, "/s", "higher")),
  ...EXIT_PATHS.map((p) => m(`exits.path.${p}`, "exits", `exits/s path ${p}`, "/s", "higher")),
  m("exits.per-minstr", "exits", "exits per M instructions (CPU)", "count", "lower"),
  m("exits.rtt", "exits", "intercept round trip", "µs", "lower"),
  m("exits.hypercalls", "exits", "hypercalls per run", "count", "none"),
  m("exits.sbi", "exits", "SBI calls per run", "count", "none"),
  m("exits.wall", "exits", "embedded guest wall time", "ms", "lower"),
  m("mem.rss", "mem", "host RSS per VM", "MiB", "lower"),
  m("mem.linux", "mem", "host RSS per VM, Linux", "MiB", "lower"),
  m("tcb.lines", "tcb", "TCB source lines", "lines", "lower"),
  m("tcb.files", "tcb", "TCB source files", "files", "lower"),
  m("boot.shell", "boot", "Linux boot to shell", "s", "lower"),
  m("blk.read", "blk", "blk sequential read", "MB/s", "higher"),
  m("blk.write", "blk", "blk sequential write", "MB/s", "higher"),
  m("blk.randread", "blk", "blk 4 KiB random read", "IOPS", "higher"),
  m("blk.randwrite", "blk", "blk 4 KiB random write", "IOPS", "higher"),
  m("blk.signals", "blk", "VMBus signals per blk request", "count", "lower"),
  m("net.down", "net", "TCP host → guest", "MB/s", "higher"),
  m("net.up", "net", "TCP guest → host", "MB/s", "higher"),
  m("net.ping", "net", "ping RTT to gateway", "ms", "lower"),
  m("fault.survives", "fault", "survives a back end fault", "bool", "higher"),
  m("fault.restart", "fault", "back end killed → serving again", "ms", "lower"),
];

export function measure(id: string): MeasureDef {
  const d = MEASURES.find((x) => x.id === id);
  if (!d) throw new Error(`unknown measure ${id}`);
  return d;
}

/** A run's outcome for one measure: a value, or why there is none. */
export type Outcome = { readonly value: number } | { readonly reason: string };
export type Sample = Record<string, Outcome>;

export const value = (v: number): Outcome => ({ value: v });
export const na = (reason: string): Outcome => ({ reason });
