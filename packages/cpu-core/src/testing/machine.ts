// Test-only bare-metal machine on QEMU virt's map: RAM at 0x8000_0000, the
// UART THR/LSR at 0x1000_0000, the SiFive test finisher at 0x10_0000, HTIF.
import { loadElf } from "../elf.js";
import { Bus } from "../hart/bus.js";
import { Hart, type HartOptions } from "../hart/hart.js";
import type { Engine } from "../hart/translator.js";

/** The engine tests run under when they do not choose one: RINGZERO_ENGINE, else the hart's default. */
export function defaultTestEngine(): Engine | undefined {
  const e = typeof process === "undefined" ? undefined : process.env.RINGZERO_ENGINE;
  return e === "interpreter" || e === "translator" ? e : undefined;
}

export interface RunResult {
  /** Finisher/HTIF exit code (0 = pass), or undefined when the budget ran out. */
  code: number | undefined;
  output: string;
  instret: number;
  hart: Hart;
}

export function runElf(
  elf: Uint8Array,
  opts: { maxInstructions?: number; ramSize?: number; hart?: HartOptions; onExit?: (h: Hart) => void } = {},
): RunResult {
  const bus = new Bus({ ramBase: 0x80000000, ramSize: opts.ramSize ?? 16 * 1024 * 1024 });
  const img = loadElf(bus, elf);
  const tohost = img.symbols.get("tohost");
  const engine = defaultTestEngine();
  const hart = new Hart(bus, {
    ...(engine === "translator" ? { engine, translateAfter: 1 } : { engine }),
    ...opts.hart,
    tohost: tohost === undefined ? undefined : Number(tohost),
  });
  hart.pc = Number(img.entry);
  let output = "";
  const max = opts.maxInstructions ?? 50_000_000;
  for (;;) {
    if (hart.instret >= max) return { code: undefined, output, instret: hart.instret, hart };
    const exit = hart.run(Math.min(1_000_000, max - hart.instret));
    switch (exit.kind) {
      case "mmio":
        if (exit.op === "write") {
          if (exit.address === 0x10000000) output += String.fromCharCode(Number(exit.value & 0xffn));
          if (exit.address === 0x100000) {
            const v = Number(exit.value & 0xffffffffn);
            hart.completeMmio();
            if ((v & 0xffff) === 0x5555) return { code: 0, output, instret: hart.instret, hart };
            if ((v & 0xffff) === 0x3333) return { code: v >>> 16, output, instret: hart.instret, hart };
            break;
          }
          hart.completeMmio();
        } else {
          hart.completeMmio(exit.address === 0x10000005 ? 0x60n : 0n);
        }
        break;
      case "halt":
        return { code: exit.code, output, instret: hart.instret, hart };
      case "wfi":
        if (!hart.interruptPending()) return { code: undefined, output, instret: hart.instret, hart };
        break;
      default:
        opts.onExit?.(hart);
        if (exit.kind !== "budget") return { code: undefined, output, instret: hart.instret, hart };
    }
  }
}
