import { Bus, Csr, Hart, MIP_SEIP, MIP_SSIP, MIP_STIP } from "@ringzero/cpu-core";
import { describe, expect, it } from "vitest";
import { enterKernel } from "./enter-kernel.js";

describe("enterKernel (the firmware's hand-over to an S-mode kernel)", () => {
  it("opens PMP, delegates, shows the counters, turns Sstc on and sets pc, a0, a1 and S-mode", () => {
    const hart = new Hart(new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 20 }));
    enterKernel(hart, { entry: 0x8020_0000, dtb: 0x1_8fe0_0000, hartId: 3 });
    expect(hart.pc).toBe(0x8020_0000);
    expect(hart.priv).toBe(1);
    const csr = (n: number) => hart.debugReadCsr(n);
    expect(csr(Csr.pmpcfg0)! & 0xffn).toBe(0x1fn);
    expect(csr(Csr.medeleg)).toBe(0xb1ffn);
    expect(csr(Csr.mideleg)).toBe(BigInt(MIP_SSIP | MIP_STIP | MIP_SEIP));
    expect(csr(Csr.mcounteren)! & 7n).toBe(7n);
    expect(csr(Csr.scounteren)! & 7n).toBe(7n);
    expect(csr(Csr.menvcfg)! >> 63n).toBe(1n);
    const reg = (r: number) => (BigInt(hart.x[r * 2 + 1]) << 32n) | BigInt(hart.x[r * 2] >>> 0);
    expect(reg(10)).toBe(3n);
    expect(reg(11)).toBe(0x1_8fe0_0000n);
  });
});
