/* RISC-V reference runner for fpu-qemu.test.ts: executes arbitrary F/D instruction words
 * on a real RISC-V implementation (QEMU user mode) and reports the architectural result.
 * Freestanding (no libc): built with
 *   riscv64-unknown-elf-gcc -O1 -march=rv64gc -mabi=lp64d -nostdlib -ffreestanding -static -mno-relax
 * stdin: records of 9 little-endian u64: insn, frm, f10, f11, f12, x10, then 3 outputs.
 * stdout: the same records with the outputs filled: f13 (raw 64 bits), x11, fflags.
 * Before each instruction f13 = 0x5555 and x11 = 0x1234, so an untouched destination shows.
 * The instruction word is patched into an executable slot only when it changes (cheap on
 * QEMU, which retranslates on writes to code pages). */
typedef unsigned long u64;

extern unsigned int fp_slot[];
void fp_run(u64 *rec);

__asm__(
    ".section .rwx,\"awx\",@progbits\n"
    ".option push\n"
    ".option norvc\n"
    ".balign 4096\n"
    ".globl fp_run\n"
    "fp_run:\n"
    "  mv t0, a0\n"
    "  ld t1, 8(t0)\n"
    "  fsrm t1\n"
    "  ld t1, 16(t0)\n"
    "  fmv.d.x f10, t1\n"
    "  ld t1, 24(t0)\n"
    "  fmv.d.x f11, t1\n"
    "  ld t1, 32(t0)\n"
    "  fmv.d.x f12, t1\n"
    "  li t1, 0x5555\n"
    "  fmv.d.x f13, t1\n"
    "  li a1, 0x1234\n"
    "  ld a0, 40(t0)\n"
    "  fsflags zero\n"
    ".globl fp_slot\n"
    ".balign 4\n"
    "fp_slot:\n"
    "  .word 0x00000013\n"
    "  frflags t1\n"
    "  sd t1, 64(t0)\n"
    "  fmv.x.d t1, f13\n"
    "  sd t1, 48(t0)\n"
    "  sd a1, 56(t0)\n"
    "  ret\n"
    ".balign 4096\n"
    ".option pop\n"
    ".text\n");

static long sys3(long n, long a, long b, long c) {
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
  return a0;
}

#define MAXREC 400000
static u64 buf[MAXREC * 9];

void _start(void) {
  char *p = (char *)buf;
  long total = 0;
  long cap = (long)sizeof buf;
  for (;;) {
    long n = sys3(63, 0, (long)(p + total), cap - total);
    if (n <= 0) break;
    total += n;
    if (total == cap) break;
  }
  long nrec = total / (9 * 8);
  unsigned int cur = 0x00000013;
  for (long i = 0; i < nrec; i++) {
    u64 *r = buf + i * 9;
    unsigned int insn = (unsigned int)r[0];
    if (insn != cur) {
      fp_slot[0] = insn;
      __asm__ volatile("fence.i" ::: "memory");
      cur = insn;
    }
    fp_run(r);
  }
  long off = 0;
  long len = nrec * 9 * 8;
  while (off < len) {
    long n = sys3(64, 1, (long)(p + off), len - off);
    if (n <= 0) break;
    off += n;
  }
  sys3(93, 0, 0, 0);
  for (;;) {
  }
}
