// The warm-up program (warmup.ts): it must execute what it claims to (every non-privileged
// instruction form of the table), run forever without leaving run() and behave the same under
// both engines, or it warms nothing and could hide a divergence.
import { describe, expect, it } from "vitest";
import { decode, insnLength } from "../isa/decode.js";
import { INSTRUCTIONS } from "../isa/table.js";
import { archState } from "../testing/lockstep.js";
import { Bus } from "./bus.js";
import { Hart } from "./hart.js";
import type { ENGINES } from "./translator.js";
import { WARM_UP_BASE, WARM_UP_DATA, WARM_UP_RAM, warmUpData, warmUpProgram } from "./warmup.js";

function machine(engine: (typeof ENGINES)[number], translateAfter?: number): Hart {
  const bus = new Bus({ ramBase: WARM_UP_BASE, ramSize: WARM_UP_RAM });
  bus.write(WARM_UP_BASE, warmUpProgram());
  bus.write(WARM_UP_BASE + WARM_UP_DATA, warmUpData());
  const h = new Hart(bus, { engine, translateAfter });
  h.pc = WARM_UP_BASE;
  return h;
}

describe("warm-up program", () => {
  it("holds every instruction form but the privileged ones and register jumps", () => {
    const code = warmUpProgram();
    const seen = new Set<string>();
    for (let off = 0; off < code.length; ) {
      const lo = code[off] | (code[off + 1] << 8);
      const len = insnLength(lo);
      const insn = len === 2 ? lo : (lo | (code[off + 2] << 16) | (code[off + 3] << 24)) >>> 0;
      const spec = decode(insn);
      if (spec !== undefined) seen.add(spec.mnemonic);
      off += len;
    }
    const skipped = ["ecall", "ebreak", "c.ebreak", "sret", "wfi", "sfence.vma", "c.jr", "c.jalr", "c.addi16sp"];
    const missing = INSTRUCTIONS.map((i) => i.mnemonic).filter((m) => !seen.has(m) && !skipped.includes(m));
    expect(missing).toEqual([]);
  });

  it("loops without leaving run(): traps only at its illegal words, the same under both engines", () => {
    // the translator compiling everything it reaches, and only counting heat
    const harts = [machine("interpreter"), machine("translator", 1), machine("translator", 60000)];
    for (let i = 0; i < 10; i++) {
      for (const h of harts) expect(h.run(3001)).toEqual({ kind: "budget" });
      const [a, ...rest] = harts;
      for (const h of rest) expect(archState(h)).toEqual(archState(a));
    }
    const [a, b] = harts;
    // two illegal words per pass of about 700 instructions: the rest retire
    expect(a.instret).toBeGreaterThan(29_000);
    expect(a.instret).toBe(b.instret);
    expect(b.translatorStats()?.blockInstructions).toBeGreaterThan(10_000);
  });
});
