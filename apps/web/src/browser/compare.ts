// The page's `compare`: what it measured of the Linux kit under each
// hypervisor, and the chart that sets them side by side (an SVG string, no
// chart library). Pure functions: the page feeds them, web.test.ts too.
import type { HypervisorName } from "./protocol.js";

/** One run's figures; a figure the run could not measure is undefined (no disk: no throughput). */
export interface Measured {
  /** Boot to the shell prompt: from the Worker's start to `rz# ` in the terminal (ms). */
  readonly bootMs: number;
  /** Guest instructions per second of vCPU run time, at the prompt (millions). */
  readonly mips: number;
  /** Exits of the vCPU from reset to the prompt (to the hypervisor, or microkernel + paravisor + parent). */
  readonly exits: number;
  /** `dd if=/dev/vda of=/dev/null bs=64k` in the guest, timed by its /proc/uptime (MB/s, 10^6; see DD_COMMAND). */
  readonly diskMBps?: number;
}

export type Results = Partial<Record<HypervisorName, Measured>>;

/** Block size of the measuring dd (64 KiB). */
export const DD_BLOCK = 65536;

/**
 * What the page types at the prompt to time a read of the whole disk. The
 * kit's busybox dd prints no rate line (FEATURE_DD_THIRD_STATUS_LINE is off),
 * so the guest's /proc/uptime (1/100 s) is read before and after, and the
 * byte count comes from dd's "N+M records in" (N whole 64 KiB blocks).
 */
export const DD_COMMAND =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, for the guest's ash
  "a=$(cat /proc/uptime); dd if=/dev/vda of=/dev/null bs=64k; b=$(cat /proc/uptime); echo rz-dd ${a%% *} ${b%% *}";

/** MB/s (10^6 bytes) from the output of DD_COMMAND; undefined when dd failed or the read took under 1/100 s. */
export function parseDd(text: string): number | undefined {
  const records = /(\d+)\+\d+ records in/.exec(text);
  const times = /rz-dd (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)/.exec(text);
  if (!records || !times) return undefined;
  const bytes = Number(records[1]) * DD_BLOCK;
  const seconds = Number(times[2]) - Number(times[1]);
  if (!(bytes > 0) || !(seconds > 0)) return undefined;
  return bytes / seconds / 1e6;
}

interface Metric {
  readonly key: keyof Measured;
  readonly label: string;
  readonly unit: string;
  readonly better: "lower" | "higher";
  readonly scale: number;
  readonly digits: number;
}

const METRICS: readonly Metric[] = [
  { key: "bootMs", label: "boot to prompt", unit: "s", better: "lower", scale: 1 / 1000, digits: 1 },
  { key: "mips", label: "MIPS", unit: "", better: "higher", scale: 1, digits: 1 },
  { key: "exits", label: "exits to prompt", unit: "", better: "lower", scale: 1, digits: 0 },
  { key: "diskMBps", label: "disk read (dd)", unit: "MB/s", better: "higher", scale: 1, digits: 1 },
];

export const COLORS: Record<HypervisorName, string> = { mono: "#4e9be6", micro: "#e6a04e" };

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

function fmt(v: number, digits: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/**
 * The chart: one row per figure, a bar per hypervisor, each row scaled to
 * its larger value; the value and the micro/mono ratio are written out.
 * Undefined until both hypervisors were measured.
 */
export function compareSvg(r: Results): string | undefined {
  const mono = r.mono;
  const micro = r.micro;
  if (!mono || !micro) return undefined;
  const W = 640;
  const labelW = 170;
  const barMax = 330;
  const rowH = 58;
  const top = 34;
  const rows = METRICS.filter((m) => mono[m.key] !== undefined || micro[m.key] !== undefined);
  const H = top + rows.length * rowH + 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="mono and micro compared" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#1c1c1c"/>`,
    `<text x="10" y="20" fill="#ddd" font-size="13" font-weight="bold">compare: Linux kit, this browser</text>`,
  ];
  let x = W - 150;
  for (const hv of ["mono", "micro"] as const) {
    parts.push(`<rect x="${x}" y="10" width="12" height="12" fill="${COLORS[hv]}"/>`);
    parts.push(`<text x="${x + 16}" y="20" fill="#ddd">${hv}</text>`);
    x += 70;
  }
  rows.forEach((m, i) => {
    const y = top + i * rowH;
    const a = mono[m.key];
    const b = micro[m.key];
    const max = Math.max(a ?? 0, b ?? 0) || 1;
    const ratio = a !== undefined && b !== undefined && a > 0 ? ` micro/mono ${(b / a).toFixed(2)}×` : "";
    parts.push(`<text x="10" y="${y + 17}" fill="#ddd">${esc(m.label)}</text>`);
    parts.push(`<text x="10" y="${y + 31}" fill="#888" font-size="10">${m.better} is better</text>`);
    if (ratio) parts.push(`<text x="10" y="${y + 45}" fill="#888" font-size="10">${esc(ratio.trim())}</text>`);
    (["mono", "micro"] as const).forEach((hv, k) => {
      const v = hv === "mono" ? a : b;
      const by = y + 6 + k * 22;
      const w = v === undefined ? 0 : Math.max(1, (v / max) * barMax);
      const text = v === undefined ? "not measured" : `${fmt(v * m.scale, m.digits)}${m.unit ? ` ${m.unit}` : ""}`;
      parts.push(
        `<rect class="bar" data-hv="${hv}" data-metric="${m.key}" x="${labelW}" y="${by}" width="${w.toFixed(1)}" height="18" fill="${COLORS[hv]}"/>`,
      );
      parts.push(`<text x="${labelW + w + 6}" y="${by + 13}" fill="#ddd">${esc(text)}</text>`);
    });
  });
  parts.push("</svg>");
  return parts.join("");
}
