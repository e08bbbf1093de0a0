// The terminal table: per measure the median and spread under each
// hypervisor and the ratio micro/mono; an n/a cell carries a footnote with
// its reason.
import { MEASURES, type MeasureDef } from "./measures.js";
import { type ColumnOrNa, isColumn, type Summary, spreadPercent } from "./stats.js";

/**
 * A figure with about three significant digits, thousands grouped; a
 * percentage just under 100 keeps two digits of what is missing (99.99947).
 */
export function formatNumber(x: number, unit?: string): string {
  if (unit === "%" && x > 99 && x < 100) return x.toFixed(Math.ceil(-Math.log10(100 - x)) + 1);
  const a = Math.abs(x);
  if (a >= 1000 || Number.isInteger(x)) return Math.round(x).toLocaleString("en-US");
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1 || a === 0) return x.toFixed(2);
  return x.toPrecision(2);
}

export function formatRatio(r: number): string {
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

export interface TableText {
  readonly text: string;
  /** Footnote number → reason. */
  readonly notes: readonly string[];
}

/** The table as text, footnotes below. `width` caps the label column. */
export function renderTable(summary: readonly Summary[], runs: number): TableText {
  const notes: string[] = [];
  const note = (reason: string) => {
    let i = notes.indexOf(reason);
    if (i < 0) i = notes.push(reason) - 1;
    return `n/a [${i + 1}]`;
  };
  const cell = (c: ColumnOrNa, unit: string) =>
    isColumn(c)
      ? `${formatNumber(c.median, unit)}${c.n > 1 ? ` ±${spreadPercent(c).toFixed(0)}%` : ""}`
      : note(c.reason);
  const rows: string[][] = [];
  let section = "";
  for (const s of summary) {
    const d = MEASURES.find((x) => x.id === s.measure) as MeasureDef;
    if (d.section !== section) {
      section = d.section;
      rows.push([`[${section}]`, "", "", "", ""]);
    }
    const ratio = "median" in s.ratio ? `${formatRatio(s.ratio.median)}${betterMark(d, s.ratio.median)}` : "–";
    rows.push([`  ${d.label}`, d.unit, cell(s.monolithic, d.unit), cell(s.micro, d.unit), ratio]);
  }
  const head = ["measure", "unit", "monolithic", "micro", "micro/mono"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r[i]].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i] + (c.length - [...c].length))))
      .join("  ")
      .trimEnd();
  const out = [
    `ringzero compare: median of ${runs} run${runs === 1 ? "" : "s"} each (± half the min–max range)`,
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ];
  if (notes.length > 0) {
    out.push("");
    notes.forEach((n, i) => {
      out.push(`[${i + 1}] ${n}`);
    });
  }
  return { text: `${out.join("\n")}\n`, notes };
}

/** "+" when micro is better than mono by this ratio, "−" when worse; nothing for descriptive counts. */
function betterMark(d: MeasureDef, r: number): string {
  if (d.better === "none" || Math.abs(r - 1) < 0.005) return "";
  const microBetter = d.better === "higher" ? r > 1 : r < 1;
  return microBetter ? " +" : " −";
}
