// Medians, spreads and the micro/mono ratio of the runs of one measure.
import type { Hypervisor, Outcome } from "./measures.js";

export interface Column {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** A hypervisor's column of one measure: figures over its runs, or the reason there are none. */
export type ColumnOrNa = Column | { readonly reason: string };

export interface Ratio {
  /** micro median / mono median. */
  readonly median: number;
  /** The extremes the runs allow: micro min / mono max and micro max / mono min. */
  readonly low: number;
  readonly high: number;
}

export interface Summary {
  readonly measure: string;
  readonly monolithic: ColumnOrNa;
  readonly micro: ColumnOrNa;
  readonly ratio: Ratio | { readonly reason: string };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Half the min–max range relative to the median, in percent (0 for one run or a zero median). */
export function spreadPercent(c: Column): number {
  return c.median === 0 ? 0 : ((c.max - c.min) / 2 / Math.abs(c.median)) * 100;
}

export function isColumn(c: ColumnOrNa): c is Column {
  return "median" in c;
}

/** Column of one hypervisor from its runs; runs without a value give their (first distinct) reasons. */
export function column(outcomes: readonly Outcome[]): ColumnOrNa {
  const values = outcomes.flatMap((o) => ("value" in o ? [o.value] : []));
  if (values.length === 0) {
    const reasons = [...new Set(outcomes.flatMap((o) => ("reason" in o ? [o.reason] : [])))];
    return { reason: reasons.join("; ") || "not run" };
  }
  return { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function ratio(mono: ColumnOrNa, micro: ColumnOrNa): Summary["ratio"] {
  if (!isColumn(mono) || !isColumn(micro)) return { reason: "a column is n/a" };
  if (mono.median === 0 || mono.min <= 0 || mono.max <= 0) return { reason: "mono is 0" };
  return { median: micro.median / mono.median, low: micro.min / mono.max, high: micro.max / mono.min };
}

export function summarize(measure: string, runs: Record<Hypervisor, readonly Outcome[]>): Summary {
  const monolithic = column(runs.monolithic);
  const micro = column(runs.micro);
  return { measure, monolithic, micro, ratio: ratio(monolithic, micro) };
}
