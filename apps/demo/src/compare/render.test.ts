// The table, the chart and the statistics behind them, on fixed figures; the
// chart is also rendered by Debian's chromium (headless) when it is installed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { formatNumber, renderTable } from "./report.js";
import { column, median, type Summary, spreadPercent, summarize } from "./stats.js";
import { chartRows, renderSvg } from "./svg.js";

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
    expect(svg.match(/<rect /g)).toHaveLength(6); // background + 5 bars
    expect(svg).toContain("16.8×");
  });

  const tmp = mkdtempSync(join(tmpdir(), "rz-compare-svg-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const chromium = ["chromium", "chromium-browser"].find(
    (c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0,
  );
  it.skipIf(!chromium)(
    "renders in chromium headless to a PNG of the SVG's size that is not blank (needs Debian chromium: skipped without it)",
    () => {
      const { svg, width, height } = renderSvg(summary, "chromium render test");
      const file = join(tmp, "chart.svg");
      const png = join(tmp, "chart.png");
      writeFileSync(file, svg);
      const r = spawnSync(
        chromium as string,
        [
          ...["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"],
          ...[`--user-data-dir=${join(tmp, "profile")}`, `--window-size=${width},${height}`],
          `--screenshot=${png}`,
          `file://${file}`,
        ],
        { encoding: "utf8", timeout: 90_000 },
      );
      expect(existsSync(png), r.stderr).toBe(true);
      const b = readFileSync(png);
      expect(b.subarray(1, 4).toString()).toBe("PNG");
      expect(b.readUInt32BE(16)).toBe(width); // IHDR
      expect(b.readUInt32BE(20)).toBe(height);
      // Not blank: the decompressed scanlines are not all one colour.
      const idat: Buffer[] = [];
      for (let o = 8; o < b.length; ) {
        const len = b.readUInt32BE(o);
        if (b.subarray(o + 4, o + 8).toString() === "IDAT") idat.push(b.subarray(o + 8, o + 8 + len));
        o += 12 + len;
      }
      const raw = inflateSync(Buffer.concat(idat));
      let busy = 0;
      for (const x of raw) if (x !== 0 && x !== 255) busy++;
      expect(busy / raw.length).toBeGreaterThan(0.001);
      if (process.env.RZ_KEEP_CHART) writeFileSync(process.env.RZ_KEEP_CHART, b);
    },
    120_000,
  );
});
