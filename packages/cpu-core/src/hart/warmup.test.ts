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
import {
  WARM_UP_BASE,
  WARM_UP_DATA,
  WARM_UP_RAM,
  WARM_UP_SYSTEM,
  warmUpData,
  warmUpProgram,
  warmUpSystem,
} from "./warmup.js";

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

  describe("system program", () => {
    function system(engine: (typeof ENGINES)[number], translateAfter?: number): Hart {
      const bus = new Bus({ ramBase: WARM_UP_BASE, ramSize: WARM_UP_RAM });
      for (const seg of warmUpSystem()) bus.write(WARM_UP_BASE + seg.off, seg.bytes);
      const h = new Hart(bus, { engine, translateAfter, sbiEcallExit: true });
      h.pc = WARM_UP_BASE + WARM_UP_SYSTEM;
      return h;
    }

    it("takes every trap and exit it claims, one instruction at a time", () => {
      const h = system("interpreter");
      const causes = new Set<string>();
      const exits = new Set<string>();
      const privs = new Set<number>();
      let scause = 0n;
      for (let i = 0; i < 4000; i++) {
        const ex = h.run(1);
        exits.add(ex.kind);
        if (ex.kind === "mmio") h.completeMmio(0);
        const c = h.debugReadCsr(0x142) ?? 0n;
        if (c !== scause) causes.add(c >> 63n ? `irq ${c & 0xffn}` : `exc ${c}`);
        scause = c;
        privs.add(h.priv);
      }
      expect([...exits].sort()).toEqual(["budget", "ecall", "mmio", "wfi"]);
      // page faults (instruction, load, store/AMO), misaligned AMO, store access (an AMO to a
      // device), illegal, U ecall; the software and (Sstc) timer interrupts
      expect([...causes].sort()).toEqual(
        ["exc 12", "exc 13", "exc 15", "exc 6", "exc 7", "exc 2", "exc 8", "irq 1", "irq 5"].sort(),
      );
      expect([...privs].sort()).toEqual([0, 1, 3]);
      expect(h.debugReadCsr(0x342)).toBe(0n); // nothing reached M after the set-up
      expect(h.translatorStats()).toBeUndefined();
    });

    it("runs the same under both engines, compiling its code and patching it", () => {
      const harts = [system("interpreter"), system("translator", 1), system("translator", 3)];
      const kinds = harts.map(() => new Map<string, number>());
      for (let i = 0; i < 200; i++) {
        harts.forEach((h, k) => {
          const ex = h.run(499);
          kinds[k].set(ex.kind, (kinds[k].get(ex.kind) ?? 0) + 1);
          if (ex.kind === "mmio") h.completeMmio(0);
        });
        const [a, ...rest] = harts;
        for (const h of rest) expect(archState(h)).toEqual(archState(a));
      }
      for (const k of kinds.slice(1)) expect(k).toEqual(kinds[0]);
      const st = harts[1].translatorStats();
      expect(st?.blockInstructions).toBeGreaterThan(10_000);
      expect(st?.pageInvalidations).toBeGreaterThan(10); // the patched S page
      expect(st?.fences).toBeGreaterThan(10);
    });
  });
});
