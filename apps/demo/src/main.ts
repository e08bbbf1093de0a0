// `ringzero` command-line entry: argument parsing (zod-validated) and dispatch.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CpuError } from "@ringzero/cpu-core";
import { z } from "zod";
import { runBareMetal } from "./baremetal.js";
import { DemoError, DemoErrorCode } from "./errors.js";
import { parseMemorySize } from "./size.js";

const USAGE = `usage: ringzero run [--bios none] [--kernel FILE.elf] [--memory SIZE]

  --bios none        start the kernel in M-mode at its ELF entry, no firmware (bare metal)
  --kernel FILE      the guest (default: the embedded demo guest)
  --memory SIZE      guest RAM, e.g. 256M or 1G (default 256M)
  --max-instructions N  stop after N instructions (exit status 124)
  --stats            print instructions, seconds and MIPS to stderr at the end

The board has QEMU virt's map: RAM at 0x80000000, UART 16550A at 0x10000000
(output to stdout), SiFive test finisher at 0x100000 (0x5555 → exit 0,
(code<<16)|0x3333 → exit code); an ELF 'tohost' symbol is honoured (HTIF).
`;

const RunOptions = z.object({
  bios: z.enum(["none"], { message: 'only "--bios none" is available in this version' }).default("none"),
  kernel: z.string().min(1).optional(),
  memory: z.string().default("256M"),
  "max-instructions": z.string().regex(/^\d+$/, "must be a whole number").transform(Number).optional(),
  stats: z.boolean().default(false),
});

/** The embedded demo guest shipped with the package. */
export function embeddedGuestPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here, "..", "guests", "hello", "hello.elf");
}

export interface Io {
  stdout: (bytes: Uint8Array) => void;
  stderr: (text: string) => void;
}

/** Run the command; returns the process exit status. */
export function main(argv: readonly string[], io: Io): number {
  try {
    return dispatch(argv, io);
  } catch (e) {
    if (e instanceof DemoError || e instanceof CpuError) {
      io.stderr(`ringzero: ${e.message}\n`);
      return e instanceof DemoError && e.code === DemoErrorCode.USAGE ? 2 : 1;
    }
    throw e;
  }
}

function dispatch(argv: readonly string[], io: Io): number {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    io.stderr(USAGE);
    return verb === undefined ? 2 : 0;
  }
  if (verb !== "run") throw new DemoError(DemoErrorCode.USAGE, { verb }, `unknown command "${verb}"\n${USAGE}`);
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: {
        bios: { type: "string" },
        kernel: { type: "string" },
        memory: { type: "string", short: "m" },
        "max-instructions": { type: "string" },
        stats: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new DemoError(DemoErrorCode.USAGE, {}, `${(e as Error).message}\n${USAGE}`);
  }
  const parsed = RunOptions.safeParse(values);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DemoError(DemoErrorCode.USAGE, { option: i.path.join(".") }, `--${i.path.join(".")}: ${i.message}`);
  }
  const opts = parsed.data;
  const memory = parseMemorySize(opts.memory);
  const kernelPath = opts.kernel ?? embeddedGuestPath();
  let kernel: Uint8Array;
  try {
    kernel = readFileSync(kernelPath);
  } catch (e) {
    throw new DemoError(
      DemoErrorCode.KERNEL_UNREADABLE,
      { path: kernelPath },
      `cannot read kernel ${kernelPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const r = runBareMetal({ kernel, memory, output: io.stdout, maxInstructions: opts["max-instructions"] });
  if (opts.stats) {
    const mips = r.instructions / r.seconds / 1e6;
    io.stderr(`ringzero: ${r.instructions} instructions in ${r.seconds.toFixed(3)} s (${mips.toFixed(1)} MIPS)\n`);
  }
  if (r.reason === "limit") {
    io.stderr(`ringzero: stopped after ${r.instructions} instructions (--max-instructions)\n`);
    return 124;
  }
  if (r.reason === "wfi-forever") {
    io.stderr("ringzero: the guest is waiting (WFI) with no interrupt source on this board; stopping\n");
    return 1;
  }
  return r.status ?? 1;
}
