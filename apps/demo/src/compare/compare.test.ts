// CI: `ringzero compare --runs 1 --json` on the embedded guest (the CPU row on
// the generated loop, to keep it short): the document matches its schema and
// every measure has both columns — a value, or an explicit reason.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "@ringzero/cpu-core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../main.js";
import { HYPERVISORS, MEASURES } from "./measures.js";
import { type CompareReport, CompareReportSchema } from "./schema.js";
import { countNonBackground, decodePng, screenshot } from "./testing-internal/chromium.js";

const dir = mkdtempSync(join(tmpdir(), "rz-compare-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ringzero compare --runs 1 --json (embedded guest)", () => {
  let status: number;
  let table = "";
  let stderr = "";
  let report: CompareReport;
  beforeAll(async () => {
    status = await main(
      [
        ...["compare", "--runs", "1", "--cpu-elf", "loop"],
        ...["--json", join(dir, "c.json"), "--svg", join(dir, "c.svg"), "--html", join(dir, "c.html")],
      ],
      {
        stdout: (b) => {
          table += Buffer.from(b).toString();
        },
        stderr: (t) => {
          stderr += t;
        },
      },
    );
    report = CompareReportSchema.parse(JSON.parse(readFileSync(join(dir, "c.json"), "utf8")));
  }, 240_000);

  it("exits 0, quietly (no progress when stderr is not a terminal)", () => {
    expect(status).toBe(0);
    expect(stderr).toBe("");
  });

  it("has a record for every measure under both hypervisors: a value or a reason", () => {
    expect(report.measures.map((m) => m.id)).toEqual(MEASURES.map((m) => m.id));
    for (const m of MEASURES) {
      for (const hv of HYPERVISORS) {
        const rs = report.records.filter((r) => r.measure === m.id && r.hypervisor === hv);
        expect(rs, `${m.id} ${hv}`).toHaveLength(1);
        const r = rs[0];
        if (r.value === null) expect(r.reason, `${m.id} ${hv}`).toMatch(/\S{3}/);
        else expect(Number.isFinite(r.value)).toBe(true);
      }
    }
  });

  it("measures the rows that need no Linux on both sides", () => {
    const both = [
      ...["start.create", "start.first", "cpu.mips", "cpu.direct", "exits.total", "exits.rate", "exits.direct"],
      "tcb.lines",
    ];
    for (const id of both) {
      for (const hv of HYPERVISORS) {
        const r = report.records.find((x) => x.measure === id && x.hypervisor === hv);
        expect(r?.value, `${id} ${hv}: ${r?.reason}`).toBeGreaterThan(0);
      }
    }
    // RSS: a mono VM whose guest touches a few pages may add nothing measurable; micro adds its threads
    const rss = HYPERVISORS.map((hv) => report.records.find((x) => x.measure === "mem.rss" && x.hypervisor === hv));
    expect(rss[0]?.value).toBeGreaterThanOrEqual(0);
    expect(rss[1]?.value).toBeGreaterThan(0);
    // the same guest takes the same number of exits under both architectures
    const exits = HYPERVISORS.map((hv) =>
      report.records.find((x) => x.measure === "exits.total" && x.hypervisor === hv),
    );
    expect(exits[0]?.value).toBe(exits[1]?.value);
    // Popek–Goldberg efficiency: the ALU loop runs all but a handful of its 20 M instructions without an exit
    for (const hv of HYPERVISORS) {
      const direct = report.records.find((x) => x.measure === "cpu.direct" && x.hypervisor === hv)?.value ?? 0;
      expect(direct).toBeGreaterThan(99.99);
      expect(direct).toBeLessThan(100);
    }
    // Linux rows without --kernel say how to get them
    const boot = report.records.find((x) => x.measure === "boot.shell");
    expect(boot?.reason).toMatch(/--kernel/);
  });

  it("prints the table with an n/a footnote per reason, and machine and versions in the JSON", () => {
    expect(table).toMatch(/guest MIPS\s+MIPS\s+[\d.,]+\s+[\d.,]+\s+[\d.]+×/);
    expect(table).toMatch(/\[1\] /);
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.versions["@ringzero/hypervisor-micro"]).toBeDefined();
    expect(report.summary.length).toBe(MEASURES.length);
  });

  it("writes an SVG chart and a self-contained HTML page", () => {
    const svg = readFileSync(join(dir, "c.svg"), "utf8");
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="960" height="\d+"/);
    expect(svg).toContain("guest MIPS (MIPS)");
    const html = readFileSync(join(dir, "c.html"), "utf8");
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|<link|src="http/);
  });

  it.skipIf(!requireTool("chromium"))(
    "the --svg renders in chromium headless: sized as declared, not blank",
    () => {
      const file = join(dir, "c.svg");
      const m = /width="(\d+)" height="(\d+)"/.exec(readFileSync(file, "utf8"));
      const [width, height] = [Number(m?.[1]), Number(m?.[2])];
      const png = screenshot(file, width, height);
      if (process.env.RZ_KEEP_CHART) writeFileSync(process.env.RZ_KEEP_CHART, png);
      const img = decodePng(png);
      expect([img.width, img.height]).toEqual([width, height]);
      // a bar per row with a ratio (about 16 × 40 px each at least), labels, axis
      const rows = report.summary.filter((s) => "median" in s.ratio).length;
      expect(rows).toBeGreaterThan(5);
      expect(countNonBackground(img)).toBeGreaterThan(rows * 16 * 40);
    },
    120_000,
  );
});
