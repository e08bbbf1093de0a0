// The run-until-exit API (ARCHITECTURE.md §3): every exit kind, MMIO
// completion semantics, interrupt lines set from outside, Sstc, budgets and
// bad input to the API itself. Programs are written as raw encodings so these
// tests need no toolchain.
import { beforeAll, describe, expect, it } from "vitest";
import { CpuError, CpuErrorCode } from "../errors.js";
import { readX, writeX } from "../regs.js";
import { Bus } from "./bus.js";
import { Cause, MIP_MEIP, MIP_MTIP, PRV_S } from "./constants.js";
import { Hart, type HartOptions } from "./hart.js";
import { ENGINES, type Engine } from "./translator.js";

const BASE = 0x80000000;

// Minimal encoders for the handful of instructions the tests need.
const I = (imm: number, rs1: number, f3: number, rd: number, op: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const S = (imm: number, rs2: number, rs1: number, f3: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23) >>> 0;
const lui = (rd: number, imm20: number) => ((imm20 << 12) | (rd << 7) | 0x37) >>> 0;
const addi = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x13);
const load = (f3: number, rd: number, rs1: number, imm: number) => I(imm, rs1, f3, rd, 0x03);
const csrrw = (rd: number, csr: number, rs1: number) => I(csr, rs1, 1, rd, 0x73);
const csrrs = (rd: number, csr: number, rs1: number) => I(csr, rs1, 2, rd, 0x73);
const ECALL = 0x00000073;
const EBREAK = 0x00100073;
const WFI = 0x10500073;
const JSELF = 0x0000006f; // j .

// every exit and interrupt test runs under both engines (the translator compiling on first sight)
let engine: Engine = "interpreter";

function machine(words: number[], options: HartOptions = {}) {
  const bus = new Bus({ ramBase: BASE, ramSize: 1 << 20 });
  bus.i32.fill(JSELF, 0x100 / 4, 0x1000 / 4); // trap handlers at BASE+0x100.. spin
  words.forEach((w, i) => {
    bus.i32[i] = w | 0;
  });
  const hart = new Hart(bus, { engine, translateAfter: 1, ...options });
  // what firmware does before running S-mode code: PMP entry 0 = everything, RWX
  hart.writeCsr(0x3b0, -1n);
  hart.writeCsr(0x3a0, 0x1fn);
  hart.pc = BASE;
  return { bus, hart };
}

for (const e of ENGINES) {
  describe(`${e}`, () => {
    beforeAll(() => {
      engine = e;
    });

    describe("exits", () => {
      it("an MMIO read exits before the load retires; completeMmio sign-extends into rd", () => {
        // lui t0, 0x10000 ; lb t1, 5(t0) ; lhu t2, 6(t0) ; ld t3, 8(t0) ; j .
        const { hart } = machine([lui(5, 0x10000), load(0, 6, 5, 5), load(5, 7, 5, 6), load(3, 28, 5, 8), JSELF]);
        let e = hart.run(100);
        expect(e).toEqual({ kind: "mmio", op: "read", address: 0x10000005, size: 1 });
        expect(hart.instret).toBe(1);
        hart.completeMmio(0x80n);
        expect(readX(hart.x, 6)).toBe(0xffffffffffffff80n);
        expect(hart.instret).toBe(2);
        e = hart.run(100);
        expect(e).toEqual({ kind: "mmio", op: "read", address: 0x10000006, size: 2 });
        hart.completeMmio(0xfffen);
        expect(readX(hart.x, 7)).toBe(0xfffen);
        e = hart.run(100);
        expect(e).toEqual({ kind: "mmio", op: "read", address: 0x10000008, size: 8 });
        hart.completeMmio(0x8123456789abcdefn);
        expect(readX(hart.x, 28)).toBe(0x8123456789abcdefn);
      });

      it("completeMmio takes what platform's MmioMap.read returns: a number, a bigint or undefined (a hole)", () => {
        // lui t0, 0x10000 ; lb t1, 5(t0) ; lhu t2, 6(t0) ; ld t3, 8(t0) ; j .
        const { hart } = machine([lui(5, 0x10000), load(0, 6, 5, 5), load(5, 7, 5, 6), load(3, 28, 5, 8), JSELF]);
        hart.run(100);
        hart.completeMmio(0x80); // a number: sign-extended as the bigint would be
        expect(readX(hart.x, 6)).toBe(0xffffffffffffff80n);
        hart.run(100);
        hart.completeMmio(-2); // a negative number: its low bits
        expect(readX(hart.x, 7)).toBe(0xfffen);
        hart.run(100);
        hart.completeMmio(undefined);
        expect(readX(hart.x, 28)).toBe(0n);
      });

      it("an MMIO write carries the value; failMmio raises an access fault at the instruction", () => {
        const { hart } = machine([lui(5, 0x10000), addi(6, 0, -2), S(0, 6, 5, 2), S(4, 6, 5, 0), JSELF]);
        hart.mtvec = BASE + 0x100;
        let e = hart.run(100);
        expect(e).toEqual({ kind: "mmio", op: "write", address: 0x10000000, size: 4, value: 0xfffffffen });
        hart.completeMmio();
        e = hart.run(100);
        expect(e).toEqual({ kind: "mmio", op: "write", address: 0x10000004, size: 1, value: 0xfen });
        hart.failMmio();
        expect(hart.mcause).toBe(BigInt(Cause.STORE_ACCESS));
        expect(hart.mepc).toBe(BASE + 12);
        expect(hart.mtval).toBe(0x10000004n);
        expect(hart.pc).toBe(BASE + 0x100);
      });

      it("run() with an MMIO exit still pending is a typed error, as is completing nothing", () => {
        const { hart } = machine([lui(5, 0x10000), load(2, 6, 5, 0)]);
        hart.run(10);
        expect(() => hart.run(10)).toThrowError(CpuError);
        hart.completeMmio(1n);
        try {
          hart.completeMmio(1n);
          expect.unreachable();
        } catch (e) {
          expect((e as CpuError).code).toBe(CpuErrorCode.MMIO_PENDING);
        }
      });

      it("S-mode ecall exits for the SBI when configured; registers carry the call", () => {
        const { hart } = machine([addi(17, 0, 0x10), ECALL, JSELF], { sbiEcallExit: true });
        hart.setPrivilege(PRV_S);
        expect(hart.run(100)).toEqual({ kind: "ecall" });
        expect(readX(hart.x, 17)).toBe(0x10n);
        expect(hart.pc).toBe(BASE + 8); // past the ecall
        expect(hart.instret).toBe(2);
      });

      it("EBREAK exits as a breakpoint when configured, else traps", () => {
        const a = machine([EBREAK], { ebreakExit: true });
        expect(a.hart.run(10)).toEqual({ kind: "breakpoint", pc: BigInt(BASE) });
        const b = machine([EBREAK, JSELF]);
        b.hart.mtvec = BASE + 4;
        b.hart.run(10);
        expect(b.hart.mcause).toBe(BigInt(Cause.BREAKPOINT));
      });

      it("the magic HINT slti x0, x0, imm exits with its argument only when enabled", () => {
        const magic = I(42, 0, 2, 0, 0x13);
        expect(machine([magic], { magic: true }).hart.run(10)).toEqual({ kind: "magic", op: 42 });
        const off = machine([magic, JSELF]);
        expect(off.hart.run(10)).toEqual({ kind: "budget" });
        expect(off.hart.pc).toBe(BASE + 4); // a plain no-op
      });

      it("budget exits count exactly, also through a storm of exceptions", () => {
        const { hart } = machine([JSELF]);
        expect(hart.run(1000)).toEqual({ kind: "budget" });
        expect(hart.instret).toBe(1000);
        const storm = machine([0]); // illegal instruction, mtvec = 0x80000000: traps forever
        storm.hart.mtvec = BASE;
        expect(storm.hart.run(500)).toEqual({ kind: "budget" });
        expect(storm.hart.instret).toBe(0);
      });
    });

    describe("interrupts from outside and WFI", () => {
      it("WFI exits when nothing is pending; an external line then traps (MEIP)", () => {
        // csrw mie, t0 (t0 = MEIE) ; csrs mstatus, MIE ; wfi ; j .
        const { hart } = machine([
          addi(5, 0, 0),
          lui(5, 1),
          addi(5, 5, -2048),
          csrrw(0, 0x304, 5),
          addi(6, 0, 8),
          csrrs(0, 0x300, 6),
          WFI,
          JSELF,
        ]);
        hart.mtvec = BASE + 0x200;
        expect(hart.run(100)).toEqual({ kind: "wfi" });
        expect(hart.interruptPending()).toBe(false);
        hart.setInterrupt(MIP_MEIP, true);
        expect(hart.interruptPending()).toBe(true);
        hart.run(1);
        expect(hart.mcause).toBe((1n << 63n) | 11n);
        expect(hart.mepc).toBe(BASE + 28); // the instruction after the WFI
      });

      it("MTIP is taken only when enabled; priority MEI over MTI", () => {
        const { hart } = machine([addi(5, 0, 0x80), csrrw(0, 0x304, 5), addi(6, 0, 8), csrrs(0, 0x300, 6), JSELF]);
        hart.mtvec = BASE + 0x200;
        hart.setInterrupt(MIP_MTIP, true);
        hart.setInterrupt(MIP_MEIP, true); // pending but not enabled in mie
        hart.run(10);
        expect(hart.mcause).toBe((1n << 63n) | 7n);
      });

      it("Sstc: stimecmp raises STIP from the time source; nextTimerDeadline tells a sleeping hypervisor", () => {
        let now = 0;
        // S-mode code: csrw stimecmp, t0 ; wfi ; j .   (M-mode set-up done through the API)
        const { hart } = machine([csrrw(0, 0x14d, 5), WFI, JSELF], { timeSource: () => now });
        hart.pc = BASE;
        writeX(hart.x, 5, 1000n);
        // M-mode state a firmware (or the hypervisor) would set: STCE, counters, delegation of STI
        hart.writeCsr(0x30a, 1n << 63n); // menvcfg.STCE
        hart.writeCsr(0x306, 7n); // mcounteren
        hart.writeCsr(0x303, 1n << 5n); // mideleg: STI
        hart.writeCsr(0x304, 1n << 5n); // mie: STIE
        hart.writeCsr(0x105, BigInt(BASE + 0x300)); // stvec
        hart.writeCsr(0x100, 1n << 1n); // sstatus.SIE
        hart.setPrivilege(PRV_S);
        expect(hart.run(100)).toEqual({ kind: "wfi" });
        expect(hart.nextTimerDeadline()).toBe(1000);
        now = 1000;
        hart.run(1);
        expect(hart.scause).toBe((1n << 63n) | 5n);
        expect(hart.priv).toBe(PRV_S);
      });

      it("Sstc: assigning hart.stimecmp is the same as writing the CSR (deadline and STIP follow)", () => {
        let now = 0;
        const { hart } = machine([WFI, JSELF], { timeSource: () => now });
        hart.writeCsr(0x30a, 1n << 63n); // menvcfg.STCE
        hart.stimecmp = 2n ** 40n + 7n;
        expect(hart.nextTimerDeadline()).toBe(2 ** 40 + 7);
        expect(hart.debugReadCsr(0x14d)).toBe(2n ** 40n + 7n);
        now = 2 ** 40 + 7;
        expect((hart.debugReadCsr(0x344) ?? 0n) & (1n << 5n)).toBe(1n << 5n); // mip.STIP
        hart.stimecmp = -1n; // wraps to the maximum: never
        expect(hart.stimecmp).toBe(2n ** 64n - 1n);
        expect(hart.nextTimerDeadline()).toBe(Number.POSITIVE_INFINITY);
      });
    });
  });
}

describe("configuration errors", () => {
  it.each([
    [{ ramBase: BASE, ramSize: 0 }],
    [{ ramBase: BASE, ramSize: 1000 }],
    [{ ramBase: BASE + 1, ramSize: 4096 }],
    [{ ramBase: BASE, ramSize: 2 ** 40 }],
  ])("rejects %j with CONFIG_INVALID", (cfg) => {
    try {
      new Bus(cfg);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CpuError);
      expect((e as CpuError).code).toBe(CpuErrorCode.CONFIG_INVALID);
    }
  });
});
