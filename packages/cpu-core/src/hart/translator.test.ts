// The binary translator against the interpreter (and QEMU where the ISA fixes
// the answer): lock-step runs of random programs, self-modifying code, fence.i,
// interrupts at block boundaries, traps inside blocks, and the cache's counters.
import { describe, expect, it } from "vitest";
import { archState, runLockstep } from "../testing/lockstep.js";
import { runElf } from "../testing/machine.js";
import { PRELUDE } from "../testing/prelude.js";
import { runQemu } from "../testing/qemu.js";
import { randomControlFlowProgram } from "../testing/random-programs.js";
import { buildElf, haveTool, requireTool } from "../testing/toolchain.js";
import { Bus } from "./bus.js";
import { MIP_MSIP } from "./constants.js";
import { Hart } from "./hart.js";
import { ENGINES, generate } from "./translator.js";
import { wasmTailCalls } from "./wasm-api.js";

const gccOk = requireTool("riscv64-unknown-elf-gcc");
const qemuOk = gccOk && (haveTool("qemu-system-riscv64") || requireTool("qemu-system-riscv64"));

const program = (body: string, extra = "") => buildElf(`${PRELUDE}\ntest_main:\n${body}\n    j pass\n${extra}`);

/**
 * A program that runs `body` on every ordered pair (t0, t1) of the first 12 `corners` (.dword
 * lists), after `setup`; s5 walks a `results` buffer of `bytesPerPair` a pair, s0 is printed.
 */
function cornerPairs(body: string, setup: string, corners: string, bytesPerPair: number): Uint8Array {
  return program(
    String.raw`
    li      s0, 0
    la      s5, results
${setup}    li      s4, 0
1:  slli    t4, s4, 3
    la      t5, corners
    add     t5, t5, t4
    ld      t0, 0(t5)
    li      s6, 0
2:  slli    t4, s6, 3
    la      t5, corners
    add     t5, t5, t4
    ld      t1, 0(t5)
${body}
    addi    s6, s6, 1
    li      t4, 12
    blt     s6, t4, 2b
    addi    s4, s4, 1
    blt     s4, t4, 1b
    mv      a0, s0
    call    puthex
`,
    String.raw`
    .data
    .align 3
corners:
    .dword ${corners}
    .bss
    .align 3
results:
    .space ${bytesPerPair * 12 * 12}
`,
  );
}

/** Both engines (translator compiling on first sight) must agree on code, output and instret. */
function bothEngines(elf: Uint8Array, maxInstructions = 5_000_000) {
  const i = runElf(elf, { maxInstructions, hart: { engine: "interpreter" } });
  const t = runElf(elf, { maxInstructions, hart: { engine: "translator", translateAfter: 1 } });
  expect({ code: t.code, output: t.output, instret: t.instret }).toEqual({
    code: i.code,
    output: i.output,
    instret: i.instret,
  });
  return { i, t };
}

/**
 * bothEngines, then the other references a translated program must match: the lock-step run
 * (both engines compared at every block exit) and, where it is installed, QEMU's output.
 */
function againstReferences(elf: Uint8Array, seed: number, maxInstructions?: number) {
  const r = bothEngines(elf, maxInstructions);
  expect(runLockstep(elf, { seed }).divergence).toBeUndefined();
  if (qemuOk) expect(runQemu(elf).output).toBe(r.t.output);
  return r;
}

// patchme returns the immediate of its first instruction; the loop rewrites it each pass
const PATCH_LOOP = (fence: string) => String.raw`
    li      s0, 0
    li      s1, 0
    la      s2, patchme
    li      s3, 100
1:  jalr    ra, 0(s2)
    add     s0, s0, a0
    addi    t1, s1, 1
    slli    t1, t1, 20
    li      t2, 0x513          /* addi a0, zero, 0 */
    or      t1, t1, t2
    sw      t1, 0(s2)
    ${fence}
    addi    s1, s1, 1
    blt     s1, s3, 1b
    mv      a0, s0
    call    puthex
`;
const PATCHME = (align: number) => String.raw`
    .align ${align}
    .option push
    .option norvc
patchme:
    addi    a0, zero, 0
    ret
    .option pop
`;

describe("translator: self-modifying code", () => {
  for (const [name, fence, align] of [
    ["a patched function on the same page, with fence.i", "fence.i", 2],
    ["a patched function on another page, with fence.i", "fence.i", 12],
    ["a patched function on the same page, no fence.i (the store alone invalidates)", "", 2],
    ["a patched function on another page, no fence.i", "", 12],
  ] as const) {
    it.skipIf(!gccOk)(name, () => {
      const elf = program(PATCH_LOOP(fence), PATCHME(align));
      const { t } = bothEngines(elf);
      expect(t.code).toBe(0);
      expect(t.output).toBe("0000000000001356\n"); // 0 + 1 + ... + 99
      const st = t.hart.translatorStats();
      expect(st?.blocksTranslated).toBeGreaterThan(0);
      if (fence) expect(st?.fences).toBeGreaterThanOrEqual(100);
      else expect(st?.pageInvalidations).toBeGreaterThanOrEqual(99);
      if (qemuOk && fence) expect(runQemu(elf).output).toBe(t.output);
    });
  }

  it.skipIf(!gccOk)("a store that rewrites the next instruction of the running block", () => {
    const elf = program(String.raw`
    li      s0, 0
    li      s1, 0
    la      s2, 2f
    li      s3, 100
    .option push
    .option norvc
1:  addi    t1, s1, 1
    slli    t1, t1, 20
    li      t2, 0x513
    or      t1, t1, t2
    sw      t1, 0(s2)
2:  addi    a0, zero, 0
    add     s0, s0, a0
    addi    s1, s1, 1
    blt     s1, s3, 1b
    .option pop
    mv      a0, s0
    call    puthex
`);
    const { t } = bothEngines(elf);
    expect(t.output).toBe("00000000000013ba\n"); // 1 + 2 + ... + 100
    expect(runLockstep(elf, { seed: 7 }).divergence).toBeUndefined();
  });

  it("host writes to RAM take effect after invalidateTranslations()", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 16 });
    // addi a0, a0, 1 ; j .-4 (a hot two-instruction loop)
    bus.i32[0] = 0x00150513;
    bus.i32[1] = 0xffdff06f | 0;
    const hart = new Hart(bus, { engine: "translator" });
    hart.pc = 0x8000_0000;
    hart.run(1000);
    expect(hart.x[20]).toBe(500);
    bus.i32[0] = 0x00250513; // addi a0, a0, 2
    hart.invalidateTranslations();
    hart.run(1000);
    expect(hart.x[20]).toBe(1500);
    expect(hart.translatorStats()?.flushes).toBe(1);
  });

  it("code written behind the hart's back (DMA) runs after the guest's fence.i; unchanged pages keep their translations", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 16 });
    // addi a0, a0, 1 ; fence.i ; j .-8
    bus.i32[0] = 0x00150513;
    bus.i32[1] = 0x0000100f;
    bus.i32[2] = 0xff9ff06f | 0;
    const hart = new Hart(bus, { engine: "translator", translateAfter: 1 });
    hart.pc = 0x8000_0000;
    hart.run(3000);
    expect(hart.x[20]).toBe(1000);
    const compiled = hart.translatorStats()?.blocksTranslated ?? 0;
    // 1000 fence.i over an unchanged page: nothing recompiled (no flush per fence.i)
    expect(compiled).toBeLessThanOrEqual(3);
    expect(hart.translatorStats()?.fences).toBe(1000);
    bus.i32[0] = 0x00250513; // addi a0, a0, 2, as a device would write it: no store of the hart
    hart.run(3000);
    // the stale translation may run once more before the first fence.i (Zifencei §5.1), never after
    expect(hart.x[20]).toBeGreaterThanOrEqual(1000 + 1 + 999 * 2);
    expect(hart.translatorStats()?.pageInvalidations).toBe(1);
    expect(hart.translatorStats()?.flushes).toBe(0);
  });
  it("after a fence.i, a trace chained from another page runs only once its own page was compared", () => {
    // loop (page 0): addi a0, a0, 1 ; fence.i ; jal ra, f ; j loop    f (page 1): addi a1, a1, 1 ; ret
    // The fence.i is stepped; the jal's trace leaves for f inside the dispatcher, which must not
    // find f's old trace in its cache: f's page changed behind the hart's back.
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 16 });
    bus.i32[0] = 0x00150513;
    bus.i32[1] = 0x0000100f;
    bus.i32[2] = 0x7f9000ef;
    bus.i32[3] = 0xff5ff06f | 0;
    bus.i32[1024] = 0x00158593;
    bus.i32[1025] = 0x00008067;
    for (const translateAfter of [1, 20]) {
      const hart = new Hart(bus, { engine: "translator", translateAfter });
      bus.i32[1024] = 0x00158593;
      hart.pc = 0x8000_0000;
      hart.run(40_000);
      const a1 = Number(hart.x[22]);
      expect(a1).toBeGreaterThan(6000);
      expect(hart.translatorStats()?.blockInstructions).toBeGreaterThan(10_000);
      bus.i32[1024] = 0x00258593; // addi a1, a1, 2, as a device would write it
      const loops = Number(hart.x[20]);
      hart.run(40_000);
      const after = Number(hart.x[20]) - loops;
      // the old f may run once, before the first fence.i (Zifencei §5.1); then it adds 2 a pass
      // (one pass either way where the run starts and stops)
      expect(Number(hart.x[22]) - a1).toBeGreaterThanOrEqual(2 * after - 3);
    }
  });
});

describe("translator: lock-step with the interpreter", () => {
  const seeds = Array.from({ length: 16 }, (_, i) => 1000 + i);
  for (const seed of seeds) {
    it.skipIf(!gccOk)(`random control flow, seed ${seed}`, () => {
      const elf = buildElf(randomControlFlowProgram(seed).source);
      const r = runLockstep(elf, { seed, maxInstructions: 1_000_000 });
      expect(r.divergence).toBeUndefined();
      expect(r.code).toBe(0);
      // the WebAssembly back end did the work
      expect(r.translator.translatorStats()?.wasmBlocks).toBeGreaterThan(0);
    });
  }
  for (const seed of seeds.slice(0, 8)) {
    it.skipIf(!gccOk)(`random control flow, seed ${seed}, JavaScript back end`, () => {
      const elf = buildElf(randomControlFlowProgram(seed).source);
      const r = runLockstep(elf, { seed, maxInstructions: 1_000_000, hart: { translatorBackend: "js" } });
      expect(r.divergence).toBeUndefined();
      expect(r.code).toBe(0);
      expect(r.translator.translatorStats()?.wasmBlocks).toBe(0);
    });
  }
  for (const seed of seeds.slice(0, 8)) {
    it.skipIf(!gccOk)(`random control flow, seed ${seed + 1000} (S-mode, Sv39, high alias)`, () => {
      const elf = buildElf(randomControlFlowProgram(seed + 1000, { highAlias: true }).source);
      const r = runLockstep(elf, { seed, maxInstructions: 1_000_000 });
      expect(r.divergence).toBeUndefined();
      expect(r.code).toBe(0);
    });
  }

  // cold code: interpreter chunks of both sizes (a start seen fewer than 64 times, then more),
  // compilation part-way through the run
  for (const translateAfter of [70, 500]) {
    for (const seed of seeds.slice(0, 4)) {
      it.skipIf(!gccOk)(`random control flow, seed ${seed}, compiled after ${translateAfter} visits`, () => {
        const elf = buildElf(randomControlFlowProgram(seed).source);
        const r = runLockstep(elf, { seed, maxInstructions: 1_000_000, hart: { translateAfter } });
        expect(r.divergence).toBeUndefined();
        expect(r.code).toBe(0);
      });
    }
  }

  it.skipIf(!gccOk)("page faults inside hot blocks: mepc/mtval and the registers before the fault", () => {
    // a hot loop of loads and stores walks up to an unmapped page under Sv39; the handler records
    // mcause/mepc/mtval, the loop goes on (the faulting iteration is skipped)
    const elf = program(
      String.raw`
    la      t0, mtrap
    csrw    mtvec, t0
    li      t0, -1
    csrw    pmpaddr0, t0
    li      t0, 0x1f             /* NAPOT, RWX: S-mode may use all memory */
    csrw    pmpcfg0, t0
    /* Sv39 identity map of RAM's first gigapage except the page 'hole' (a 4 KiB level-0 table) */
    la      t0, l2
    la      t1, l1
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 1
    li      t2, 0x80000000
    srli    t2, t2, 30
    slli    t2, t2, 3
    add     t0, t0, t2
    sd      t1, 0(t0)
    /* l1[0..511]: 2 MiB leaves, except the one holding 'hole', which points at l0 */
    la      t0, l1
    li      t3, 0
    li      t4, 512
    li      t5, 0x80000000
1:  srli    t1, t5, 12
    slli    t1, t1, 10
    ori     t1, t1, 0xcf        /* V R W X A D */
    sd      t1, 0(t0)
    addi    t0, t0, 8
    li      t6, 0x200000
    add     t5, t5, t6
    addi    t3, t3, 1
    blt     t3, t4, 1b
    la      t5, hole
    li      t6, 0x200000
    addi    t6, t6, -1
    not     t6, t6
    and     t5, t5, t6          /* 2 MiB region of hole */
    li      t6, 0x80000000
    sub     t6, t5, t6
    srli    t6, t6, 21
    slli    t6, t6, 3
    la      t0, l1
    add     t0, t0, t6
    la      t1, l0
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 1
    sd      t1, 0(t0)
    /* l0: 4 KiB leaves for that 2 MiB, except 'hole' */
    la      t0, l0
    li      t3, 0
    li      t4, 512
1:  srli    t1, t5, 12
    slli    t1, t1, 10
    ori     t1, t1, 0xcf
    la      t2, hole
    bne     t5, t2, 2f
    li      t1, 0
2:  sd      t1, 0(t0)
    addi    t0, t0, 8
    li      t6, 4096
    add     t5, t5, t6
    addi    t3, t3, 1
    blt     t3, t4, 1b
    /* satp = Sv39 | l2; run the loop in S-mode with MPRV-free plain S accesses */
    la      t0, l2
    srli    t0, t0, 12
    li      t1, 8
    slli    t1, t1, 60
    or      t0, t0, t1
    csrw    satp, t0
    sfence.vma
    li      t0, 0x1800
    csrc    mstatus, t0
    li      t0, 0x800
    csrs    mstatus, t0         /* MPP = S */
    la      t0, sloop
    csrw    mepc, t0
    mret
sloop:
    la      s1, hole
    li      t0, 8192
    sub     s1, s1, t0          /* two pages below the hole */
    li      s0, 0
    li      s3, 0
1:  ld      t1, 0(s1)
    add     s0, s0, t1
    addi    t1, t1, 3
    sd      t1, 8(s1)
    addi    s1, s1, 16
    addi    s3, s3, 1
    li      t2, 1024
    blt     s3, t2, 1b
    ecall
    .align 4
mtrap:
    csrr    t0, mcause
    li      t1, 9                /* ecall from S: done */
    beq     t0, t1, 3f
    addi    s4, s4, 1            /* faults seen */
    csrr    s5, mepc
    csrr    s6, mtval
    addi    t0, s5, 4
    csrw    mepc, t0
    mret
3:  mv      a0, s0
    call    puthex
    mv      a0, s4
    call    puthex
    mv      a0, s6
    call    puthex
    j       pass
`,
      String.raw`
    .data
    .align 12
l2: .space 4096
l1: .space 4096
l0: .space 4096
    .space 8192
hole: .space 4096
    .space 8192
`,
    );
    const { t } = againstReferences(elf, 3);
    expect(t.code).toBe(0);
    const lines = t.output.trim().split("\n");
    expect(Number.parseInt(lines[1], 16)).toBe(512); // 256 loads and 256 stores into the hole
  });
});

describe("translator: M extension at its corners", () => {
  it.skipIf(!gccOk)("every multiply and divide form on every pair of corner operands, against QEMU", () => {
    // s2/s3 walk a table of corners; each op's result is mixed into s0 and stored to a buffer
    const ops = ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"];
    const wops = ["mulw", "divw", "divuw", "remw", "remuw", "addw", "subw", "sllw", "srlw", "sraw"];
    const body = [...ops, ...wops]
      .map(
        (op) =>
          `    ${op} t2, t0, t1\n    sd t2, 0(s5)\n    addi s5, s5, 8\n    xor s0, s0, t2\n    slli t3, s0, 7\n    srli s0, s0, 57\n    or s0, s0, t3`,
      )
      .join("\n");
    const elf = cornerPairs(
      body,
      "",
      "0, -1, 1, 0x8000000000000000, 0x7fffffffffffffff, -0x80000000\n    .dword 0x80000000, 0x7fffffff, 0xffffffff, 0x100000000, 0x123456789abcdef1, -7",
      8 * 18,
    );
    const { t } = againstReferences(elf, 13);
    expect(t.code).toBe(0);
    expect(t.hart.translatorStats()?.wasmBlocks).toBeGreaterThan(0);
  });
});

describe("translator: AMOs at their corners", () => {
  it.skipIf(!gccOk)("every AMO, .w and .d, on every pair of corner values, against QEMU", () => {
    // a word in memory starts as one corner, each AMO with the other as rs2 leaves the old value in
    // t2 and the new one in memory; both are mixed into s0 and stored (the memory word is reloaded
    // with the first corner before each AMO; -8(s7) keeps a .w's upper word visible)
    const ops = ["amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin", "amomax", "amominu", "amomaxu"];
    const body = ops
      .flatMap((op) =>
        ["w", "d"].map(
          (w) =>
            `    sd t0, 0(s7)
    ${op}.${w} t2, t1, (s7)
    ld t3, 0(s7)
    sd t2, 0(s5)
    sd t3, 8(s5)
    addi s5, s5, 16
    xor s0, s0, t2
    add s0, s0, t3
    slli t3, s0, 7
    srli s0, s0, 57
    or s0, s0, t3`,
        ),
      )
      .join("\n");
    const elf = cornerPairs(
      body,
      "    la      s7, word\n",
      "0, -1, 1, 0x8000000000000000, 0x7fffffffffffffff, -0x80000000\n    .dword 0x80000000, 0x7fffffff, 0xffffffff, 0x1ffffffff, 0x123456789abcdef1, -7\n    .dword 0x5555555555555555\nword:\n    .dword 0",
      16 * 18,
    );
    const { t } = againstReferences(elf, 19);
    expect(t.code).toBe(0);
    const st = t.hart.translatorStats();
    expect(st?.wasmBlocks).toBeGreaterThan(0);
    // the AMOs ran inside traces: nearly every instruction did
    expect((st?.blockInstructions ?? 0) / t.instret).toBeGreaterThan(0.9);
  });
});

describe("translator: LR/SC in traces", () => {
  it.skipIf(!gccOk)(
    "successes and failures (no reservation, another address, AMOs elsewhere and at the address, a trap), against QEMU",
    () => {
      const elf = program(
        String.raw`
    la      t3, lrsc_trap
    csrw    mtvec, t3
    la      s1, lrsc_data
    addi    s5, s1, 8
    addi    s6, s1, 12
    addi    s7, s1, 24
    li      s2, 3000
    li      s3, 0
    li      s4, 0
1:  lr.d    t0, (s1)
    addi    t0, t0, 1
    sc.d    t1, t0, (s1)                /* succeeds */
    add     s3, s3, t1
    sc.d    t1, t0, (s1)                /* no reservation: fails */
    add     s4, s4, t1
    lr.w    t2, (s5)
    sc.w    t1, t2, (s6)                /* another address: fails */
    add     s4, s4, t1
    lr.w    t2, (s5)
    addi    t2, t2, -3
    sd      t0, 16(s1)                  /* an ordinary store elsewhere */
    sc.w    t1, t2, (s5)                /* succeeds: .w sign-extends what lr.w read */
    add     s3, s3, t1
    lr.d    t0, (s1)
    amoadd.d zero, t0, (s7)             /* an AMO while a reservation is held (traces leave for it) */
    sc.d    t1, t0, (s1)
    add     s3, s3, t1
    lr.d    t0, (s1)
    amoadd.d zero, t0, (s1)             /* an AMO at the reserved address drops it */
    sc.d    t1, t0, (s1)
    add     s4, s4, t1
    lr.d    t0, (s1)
    ecall                               /* a trap between LR and SC drops the reservation */
    sc.d    t1, t0, (s1)
    add     s4, s4, t1
    addi    s2, s2, -1
    bnez    s2, 1b
    mv      a0, s3
    call    puthex
    mv      a0, s4
    call    puthex
    ld      a0, 0(s1)
    call    puthex
    ld      a0, 8(s1)
    call    puthex
    ld      a0, 24(s1)
    call    puthex
    li      t0, 3000 * 4
    bne     s4, t0, fail
    bnez    s3, fail
`,
        String.raw`
    .align 4
lrsc_trap:
    csrr    t3, mepc
    addi    t3, t3, 4
    csrw    mepc, t3
    mret
    .data
    .align 3
lrsc_data:
    .dword 5, 0x80000000fffffff0, 0, 7
`,
      );
      const { t } = againstReferences(elf, 21);
      expect(t.code).toBe(0);
      const st = t.hart.translatorStats();
      expect((st?.blockInstructions ?? 0) / t.instret).toBeGreaterThan(0.5);
    },
  );
});

/** From M-mode: PMP allows all of memory, traps to M go to `back`, then S-mode at `entry` (mret). */
function enterS(entry: string, back: string): string {
  return String.raw`
    li      t0, -1
    csrw    pmpaddr0, t0
    li      t0, 0x1f
    csrw    pmpcfg0, t0
    la      t0, ${back}
    csrw    mtvec, t0
    li      t0, (3 << 11)
    csrc    mstatus, t0
    li      t0, (1 << 11)
    csrs    mstatus, t0
    la      t0, ${entry}
    csrw    mepc, t0
    mret`;
}

describe("translator: sstatus in traces", () => {
  it.skipIf(!gccOk)(
    "interrupts enabled by a csrs inside a hot loop are taken at the same instruction, against QEMU",
    () => {
      // S-mode with SSIE: each pass sets SSIP with SIE clear (local_irq_save), then restores SIE
      // (csrs): the interrupt must come right after the csrs. The handler folds sepc into s6.
      const elf = program(
        String.raw`
    li      t0, 2
    csrw    mideleg, t0
    csrw    mie, t0
    la      t0, ss_strap
    csrw    stvec, t0
${enterS("ss_s", "ss_back")}
ss_s:
    li      s2, 2000
    li      s5, 0
    li      s6, 0
1:  csrrci  s3, sstatus, 2              /* local_irq_save */
    csrsi   sip, 2
    addi    s5, s5, 1
    xor     s6, s6, s5
    csrs    sstatus, s3                 /* restore: SIE was clear the first pass only */
    li      t0, 2
    csrs    sstatus, t0                 /* enable: the interrupt comes here */
    addi    s2, s2, -1
    csrr    t1, sstatus
    andi    t1, t1, 2
    add     s5, s5, t1
    bnez    s2, 1b
    ecall
`,
        String.raw`
    .align 4
ss_strap:
    csrr    t2, sepc
    xor     s6, s6, t2
    slli    t2, s6, 3
    add     s6, s6, t2
    csrci   sip, 2
    addi    s4, s4, 1
    sret
    .align 4
ss_back:
    mv      a0, s4
    call    puthex
    mv      a0, s5
    call    puthex
    mv      a0, s6
    call    puthex
    j       pass
`,
      );
      const { t } = againstReferences(elf, 5);
      expect(t.code).toBe(0);
      expect(t.output.split("\n")[0]).toBe("00000000000007d0"); // 2000 interrupts
      for (const translateAfter of [2, 50]) {
        const u = runElf(elf, { hart: { engine: "translator", translateAfter } });
        expect(u.output).toBe(t.output);
      }
      // with a host clock, a trace leaves after the csrs only when an interrupt is pending then
      for (const engine of ENGINES) {
        const c = runElf(elf, { hart: { engine, translateAfter: 1, timeSource: () => 0 } });
        expect(c.output).toBe(t.output);
      }
    },
  );
});

describe("translator: the trap CSRs and time in traces", () => {
  it.skipIf(!gccOk)("sscratch, sepc, scause, stval and time in a hot S-mode loop, against QEMU", () => {
    // Linux's trap entry and return swap sscratch and read sepc, scause and stval; sched_clock
    // reads time. Each ran in the interpreter and ended the trace; now a call into the hart.
    const elf = program(
      String.raw`
    li      t0, -1
    csrw    mcounteren, t0
${enterS("tc_s", "tc_back")}
tc_s:
    li      s2, 3000
    li      s5, 0
    li      s7, 0
1:  csrrw   s3, sscratch, s2            /* swap, as handle_exception does with tp */
    csrr    t1, sscratch
    add     s5, s5, t1
    add     s5, s5, s3
    slli    t0, s5, 27                  /* a valid Sv39 address, even: sepc is WARL (priv */
    srli    t0, t0, 27                  /* 1.12 §4.1.7), and QEMU 7.2 keeps bit 0 and all of */
    andi    t0, t0, -2                  /* an invalid address where ringzero need not */
    csrw    sepc, t0
    csrr    t2, sepc
    xor     s5, s5, t2
    andi    t0, s2, 15
    csrw    scause, t0
    csrrs   t3, scause, zero
    add     s5, s5, t3
    csrw    stval, s5
    csrrc   t4, stval, s2
    slli    t4, t4, 1
    add     s5, s5, t4
    csrrsi  t4, stval, 5
    add     s5, s5, t4
    rdtime  t5
    rdtime  t6
    sltu    t6, t6, t5                  /* 1 if time went backwards */
    add     s7, s7, t6
    addi    s2, s2, -1
    bnez    s2, 1b
    csrr    t0, stval
    add     s5, s5, t0
    ecall
`,
      String.raw`
    .align 4
tc_back:
    mv      a0, s5
    call    puthex
    mv      a0, s7
    call    puthex
    j       pass
`,
    );
    const { t } = againstReferences(elf, 7);
    expect(t.code).toBe(0);
    expect(t.output.split("\n")[1]).toBe("0000000000000000"); // time never went backwards
    // with a host clock the loop stays in its trace: 5 % of the instructions interpreted (the
    // passes before it got hot); before, every CSR instruction ended a trace and 99.9 % were
    const c = runElf(elf, { hart: { engine: "translator", translateAfter: 50, timeSource: () => 5 } });
    expect(c.output).toBe(t.output);
    const st = c.hart.translatorStats();
    expect((st?.interpreted ?? 0) / c.instret).toBeLessThan(0.1);
    // under deterministic time each leaves after, for the interrupt check (the same instret)
    const d = runElf(elf, { hart: { engine: "translator", translateAfter: 50 } });
    expect({ output: d.output, instret: d.instret }).toEqual({ output: t.output, instret: t.instret });
  });
});

describe("translator: D extension at its corners", () => {
  it.skipIf(!gccOk)("every translated D instruction on pairs of corner values, under RNE and RTZ, against QEMU", () => {
    // f-results and integer results are mixed into s0 and stored; fflags are printed at the end
    const mix =
      "    xor s0, s0, t2\n    slli t3, s0, 9\n    srli s0, s0, 55\n    or s0, s0, t3\n    sd t2, 0(s5)\n    addi s5, s5, 8";
    const fops = [
      "fadd.d ft3, ft0, ft1",
      "fsub.d ft3, ft0, ft1",
      "fmul.d ft3, ft0, ft1",
      "fdiv.d ft3, ft0, ft1",
      "fsqrt.d ft3, ft0",
      "fmadd.d ft3, ft0, ft1, ft2",
      "fmsub.d ft3, ft0, ft1, ft2",
      "fnmsub.d ft3, ft0, ft1, ft2",
      "fnmadd.d ft3, ft0, ft1, ft2",
      "fmadd.d ft3, ft0, ft1, ft2, rne",
      "fmin.d ft3, ft0, ft1",
      "fmax.d ft3, ft0, ft1",
      "fsgnj.d ft3, ft0, ft1",
      "fsgnjn.d ft3, ft0, ft1",
      "fsgnjx.d ft3, ft0, ft1",
      "fcvt.d.l ft3, t0",
      "fcvt.d.lu ft3, t0",
      "fcvt.d.w ft3, t0",
      "fcvt.d.wu ft3, t0",
      "fmv.d.x ft3, t0",
    ].map((op) => `    ${op}\n    fmv.x.d t2, ft3\n${mix}`);
    const iops = [
      "feq.d t2, ft0, ft1",
      "flt.d t2, ft0, ft1",
      "fle.d t2, ft0, ft1",
      "fcvt.l.d t2, ft0, rtz",
      "fcvt.lu.d t2, ft0, rtz",
      "fcvt.w.d t2, ft0, rtz",
      "fcvt.wu.d t2, ft0, rtz",
      "fmv.x.d t2, ft0",
    ].map((op) => `    ${op}\n${mix}`);
    const body = [...fops, ...iops, "    fsd ft3, 0(s5)\n    fld ft4, 0(s5)\n    fmv.x.d t2, ft4\n" + mix].join("\n");
    const elf = program(
      String.raw`
    li      s0, 0
    la      s5, results
    li      s7, 0
0:  li      s4, 0
1:  la      t5, corners
    slli    t4, s4, 3
    add     t4, t5, t4
    fld     ft0, 0(t4)
    ld      t0, 0(t4)
    li      s6, 0
2:  slli    t4, s6, 3
    add     t4, t5, t4
    fld     ft1, 0(t4)
    add     t4, s4, s6
    andi    t4, t4, 15
    slli    t4, t4, 3
    add     t4, t5, t4
    fld     ft2, 0(t4)
${body}
    addi    s6, s6, 1
    li      t4, 16
    blt     s6, t4, 2b
    addi    s4, s4, 1
    blt     s4, t4, 1b
    csrr    a0, fflags
    call    puthex
    csrwi   frm, 1
    addi    s7, s7, 1
    li      t4, 2
    blt     s7, t4, 0b
    mv      a0, s0
    call    puthex
`,
      String.raw`
    .data
    .align 3
corners:
    .dword 0, 0x8000000000000000, 0x3ff0000000000000, 0xbff8000000000000
    .dword 0x7fe1ccf385ebc8a0, 0xffe1ccf385ebc8a0, 0x0010000000000000, 0x0000000000000001
    .dword 0x1a56e1fc2f8f359b, 0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000
    .dword 0x7ff0000000000001, 0x3fb999999999999a, 0x3fd5555555555555, 0xc3e0000000000000
    .bss
    .align 3
results:
    .space 8 * 16 * 16 * 30 * 2
`,
    );
    const { t } = againstReferences(elf, 17, 20_000_000);
    expect(t.code).toBe(0);
    expect(t.hart.translatorStats()?.wasmBlocks).toBeGreaterThan(0);
  });
});

describe("translator: forward branches inside a trace", () => {
  it.skipIf(!gccOk)("nested if/else in a hot loop: skipped instructions are not counted", () => {
    const elf = program(String.raw`
    li      s0, 0
    li      s1, 0
    li      s3, 3000
1:  andi    t0, s1, 1
    beqz    t0, 2f
    addi    s0, s0, 3
    andi    t1, s1, 2
    bnez    t1, 3f
    addi    s0, s0, 5
3:  xori    s0, s0, 1
2:  addi    s1, s1, 1
    andi    t2, s1, 7
    bnez    t2, 4f
    addi    s0, s0, 7
4:  blt     s1, s3, 1b
    mv      a0, s0
    call    puthex
`);
    const { t } = againstReferences(elf, 11);
    expect(t.code).toBe(0);
  });
});

describe("translator: FP ops with integer sources in a looping trace", () => {
  it.skipIf(!gccOk)("fcvt.d.l reads the register the previous pass wrote (not a stale copy)", () => {
    const elf = program(String.raw`
    li      s1, 0
    li      s3, 2000
    fcvt.d.l fs0, zero
1:  fcvt.d.l ft0, s1
    fadd.d  fs0, fs0, ft0
    addi    s1, s1, 1
    blt     s1, s3, 1b
    fcvt.l.d a0, fs0
    call    puthex
`);
    const { t } = bothEngines(elf);
    expect(t.output).toBe("00000000001e8098\n"); // 0 + 1 + ... + 1999
    expect(runLockstep(elf, { seed: 5 }).divergence).toBeUndefined();
  });
});

describe("translator: interrupts and the run budget", () => {
  // addi a0, a0, 1 ; bne a0, zero, .-4 : a hot loop (one looping block); mtvec spins
  function pair() {
    const make = (engine: "interpreter" | "translator") => {
      const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 16 });
      bus.i32[0] = 0x00150513;
      bus.i32[1] = 0xfe051ee3 | 0;
      bus.i32[64] = 0x0000006f; // j . at 0x8000_0100
      const hart = new Hart(bus, { engine, translateAfter: 1 });
      hart.writeCsr(0x305, 0x8000_0100n); // mtvec
      hart.writeCsr(0x304, 8n); // mie.MSIE
      hart.writeCsr(0x300, 8n); // mstatus.MIE
      hart.pc = 0x8000_0000;
      return hart;
    };
    return [make("interpreter"), make("translator")] as const;
  }

  it("the budget is exact and an interrupt is taken at the same instruction", () => {
    const [a, b] = pair();
    for (const budget of [1, 2, 3, 7, 100, 4095, 4096, 4097, 10_000, 12_345]) {
      expect(a.run(budget)).toEqual(b.run(budget));
      expect(archState(b)).toEqual(archState(a));
    }
    a.setInterrupt(MIP_MSIP, true);
    b.setInterrupt(MIP_MSIP, true);
    expect(a.run(5000)).toEqual(b.run(5000));
    expect(archState(b)).toEqual(archState(a));
    expect(a.mcause).toBe((1n << 63n) | 3n);
    expect(b.translatorStats()?.blockInstructions).toBeGreaterThan(20_000);
  });
});

describe("translator: counters", () => {
  it.skipIf(!gccOk)("a hot loop runs in translated blocks", () => {
    const elf = program(String.raw`
    li      t0, 0
    li      t1, 2000000
1:  addi    t0, t0, 1
    blt     t0, t1, 1b
`);
    const r = runElf(elf, { hart: { engine: "translator" } });
    expect(r.code).toBe(0);
    const st = r.hart.translatorStats();
    expect(st).toBeDefined();
    if (!st) return;
    expect(st.blocksTranslated).toBeGreaterThan(0);
    expect(st.blockInstructions / r.instret).toBeGreaterThan(0.95);
    expect(st.hits).toBeLessThanOrEqual(st.lookups);
    expect(st.blockCalls).toBeGreaterThan(0);
    expect(st.blockCalls).toBeLessThanOrEqual(st.blockInstructions);
    expect(st.compileMs).toBeGreaterThan(0);
    const bus = () => new Bus({ ramBase: 0x8000_0000, ramSize: 4096 });
    expect(new Hart(bus(), { engine: "interpreter" }).translatorStats()).toBeUndefined();
    // the default engine is the translator (DEFAULT_ENGINE)
    expect(new Hart(bus()).engine).toBe("translator");
    expect(new Hart(bus()).translatorStats()).toBeDefined();
  });
});

/** 3,000 instructions without a branch in a loop of 2,000 passes (blake2s_compress in Linux: ~2,300). */
function straightRun(): Uint8Array {
  return program(String.raw`
    li      s0, 0
    li      s1, 2000
1:  .rept 1500
    addi    a2, a2, 3
    xor     a3, a3, a2
    .endr
    addi    s0, s0, 1
    blt     s0, s1, 1b
`);
}

describe("translator: what gets hot", () => {
  it.skipIf(!gccOk)("a loop body longer than a trace: the rest, reached only by fall-through, is compiled too", () => {
    // The trace at the loop head stops at the length limit (64 instructions; memset's
    // unrolled loop in Linux); the rest of the body is no jump's target, so the cold chunks never
    // counted it: its visits must be counted where the trace leaves for it. (A branch leaves the
    // first trace, so the rest is not simply queued with it as a straight run's is.)
    const elf = program(String.raw`
    li      s0, 0
    li      s1, 50000
1:  .rept 50
    addi    a2, a2, 3
    .endr
    beq     s0, s1, 2f
    .rept 50
    addi    a2, a2, 3
    .endr
    addi    s0, s0, 1
    blt     s0, s1, 1b
2:
`);
    for (const translateAfter of [50, 200]) {
      const r = runElf(elf, { hart: { engine: "translator", translateAfter } });
      expect(r.code).toBe(0);
      const st = r.hart.translatorStats();
      // before visits were counted at trace exits, the 38 of the 103 instructions per pass after
      // the first trace stayed interpreted
      expect((st?.blockInstructions ?? 0) / r.instret).toBeGreaterThan(0.95);
    }
  });
  it.skipIf(!gccOk)("a straight run of many traces over pages is compiled with its head", () => {
    // blake2s_compress in Linux: ~2,300 instructions without a branch. Each trace stops at the
    // length limit and the next start is no jump's target: queued one miss at a time, the run
    // took 200 passes per trace. The rest of the run's page is queued with its head.
    const elf = straightRun();
    const r = runElf(elf, { hart: { engine: "translator", translateAfter: 200 } });
    expect(r.code).toBe(0);
    const st = r.hart.translatorStats();
    // 0.84 here; without the rest of the page queued 0.14, without the seek after a check inside a
    // trace 0.71 (the interpreter ran on from there to the loop's branch)
    expect((st?.blockInstructions ?? 0) / r.instret).toBeGreaterThan(0.8);
  });
  it.skipIf(!gccOk)("an interrupt check inside a straight run makes no trace start of its own", () => {
    // The check falls at another offset of the run each pass. The interpreter runs up to it and
    // then the rest of the trace it fell inside; stepping on from there one instruction and one
    // lookup at a time counted heat at every offset it passed, and made traces of them (384
    // traces here instead of 48, and 9.6 % of the instructions interpreted instead of 2.5 %).
    const elf = straightRun();
    const r = runElf(elf, { hart: { engine: "translator", translateAfter: 20 } });
    expect(r.code).toBe(0);
    const st = r.hart.translatorStats();
    expect(st?.blocksTranslated).toBeLessThanOrEqual(50);
    expect((st?.blockInstructions ?? 0) / r.instret).toBeGreaterThan(0.96);
  });
});

describe("translator: chained traces", () => {
  it.skipIf(!gccOk)(
    "two traces of one batch that exit into each other: tail calls, in lock-step with the interpreter",
    () => {
      // An outer loop at 1 around a two-pass inner loop at 2: the trace at 1 leaves at bnez for 2
      // (not its start), the trace at 2 loops on itself and leaves at blt for 1. Both starts get
      // hot together, so one batch holds both and each of those exits is a tail call (wasm-block.ts
      // chained()). Lock-step slices of 1..300 instructions put the interrupt check at every point
      // of the pair (a chain only where the next trace fits in the room); the store and the load
      // leave before the instruction at each new page (such exits never chain).
      const elf = program(
        String.raw`
    li      s0, 0
    li      s1, 30000
    la      s3, buf
1:  addi    s0, s0, 1
    li      t1, 2
2:  addi    a2, a2, 3
    sd      a2, 0(s3)
    ld      a5, 0(s3)
    xor     a3, a3, a5
    addi    s3, s3, 8
    addi    t1, t1, -1
    bnez    t1, 2b
    blt     s0, s1, 1b
`,
        String.raw`
    .data
    .balign 4096
buf: .space 30000 * 16
`,
      );
      const r = runLockstep(elf, { seed: 7, hart: { translateAfter: 50 } });
      expect(r.divergence).toBeUndefined();
      expect(r.code).toBe(0);
      const st = r.translator.translatorStats();
      // two a pass (60,000 passes of the outer loop), but where the room ends: ~50,000 here (none
      // where the host has no tail calls: every exit goes through the dispatcher)
      if (wasmTailCalls) expect(st?.chainedCalls ?? 0).toBeGreaterThan(40_000);
      else expect(st?.chainedCalls).toBe(0);
    },
  );
});

describe("translator: far jalr targets in a trace", () => {
  it.skipIf(!gccOk)(
    "a hot jalr to an address beyond 2^52 faults as the interpreter's does, with the full target in mtval",
    () => {
      // The trace at 1 ends at its jalr; its last pass jumps to a target no double holds exactly
      // (2^60 + 2): the trace must leave before the jalr (wasm-block.ts JALR), not hand the
      // dispatcher a pc it would round.
      const elf = program(String.raw`
    la      t0, far_trap
    csrw    mtvec, t0
    li      s0, 0
    li      s1, 300
    la      s2, near
    li      s3, 0x1000000000000002
1:  addi    s0, s0, 1
    mv      t1, s2
    bne     s0, s1, 2f
    mv      t1, s3
2:  jalr    ra, 0(t1)
    j       1b
near:
    ret
    .align 4
far_trap:
    csrr    a0, mcause
    CHECK(1, a0, 1)
    csrr    a1, mtval
    CHECKR(2, a1, s3)
    CHECK(3, s0, 300)
`);
      const r = runLockstep(elf, { seed: 3 });
      expect(r.divergence).toBeUndefined();
      expect(r.code).toBe(0);
      expect(r.translator.translatorStats()?.wasmBlocks).toBeGreaterThan(0);
    },
  );
});

describe("translator: generated code (golden)", () => {
  it("a looping trace: registers in locals, the load's TLB hit path inline, one exit per way out", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 1 << 16 });
    // 0: addi a0, a0, 1 ; 4: ld a1, 8(a0) ; 8: bne a0, a1, 0 (back to the start) ; 12: (untranslated: ecall)
    bus.i32[0] = 0x00150513;
    bus.i32[1] = 0x00853583;
    bus.i32[2] = 0xfeb51ce3 | 0;
    bus.i32[3] = 0x00000073;
    const { source, len } = generate(0, { u16: bus.u16, ctab: new Int32Array(65536), magic: false });
    expect(len).toBe(3);
    expect(source).toMatchInlineSnapshot(`
      ""use strict";
      return function block_0(x, u8, u16, i32, rt, wt, t, h, room) {
      let l10 = x[20], h10 = x[21];
      let l11 = x[22], h11 = x[23];
      let k_ = 0, r_ = 0;
      let done = 0;
      out: for (;;) {
      { const lo_ = (l10 + 1) | 0, hi_ = (h10 + 0 + (((l10 + 1) | 0) >>> 0 < l10 >>> 0 ? 1 : 0)) | 0; l10 = lo_; h10 = hi_; }
      { const b = l10; const lo = (b + 8) | 0;
      const hi = (h10 + 0 + (lo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
      const e = ((lo >>> 12) & 4095) << 2;
      if (rt[e] !== (lo & -4096) || rt[e + 1] !== hi || (lo & 7) !== 0) { k_ = (done + 1) | 1073741824; r_ = 4; break out; }
      const o = rt[e + 2] + (lo & 4095);
      { const lo_ = i32[o >> 2], hi_ = i32[(o >> 2) + 1]; l11 = lo_; h11 = hi_; }
      }
      if (l10 !== l11 || h10 !== h11) { done += 3; if (done + 3 <= room) continue; k_ = done + 0; r_ = 0; break out; }
      k_ = done + 3; r_ = 12; break out;
      }
      x[20] = l10; x[21] = h10;
      x[22] = l11; x[23] = h11;
      t.ret = k_;
      return r_;
      };"
    `);
  });
});
