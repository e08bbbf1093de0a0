// --svg: a horizontal bar chart of micro/mono per measure on a log2 axis,
// bars from 1× to the median ratio, whiskers over the extremes the runs
// allow. Green: micro better; red: micro worse; grey: a count that does not
// rank. Self-contained (no fonts or scripts fetched).
import { MEASURES, type MeasureDef } from "./measures.js";
import { formatRatio } from "./report.js";
import type { Summary } from "./stats.js";

export const SVG_WIDTH = 960;
const ROW = 26;
const TOP = 64;
const BOTTOM = 48;
const LABEL_W = 300;
const RIGHT = 90;

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const COLOR = { better: "#2e8b57", worse: "#c0392b", none: "#7f8c8d" };

export interface ChartRow {
  readonly section: string;
  readonly label: string;
  readonly median: number;
  readonly low: number;
  readonly high: number;
  readonly tone: keyof typeof COLOR;
}

/** Rows with a numeric ratio; measures that are n/a on either side are left out of the chart. */
export function chartRows(summary: readonly Summary[]): ChartRow[] {
  const rows: ChartRow[] = [];
  for (const s of summary) {
    if (!("median" in s.ratio) || !(s.ratio.median > 0)) continue;
    const d = MEASURES.find((x) => x.id === s.measure) as MeasureDef;
    const r = s.ratio.median;
    const tone: ChartRow["tone"] =
      d.better === "none" || Math.abs(r - 1) < 0.005
        ? "none"
        : (d.better === "higher" ? r > 1 : r < 1)
          ? "better"
          : "worse";
    rows.push({
      section: d.section,
      label: `${d.label} (${d.unit})`,
      median: r,
      low: Math.max(s.ratio.low, 1e-9),
      high: Math.max(s.ratio.high, 1e-9),
      tone,
    });
  }
  return rows;
}

/** 2^p as "4×" or "1/4×". */
function tickLabel(p: number): string {
  return p >= 0 ? `${2 ** p}×` : `1/${2 ** -p}×`;
}

/** The chart as an SVG document. */
export function renderSvg(
  summary: readonly Summary[],
  subtitle: string,
): { svg: string; width: number; height: number } {
  const rows = chartRows(summary);
  const height = TOP + Math.max(1, rows.length) * ROW + BOTTOM;
  const width = SVG_WIDTH;
  // log2 axis over the data, at least 1/2× .. 2×, whole powers of two
  const lo = Math.floor(Math.log2(Math.min(0.5, ...rows.map((r) => Math.min(r.low, r.median)))));
  const hi = Math.ceil(Math.log2(Math.max(2, ...rows.map((r) => Math.max(r.high, r.median)))));
  const x0 = LABEL_W;
  const x1 = width - RIGHT;
  const x = (v: number) => x0 + ((Math.log2(v) - lo) / (hi - lo)) * (x1 - x0);
  const clampX = (v: number) => Math.min(x1, Math.max(x0, x(v)));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">ringzero compare: micro / monolithic</text>`,
    `<text x="16" y="44" fill="#555">${escapeXml(subtitle)}</text>`,
  );
  const axisBottom = TOP + rows.length * ROW;
  const step = hi - lo > 10 ? 2 : 1;
  for (let p = lo; p <= hi; p++) {
    if (p % step !== 0) continue;
    const v = 2 ** p;
    const tx = x(v);
    out.push(
      `<line x1="${tx.toFixed(1)}" y1="${TOP - 6}" x2="${tx.toFixed(1)}" y2="${axisBottom}" stroke="${p === 0 ? "#333" : "#ddd"}" stroke-width="${p === 0 ? 1.5 : 1}"/>`,
      `<text x="${tx.toFixed(1)}" y="${axisBottom + 16}" text-anchor="middle" fill="#333">${escapeXml(tickLabel(p))}</text>`,
    );
  }
  out.push(
    `<text x="${x0}" y="${axisBottom + 34}" fill="#555">← micro lower</text>`,
    `<text x="${x1}" y="${axisBottom + 34}" text-anchor="end" fill="#555">micro higher →</text>`,
  );
  // legend, top right beside the title: a swatch per tone (text widths for 12 px DejaVu Sans)
  const legend: [keyof typeof COLOR, string, number][] = [
    ["better", "micro better", 100],
    ["worse", "micro worse", 96],
    ["none", "a count (does not rank)", 160],
  ];
  let lx = width - 16 - legend.reduce((a, [, , w]) => a + w, 0);
  for (const [tone, text, w] of legend) {
    out.push(
      `<rect class="swatch" x="${lx}" y="15" width="10" height="10" fill="${COLOR[tone]}" fill-opacity="0.8"/>`,
      `<text x="${lx + 14}" y="24" fill="#555">${text}</text>`,
    );
    lx += w;
  }
  if (rows.length === 0)
    out.push(`<text x="${x0}" y="${TOP + 16}" fill="#555">no measure has figures on both sides</text>`);
  rows.forEach((r, i) => {
    const y = TOP + i * ROW;
    const mid = y + ROW / 2;
    if (i === 0 || rows[i - 1].section !== r.section) {
      // the section's name at the left edge, a rule above all but the first
      if (i > 0) out.push(`<line x1="16" y1="${y}" x2="${x1}" y2="${y}" stroke="#bbb" stroke-dasharray="3 3"/>`);
      out.push(`<text x="16" y="${mid + 4}" fill="#888" font-size="11">${escapeXml(r.section)}</text>`);
    }
    const bx = Math.min(x(1), clampX(r.median));
    const bw = Math.max(1, Math.abs(clampX(r.median) - x(1)));
    out.push(
      `<text x="${x0 - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(r.label)}</text>`,
      `<rect class="bar" x="${bx.toFixed(1)}" y="${(y + 5).toFixed(1)}" width="${bw.toFixed(1)}" height="${ROW - 10}" fill="${COLOR[r.tone]}" fill-opacity="0.8"/>`,
    );
    // a bar too short to see (a ratio near 1×) gets a diamond at its median
    if (bw < 4) {
      const cx = clampX(r.median);
      out.push(
        `<path class="marker" d="M${(cx - 5).toFixed(1)} ${mid}l5 -5l5 5l-5 5z" fill="${COLOR[r.tone]}" stroke="#222" stroke-width="0.8"/>`,
      );
    }
    if (r.high / r.low > 1.001) {
      const a = clampX(r.low);
      const b = clampX(r.high);
      out.push(
        `<line x1="${a.toFixed(1)}" y1="${mid}" x2="${b.toFixed(1)}" y2="${mid}" stroke="#222" stroke-width="1.2"/>`,
        `<line x1="${a.toFixed(1)}" y1="${mid - 5}" x2="${a.toFixed(1)}" y2="${mid + 5}" stroke="#222" stroke-width="1.2"/>`,
        `<line x1="${b.toFixed(1)}" y1="${mid - 5}" x2="${b.toFixed(1)}" y2="${mid + 5}" stroke="#222" stroke-width="1.2"/>`,
      );
    }
    out.push(`<text x="${x1 + 8}" y="${mid + 4}">${escapeXml(formatRatio(r.median))}</text>`);
  });
  out.push("</svg>");
  return { svg: `${out.join("\n")}\n`, width, height };
}
