/* An S-mode test guest for the built-in SBI: entered in S-mode with a0 = hart
 * id, a1 = device tree, as Linux is. Prints through SBI DBCN, the legacy SBI
 * console and the 16550 UART; checks the SBI version; reads the goldfish RTC;
 * takes timer interrupts through SBI set_timer and through Sstc's stimecmp,
 * sleeping in WFI between them (race-free: see the wait loops); powers off
 * through SRST. */
    .equ UART0, 0x10000000
    .equ RTC, 0x101000
    .equ SBI_DBCN, 0x4442434e
    .equ SBI_TIME, 0x54494d45
    .equ SBI_SRST, 0x53525354
    .equ SBI_BASE, 0x10

    .section .text.init, "ax"
    .globl _start
_start:
    la      sp, stack_top
    la      t0, strap
    csrw    stvec, t0
    /* DBCN console_write(len, addr_lo, addr_hi) */
    li      a7, SBI_DBCN
    li      a6, 0
    li      a0, 29                  /* strlen of the banner */
    la      a1, banner
    li      a2, 0
    ecall
    bnez    a0, fail
    /* BASE get_spec_version = 2.0 */
    li      a7, SBI_BASE
    li      a6, 0
    ecall
    li      t0, 0x2000000
    bne     a1, t0, fail
    /* legacy console_putchar */
    li      a7, 1
    li      a0, 'L'
    ecall
    li      a0, '\n'
    ecall
    /* RTC seconds since the epoch: TIME_LOW must be read first */
    li      t0, RTC
    lwu     t1, 0(t0)
    lwu     t2, 4(t0)
    slli    t2, t2, 32
    or      a0, t1, t2
    li      t0, 1000000000
    divu    a0, a0, t0
    la      a1, rtc_seconds
    sd      a0, 0(a1)
    /* three timer interrupts through SBI set_timer, sleeping in WFI */
    li      t0, (1 << 5)
    csrs    sie, t0
    csrsi   sstatus, 2
    li      s1, 0
1:  rdtime  a0
    li      t0, 20000               /* 2 ms at 10 MHz */
    add     a0, a0, t0
    li      a7, SBI_TIME
    li      a6, 0
    ecall
    /* Check-then-sleep with SIE clear, so a tick that lands before the WFI is
     * not lost (the WFI would then sleep forever); WFI still wakes on a
     * pending sie-enabled interrupt with SIE clear (priv 1.12 §3.3.3), and
     * setting SIE takes it. */
2:  csrci   sstatus, 2
    la      t0, ticks
    ld      t1, 0(t0)
    bgt     t1, s1, 7f
    wfi
    csrsi   sstatus, 2
    j       2b
7:  csrsi   sstatus, 2
    addi    s1, s1, 1
    li      t0, 3
    blt     s1, t0, 1b
    /* one more through Sstc: stimecmp */
    la      t0, use_sstc
    li      t1, 1
    sd      t1, 0(t0)
    rdtime  a0
    li      t0, 20000
    add     a0, a0, t0
    csrw    stimecmp, a0
3:  csrci   sstatus, 2
    la      t0, ticks
    ld      t1, 0(t0)
    li      t2, 4
    bge     t1, t2, 8f
    wfi
    csrsi   sstatus, 2
    j       3b
8:  csrsi   sstatus, 2
    /* through the UART */
    la      a0, done_msg
    call    uart_puts
    /* SRST shutdown */
    li      a7, SBI_SRST
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
fail:
    la      a0, fail_msg
    call    uart_puts
    li      a7, SBI_SRST
    li      a6, 0
    li      a0, 0
    li      a1, 1                   /* reason: system failure */
    ecall
4:  j       4b

    .align 4
strap:
    addi    sp, sp, -32
    sd      t0, 0(sp)
    sd      t1, 8(sp)
    sd      a0, 16(sp)
    sd      a7, 24(sp)
    csrr    t0, scause
    bgez    t0, fail                /* an exception: not expected */
    la      t0, ticks
    ld      t1, 0(t0)
    addi    t1, t1, 1
    sd      t1, 0(t0)
    la      t0, use_sstc
    ld      t0, 0(t0)
    bnez    t0, 5f
    li      a0, -1                  /* SBI: push the timer out, which clears STIP */
    li      a7, SBI_TIME
    li      a6, 0
    ecall
    j       6f
5:  li      t0, -1
    csrw    stimecmp, t0            /* Sstc: clears STIP */
6:  ld      t0, 0(sp)
    ld      t1, 8(sp)
    ld      a0, 16(sp)
    ld      a7, 24(sp)
    addi    sp, sp, 32
    sret

uart_puts:
    li      t0, UART0
1:  lbu     t1, 0(a0)
    beqz    t1, 3f
2:  lbu     t2, 5(t0)
    andi    t2, t2, 0x20
    beqz    t2, 2b
    sb      t1, 0(t0)
    addi    a0, a0, 1
    j       1b
3:  ret

    .section .rodata
banner:   .ascii "sbi-guest: hello from S-mode\n"
banner_end:
done_msg: .asciz "sbi-guest: 4 timer interrupts, bye\n"
fail_msg: .asciz "sbi-guest: FAIL\n"
    .data
    .align 3
ticks:       .dword 0
use_sstc:    .dword 0
rtc_seconds: .dword 0
    .bss
    .align 4
    .space 4096
stack_top:
