// The board's devices against QEMU's: one bare-metal M-mode program pokes the
// PLIC, CLINT, UART and RTC registers, records what it reads (and mip, which
// shows the interrupt lines), then prints the record. It runs on
// qemu-system-riscv64 -M virt -bios none and on cpu-core's hart wired to this
// package's devices; the two records must match line for line.
import { Bus, Hart, loadElf, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP } from "@ringzero/cpu-core";
import { buildElf, GCC, PRELUDE, QEMU, requireTool, runQemu } from "@ringzero/cpu-core/testing";
import { describe, expect, it } from "vitest";
import { Clint } from "./clint.js";
import { GoldfishRtc } from "./goldfish-rtc.js";
import { Plic } from "./plic.js";
import { SifiveTest } from "./sifive-test.js";
import { MmioMap, VIRT } from "./types.js";
import { Uart16550 } from "./uart16550.js";

const UART = VIRT.uart.base;
const PLIC = VIRT.plic.base;
const CLINT = VIRT.clint.base;
const RTC = VIRT.rtc.base;
const PEND = PLIC + 0x1000;
const EN1 = PLIC + 0x2000 + 0x80; // context 1 (S-mode) enables
const EN0 = PLIC + 0x2000; // context 0 (M-mode) enables
const TH1 = PLIC + 0x20_0000 + 0x1000;
const CLAIM1 = TH1 + 4;
const CLAIM0 = PLIC + 0x20_0000 + 4;

type Size = 1 | 4 | 8;
const ST = { 1: "sb", 4: "sw", 8: "sd" } as const;
const LD = { 1: "lbu", 4: "lwu", 8: "ld" } as const;
const lines: string[] = [];
/** What each recorded value is, for the failure message: the accesses since the previous record. */
const labels: string[] = [];
let pendingOps: string[] = [];
const hx = (n: number) => `0x${(n >>> 0).toString(16)}`;
const w = (size: Size, addr: number, val: number) => {
  lines.push(`li t0, ${addr}`, `li t1, ${val}`, `${ST[size]} t1, 0(t0)`);
  pendingOps.push(`w${size} ${hx(addr)}=${hx(val)}`);
};
/** Probes where ringzero deliberately differs from QEMU 7.2, with the reason. */
const deviations = new Map<number, string>();
const record = (what: string, differs?: string) => {
  lines.push("sd a0, 0(s1)", "addi s1, s1, 8");
  if (differs) deviations.set(labels.length, differs);
  labels.push(`${pendingOps.join(" ")} | ${what}`);
  pendingOps = [];
};
const r = (size: Size, addr: number, differs?: string) => {
  lines.push(`li t0, ${addr}`, `${LD[size]} a0, 0(t0)`);
  record(`r${size} ${hx(addr)}`, differs);
};
/** mip's MSIP, MTIP, SEIP and MEIP bits: the lines as the hart sees them. */
const mip = (differs?: string) => {
  lines.push("csrr a0, mip", "li t1, 0xa88", "and a0, a0, t1");
  record("mip", differs);
};

/** Claims and completes on context 1 until nothing is pending (lines must be low): a common baseline. */
const drain = () => {
  w(4, TH1, 0);
  lines.push(`li t0, ${CLAIM1}`, "1: lwu a0, 0(t0)", "beqz a0, 2f", "sw a0, 0(t0)", "j 1b", "2:");
  pendingOps.push("drain");
};

// UART reset values and the divisor latch.
for (let i = 0; i < 8; i++) r(1, UART + i);
w(1, UART + 3, 0x83);
w(1, UART + 0, 0x12);
w(1, UART + 1, 0x34);
r(1, UART + 0);
r(1, UART + 1);
w(1, UART + 3, 0x03);
r(1, UART + 1);
r(1, UART + 3);
w(1, UART + 7, 0x5a);
r(1, UART + 7);
// Loopback without FIFOs: receive, overrun, modem lines.
w(1, UART + 4, 0x1a); // LOOP | OUT2 | RTS
r(1, UART + 4);
r(1, UART + 6);
w(1, UART + 0, 0x41);
r(1, UART + 5);
r(1, UART + 0);
r(1, UART + 5);
w(1, UART + 0, 0x01);
w(1, UART + 0, 0x02);
r(1, UART + 5);
r(1, UART + 5);
r(1, UART + 0);
// PLIC registers.
w(4, PLIC + 4 * 10, 0xffff_ffff);
r(4, PLIC + 4 * 10);
w(4, PLIC + 4 * 11, 3);
w(4, EN1, 0xffff_ffff);
r(4, EN1, "PLIC spec: source 0 does not exist, its enable bit is hardwired 0; QEMU 7.2 stores it");
w(4, EN1 + 12, 0xffff_ffff);
r(4, EN1 + 12, "riscv,ndev = 96 (QEMU's own tree) makes source 96 real here; QEMU 7.2 implements 0..95");
w(4, TH1, 0x12345);
r(4, TH1);
w(4, TH1, 0);
// FIFOs, trigger level 4, receive-data interrupt through the PLIC.
w(1, UART + 2, 0x47); // FIFO on, clear, trigger 4
r(1, UART + 2);
w(1, UART + 1, 0x01); // RDI
for (const b of [1, 2, 3, 4, 5]) w(1, UART + 0, b);
r(1, UART + 2);
r(4, PEND);
mip();
r(4, CLAIM1);
mip();
for (let i = 0; i < 5; i++) r(1, UART + 0);
r(1, UART + 2);
w(4, CLAIM1, 10);
const LATCH =
  "QEMU 7.2 latches every raise, even while the source is claimed; the gateway here forwards a level only when the source is not in flight (PLIC spec)";
r(4, PEND, LATCH);
mip(LATCH);
drain();
r(4, PEND);
for (let i = 0; i < 20; i++) w(1, UART + 0, 0x30 + i); // 16 fit, then overrun
r(1, UART + 5);
r(1, UART + 5);
for (let i = 0; i < 17; i++) r(1, UART + 0);
w(1, UART + 1, 0);
w(1, UART + 2, 0);
r(1, UART + 2);
w(1, UART + 4, 0);
drain();
// THRE interrupt: raised by enabling ETBEI, cleared by IIR read, line follows.
w(1, UART + 1, 0x02);
r(4, PEND);
mip();
r(4, CLAIM1);
r(4, PEND);
mip();
r(1, UART + 2);
r(1, UART + 2);
w(4, CLAIM1, 10);
r(4, PEND);
w(1, UART + 1, 0);
w(1, UART + 1, 0x02);
r(4, PEND);
w(1, UART + 1, 0);
r(4, PEND, "QEMU 7.2 keeps a request after its line drops; a level source withdraws it here");
drain();
// RTC: registers, an alarm in the past fires at once.
r(4, RTC + 0x10);
r(4, RTC + 0x18);
w(4, RTC + 0x0c, 0xffff_ffff);
w(4, RTC + 0x08, 0);
r(4, RTC + 0x18);
w(4, RTC + 0x14, 1);
r(4, RTC + 0x18);
w(4, RTC + 0x0c, 0);
w(4, RTC + 0x08, 1);
r(4, RTC + 0x18);
w(4, RTC + 0x10, 1);
r(4, RTC + 0x10);
r(4, PEND);
// Two sources: priority order, completion while the line is still high.
w(1, UART + 1, 0x02);
r(4, PEND);
r(4, CLAIM1);
r(4, CLAIM1);
r(4, CLAIM1);
w(4, CLAIM1, 10);
const REFORWARD =
  "completing a source whose line is still high forwards it again (PLIC spec gateway); QEMU 7.2 waits for a new raise";
r(4, PEND, REFORWARD);
w(4, CLAIM1, 11);
r(4, PEND, REFORWARD);
w(1, UART + 1, 0);
w(4, RTC + 0x1c, 1);
drain();
r(4, PEND);
// Threshold, and equal priorities (lowest id first), on fresh raises.
w(4, PLIC + 4 * 11, 7);
w(1, UART + 1, 0x02);
w(4, RTC + 0x0c, 0);
w(4, RTC + 0x08, 1);
r(4, PEND);
w(4, TH1, 7);
mip();
w(4, TH1, 6);
mip();
r(4, CLAIM1);
r(4, CLAIM1);
w(1, UART + 1, 0);
w(4, RTC + 0x1c, 1);
w(4, CLAIM1, 10);
w(4, CLAIM1, 11);
r(4, PEND);
mip();
w(4, RTC + 0x10, 0);
// The M-mode context.
w(4, TH1, 0);
w(1, UART + 1, 0x02);
w(4, EN0, 1 << 10);
mip("an enable write re-evaluates the context's line at once; QEMU 7.2 waits for the next PLIC event");
r(4, PLIC + 4 * 10); // a priority read is not such an event either
w(4, PLIC + 4 * 11, 7); // a priority write is
mip();
r(4, CLAIM0);
mip();
w(1, UART + 1, 0);
w(4, CLAIM0, 10);
w(4, EN0, 0);
mip();
r(4, PEND);
// CLINT: msip and mtimecmp drive MSIP/MTIP.
r(8, CLINT + 0x4000);
w(4, CLINT, 1);
r(4, CLINT);
mip();
w(4, CLINT, 0);
mip();
w(8, CLINT + 0x4000, -1);
mip();
r(4, CLINT + 0x4004);
w(4, CLINT + 0x4000, 0);
w(4, CLINT + 0x4004, 0);
mip();
r(8, CLINT + 0x4000);
r(4, CLINT + 0x8000);
w(4, EN1, 0);

const SOURCE = `${PRELUDE}
test_main:
    la      s1, record
${lines.map((l) => `    ${l}`).join("\n")}
    la      s2, record
1:  beq     s2, s1, 2f
    ld      a0, 0(s2)
    call    puthex
    addi    s2, s2, 8
    j       1b
2:  j       pass
    .bss
    .align 3
record: .space ${8 * 512}
`;

/** The same program on cpu-core's hart with this package's devices. */
function runBoard(elf: Uint8Array): { code: number | undefined; output: string } {
  const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 16 << 20 });
  const img = loadElf(bus, elf);
  const hart = new Hart(bus);
  hart.pc = Number(img.entry);
  const line = (mask: number) => ({ set: (level: boolean) => hart.setInterrupt(mask, level) });
  const plic = new Plic([line(MIP_MEIP), line(MIP_SEIP)]);
  const clint = new Clint([{ msip: line(MIP_MSIP), mtip: line(MIP_MTIP) }], () => Math.floor(hart.instret / 10));
  clint.reset(); // QEMU's reset state on the lines: MTIP high (mtimecmp 0)
  let output = "";
  const uart = new Uart16550({
    irq: plic.irq(VIRT.uart.irq),
    onTransmit: (b) => {
      output += String.fromCharCode(...b);
    },
  });
  const rtc = new GoldfishRtc({ irq: plic.irq(VIRT.rtc.irq) });
  let code: number | undefined;
  const test = new SifiveTest((e) => {
    code = e.kind === "fail" ? e.code : 0;
  });
  const map = new MmioMap()
    .add("plic", PLIC, VIRT.plic.size, plic)
    .add("clint", CLINT, VIRT.clint.size, clint)
    .add("uart", UART, VIRT.uart.size, uart)
    .add("rtc", RTC, VIRT.rtc.size, rtc)
    .add("test", VIRT.test.base, VIRT.test.size, test);
  while (code === undefined && hart.instret < 5_000_000) {
    const exit = hart.run(100_000);
    if (exit.kind !== "mmio") continue;
    if (exit.op === "read") {
      const v = map.read(exit.address, exit.size);
      if (v === undefined) hart.failMmio();
      else hart.completeMmio(BigInt(v));
    } else if (map.write(exit.address, exit.size, exit.value)) hart.completeMmio();
    else hart.failMmio();
  }
  return { code, output };
}

describe("devices against QEMU virt", () => {
  it("reads back the same registers and interrupt lines as QEMU 7.2", () => {
    if (!requireTool(GCC) || !requireTool(QEMU)) return;
    const elf = buildElf(SOURCE);
    const q = runQemu(elf);
    expect(q.code).toBe(0);
    const ours = runBoard(elf);
    expect(ours.code).toBe(0);
    const a = ours.output.trim().split("\n");
    const b = q.output.trim().split("\n");
    expect(a.length).toBe(labels.length);
    const diffs = labels.flatMap((l, i) =>
      a[i] === b[i] || deviations.has(i) ? [] : [`#${i} ${l}: ringzero ${a[i]} qemu ${b[i]}`],
    );
    expect(diffs).toEqual([]);
    // The deliberate deviations are real (each probe does differ), so the list stays honest.
    const same = [...deviations.keys()].filter((i) => a[i] === b[i]).map((i) => `#${i} ${labels[i]}`);
    expect(same).toEqual([]);
    expect(labels.length - deviations.size).toBeGreaterThan(90);
  });
});
