// Small text helpers shared by --stats and the monitor.

/** "mmio 12, wfi 3": the counters that are not zero, in their order. */
export function nonZeroCounts(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
}
