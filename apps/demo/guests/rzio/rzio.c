/* rzio: 4 KiB random I/O on a block device from inside the Linux guest, for
 * `ringzero compare` (blk rows). Freestanding static riscv64 Linux program
 * (raw syscalls, no libc), so the guest kit's busybox initramfs can run it.
 *
 *   rzio read|write DEVICE SECONDS
 *
 * Opens DEVICE with O_DIRECT (reads: O_RDONLY; writes: O_RDWR), takes its
 * size from BLKGETSIZE64 (a regular file: lseek to its end), and issues one
 * 4 KiB pread64/pwrite64 at a time at 4 KiB-aligned offsets drawn from
 * xorshift64 (fixed seed) over the whole device, for SECONDS of
 * CLOCK_MONOTONIC; writes end with fsync, inside the timed span. Prints
 * one line:
 *
 *   RZIOPS <read|write> <ops> <nanoseconds> <errors>
 *
 * and exits 0, or 1 with "RZIOPS error <what> <errno>" on a setup failure.
 * Build: build.sh (Debian gcc-riscv64-linux-gnu). */
typedef unsigned long u64;
typedef long s64;

/* riscv64 uses the generic syscall table (include/uapi/asm-generic/unistd.h). */
enum { SYS_ioctl = 29, SYS_openat = 56, SYS_lseek = 62, SYS_write = 64, SYS_pread64 = 67, SYS_pwrite64 = 68,
       SYS_fsync = 82, SYS_exit_group = 94, SYS_clock_gettime = 113 };
#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_RDWR 2
#define O_DIRECT 040000 /* asm-generic/fcntl.h */
#define BLKGETSIZE64 0x80081272UL /* _IOR(0x12, 114, size_t) */
#define CLOCK_MONOTONIC 1
#define BLOCK 4096

static s64 sys(s64 n, s64 a, s64 b, s64 c, s64 d) {
  register s64 a7 __asm__("a7") = n;
  register s64 a0 __asm__("a0") = a;
  register s64 a1 __asm__("a1") = b;
  register s64 a2 __asm__("a2") = c;
  register s64 a3 __asm__("a3") = d;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3) : "memory");
  return a0;
}

static unsigned char buf[BLOCK] __attribute__((aligned(BLOCK)));
static char line[128];
static int len;

static void put(const char *s) { while (*s) line[len++] = *s++; }
static void num(u64 v) {
  char t[24];
  int n = 0;
  do t[n++] = (char)('0' + v % 10), v /= 10; while (v);
  while (n) line[len++] = t[--n];
}
static void flush(void) { line[len++] = '\n'; sys(SYS_write, 1, (s64)line, len, 0); len = 0; }
static int eq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }
static u64 now(void) {
  s64 ts[2];
  sys(SYS_clock_gettime, CLOCK_MONOTONIC, (s64)ts, 0, 0);
  return (u64)ts[0] * 1000000000UL + (u64)ts[1];
}
static int fail(const char *what, s64 err) {
  put("RZIOPS error "); put(what); put(" "); num((u64)-err); flush();
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4 || !(eq(argv[1], "read") || eq(argv[1], "write"))) {
    put("usage: rzio read|write DEVICE SECONDS"); flush();
    return 2;
  }
  int writing = eq(argv[1], "write");
  u64 seconds = 0;
  for (const char *p = argv[3]; *p >= '0' && *p <= '9'; p++) seconds = seconds * 10 + (u64)(*p - '0');
  s64 fd = sys(SYS_openat, AT_FDCWD, (s64)argv[2], (writing ? O_RDWR : O_RDONLY) | O_DIRECT, 0);
  if (fd < 0) return fail("open", fd);
  u64 size = 0;
  s64 r = sys(SYS_ioctl, fd, (s64)BLKGETSIZE64, (s64)&size, 0);
  if (r < 0) r = (s64)(size = (u64)sys(SYS_lseek, fd, 0, 2 /* SEEK_END */, 0)); /* a regular file */
  if (r < 0) return fail("size", r);
  u64 blocks = size / BLOCK;
  if (blocks == 0) return fail("size", 0);
  for (int i = 0; i < BLOCK; i++) buf[i] = (unsigned char)(i * 131 + 7);
  u64 x = 0x9e3779b97f4a7c15UL, ops = 0, errors = 0;
  u64 t0 = now(), end = t0 + seconds * 1000000000UL, t1 = t0;
  while (t1 < end) {
    for (int i = 0; i < 16; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17; /* xorshift64 */
      s64 off = (s64)((x % blocks) * BLOCK);
      s64 n = sys(writing ? SYS_pwrite64 : SYS_pread64, fd, (s64)buf, BLOCK, off);
      if (n == BLOCK) ops++;
      else errors++;
    }
    t1 = now();
  }
  if (writing && sys(SYS_fsync, fd, 0, 0, 0) < 0) errors++;
  t1 = now();
  put("RZIOPS "); put(writing ? "write " : "read "); num(ops); put(" "); num(t1 - t0); put(" "); num(errors); flush();
  return 0;
}

__asm__(".text\n.globl _start\n_start:\n"
        "  ld a0, 0(sp)\n"   /* argc */
        "  addi a1, sp, 8\n" /* argv */
        "  andi sp, sp, -16\n"
        "  call main\n"
        "  li a7, 94\n" /* exit_group */
        "  ecall\n");
