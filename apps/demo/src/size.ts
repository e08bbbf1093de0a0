import { DemoError, DemoErrorCode } from "./errors.js";

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** Parse a QEMU-style memory size ("256M", "1G", "65536K", plain bytes; a bare number < 4096 means MiB, as QEMU's -m). */
export function parseMemorySize(text: string, limits = { min: 1024 * 1024, max: 2 * 1024 ** 3 }): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m)
    throw new DemoError(DemoErrorCode.MEMORY_SIZE, { value: text }, `invalid memory size "${text}" (try 256M or 1G)`);
  const unit = m[2].toUpperCase();
  let bytes = Number(m[1]) * UNITS[unit];
  if (unit === "" && Number(m[1]) < 4096) bytes = Number(m[1]) * 1024 ** 2;
  if (!Number.isSafeInteger(bytes) || bytes < limits.min || bytes > limits.max) {
    throw new DemoError(
      DemoErrorCode.MEMORY_SIZE,
      { value: text, bytes, min: limits.min, max: limits.max },
      `memory size ${text} is outside ${limits.min / 1024 ** 2} MiB .. ${limits.max / 1024 ** 3} GiB`,
    );
  }
  if (bytes % 4096 !== 0) {
    throw new DemoError(DemoErrorCode.MEMORY_SIZE, { value: text }, `memory size ${text} is not a multiple of 4 KiB`);
  }
  return bytes;
}
