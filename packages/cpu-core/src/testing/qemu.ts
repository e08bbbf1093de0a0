// Test-only: run the same ELF on qemu-system-riscv64 -M virt -bios none (the reference machine).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const QEMU = "qemu-system-riscv64";

export interface QemuResult {
  code: number | null;
  output: string;
}

export function runQemu(elf: Uint8Array, timeoutMs = 20_000): QemuResult {
  const dir = mkdtempSync(join(tmpdir(), "rz-qemu-"));
  try {
    const file = join(dir, "guest.elf");
    writeFileSync(file, elf);
    const r = spawnSync(
      QEMU,
      [
        "-M",
        "virt",
        "-m",
        "128M",
        "-nographic",
        "-bios",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        file,
      ],
      { timeout: timeoutMs, encoding: "latin1", stdio: ["ignore", "pipe", "pipe"] },
    );
    return { code: r.status, output: r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
