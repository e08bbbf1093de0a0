// Test-only helpers: assemble RISC-V programs with Debian's cross toolchain
// (riscv64-unknown-elf-gcc) at test time, cached by content hash.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const GCC = "riscv64-unknown-elf-gcc";

export function haveTool(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Fail loudly in CI when a required tool is missing; skip locally. */
export function requireTool(cmd: string): boolean {
  if (haveTool(cmd)) return true;
  if (process.env.CI) throw new Error(`${cmd} is required in CI (scripts/setup.sh installs it)`);
  console.warn(`skipping: ${cmd} not installed`);
  return false;
}

const cacheDir = join(tmpdir(), "ringzero-asm-cache");

/** Link script placing .text at 0x80000000 (QEMU virt RAM) with a .tohost section. */
const LINKER = `
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS {
  . = 0x80000000;
  .text.init : { *(.text.init) }
  .text : { *(.text*) }
  . = ALIGN(0x1000);
  .tohost : { *(.tohost) }
  . = ALIGN(0x1000);
  .data : { *(.data*) *(.sdata*) *(.rodata*) *(.srodata*) }
  .bss : { *(.bss*) *(.sbss*) }
  _end = .;
}
`;

/** Assemble (and link) a source file; returns the ELF bytes. `lang` is "S" (assembler with cpp) or "c". */
export function buildElf(
  source: string,
  opts: { lang?: "S" | "c"; march?: string; extraFlags?: string[] } = {},
): Uint8Array {
  const lang = opts.lang ?? "S";
  const march = opts.march ?? "rv64gc";
  const flags = opts.extraFlags ?? [];
  const key = createHash("sha256")
    .update(JSON.stringify([source, lang, march, flags, LINKER]))
    .digest("hex")
    .slice(0, 24);
  mkdirSync(cacheDir, { recursive: true });
  const out = join(cacheDir, `${key}.elf`);
  if (existsSync(out)) return readFileSync(out);
  const src = join(cacheDir, `${key}.${lang}`);
  const ld = join(cacheDir, `${key}.ld`);
  writeFileSync(src, source);
  writeFileSync(ld, LINKER);
  const r = spawnSync(
    GCC,
    [
      `-march=${march}`,
      "-mabi=lp64d",
      "-mcmodel=medany",
      "-nostdlib",
      "-nostartfiles",
      "-static",
      "-O2",
      "-T",
      ld,
      ...flags,
      "-o",
      `${out}.tmp`,
      src,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`${GCC} failed on ${src}:\n${r.stderr}`);
  execFileSync("mv", [`${out}.tmp`, out]);
  return readFileSync(out);
}
