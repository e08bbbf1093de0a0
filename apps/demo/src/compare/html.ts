// --html: one self-contained page (no scripts, fonts or images fetched):
// the machine, the table with every n/a reason, and the chart inline.
import { MEASURES, type MeasureDef } from "./measures.js";
import { formatNumber, formatRatio } from "./report.js";
import type { CompareReport } from "./schema.js";
import { type ColumnOrNa, isColumn, spreadPercent } from "./stats.js";
import { escapeXml as esc } from "./svg.js";

export function renderHtml(report: CompareReport, svg: string): string {
  const m = report.machine;
  const cell = (c: ColumnOrNa, unit: string) =>
    isColumn(c)
      ? `<td class="num">${esc(formatNumber(c.median, unit))}${c.n > 1 ? ` <span class="spread">±${spreadPercent(c).toFixed(0)}%</span>` : ""}<div class="range">${c.n > 1 ? `${esc(formatNumber(c.min, unit))} – ${esc(formatNumber(c.max, unit))}` : ""}</div></td>`
      : `<td class="na">n/a<div class="why">${esc(c.reason)}</div></td>`;
  const rows: string[] = [];
  let section = "";
  for (const s of report.summary) {
    const d = MEASURES.find((x) => x.id === s.measure) as MeasureDef;
    if (d.section !== section) {
      section = d.section;
      rows.push(`<tr class="section"><th colspan="5">${esc(section)}</th></tr>`);
    }
    const ratio = "median" in s.ratio ? esc(formatRatio(s.ratio.median)) : "–";
    rows.push(
      `<tr><th scope="row">${esc(d.label)}</th><td>${esc(d.unit)}</td>${cell(s.monolithic, d.unit)}${cell(s.micro, d.unit)}<td class="num">${ratio}</td></tr>`,
    );
  }
  const versions = Object.entries(report.versions)
    .map(([k, v]) => `${esc(k)} ${esc(v)}`)
    .join(", ");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ringzero compare</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.section th { background: #f4f4f4; text-transform: uppercase; font-size: 0.8em; letter-spacing: 0.05em; }
.spread, .range { color: #777; font-size: 0.85em; }
td.na { color: #999; }
.why { font-size: 0.8em; color: #777; max-width: 28em; }
.meta { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>ringzero compare</h1>
<p class="meta">${esc(report.startedAt)} · ${report.options.runs} run(s) each, alternating · ${esc(m.cpuModel)} × ${m.cpus}, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${esc(m.platform)}/${esc(m.arch)}, Node ${esc(m.node)} · CPU workload: ${esc(report.options.cpuGuest)}</p>
<p class="meta">${versions}</p>
<table>
<thead><tr><th>measure</th><th>unit</th><th>monolithic</th><th>micro</th><th>micro/mono</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<p class="meta">Median of the runs; ± is half the min–max range relative to the median. The ratio is micro's median over mono's.</p>
${svg}
</body>
</html>
`;
}
