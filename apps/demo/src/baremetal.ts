// The bare-metal board of `ringzero run --bios none`: QEMU virt's map with
// RAM at 0x8000_0000, the 16550A UART transmit path at 0x1000_0000, the SiFive
// test finisher at 0x10_0000 and HTIF tohost. The hart starts in M-mode at the
// ELF entry, as QEMU's `-bios none -kernel` does. (The full board — PLIC,
// CLINT, RTC, UART receive — belongs to the platform package.)
import { Bus, Hart, loadElf } from "@ringzero/cpu-core";

export const VIRT_RAM_BASE = 0x80000000;
export const VIRT_UART0 = 0x10000000;
export const VIRT_TEST = 0x100000;
const UART_LSR = 5; // line status register
const LSR_THRE_TEMT = 0x60; // transmitter empty: writes never wait
const FINISHER_PASS = 0x5555;
const FINISHER_FAIL = 0x3333;
const FINISHER_RESET = 0x7777;

export interface BareMetalOptions {
  readonly kernel: Uint8Array;
  readonly memory: number;
  readonly output: (bytes: Uint8Array) => void;
  /** Stop after this many instructions (undefined = no limit). */
  readonly maxInstructions?: number;
}

export interface BareMetalResult {
  /** Process exit status: 0 pass, the finisher/tohost code otherwise; undefined if stopped by the limit. */
  readonly status: number | undefined;
  readonly reason: "finisher" | "tohost" | "limit" | "reset" | "wfi-forever";
  readonly instructions: number;
  readonly seconds: number;
}

export function runBareMetal(opts: BareMetalOptions): BareMetalResult {
  const bus = new Bus({ ramBase: VIRT_RAM_BASE, ramSize: opts.memory });
  const img = loadElf(bus, opts.kernel);
  const tohost = img.symbols.get("tohost");
  const hart = new Hart(bus, { tohost: tohost === undefined ? undefined : Number(tohost) });
  hart.pc64 = img.entry;
  const started = performance.now();
  const out = new Uint8Array(1);
  const done = (status: number | undefined, reason: BareMetalResult["reason"]): BareMetalResult => ({
    status,
    reason,
    instructions: hart.instret,
    seconds: (performance.now() - started) / 1000,
  });
  const limit = opts.maxInstructions ?? Number.POSITIVE_INFINITY;
  for (;;) {
    if (hart.instret >= limit) return done(undefined, "limit");
    const exit = hart.run(Math.min(10_000_000, limit - hart.instret));
    switch (exit.kind) {
      case "mmio": {
        const a = exit.address;
        if (exit.op === "write") {
          if (a === VIRT_UART0) {
            out[0] = Number(exit.value & 0xffn);
            opts.output(out);
            hart.completeMmio();
          } else if (a === VIRT_TEST && exit.size === 4) {
            hart.completeMmio();
            const v = Number(exit.value);
            if ((v & 0xffff) === FINISHER_PASS) return done(0, "finisher");
            if ((v & 0xffff) === FINISHER_FAIL) return done(v >>> 16, "finisher"); // QEMU exits with the code as given
            if ((v & 0xffff) === FINISHER_RESET) return done(0, "reset");
          } else if (a > VIRT_UART0 && a < VIRT_UART0 + 8) {
            hart.completeMmio(); // other UART registers: accepted, no effect on the transmit path
          } else {
            hart.failMmio(); // nothing there: access fault, as on QEMU
          }
        } else if (a === VIRT_UART0 + UART_LSR) {
          hart.completeMmio(BigInt(LSR_THRE_TEMT));
        } else if (a >= VIRT_UART0 && a < VIRT_UART0 + 8) {
          hart.completeMmio(0n);
        } else if (a === VIRT_TEST) {
          hart.completeMmio(0n);
        } else {
          hart.failMmio();
        }
        break;
      }
      case "halt":
        return done(exit.code === 0 ? 0 : exit.code, "tohost");
      case "wfi":
        // No interrupt source on this board: a WFI with nothing pending never wakes.
        if (!hart.interruptPending()) return done(undefined, "wfi-forever");
        break;
      case "budget":
        break;
      default:
        return done(undefined, "limit");
    }
  }
}
