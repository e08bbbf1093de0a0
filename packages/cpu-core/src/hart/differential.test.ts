// Differential tests against QEMU (the cross-check; the ISA manual is the
// authority): random RV64IMC instruction streams, assembled by Debian's
// riscv64-unknown-elf-gcc, run on ringzero and on qemu-system-riscv64 -M virt;
// both dump every register through the UART and the dumps must be identical.
import { describe, expect, it } from "vitest";
import { runElf } from "../testing/machine.js";
import { PRELUDE } from "../testing/prelude.js";
import { runQemu } from "../testing/qemu.js";
import { RR_OPS, randomControlFlowProgram } from "../testing/random-programs.js";
import { rng } from "../testing/rng.js";
import { buildElf, requireTool } from "../testing/toolchain.js";
import { ENGINES } from "./translator.js";

// ringzero runs every program under both engines (the translator compiling on first sight)
const engines = ENGINES.map((engine) => ({ engine, translateAfter: 1 }));

const I_OPS = ["addi", "slti", "sltiu", "xori", "ori", "andi", "addiw"];
const SH_OPS = ["slli", "srli", "srai"];
const SHW_OPS = ["slliw", "srliw", "sraiw"];

function interesting(r: () => number): string {
  const pool = [
    "0",
    "1",
    "-1",
    "0x7fffffffffffffff",
    "0x8000000000000000",
    "0x80000000",
    "0x7fffffff",
    "0xffffffff",
    "-0x80000000",
    "0x100000000",
  ];
  if (r() < 0.3) return pool[Math.floor(r() * pool.length)];
  const hi = Math.floor(r() * 2 ** 32);
  const lo = Math.floor(r() * 2 ** 32);
  return `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}`;
}

function randomAluProgram(seed: number, count: number): string {
  const r = rng(seed);
  const reg = () => `x${1 + Math.floor(r() * 31)}`;
  const lines: string[] = [];
  for (let i = 1; i < 32; i++) lines.push(`    li x${i}, ${interesting(r)}`);
  for (let i = 0; i < count; i++) {
    const k = r();
    if (k < 0.45) lines.push(`    ${RR_OPS[Math.floor(r() * RR_OPS.length)]} ${reg()}, ${reg()}, ${reg()}`);
    else if (k < 0.7)
      lines.push(`    ${I_OPS[Math.floor(r() * I_OPS.length)]} ${reg()}, ${reg()}, ${Math.floor(r() * 4096) - 2048}`);
    else if (k < 0.82) lines.push(`    ${SH_OPS[Math.floor(r() * 3)]} ${reg()}, ${reg()}, ${Math.floor(r() * 64)}`);
    else if (k < 0.92) lines.push(`    ${SHW_OPS[Math.floor(r() * 3)]} ${reg()}, ${reg()}, ${Math.floor(r() * 32)}`);
    else lines.push(`    lui ${reg()}, ${Math.floor(r() * 0x100000)}`);
  }
  return `${PRELUDE}
test_main:
${lines.join("\n")}
    csrw mscratch, x31
    la x31, dump
${Array.from({ length: 30 }, (_, i) => `    sd x${i + 1}, ${8 * (i + 1)}(x31)`).join("\n")}
    csrr t0, mscratch
    sd t0, 248(x31)
    la s1, dump
    li s2, 1
1:  slli t0, s2, 3
    add t0, t0, s1
    ld a0, 0(t0)
    call puthex
    addi s2, s2, 1
    li t0, 32
    blt s2, t0, 1b
    j pass
    .data
    .align 3
dump: .space 256
`;
}

describe("differential vs QEMU: random RV64IMC streams", () => {
  const ok = requireTool("riscv64-unknown-elf-gcc") && requireTool("qemu-system-riscv64");
  for (const seed of Array.from({ length: 16 }, (_, i) => i + 1)) {
    it.skipIf(!ok)(`seed ${seed}`, () => {
      const elf = buildElf(randomAluProgram(seed, 600));
      const ref = runQemu(elf);
      expect(ref.code).toBe(0);
      for (const hart of engines) {
        const ours = runElf(elf, { maxInstructions: 1_000_000, hart });
        expect(ours.code, hart.engine).toBe(0);
        expect(ours.output, hart.engine).toBe(ref.output);
        expect(ours.output.split("\n").length).toBe(32);
      }
    });
  }
});

// Control flow and memory at computed addresses (testing/random-programs.ts): jalr, c.jr and
// c.jalr through odd registers built with auipc/addi, lui and jump tables; branches on
// address-like values; loads, stores and AMOs at such addresses; far jumps, loads and stores
// next to the 2^31/2^32/2^64 word boundaries, which fault with the full address in mepc/mtval.
describe("differential vs QEMU: random control flow and memory at computed addresses", () => {
  const ok = requireTool("riscv64-unknown-elf-gcc") && requireTool("qemu-system-riscv64");
  const seeds = Array.from({ length: 24 }, (_, i) => 1000 + i);

  it("the generator covers odd targets, word-carrying targets, far jumps and far accesses", () => {
    const all = seeds.map((s) => randomControlFlowProgram(s).stats);
    for (const s of all) {
      expect(s.oddTargets).toBeGreaterThan(0);
      expect(s.indirectJumps).toBeGreaterThan(0);
      expect(s.memoryOps).toBeGreaterThan(0);
    }
    expect(all.reduce((n, s) => n + s.carryTargets, 0)).toBeGreaterThan(seeds.length);
    expect(all.reduce((n, s) => n + s.farMemoryOps, 0)).toBeGreaterThan(seeds.length / 2);
    expect(all.reduce((n, s) => n + s.branches, 0)).toBeGreaterThan(seeds.length * 4);
  });

  // M-mode at RAM's own addresses (0x8000_xxxx), and S-mode under Sv39 at its kernel-style alias
  // 0xffff_ffff_8000_xxxx, where every pc, link and auipc result has a non-zero high word
  const runs = [
    ...seeds.map((seed) => ({ seed, highAlias: false })),
    ...seeds.slice(0, 12).map((seed) => ({ seed: seed + 1000, highAlias: true })),
  ];
  for (const { seed, highAlias } of runs) {
    it.skipIf(!ok)(`seed ${seed}${highAlias ? " (S-mode, Sv39, at 0xffff_ffff_8000_0000)" : ""}`, () => {
      const elf = buildElf(randomControlFlowProgram(seed, { highAlias }).source);
      const ref = runQemu(elf);
      expect(ref.code).toBe(0);
      for (const hart of engines) {
        const ours = runElf(elf, { maxInstructions: 1_000_000, hart });
        expect(ours.output, hart.engine).toBe(ref.output);
        expect(ours.code, hart.engine).toBe(0);
        // 31 registers, at least one trap-log entry (the far accesses) and the checksum
        expect(ours.output.split("\n").length).toBeGreaterThan(32);
      }
    });
  }
});
