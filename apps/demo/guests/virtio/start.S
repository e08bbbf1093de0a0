/* Entry of the virtio probe guest: S-mode, a0 = hart id, a1 = device tree
 * (the RISC-V Linux boot protocol, as OpenSBI or ringzero's SBI enter it). */
    .section .text.init, "ax"
    .globl _start
_start:
    la      sp, stack_top
    call    main
    /* SBI SRST shutdown; the reason is main's result (0 = no reason, else system failure) */
    snez    a1, a0
    li      a0, 0
    li      a6, 0
    li      a7, 0x53525354
    ecall
1:  wfi
    j       1b

    .section .bss
    .align  12
    .space  16384
stack_top:
