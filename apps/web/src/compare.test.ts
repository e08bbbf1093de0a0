import { describe, expect, it } from "vitest";
import { compareSvg, DD_COMMAND, parseDd } from "./browser/compare.js";

describe("compare", () => {
  it("times the guest's dd by its uptime: whole 64 KiB records over the seconds between", () => {
    const echo = `rz# ${DD_COMMAND}\n`;
    const out = `${echo}128+0 records in\n128+0 records out\nrz-dd 7.80 8.32\nrz# `;
    expect(parseDd(out)).toBeCloseTo((128 * 65536) / 0.52 / 1e6, 6);
    // The typed command's own echo is no result; nor is a failed dd or a read under 1/100 s.
    expect(parseDd(echo)).toBeUndefined();
    expect(parseDd(`${echo}dd: can't open '/dev/vda': No such device or address\nrz-dd 7.80 7.81\n`)).toBeUndefined();
    expect(parseDd(`${echo}128+0 records in\nrz-dd 7.80 7.80\n`)).toBeUndefined();
  });

  it("draws nothing until both hypervisors were measured, then a bar per hypervisor and figure", () => {
    const mono = { bootMs: 9000, mips: 30, exits: 20000, diskMBps: 40 };
    const micro = { bootMs: 12000, mips: 20, exits: 30000 };
    expect(compareSvg({ mono })).toBeUndefined();
    const svg = compareSvg({ mono, micro }) as string;
    expect(svg.startsWith("<svg")).toBe(true);
    const bars = [...svg.matchAll(/<rect class="bar" data-hv="(\w+)" data-metric="(\w+)" [^>]*width="([\d.]+)"/g)];
    expect(bars.map((b) => `${b[1]}:${b[2]}`)).toEqual([
      "mono:bootMs",
      "micro:bootMs",
      "mono:mips",
      "micro:mips",
      "mono:exits",
      "micro:exits",
      "mono:diskMBps",
      "micro:diskMBps",
    ]);
    // Each row is scaled to its larger value: the longer bar is the full width, the other in proportion.
    const w = (hv: string, k: string) => Number(bars.find((b) => b[1] === hv && b[2] === k)?.[3]);
    expect(w("micro", "bootMs")).toBe(330);
    expect(w("mono", "bootMs")).toBeCloseTo(247.5, 0);
    expect(w("mono", "mips")).toBe(330);
    expect(w("micro", "diskMBps")).toBe(0); // not measured under micro
    expect(svg).toContain("not measured");
    expect(svg).toContain("micro/mono 1.33×");
  });
});
