// Assembly prelude for self-checking test programs that run unchanged on
// ringzero and on QEMU virt (-bios none): M-mode entry, a UART print routine,
// CHECK macros that end the run through the SiFive test finisher with the
// failing test number, and a default M-mode trap handler that reports.
export const PRELUDE = String.raw`
    .equ UART0, 0x10000000
    .equ FINISHER, 0x100000
#define TESTNUM gp
#define CHECK(n, reg, val) li TESTNUM, n; li t6, val; bne reg, t6, fail
#define CHECKR(n, reg, reg2) li TESTNUM, n; bne reg, reg2, fail

    .section .text.init, "ax"
    .globl _start
_start:
    la      sp, stack_top
    la      t0, default_trap
    csrw    mtvec, t0
    li      t0, (1 << 13)
    csrs    mstatus, t0
    fscsr   zero
    li      TESTNUM, 0
    j       test_main

/* both ends wait for LSR.TEMT first: QEMU drops bytes still in the transmitter when the
   finisher stops the machine (16550 datasheet: TEMT = THR and shift register empty) */
pass:
    call    drain
    li      t0, FINISHER
    li      t1, 0x5555
    sw      t1, 0(t0)
1:  j       1b
fail:
    call    drain
    li      t0, FINISHER
    slli    t1, TESTNUM, 16
    li      t2, 0x3333
    or      t1, t1, t2
    sw      t1, 0(t0)
1:  j       1b

/* an unexpected trap: print mcause/mepc/mtval and fail with test 0xfff */
    .align 4
default_trap:
    csrr    a0, mcause
    call    puthex
    csrr    a0, mepc
    call    puthex
    csrr    a0, mtval
    call    puthex
    li      TESTNUM, 0xfff
    j       fail

/* putc(a0): waits for LSR.THRE like a real 16550 driver; clobbers t4, t5 */
putc:
    li      t4, UART0
1:  lbu     t5, 5(t4)
    andi    t5, t5, 0x20
    beqz    t5, 1b
    sb      a0, 0(t4)
    ret
/* drain: waits for LSR.TEMT; clobbers t4, t5 */
drain:
    li      t4, UART0
1:  lbu     t5, 5(t4)
    andi    t5, t5, 0x40
    beqz    t5, 1b
    ret
/* puthex(a0): 16 hex digits and a newline; clobbers a0-a3, t4, t5 */
puthex:
    mv      a1, a0
    li      a2, 60
    mv      a3, ra
1:  srl     a0, a1, a2
    andi    a0, a0, 15
    addi    a0, a0, '0'
    li      t4, '9'
    ble     a0, t4, 2f
    addi    a0, a0, 39
2:  call    putc
    addi    a2, a2, -4
    bgez    a2, 1b
    li      a0, 10
    call    putc
    mv      ra, a3
    ret

    .bss
    .align 4
stack: .space 8192
stack_top:
    .text
`;
