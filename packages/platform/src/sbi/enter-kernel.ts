// The hart state an S-mode kernel expects from its firmware, set the way
// OpenSBI sets it before jumping to the next stage on a hart with Sstc:
// PMP open, traps and interrupts delegated, counters visible, the Sstc timer
// on, a0 = hart id, a1 = the device tree (Documentation/riscv/boot.rst).
// A VMM whose SBI is in the host (SbiServer) calls this instead of running
// firmware.
import { Csr, type Hart, MIP_SEIP, MIP_SSIP, MIP_STIP } from "@ringzero/cpu-core";

export interface KernelEntry {
  /** Physical address the kernel starts at. */
  readonly entry: number;
  /** Physical address of the flattened device tree (a1); 0 when none. */
  readonly dtb?: number;
  /** The hart's id (a0); 0 by default. */
  readonly hartId?: number;
}

/** Puts `hart` in S-mode at `entry` with the CSRs and registers a kernel expects from its SBI firmware. */
export function enterKernel(hart: Hart, { entry, dtb = 0, hartId = 0 }: KernelEntry): void {
  hart.pc = entry;
  hart.writeCsr(Csr.pmpaddr0, (1n << 54n) - 1n); // pmpaddr0: everything (priv 1.12 §3.7.1)
  hart.writeCsr(Csr.pmpcfg0, 0x1fn); // pmpcfg0: NAPOT, RWX
  hart.writeCsr(Csr.medeleg, 0xb1ffn); // every exception to S but ecall from S/M
  hart.writeCsr(Csr.mideleg, BigInt(MIP_SSIP | MIP_STIP | MIP_SEIP)); // S-mode interrupts to S
  hart.writeCsr(Csr.mcounteren, 7n); // cycle, time, instret readable in S
  // scounteren: Linux 6.1 enables user counters only from its SBI PMU driver
  // (riscv_pmu_sbi.c); an SBI without the PMU extension leaves them on as that
  // driver would — the vDSO's clock_gettime reads `time` in U-mode.
  hart.writeCsr(Csr.scounteren, 7n);
  hart.writeCsr(Csr.menvcfg, 1n << 63n); // menvcfg.STCE: the Sstc timer (stimecmp)
  setRegister(hart, 10, hartId); // a0
  setRegister(hart, 11, dtb); // a1
  hart.setPrivilege(1);
}

/** x[reg] = value: registers are (lo, hi) Int32 pairs (cpu-core's register layout). */
function setRegister(hart: Hart, reg: number, value: number): void {
  hart.x[reg * 2] = value | 0;
  hart.x[reg * 2 + 1] = Math.floor(value / 2 ** 32);
}
