// The table, the chart and the statistics behind them, on fixed figures; the
// chart is also rendered by Debian's chromium (headless; required under CI).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "@ringzero/cpu-core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { formatNumber, renderTable } from "./report.js";
import { column, median, type Summary, spreadPercent, summarize } from "./stats.js";
import { chartRows, renderSvg } from "./svg.js";
import { countColour, countNonBackground, decodePng, screenshot } from "./testing-internal/chromium.js";

const v = (value: number) => ({ value });
const summary: Summary[] = [
  summarize("start.first", { monolithic: [v(20), v(25), v(30)], micro: [v(400), v(420), v(500)] }),
  summarize("cpu.mips", { monolithic: [v(60), v(66), v(70)], micro: [v(55), v(63), v(64)] }),
  summarize("exits.total", { monolithic: [v(581)], micro: [v(581)] }),
  summarize("exits.rtt", { monolithic: [{ reason: "no round trip" }], micro: [v(98), v(100), v(120)] }),
  summarize("mem.rss", { monolithic: [v(0.5), v(1), v(2)], micro: [v(40), v(44), v(50)] }),
  summarize("tcb.lines", { monolithic: [v(15148)], micro: [v(2489)] }),
  summarize("boot.shell", { monolithic: [v(6.1)], micro: [{ reason: "no shell prompt within 180 s" }] }),
];

describe("statistics", () => {
  it("median, min–max spread, and n/a when no run has a value", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const c = column([v(90), v(100), v(110)]);
    expect(c).toEqual({ n: 3, median: 100, min: 90, max: 110 });
    if (!("median" in c)) throw new Error("column");
    expect(spreadPercent(c)).toBeCloseTo(10);
    expect(column([{ reason: "a" }, { reason: "a" }, { reason: "b" }])).toEqual({ reason: "a; b" });
    // one run failing among others still gives the others' median
    expect(column([v(1), { reason: "timeout" }, v(3)])).toMatchObject({ n: 2, median: 2 });
  });

  it("ratio micro/mono with its extremes; none when a side is n/a or mono is 0", () => {
    expect(summary[1].ratio).toEqual({ median: 63 / 66, low: 55 / 70, high: 64 / 60 });
    expect(summary[3].ratio).toEqual({ reason: "a column is n/a" });
    expect(summarize("x", { monolithic: [v(0)], micro: [v(1)] }).ratio).toEqual({ reason: "mono is 0" });
  });
});

describe("table", () => {
  it("shows median ± spread, the ratio with better/worse, and each n/a reason once as a footnote", () => {
    const t = renderTable(summary, 3);
    expect(t.text).toMatch(/start → first instruction\s+ms\s+25 ±20%\s+420 ±12%\s+16\.8× −/);
    expect(t.text).toMatch(/TCB source lines\s+lines\s+15,148\s+2,489\s+0\.16× \+/);
    expect(t.text).toMatch(/exits per run\s+count\s+581\s+581\s+1\.00×\n/);
    expect(t.notes).toEqual(["no round trip", "no shell prompt within 180 s"]);
    expect(t.text).toContain("[2] no shell prompt within 180 s");
  });

  it("formats figures with about three digits", () => {
    expect(formatNumber(15148)).toBe("15,148");
    expect(formatNumber(420)).toBe("420");
    expect(formatNumber(65.34)).toBe("65.3");
    expect(formatNumber(0.954)).toBe("0.95");
    expect(formatNumber(0.0123)).toBe("0.012");
    // a share just under 100 % keeps two digits of what is missing
    expect(formatNumber(99.99947, "%")).toBe("99.99947");
    expect(formatNumber(99.5, "%")).toBe("99.50");
    expect(formatNumber(100, "%")).toBe("100");
    expect(formatNumber(42.25, "%")).toBe("42.3");
  });
});

describe("chart", () => {
  it("has one bar per measure with a ratio, toned by which side is better", () => {
    const rows = chartRows(summary);
    expect(rows.map((r) => [r.label, r.tone])).toEqual([
      ["start → first instruction (ms)", "worse"],
      ["guest MIPS (MIPS)", "worse"],
      ["exits per run (count)", "none"],
      ["host RSS per VM (MiB)", "worse"],
      ["TCB source lines (lines)", "better"],
    ]);
    const { svg, width, height } = renderSvg(summary, "test");
    expect(width).toBe(960);
    expect(height).toBe(64 + 5 * 26 + 48);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(5);
    expect(svg.match(/<rect class="swatch"/g)).toHaveLength(3); // the legend
    // bars under 4 px (1.00× and 0.95× on this 1/8×–128× axis) get a diamond, the others none
    expect(svg.match(/<path class="marker"/g)).toHaveLength(2);
    // one name per section present: start, cpu, exits, mem, tcb
    for (const sec of ["start", "cpu", "exits", "mem", "tcb"]) expect(svg).toContain(`font-size="11">${sec}</text>`);
    expect(svg).toContain("16.8×");
  });

  const tmp = mkdtempSync(join(tmpdir(), "rz-compare-svg-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  it.skipIf(!requireTool("chromium"))(
    "renders in chromium headless: a PNG of the SVG's size with every bar drawn in its tone",
    () => {
      const { svg, width, height } = renderSvg(summary, "chromium render test");
      const file = join(tmp, "chart.svg");
      writeFileSync(file, svg);
      const png = screenshot(file, width, height);
      if (process.env.RZ_KEEP_CHART) writeFileSync(process.env.RZ_KEEP_CHART, png);
      const img = decodePng(png);
      expect([img.width, img.height]).toEqual([width, height]);
      expect(countNonBackground(img) / (width * height)).toBeGreaterThan(0.02);
      // bars are 16 px tall: 3 red (start, MIPS, RSS), 1 green (TCB), 1 grey (exits, 1×: a 1 px sliver)
      expect(countColour(img, "#cd6155")).toBeGreaterThan(3 * 16 * 20);
      expect(countColour(img, "#58a279")).toBeGreaterThan(16 * 20);
    },
    120_000,
  );
});
