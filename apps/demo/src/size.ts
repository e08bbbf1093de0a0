import { parseSize } from "@ringzero/disk-formats";
import { DemoError, DemoErrorCode } from "./errors.js";

/**
 * Parse a guest memory size with the size syntax `ringzero-img` takes
 * (@ringzero/disk-formats' `parseSize`: "256M", "1.5G", "65536K", "256MiB",
 * plain bytes); a bare number < 4096 means MiB, as QEMU's -m.
 */
export function parseMemorySize(text: string, limits = { min: 1024 * 1024, max: 2 * 1024 ** 3 }): number {
  const t = text.trim();
  const bytes = /^\d+$/.test(t) && Number(t) < 4096 ? Number(t) * 1024 ** 2 : parseSize(t);
  if (bytes === null)
    throw new DemoError(DemoErrorCode.MEMORY_SIZE, { value: text }, `invalid memory size "${text}" (try 256M or 1G)`);
  if (bytes < limits.min || bytes > limits.max) {
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
