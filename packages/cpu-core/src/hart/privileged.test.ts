// Self-checking programs for traps, privilege transitions, CSRs, the MMU and
// PMP. Each one asserts the behaviour the privileged spec 1.12 requires
// (CHECK → the finisher reports the failing test number), and each runs
// unchanged on QEMU virt as a cross-check: both must pass with the same output.
import { describe, expect, it } from "vitest";
import { runElf } from "../testing/machine.js";
import { PRELUDE } from "../testing/prelude.js";
import { runQemu } from "../testing/qemu.js";
import { buildElf, haveTool, requireTool } from "../testing/toolchain.js";
import { ENGINES } from "./translator.js";

const gccOk = requireTool("riscv64-unknown-elf-gcc");
const qemuOk = gccOk && (haveTool("qemu-system-riscv64") || requireTool("qemu-system-riscv64"));

function check(name: string, body: string, extra = "", opts: { qemu?: boolean } = {}): void {
  it.skipIf(!gccOk)(name, () => {
    const elf = buildElf(`${PRELUDE}\ntest_main:\n${body}\n    j pass\n${extra}`);
    // both engines (the translator compiling on first sight): same result, same instret
    const [ours, translated] = ENGINES.map((engine) =>
      runElf(elf, { maxInstructions: 5_000_000, hart: { engine, translateAfter: 1 } }),
    );
    expect({ code: ours.code, output: ours.output }).toEqual({ code: 0, output: expect.any(String) });
    expect({ code: translated.code, output: translated.output, instret: translated.instret }).toEqual({
      code: ours.code,
      output: ours.output,
      instret: ours.instret,
    });
    if (qemuOk && opts.qemu !== false) {
      const ref = runQemu(elf);
      expect(ref.code).toBe(0);
      expect(ours.output).toBe(ref.output);
    }
  });
}

/** Trap handler that records mcause/mepc/mtval in s2/s3/s4 and resumes at the next instruction (4 bytes). */
const RECORDING_MTRAP = String.raw`
    .align 4
rec_mtrap:
    csrr    s2, mcause
    csrr    s3, mepc
    csrr    s4, mtval
    addi    t0, s3, 4
    csrw    mepc, t0
    mret
    .align 4
rec_strap:
    csrr    s5, scause
    csrr    s6, sepc
    csrr    s7, stval
    addi    t0, s6, 4
    csrw    sepc, t0
    sret
`;

/** Enter S-mode (or U-mode) at label `target`. */
const enter = (mode: "S" | "U", target: string) => String.raw`
    li      t0, (3 << 11)
    csrc    mstatus, t0
    li      t0, (${mode === "S" ? 1 : 0} << 11)
    csrs    mstatus, t0
    la      t0, ${target}
    csrw    mepc, t0
    mret
`;

/** PMP entry 0: all of memory RWX for S/U (what firmware does before running S-mode code). */
const PMP_ALL = String.raw`
    li      t0, -1
    csrw    pmpaddr0, t0
    li      t0, 0x1f
    csrw    pmpcfg0, t0
`;

describe("CSRs (priv 1.12 §2, §3.1)", () => {
  // sstatus has its own path without BigInts (Linux's interrupt enable/disable): every Zicsr form,
  // SD following FS, UXL, a read-only bit, printed and compared with QEMU. (QEMU 7.2 also lets
  // sstatus writes set UXL, even to the reserved 3, and VS without the V extension; ringzero keeps
  // both read-only as priv 1.12 §4.1.1 allows, so the program writes neither.)
  check(
    "sstatus from S-mode: every Zicsr form, SD and UXL, WARL bits",
    String.raw`
    ${PMP_ALL}
    la      t0, m_back
    csrw    mtvec, t0
    ${enter("S", "s_code")}
s_code:
    csrr    a0, sstatus
    call    puthex
    li      t0, (3 << 13)
    csrs    sstatus, t0                 /* FS = Dirty: SD reads 1 */
    csrr    a0, sstatus
    call    puthex
    csrrsi  a0, sstatus, 2
    call    puthex
    csrrci  a0, sstatus, 2
    call    puthex
    li      t0, 0xc6162
    csrrw   a0, sstatus, t0             /* MXR SUM FS SPP SPIE SIE stick; UBE (bit 6) is read-only 0 */
    call    puthex
    csrr    a0, sstatus
    call    puthex
    li      t0, (1 << 13) | (1 << 8)
    csrrc   a0, sstatus, t0
    call    puthex
    li      t0, (1 << 13)
    csrrw   zero, sstatus, t0           /* FS = Initial: SD reads 0 */
    csrrs   a0, sstatus, zero
    call    puthex
    li      t0, (1 << 18) | (1 << 19) | 2
    csrrs   a0, sstatus, t0
    call    puthex
    csrrc   a0, sstatus, t0
    call    puthex
    csrr    a0, sstatus
    call    puthex
    ecall                               /* back to M: mstatus agrees */
`,
    String.raw`
    .align 4
m_back:
    csrr    a0, mstatus
    call    puthex
    j       pass
`,
  );

  check(
    "misa is RV64 IMAFDCSU; mstatus.MPP = 2 is reserved (WARL keeps the old value)",
    String.raw`
    csrr    a0, misa
    li      t1, 0x800000000014112d
    CHECKR(1, a0, t1)
    li      t0, (3 << 11)
    csrc    mstatus, t0
    li      t0, (2 << 11)               /* MPP = 2 is reserved: WARL keeps the old value */
    csrs    mstatus, t0
    csrr    a0, mstatus
    srli    a0, a0, 11
    andi    a0, a0, 3
    li      t1, 2
    li      TESTNUM, 4
    beq     a0, t1, fail
`,
    "",
    { qemu: false }, // QEMU 7.2's default CPU also reports H, and stores MPP = 2
  );
  check(
    "mhartid, mstatus WARL fields, csrr* forms, FS/SD",
    String.raw`
    csrr    a0, mhartid
    CHECK(2, a0, 0)
    csrr    a0, mstatus
    srli    a0, a0, 32
    andi    a0, a0, 0xf
    CHECK(3, a0, 0xa)                   /* UXL = SXL = 2 (64-bit) */
    li      t0, 0x1234
    csrrw   a1, mscratch, t0
    csrrs   a1, mscratch, 0x3
    CHECK(5, a1, 0x1234)
    csrrci  a1, mscratch, 0x4
    CHECK(6, a1, 0x1237)
    csrr    a1, mscratch
    CHECK(7, a1, 0x1233)
    csrrwi  a1, mscratch, 7
    csrr    a1, mscratch
    CHECK(8, a1, 7)
    /* FS and SD: writing an FP register makes FS dirty and sets SD */
    li      t0, (3 << 13)
    csrc    mstatus, t0
    li      t0, (1 << 13)
    csrs    mstatus, t0
    fmv.d.x ft0, zero
    csrr    a0, mstatus
    srli    a1, a0, 13
    andi    a1, a1, 3
    CHECK(9, a1, 3)
    srli    a1, a0, 63
    CHECK(10, a1, 1)
`,
  );
  check(
    "satp is WARL: a reserved MODE (Sv64) leaves it unchanged; Sv39/Sv48 stick (priv 1.12 §4.1.11)",
    String.raw`
    li      t0, (8 << 60) | 0x80123
    csrw    satp, t0
    csrr    a0, satp
    CHECKR(1, a0, t0)
    li      t1, (11 << 60) | 0x80456
    csrw    satp, t1
    csrr    a0, satp
    CHECKR(3, a0, t0)
    li      t1, (9 << 60) | 0x80789
    csrw    satp, t1
    csrr    a0, satp
    CHECKR(4, a0, t1)
    csrw    satp, zero
`,
  );
  // QEMU 7.2 implements Sv57, so this one is ringzero-only: Linux probes Sv57 first and
  // must see the write ignored on a hart without it.
  check(
    "satp: Sv57 is not implemented, a write of MODE=10 is ignored",
    String.raw`
    li      t0, (9 << 60) | 0x80123
    csrw    satp, t0
    li      t1, (10 << 60) | 0x80456
    csrw    satp, t1
    csrr    a0, satp
    CHECKR(1, a0, t0)
    csrw    satp, zero
`,
    "",
    { qemu: false },
  );
  // QEMU's minstret counts host ticks unless -icount: ringzero-only.
  check(
    "minstret counts retired instructions and a written value is what the next instruction reads",
    String.raw`
    csrr    a0, minstret
    nop
    nop
    csrr    a1, minstret
    sub     a1, a1, a0
    CHECK(1, a1, 3)
    li      t0, 1000
    csrw    minstret, t0
    csrr    a1, minstret
    csrr    a2, instret
    CHECK(2, a1, 1000)
    CHECK(3, a2, 1001)
`,
    "",
    { qemu: false },
  );
});

describe("traps (priv 1.12 §3.1.15, §3.3)", () => {
  check(
    "ecall from M, S and U; ebreak; illegal instruction tval; mret/sret",
    String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    ${PMP_ALL}
    ecall
    CHECK(1, s2, 11)
    ebreak
    CHECK(2, s2, 3)
    .word   0xffffffff                  /* illegal: mtval holds the bits */
    CHECK(3, s2, 2)
    li      t1, 0xffffffff
    CHECKR(4, s4, t1)
    csrw    0xc00, zero                 /* write to read-only cycle: illegal */
    CHECK(5, s2, 2)
    ${enter("S", "in_s")}
in_s:
    ecall                               /* S-mode ecall → M (not delegated) */
back_m1:
    CHECK(6, s2, 9)
    /* the trap returned to S-mode: prove it by reading an M-only CSR → illegal */
    csrr    a0, mscratch
    CHECK(7, s2, 2)
    ecall
    CHECK(8, s2, 9)
    j       pass
`,
    RECORDING_MTRAP,
  );
  check(
    "U-mode ecall and delegation of exceptions to S-mode (medeleg) with sret",
    String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    la      t0, rec_strap
    csrw    stvec, t0
    ${PMP_ALL}
    li      t0, (1 << 2) | (1 << 8)     /* delegate illegal-instruction and U-ecall */
    csrw    medeleg, t0
    ${enter("U", "in_u")}
in_u:
    li      s5, 0
    ecall                               /* → S (delegated) */
    CHECK(1, s5, 8)
    .word   0                           /* illegal → S, stval = the (16-bit) parcel */
    CHECK(2, s5, 2)
    CHECK(3, s7, 0)
    li      s5, 0
    csrr    a0, sstatus                 /* an S CSR from U → illegal → S */
    CHECK(4, s5, 2)
    li      s2, 0
    ebreak                              /* not delegated → M */
    CHECK(5, s2, 3)
`,
    RECORDING_MTRAP,
  );
  check(
    "vectored mtvec for interrupts, SSIP set by M-mode, MIE gating, WFI with a pending interrupt",
    String.raw`
    la      t0, vec
    ori     t0, t0, 1
    csrw    mtvec, t0
    li      t0, 2                       /* SSIE */
    csrw    mie, t0
    csrsi   mip, 2                      /* SSIP pending, but mstatus.MIE = 0: not taken */
    li      s2, 0
    nop
    CHECK(1, s2, 0)
    wfi                                 /* pending & enabled in mie: WFI does not stop */
    csrsi   mstatus, 8                  /* MIE = 1: taken now */
    nop
    CHECK(2, s2, 1)
    li      t1, 0x8000000000000001
    CHECKR(3, s3, t1)
    csrci   mstatus, 8
    j       pass
    .align 6
    .option push
    .option norvc
vec:
    j       bad_vec                     /* exceptions / cause 0 */
    j       ssi_vec                     /* cause 1: SSI */
    .option pop
bad_vec:
    li      TESTNUM, 99
    j       fail
ssi_vec:
    li      s2, 1
    csrr    s3, mcause
    csrci   mip, 2
    mret
`,
  );
});

const VM_TABLES = String.raw`
    .section .data
    .align 12
root4: .space 4096
root: .space 4096
l1:   .space 4096
l0:   .space 4096
    .align 12
pg_u: .dword 0x1111, 0
    .align 12
pg_ro: .dword 0x2222, 0
    .align 12
pg_x: .dword 0x3333, 0
    .align 12
pg_ad: .dword 0x4444, 0
    .align 12
`;
const VM_BUILD = String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    la      t0, rec_strap
    csrw    stvec, t0
    ${PMP_ALL}
    li      t0, (1 << 12) | (1 << 13) | (1 << 15)
    csrw    medeleg, t0                 /* page faults → S */
    la      a0, root
    li      t0, (0x80000000 >> 12) << 10
    ori     t0, t0, 0xcf                /* V R W X A D */
    sd      t0, 16(a0)                  /* root[2] = 0x80000000 gigapage */
    li      t0, 0xc7                    /* V R W A D */
    sd      t0, 0(a0)                   /* root[0] = 0x0 gigapage: the devices (finisher, UART) */
    la      t1, l1
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 1
    sd      t1, 8(a0)                   /* root[1] → l1 (VA 0x40000000) */
    la      a1, l1
    la      t1, l0
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 1
    sd      t1, 0(a1)                   /* l1[0] → l0 */
    la      a2, l0
    la      t1, pg_u
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 0xd7                /* V R W U A D */
    sd      t1, 0(a2)
    la      t1, pg_ro
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 0x43                /* V R A */
    sd      t1, 8(a2)
    la      t1, pg_x
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 0x49                /* V X A */
    sd      t1, 16(a2)
    la      t1, pg_ad
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 0x07                /* V R W, A=0 D=0 */
    sd      t1, 24(a2)
    la      t0, root
    srli    t0, t0, 12
    li      t1, 8 << 60
    or      t0, t0, t1
    csrw    satp, t0
    sfence.vma
`;

describe("virtual memory (priv 1.12 §4.3–4.5)", () => {
  // Page tables: root (level 2) maps 0x80000000 as a 1 GiB identity gigapage (RWX, A, D; not U),
  // and VA 0x40000000.. via a level-1 and a level-0 table: 0x40000000 → data page (R W U), 0x40001000 → data page (R, not W),
  // 0x40002000 → exec-only page (X), 0x40003000 → page with A=0/D=0 (R W) to watch the hart set them.
  check(
    "Sv39: SUM, read-only store fault, MXR, hardware A/D, stval, non-canonical addresses",
    String.raw`
    ${VM_BUILD}
    ${enter("S", "s_code")}
s_code:
    li      a3, 0x40000000
    li      s5, 0
    ld      a4, 0(a3)                   /* U page from S with SUM=0 → load page fault */
    CHECK(1, s5, 13)
    CHECKR(2, s7, a3)
    li      t0, (1 << 18)
    csrs    sstatus, t0                 /* SUM = 1 */
    ld      a4, 0(a3)
    CHECK(3, a4, 0x1111)
    li      a3, 0x40001000
    ld      a4, 0(a3)
    CHECK(4, a4, 0x2222)
    li      s5, 0
    sd      a4, 0(a3)                   /* read-only page → store page fault */
    CHECK(5, s5, 15)
    li      a3, 0x40002000
    li      s5, 0
    ld      a4, 0(a3)                   /* exec-only page, MXR=0 → load page fault */
    CHECK(6, s5, 13)
    li      t0, (1 << 19)
    csrs    sstatus, t0                 /* MXR = 1 */
    ld      a4, 0(a3)
    CHECK(7, a4, 0x3333)
    li      a3, 0x40003000
    sd      a3, 8(a3)                   /* A and D get set by the hart */
    la      t0, l0
    ld      a4, 24(t0)
    andi    a4, a4, 0xc0
    CHECK(8, a4, 0xc0)
    li      a3, 0x0000004000000000      /* bit 38 set, upper bits clear: non-canonical → fault */
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(9, s5, 13)
    CHECKR(10, s7, a3)
    ecall                               /* back to M */
    CHECK(11, s2, 9)
`,
    `${RECORDING_MTRAP}${VM_TABLES}`,
  );
  check(
    "Sv48: a four-level walk to the same mappings; stval on a non-canonical address",
    String.raw`
    ${VM_BUILD}
    la      a0, root4
    la      t1, root
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 1
    sd      t1, 0(a0)                   /* root4[0] → the Sv39 root as a level-2 table */
    srli    t0, a0, 12
    li      t1, 9 << 60
    or      t0, t0, t1
    csrw    satp, t0
    sfence.vma
    ${enter("S", "s48")}
s48:
    li      t0, (1 << 18)
    csrs    sstatus, t0
    li      a3, 0x40000000
    ld      a4, 0(a3)
    CHECK(1, a4, 0x1111)
    li      a3, 0x0000800000000000      /* bit 47 set, upper clear: non-canonical for Sv48 */
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(2, s5, 13)
    CHECKR(3, s7, a3)
    li      a3, 0x0000004000000000      /* canonical in Sv48 but unmapped (root4[0] → l2[256]) */
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(4, s5, 13)
    ecall
`,
    `${RECORDING_MTRAP}${VM_TABLES}`,
  );
  check(
    "MPRV: M-mode loads translated with MPP=S; fetches are not",
    String.raw`
    ${VM_BUILD}
    li      t0, (3 << 11)
    csrc    mstatus, t0
    li      t0, (1 << 11) | (1 << 17) | (1 << 18)   /* MPP=S, MPRV, SUM */
    csrs    mstatus, t0
    li      a3, 0x40000000
    ld      a4, 0(a3)
    li      t0, (1 << 17)
    csrc    mstatus, t0
    CHECK(1, a4, 0x1111)
    csrw    satp, zero
`,
    `${RECORDING_MTRAP}${VM_TABLES}`,
  );
});

describe("TLB invalidation: contexts and sfence.vma forms (priv 1.12 §4.2.1, §4.3.1, §3.1.6.3)", () => {
  // The same pages are accessed again after each SUM/MXR toggle, privilege change and fence,
  // so a translation cached under one context must never be used under another.
  // root[3] aliases RAM at VA 0xc0000000 as a U RWX gigapage (code for U-mode);
  // root[4] aliases RAM at VA 0x100000000 as a supervisor RW gigapage (the superpage fences).
  const ALIASES = String.raw`
    la      a0, root
    li      t0, (0x80000000 >> 12) << 10
    ori     t0, t0, 0xdf                /* V R W X U A D */
    sd      t0, 24(a0)
    li      t0, (0x80000000 >> 12) << 10
    ori     t0, t0, 0xc7                /* V R W A D */
    sd      t0, 32(a0)
    sfence.vma
`;
  /** M-mode handler for the ecall that ends the U-mode part: continue in M at back_m. */
  const U_EXIT = String.raw`
    .align 4
u_exit_mtrap:
    csrr    s2, mcause
    la      t0, back_m
    csrw    mepc, t0
    li      t0, (3 << 11)
    csrs    mstatus, t0                 /* MPP = M */
    mret
`;
  check(
    "SUM, MXR and U/S switches between accesses to the same pages; U pages from S; sfence.vma by address, ASID and superpage",
    String.raw`
    .option push
    .option norvc                       /* the trap handlers resume at epc + 4 */
    ${VM_BUILD}
    ${ALIASES}
    la      t0, u_exit_mtrap
    csrw    mtvec, t0                   /* the U-mode ecall ends at back_m */
    ${enter("S", "s_code")}
s_code:
    li      a3, 0x40000000
    li      s1, (1 << 18)               /* s1: SUM (the trap handlers clobber t0) */
    csrs    sstatus, s1                 /* SUM = 1 */
    ld      a4, 0(a3)
    CHECK(1, a4, 0x1111)
    sd      a4, 8(a3)
    csrc    sstatus, s1                 /* SUM = 0: the same U page now faults */
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(2, s5, 13)
    li      s5, 0
    sd      a4, 8(a3)
    CHECK(3, s5, 15)
    csrs    sstatus, s1                 /* SUM = 1 again */
    li      s5, 0
    ld      a4, 8(a3)
    CHECK(4, a4, 0x1111)
    CHECK(5, s5, 0)
    li      a3, 0x40002000              /* exec-only page */
    li      t1, (1 << 19)
    csrs    sstatus, t1                 /* MXR = 1 */
    ld      a4, 0(a3)
    CHECK(6, a4, 0x3333)
    csrc    sstatus, t1                 /* MXR = 0 */
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(7, s5, 13)
    csrs    sstatus, t1
    li      s5, 0
    ld      a4, 0(a3)
    CHECK(8, a4, 0x3333)
    CHECK(9, s5, 0)
    csrc    sstatus, t1
    /* to U-mode at the U alias of u_code: SPP = 0 */
    li      t0, (1 << 8)
    csrc    sstatus, t0
    la      t0, u_code
    li      t1, 0x40000000
    add     t0, t0, t1
    csrw    sepc, t0
    sret
u_code:                                 /* U-mode (no CHECK here: fail is not U code); results in s9-s11, a6, a7 */
    li      a3, 0x40000000
    ld      s9, 0(a3)                   /* U page from U: allowed whatever SUM */
    li      s5, 0
    li      a3, 0x40002000
    ld      a4, 0(a3)                   /* exec-only page, MXR = 0: fault; S handles it and returns to U */
    mv      s10, s5
    li      s5, 0
    li      a3, 0x40001000              /* read-only page: store fault */
    sd      a4, 0(a3)
    mv      s11, s5
    li      s5, 0
    li      a3, 0x100000000             /* supervisor gigapage: U cannot load it */
    ld      a4, 0(a3)
    mv      a7, s5
    li      a3, 0x40000000
    ld      a6, 0(a3)                   /* and the U page again, after three U→S→U round trips */
    ecall                               /* to M (back_m) */
back_m:
    CHECK(10, s9, 0x1111)
    CHECK(11, s10, 13)
    CHECK(12, s11, 15)
    CHECK(13, a7, 13)
    CHECK(14, a6, 0x1111)
    CHECK(15, s2, 8)
    la      t0, rec_mtrap
    csrw    mtvec, t0
    ${enter("S", "s_again")}
s_again:
    li      t0, (1 << 18)
    csrc    sstatus, t0                 /* SUM = 0 */
    li      a3, 0x40000000
    li      s5, 0
    ld      a4, 0(a3)                   /* the U page is cached for U: S without SUM must still fault */
    CHECK(16, s5, 13)
    /* sfence.vma by address: remap VA 0x40000000 to pg_ro */
    li      t0, (1 << 18)
    csrs    sstatus, t0
    li      a3, 0x40000000
    ld      a4, 0(a3)
    CHECK(17, a4, 0x1111)
    la      a2, l0
    ld      s8, 0(a2)                   /* the old PTE */
    la      t1, pg_ro
    srli    t1, t1, 12
    slli    t1, t1, 10
    ori     t1, t1, 0xd7
    sd      t1, 0(a2)
    sfence.vma a3
    ld      a4, 0(a3)
    CHECK(18, a4, 0x2222)
    sd      s8, 0(a2)
    li      t0, 0                       /* ASID 0: the current address space */
    sfence.vma zero, t0
    ld      a4, 0(a3)
    CHECK(19, a4, 0x1111)
    /* superpage: cache two 4 KiB pages of the root[4] gigapage, invalidate it, fence one address */
    li      a5, 0x100000000 - 0x80000000
    la      t0, pg_u
    add     a6, t0, a5
    la      t0, pg_ro
    add     a7, t0, a5
    ld      a4, 0(a6)
    CHECK(20, a4, 0x1111)
    ld      a4, 0(a7)
    CHECK(21, a4, 0x2222)
    la      a0, root
    sd      zero, 32(a0)                /* root[4] invalid */
    li      t2, 0
    sfence.vma a6, t2                   /* one address of the gigapage, current ASID */
    li      s5, 0
    ld      a4, 0(a7)                   /* another page of the same gigapage: must fault now */
    CHECK(22, s5, 13)
    ecall
    CHECK(23, s2, 9)
    .option pop
`,
    `${RECORDING_MTRAP}${U_EXIT}${VM_TABLES}`,
  );
  check(
    "an address with high word 0x40000000 never hits an empty TLB entry: loads and stores beyond RAM fault",
    String.raw`
    .option push
    .option norvc                       /* rec_mtrap resumes at mepc + 4 */
    la      t0, rec_mtrap
    csrw    mtvec, t0
    li      a3, 0x4000000000000000      /* no memory there (bare M-mode: the address is physical) */
    li      s2, 0
    ld      a4, 0(a3)
    CHECK(1, s2, 5)
    CHECKR(2, s4, a3)
    li      s2, 0
    lw      a4, 0(a3)
    CHECK(3, s2, 5)
    li      s2, 0
    sd      a4, 0(a3)
    CHECK(4, s2, 7)
    li      a3, 0x4000000080000000      /* the same low word as RAM's first page */
    li      s2, 0
    ld      a4, 0(a3)
    CHECK(5, s2, 5)
    .option pop
`,
    RECORDING_MTRAP,
  );
  // QEMU 7.2 keeps its M-mode TLB across that MRET (it flushes on mstatus writes only) and
  // loads the supervisor page: this one runs on ringzero alone.
  check(
    "MPRV: changing MPP, and an MRET from M to M that leaves MPRV set with MPP = U, retranslate loads",
    String.raw`
    ${VM_BUILD}
    li      t0, (3 << 11)
    csrs    mstatus, t0                 /* MPP = M */
    li      t0, (1 << 17)
    csrs    mstatus, t0                 /* MPRV: loads as MPP = M, untranslated */
    la      a3, pg_x
    ld      a4, 0(a3)
    CHECK(1, a4, 0x3333)
    li      t0, (3 << 11)
    csrc    mstatus, t0
    li      t0, (1 << 11) | (1 << 18)
    csrs    mstatus, t0                 /* MPP = S, SUM: VA 0x40000000 is the U page */
    li      a5, 0x40000000
    ld      a4, 0(a5)
    CHECK(2, a4, 0x1111)
    li      t0, (3 << 11)
    csrs    mstatus, t0                 /* MPP = M again */
    ld      a4, 0(a3)
    CHECK(3, a4, 0x3333)
    la      t0, after_mret
    csrw    mepc, t0
    mret                                /* M → M: MPP becomes U and MPRV stays set */
after_mret:
    li      s2, 0
    ld      a4, 0(a5)                   /* as U: the U page loads */
    li      t0, (1 << 17)
    CHECK(4, a4, 0x1111)
    ld      a4, 0(a3)                   /* as U through the supervisor gigapage: page fault, to M */
    csrc    mstatus, t0
    CHECK(5, s2, 13)
    csrw    satp, zero
`,
    `${RECORDING_MTRAP}${VM_TABLES}`,
    { qemu: false },
  );
});

describe("PMP (priv 1.12 §3.7)", () => {
  check(
    "NAPOT and TOR regions for S-mode, no-match denial, locked entries bind M-mode",
    String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    /* entry 0: TOR [0, data_page) RWX ; entry 1: NAPOT data_page 4 KiB read-only ; entry 2: NAPOT whole RAM RWX */
    la      t1, data_page
    srli    t2, t1, 2
    csrw    pmpaddr0, t2
    srli    t2, t1, 2
    ori     t2, t2, 0x1ff               /* NAPOT 4 KiB: base>>2 | (size/8 - 1) */
    csrw    pmpaddr1, t2
    li      t2, 0x80000000
    srli    t2, t2, 2
    li      t3, (0x10000000 >> 3) - 1   /* NAPOT 256 MiB */
    or      t2, t2, t3
    csrw    pmpaddr2, t2
    /* cfg2 = NAPOT RWX, cfg1 = NAPOT R, cfg0 = TOR RWX */
    li      t2, (0x1f << 16) | (0x19 << 8) | 0x0f
    csrw    pmpcfg0, t2
    ${enter("S", "s_pmp")}
s_pmp:
    la      a3, data_page
    ld      a4, 0(a3)
    CHECK(1, a4, 0x55)
    li      s2, 0
    sd      a4, 0(a3)                   /* entry 1 matches first: read-only → store access fault */
    CHECK(2, s2, 7)
    li      a3, 0x90000000              /* outside every entry → load access fault */
    li      s2, 0
    ld      a4, 0(a3)
    CHECK(3, s2, 5)
    ecall
    CHECK(4, s2, 9)
    /* back in M: lock entry 1 (read-only) and a store from M faults too */
    li      t2, (0x80 << 8)
    csrs    pmpcfg0, t2
    la      a3, data_page
    li      s2, 0
    sd      a4, 0(a3)
    CHECK(5, s2, 7)
`,
    `${RECORDING_MTRAP}
    .data
    .align 12
data_page: .dword 0x55
    .align 12
`,
  );
});

describe("atomics and misaligned accesses", () => {
  // QEMU 7.2 performs misaligned AMOs silently; the A extension (unpriv §8.4) requires an
  // address-misaligned or access-fault exception without Zam, so this one is ringzero-only.
  check(
    "a misaligned AMO raises store/AMO address-misaligned",
    String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    la      a0, word
    addi    a1, a0, 4
    li      s2, 0
    amoadd.d t2, t1, (a1)
    CHECK(1, s2, 6)
    CHECKR(2, s4, a1)
`,
    `${RECORDING_MTRAP}
    .data
    .align 3
word: .dword 7, 0
`,
    { qemu: false },
  );
  check(
    "LR/SC reservation, AMOs on words and doublewords, misaligned AMO faults",
    String.raw`
    la      t0, rec_mtrap
    csrw    mtvec, t0
    la      a0, word
    li      t1, 5
    lr.d    t2, (a0)
    addi    t2, t2, 1
    sc.d    t3, t2, (a0)
    CHECK(1, t3, 0)
    ld      t4, 0(a0)
    CHECK(2, t4, 8)
    sc.d    t3, t2, (a0)                /* no reservation: fails */
    CHECK(3, t3, 1)
    li      t1, -3
    amomax.d t2, t1, (a0)
    CHECK(4, t2, 8)
    amomaxu.d t2, t1, (a0)
    ld      t4, 0(a0)
    CHECK(5, t4, -3)
    amominu.w t2, zero, (a0)
    CHECK(6, t2, -3)
    lw      t4, 0(a0)
    CHECK(7, t4, 0)
    li      t1, 0x7fffffff
    amoadd.w t2, t1, (a0)
    li      t1, 1
    amoadd.w t2, t1, (a0)
    lw      t4, 0(a0)
    CHECK(8, t4, -0x80000000)
    amoswap.d t2, zero, (a0)
    amoor.d t2, t1, (a0)
    amoxor.d t2, t1, (a0)
    amoand.d t2, t1, (a0)
    CHECK(9, t2, 0)

    /* misaligned plain loads and stores complete (as on QEMU), also across a page */
    la      a2, cross
    addi    a2, a2, -3
    li      t1, 0x1122334455667788
    sd      t1, 0(a2)
    ld      t4, 0(a2)
    CHECKR(11, t4, t1)
    lw      t4, 1(a2)
    li      t1, 0x44556677
    CHECKR(12, t4, t1)
`,
    `${RECORDING_MTRAP}
    .data
    .align 3
word: .dword 7
    .align 12
    .space 4096
cross: .dword 0
`,
  );
});

describe("jalr, c.jr and c.jalr targets (RISC-V unpriv 20191213 §2.5, §16.4)", () => {
  // target = (rs1 + imm) & ~1 over all 64 bits: the carry out of the low word comes from the
  // sum, not from the sum with bit 0 cleared (an odd rs1 with imm <= 0 once gained 2^32).
  check(
    "odd targets in RAM (low word bit 31 set) land on the instruction; far targets fault with the 64-bit address",
    String.raw`
    .option norelax
    la      t0, far_trap
    csrw    mtvec, t0
    .option push
    .option norvc
1:  auipc   t0, 0                       /* the issue's shape: auipc; addi odd; jalr 0(t0) */
    addi    t0, t0, 17                  /* 1b + 17: odd, low word bit 31 set */
    jalr    t1, 0(t0)
    j       fail
2:  .option pop                         /* 2b = 1b + 16 */
    la      t0, 3f+1
    jalr    t1, -2(t0)                  /* imm < 0 with an odd base */
    j       fail
    nop
3:  la      t0, 4f+2047
    jalr    t1, -2046(t0)               /* odd base, odd sum */
    j       fail
4:  la      t0, 5f+1
    c.jr    t0
    j       fail
5:  la      t0, 6f+1
    c.jalr  t0
    j       fail
6:  la      s11, 7f
    li      t0, 0xffffffff              /* carry into the high word: 0x1_0000_0000 */
    jalr    t1, 2(t0)
    j       fail
7:  CHECK(1, s2, 1)                     /* instruction access fault */
    li      t1, 0x100000000
    CHECKR(2, s3, t1)
    CHECKR(3, s4, t1)
    la      s11, 8f
    li      t0, 0x100000001             /* borrow from the high word: 0xffff_fff0 */
    jalr    t1, -17(t0)
    j       fail
8:  li      t1, 0xfffffff0
    CHECKR(4, s3, t1)
    CHECKR(5, s4, t1)
`,
    String.raw`
    .align 4
far_trap:
    csrr    s2, mcause
    csrr    s3, mepc
    csrr    s4, mtval
    jr      s11
`,
  );
});

describe("Sdtrig debug triggers (debug spec 1.0 §5.7; priv 1.12 §3.1.15)", () => {
  // Arm the selected trigger: tdata2 = address, tdata1 = control; clear the trap record.
  const ARM = (ctl: string, addr: string) => String.raw`
    la      t0, ${addr}
    csrw    tdata2, t0
    li      t0, ${ctl}
    csrw    tdata1, t0
    li      s2, 0
    li      s5, 0`;
  const TRIG_DATA = String.raw`
    .data
    .align 6
    .dword 0
tdat: .dword 0x1111, 0x2222, 0x3333, 0x4444
`;
  // The trap points are 4-byte instructions (the recording handlers skip 4 bytes): norvc.
  check(
    "reset state and WARL CSRs; mcontrol6 and mcontrol execute, load, store and AMO triggers in M-mode raise breakpoints before the instruction",
    String.raw`
    .option norvc
    la      t0, rec_mtrap
    csrw    mtvec, t0
    csrr    a0, tselect
    CHECK(1, a0, 0)
    csrr    a0, tdata1
    li      t1, 0x2000000000000000      /* type 2 (mcontrol), nothing enabled: QEMU's reset value */
    CHECKR(2, a0, t1)
    csrr    a0, tdata2
    CHECK(3, a0, 0)
    csrr    a0, tdata3
    CHECK(4, a0, 0)
    csrr    a0, tinfo
    andi    a0, a0, 0x44                /* types 2 and 6 */
    CHECK(5, a0, 0x44)
    li      t0, 1
    csrw    tselect, t0
    csrr    a0, tselect
    CHECK(6, a0, 1)
    li      t0, 2                       /* no trigger 2: tselect is WARL and keeps 1 */
    csrw    tselect, t0
    csrr    a0, tselect
    CHECK(7, a0, 1)
    csrw    tselect, zero
    li      t0, 0x600000000000005c      /* m s u execute store, no load: reads back */
    csrw    tdata1, t0
    csrr    a0, tdata1
    CHECKR(8, a0, t0)
    li      t0, 0x6000000000000000
    csrw    tdata1, t0

    /* execute (m): the breakpoint is taken before the instruction, tval 0 */
    ${ARM("0x6000000000000044", "1f")}
    li      a1, 0
    nop
1:  li      a1, 7
    CHECK(10, s2, 3)
    la      t1, 1b
    CHECKR(11, s3, t1)
    CHECK(12, s4, 0)
    CHECK(13, a1, 0)                    /* skipped by the handler: never executed */
    li      s2, 0
    la      a2, 1b
    lw      a0, 0(a2)                   /* a load from the execute trigger's address */
    CHECK(14, s2, 0)

    /* load: an access that touches tdata2 fires; others do not; the load does not write rd */
    ${ARM("0x6000000000000041", "tdat")}
    la      a2, tdat
    li      a0, -5
2:  lw      a0, 0(a2)
    CHECK(20, s2, 3)
    la      t1, 2b
    CHECKR(21, s3, t1)
    CHECK(22, s4, 0)
    CHECK(23, a0, -5)
    li      s2, 0
    ld      a0, -4(a2)                  /* misaligned, covers tdat */
    CHECK(24, s2, 3)
    li      s2, 0
    lw      a0, 8(a2)
    lb      a0, -1(a2)
    sd      a0, 0(a2)                   /* a store: not a load trigger */
    CHECK(25, s2, 0)
    ld      a0, 0(a2)                   /* after accesses to its page, a matching one still fires */
    CHECK(26, s2, 3)
    li      t0, 0x3333
    sd      t0, 0(a2)

    /* store: fires before memory changes; loads do not fire */
    ${ARM("0x6000000000000042", "tdat")}
    li      t0, 0x5555
3:  sd      t0, 0(a2)
    CHECK(30, s2, 3)
    la      t1, 3b
    CHECKR(31, s3, t1)
    ld      a0, 0(a2)
    CHECK(32, a0, 0x3333)               /* the store did not happen */
    li      s2, 0
    sw      t0, 8(a2)
    CHECK(33, s2, 0)

    /* AMOs both load and store: a load or a store trigger fires */
    li      s2, 0
    amoadd.w a0, t0, (a2)
    CHECK(40, s2, 3)
    ${ARM("0x6000000000000041", "tdat")}
    amoswap.d a0, t0, (a2)
    CHECK(41, s2, 3)
    ld      a0, 0(a2)
    CHECK(42, a0, 0x3333)
    li      s2, 0
    lr.d    a0, (a2)
    CHECK(43, s2, 3)

    /* 8-bit size: a byte access at tdata2 fires */
    ${ARM("0x6000000000010041", "tdat+3")}
    lb      a0, 3(a2)
    CHECK(50, s2, 3)

    /* mcontrol (type 2): execute and load */
    ${ARM("0x2000000000000044", "4f")}
    li      a1, 0
4:  li      a1, 7
    CHECK(60, s2, 3)
    CHECK(61, a1, 0)
    ${ARM("0x2000000000000041", "tdat+8")}
    ld      a0, 8(a2)
    CHECK(62, s2, 3)
    csrr    a0, tdata1
    li      t1, 0x2000000000000041
    CHECKR(63, a0, t1)

    /* a trigger in M-mode only does not fire in M with m=0 */
    ${ARM("0x6000000000000019", "tdat")}  /* s u load */
    ld      a0, 0(a2)
    CHECK(70, s2, 0)

    /* trigger 1, while trigger 0 is disabled */
    li      t0, 0x6000000000000000
    csrw    tdata1, t0
    li      t0, 1
    csrw    tselect, t0
    ${ARM("0x6000000000000041", "tdat+16")}
    ld      a0, 16(a2)
    CHECK(80, s2, 3)
    li      s2, 0
    ld      a0, 0(a2)
    CHECK(82, s2, 0)
    li      t0, 0x6000000000000000
    csrw    tdata1, t0
    csrw    tselect, zero
`,
    `${RECORDING_MTRAP}${TRIG_DATA}`,
  );

  check(
    "U-mode triggers (u bit) fire in U, not in M; S-mode triggers match virtual addresses under Sv39 and delegate through medeleg",
    String.raw`
    .option norvc
    la      t0, u_mtrap
    csrw    mtvec, t0
    ${PMP_ALL}
    /* trigger 0: U loads of tdat; trigger 1: U execution of u_pt */
    ${ARM("0x6000000000000009", "tdat")}
    li      t0, 1
    csrw    tselect, t0
    ${ARM("0x600000000000000c", "u_pt")}
    csrw    tselect, zero
    la      a2, tdat
    ld      a0, 0(a2)                   /* M-mode: no u trigger fires */
    CHECK(1, s2, 0)
    ${enter("U", "in_u")}
in_u:
    la      a2, tdat
1:  ld      a0, 0(a2)
    CHECK(2, s2, 3)                     /* taken to M (not delegated) and back to U */
    la      t1, 1b
    CHECKR(3, s3, t1)
    li      s2, 0
    li      a1, 0
u_pt:
    li      a1, 7
    CHECK(4, s2, 3)
    CHECK(5, a1, 0)
    ecall                               /* back to M */
back_m:
    CHECK(6, s2, 8)
    /* clear both triggers before S-mode */
    li      t0, 0x6000000000000000
    csrw    tdata1, t0
    li      t0, 1
    csrw    tselect, t0
    li      t0, 0x6000000000000000
    csrw    tdata1, t0
    csrw    tselect, zero

    ${VM_BUILD}
    li      t0, (1 << 3)
    csrs    medeleg, t0                 /* breakpoints from S go to S */
    /* trigger 0: S loads of VA 0x40001000 (pg_ro); trigger 1: S execution of s_pt */
    li      t0, 0x40001000
    csrw    tdata2, t0
    li      t0, 0x6000000000000011
    csrw    tdata1, t0
    li      t0, 1
    csrw    tselect, t0
    ${ARM("0x6000000000000014", "s_pt")}
    csrw    tselect, zero
    ${enter("S", "in_s")}
in_s:
    li      s5, 0
    li      a2, 0x40001000
2:  ld      a0, 0(a2)
    CHECK(10, s5, 3)                    /* delegated: the S handler recorded it */
    la      t1, 2b
    CHECKR(11, s6, t1)
    CHECK(12, s7, 0)
    CHECK(13, s2, 0)                    /* M saw nothing */
    li      s5, 0
    la      a2, pg_ro                   /* the same page through its physical address (identity VA) */
    ld      a0, 0(a2)
    CHECK(14, s5, 0)
    li      a1, 0
s_pt:
    li      a1, 7
    CHECK(15, s5, 3)
    CHECK(16, a1, 0)
    la      t1, s_pt
    CHECKR(17, s6, t1)
`,
    `${RECORDING_MTRAP}
    .align 4
u_mtrap:                                /* rec_mtrap, except that an ecall from U continues in M at back_m */
    csrr    s2, mcause
    li      t0, 8
    beq     s2, t0, 1f
    csrr    s3, mepc
    csrr    s4, mtval
    addi    t0, s3, 4
    csrw    mepc, t0
    mret
1:  la      t0, back_m
    csrw    mepc, t0
    li      t0, (3 << 11)
    csrs    mstatus, t0
    mret
${VM_TABLES}
tdat: .dword 0x1111, 0x2222
`,
  );

  // Where QEMU 7.2 departs from the spec, ringzero follows the spec: tinfo.version = 1 and type
  // 15 (QEMU: 0, types 2 and 6 only); writing 0 to tdata1 disables the trigger (QEMU ignores the
  // write); vs/vu are 0 without the H extension (QEMU keeps them); size selects the access size
  // (QEMU 7.2 reads it as a byte length); a load or store matches when tdata2 is one of the bytes
  // it accesses (QEMU matches any overlap with [tdata2, tdata2+8)); a load/store address
  // breakpoint outranks the access's own faults (QEMU translates first).
  check(
    "spec details: tinfo, disabling by writing 0, WARL fields, size, compare values, priority over access faults, SC",
    String.raw`
    .option norvc
    la      t0, rec_mtrap
    csrw    mtvec, t0
    la      a2, tdat
    csrr    a0, tinfo
    li      t1, 0x01008044              /* version 1; types 2, 6, 15 */
    CHECKR(1, a0, t1)
    ${ARM("0x6000000000000044", "1f")}
    csrw    tdata1, zero                /* writing 0 disables the trigger: type 15 */
    csrr    a0, tdata1
    li      t1, 0xf000000000000000
    CHECKR(2, a0, t1)
1:  nop
    CHECK(3, s2, 0)
    li      t0, 0x3000000000000041      /* icount is not implemented: the write is ignored */
    csrw    tdata1, t0
    csrr    a0, tdata1
    CHECKR(4, a0, t1)
    li      t0, 0x6800000007ffffff      /* dmode, hit, vs, vu, select, size 7, action, chain, match, uncertainen */
    csrw    tdata1, t0
    csrr    a0, tdata1
    li      t1, 0x600000000000005f
    CHECKR(5, a0, t1)
    li      t0, 0x2000000000200041      /* mcontrol sizehi:sizelo = 4 (48-bit) is not implemented: any */
    csrw    tdata1, t0
    csrr    a0, tdata1
    li      t1, 0x2000000000000041
    CHECKR(6, a0, t1)

    /* size 3 (32-bit): only 4-byte accesses */
    ${ARM("0x6000000000030041", "tdat")}
    lb      a0, 0(a2)
    lh      a0, 0(a2)
    ld      a0, 0(a2)
    CHECK(10, s2, 0)
    lw      a0, 0(a2)
    CHECK(11, s2, 3)

    /* compare values: the bytes accessed */
    ${ARM("0x6000000000000043", "tdat")}
    lw      a0, 4(a2)
    lb      a0, 1(a2)
    sw      a0, 4(a2)
    lb      a0, -1(a2)
    CHECK(20, s2, 0)
    lw      a0, -2(a2)                  /* misaligned, touches tdat and tdat+1 */
    CHECK(21, s2, 3)
    li      s2, 0
    lb      a0, 0(a2)
    CHECK(22, s2, 3)

    /* the breakpoint outranks an access fault and a misaligned AMO (priv 1.12 Table 3.7) */
    li      t0, 0xffffffff80000000
    csrw    tdata2, t0
    li      s2, 0
    li      a3, 0xffffffff80000000
    ld      a0, 0(a3)
    CHECK(30, s2, 3)
    ${ARM("0x6000000000000041", "tdat+2")}
    addi    a3, a2, 2
    amoadd.w a0, a0, (a3)
    CHECK(31, s2, 3)

    /* SC stores only when it succeeds */
    ${ARM("0x6000000000000042", "tdat")}
    sc.d    a0, a0, (a2)                /* no reservation: fails, no store, no breakpoint */
    CHECK(40, s2, 0)
    CHECK(41, a0, 1)
    lr.d    a0, (a2)
    sc.d    a0, a0, (a2)
    CHECK(42, s2, 3)

    /* execute with size 2: compressed instructions only */
    ${ARM("0x6000000000020044", "5f")}
    li      a1, 0
5:  li      a1, 7
    CHECK(50, s2, 0)
    CHECK(51, a1, 7)
    ${ARM("0x6000000000020044", "6f")}
    .option rvc
6:  c.li    a1, 3
    .option norvc
    CHECK(52, s2, 3)
    li      t0, 0x6000000000000000
    csrw    tdata1, t0
`,
    `    .align 4
rec_mtrap:
    csrr    s2, mcause
    csrr    s3, mepc
    csrr    s4, mtval
    csrr    t0, mepc
    lhu     t1, 0(t0)
    andi    t1, t1, 3
    li      t2, 3
    addi    t0, t0, 2                   /* skip the instruction: 2 or 4 bytes */
    bne     t1, t2, 1f
    addi    t0, t0, 2
1:  csrw    mepc, t0
    mret
    .data
    .align 6
    .dword 0
tdat: .dword 0x1111, 0x2222
`,
    { qemu: false },
  );
});
