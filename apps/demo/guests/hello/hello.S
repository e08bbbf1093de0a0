/* The embedded demo guest of `ringzero run`: an S-mode program on the
 * hypervisor's built-in SBI and QEMU virt's map (entered as Linux is, with
 * a0 = hart id, a1 = device tree). It prints through the 16550 UART,
 * computes a few things with the integer, M, A, F/D and C extensions, takes
 * and returns from an illegal-instruction trap (delegated to S-mode), reads
 * the goldfish RTC, sleeps in WFI until an SBI timer interrupt, and powers
 * off through the SBI system-reset call.
 * Rebuild: guests/hello/build.sh (Debian gcc-riscv64-unknown-elf). */
    .equ UART0, 0x10000000
    .equ TEST,  0x100000

    .section .text.init, "ax"
    .globl _start
_start:
    la      sp, stack_top
    la      t0, trap
    csrw    stvec, t0
    li      t0, (1 << 13)           /* sstatus.FS = Initial */
    csrs    sstatus, t0

    la      a0, banner
    call    puts

    /* fib(40) iteratively, printed in decimal */
    li      t0, 0
    li      t1, 1
    li      t2, 40
1:  add     t3, t0, t1
    mv      t0, t1
    mv      t1, t3
    addi    t2, t2, -1
    bnez    t2, 1b
    la      a0, msg_fib
    call    puts
    mv      a0, t0
    call    putdec

    /* 64-bit multiply-high and divide */
    li      t0, 0x123456789abcdef
    li      t1, 0xfedcba987
    mulhu   s1, t0, t1
    divu    s2, t0, t1
    la      a0, msg_mul
    call    puts
    mv      a0, s1
    call    putdec
    la      a0, msg_div
    call    puts
    mv      a0, s2
    call    putdec

    /* atomics */
    la      t0, counter
    li      t1, 5
    amoadd.d t2, t1, (t0)
    amoadd.d t2, t1, (t0)
    ld      s1, 0(t0)
    la      a0, msg_amo
    call    puts
    mv      a0, s1
    call    putdec

    /* double precision: sqrt(2) * 1e9, truncated */
    li      t0, 2
    fcvt.d.l ft0, t0
    fsqrt.d ft1, ft0
    li      t0, 1000000000
    fcvt.d.l ft2, t0
    fmul.d  ft3, ft1, ft2
    fcvt.l.d s1, ft3, rtz
    la      a0, msg_fp
    call    puts
    mv      a0, s1
    call    putdec

    /* an illegal instruction traps (to S-mode: the SBI delegates it) and comes back */
    .word   0x00000000
    la      a0, msg_trap
    call    puts
    ld      a0, trapped_cause
    call    putdec

    /* the goldfish RTC: seconds since the epoch */
    li      t0, 0x101000
    lwu     t1, 0(t0)               /* TIME_LOW first: it latches TIME_HIGH */
    lwu     t2, 4(t0)
    slli    t2, t2, 32
    or      s1, t1, t2
    li      t0, 1000000000
    divu    s1, s1, t0
    la      a0, msg_rtc
    call    puts
    mv      a0, s1
    call    putdec

    /* sleep 10 ms in WFI until an SBI timer interrupt */
    rdtime  s1
    li      t0, (1 << 5)
    csrs    sie, t0                 /* STIE */
    li      t0, 100000              /* 10 ms at 10 MHz */
    add     a0, s1, t0
    li      a7, 0x54494d45          /* SBI TIME set_timer */
    li      a6, 0
    ecall
3:  wfi
    csrr    t0, sip
    andi    t0, t0, (1 << 5)
    beqz    t0, 3b
    rdtime  a1
    sub     a1, a1, s1
    li      t0, 10000               /* ticks per ms */
    divu    s1, a1, t0
    la      a0, msg_sleep
    call    puts
    mv      a0, s1
    call    putdec

    la      a0, msg_bye
    call    puts
    li      a7, 0x53525354          /* SBI SRST: shutdown */
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
2:  wfi
    j       2b

/* trap: record scause, skip the faulting 4-byte instruction */
    .align 4
trap:
    csrr    t5, scause
    la      t6, trapped_cause
    sd      t5, 0(t6)
    csrr    t5, sepc
    addi    t5, t5, 4
    csrw    sepc, t5
    sret

/* puts(a0): NUL-terminated string to the UART (polls LSR.THRE) */
puts:
    li      t4, UART0
1:  lbu     t5, 0(a0)
    beqz    t5, 3f
2:  lbu     t6, 5(t4)
    andi    t6, t6, 0x20
    beqz    t6, 2b
    sb      t5, 0(t4)
    addi    a0, a0, 1
    j       1b
3:  ret

/* putdec(a0): unsigned decimal and a newline */
putdec:
    addi    sp, sp, -32
    mv      t5, sp
    addi    t5, t5, 31
    sb      zero, 0(t5)
    li      t6, 10
    addi    t5, t5, -1
    sb      t6, 0(t5)
1:  remu    t3, a0, t6
    divu    a0, a0, t6
    addi    t3, t3, '0'
    addi    t5, t5, -1
    sb      t3, 0(t5)
    bnez    a0, 1b
    mv      a0, t5
    mv      a5, ra
    call    puts
    mv      ra, a5
    addi    sp, sp, 32
    ret

    .section .rodata
banner:    .asciz "ringzero demo guest: RV64GC in S-mode on the built-in SBI\n"
msg_fib:   .asciz "fib(40)            = "
msg_mul:   .asciz "mulhu              = "
msg_div:   .asciz "divu               = "
msg_amo:   .asciz "amoadd.d x2        = "
msg_fp:    .asciz "sqrt(2) * 1e9      = "
msg_trap:  .asciz "trap scause        = "
msg_rtc:   .asciz "rtc seconds        = "
msg_sleep: .asciz "slept in WFI (ms)  = "
msg_bye:   .asciz "bye\n"

    .data
    .align 3
counter:       .dword 0
trapped_cause: .dword 0
    .bss
    .align 4
stack: .space 4096
stack_top:
