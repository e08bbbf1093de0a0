// Sizes as qemu-img reads and prints them.

const UNITS: Record<string, number> = {
  B: 1,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
  P: 2 ** 50,
  E: 2 ** 60,
};

/**
 * Parses a size as QEMU's `qemu_strtosz` does, the one size syntax of
 * `ringzero-img` and `ringzero --memory`: a decimal number with an optional
 * fraction and an optional binary suffix, case-insensitive: "4096" (bytes),
 * "512k", "1.5M", "10G", "2T". "KiB"/"MiB"/"GB"-style spellings are accepted
 * too. Returns null when malformed, not a whole number of bytes, or past
 * 2^53.
 */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(?:([KMGTPE])(?:i?B)?|B)?$/i.exec(text.trim());
  if (!m) return null;
  const v = Number(m[1]) * (m[2] ? UNITS[m[2].toUpperCase()]! : 1);
  const n = Math.round(v);
  if (!Number.isSafeInteger(n) || Math.abs(v - n) > 1e-6) return null;
  return n;
}

/** qemu's size_to_str: three significant digits and a binary unit ("1 GiB", "196 KiB", "0 B"). */
export function sizeToStr(val: number): string {
  const suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
  // frexp(val / (1000/1024)) exponent, as QEMU computes it
  const x = val / (1000 / 1024);
  const exp = x === 0 ? 0 : Math.floor(Math.log2(x)) + 1;
  const i = Math.max(0, Math.floor((exp - 1) / 10));
  const div = 2 ** (i * 10);
  return `${formatG(val / div)} ${suffixes[i]}B`;
}

/** C's "%0.3g" for values below 1000. */
function formatG(v: number): string {
  if (v === 0) return "0";
  return String(Number.parseFloat(v.toPrecision(3)));
}
