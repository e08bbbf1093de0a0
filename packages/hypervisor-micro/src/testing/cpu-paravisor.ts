// The CPU workload's paravisor (loaded by URL in the VP's thread, see
// cpu-guest.ts): a 16550 UART that is always ready and discards what it is
// sent, and a test finisher that ignores its writes, so a bare-metal
// benchmark runs without a parent partition to take intercepts.
import type { ParavisorFactory } from "../vp.js";

const UART = 0x1000_0000;
const UART_LSR = 5;
/** LSR: THR empty and transmitter empty (16550 datasheet, line status register). */
const LSR_READY = 0x60;
const FINISHER = 0x10_0000;

export const createParavisor: ParavisorFactory = (ctx) => {
  ctx.addMmio("uart-sink", UART, 0x100, { read: (offset) => (offset === UART_LSR ? LSR_READY : 0), write: () => {} });
  ctx.addMmio("finisher-sink", FINISHER, 0x1000, { read: () => 0, write: () => {} });
  return { poll() {} };
};
