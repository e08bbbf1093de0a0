/* A minimal virtio-mmio driver (virtio 1.2 §4.2, split virtqueues §2.7) that
 * probes QEMU virt's eight slots and exercises every device it finds:
 * blk (write a sector, read it back), rng (read entropy), console (write a
 * line on port 0), net (send an ARP request for the gateway, wait for a
 * frame). It polls the used rings (no interrupts) and reports through the
 * SBI debug console, so the same binary runs on QEMU (-bios default) and on
 * ringzero. Build: build.sh (Debian gcc-riscv64-unknown-elf). */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

#define MMIO_BASE 0x10001000UL
#define MMIO_STRIDE 0x1000UL
#define R(base, off) (*(volatile u32 *)((base) + (off)))
/* virtio-mmio v2 registers (§4.2.2) */
enum {
  MAGIC = 0x000, VERSION = 0x004, DEVICE_ID = 0x008, DEV_FEATURES = 0x010, DEV_FEATURES_SEL = 0x014,
  DRV_FEATURES = 0x020, DRV_FEATURES_SEL = 0x024, QUEUE_SEL = 0x030, QUEUE_NUM_MAX = 0x034, QUEUE_NUM = 0x038,
  QUEUE_READY = 0x044, QUEUE_NOTIFY = 0x050, INT_STATUS = 0x060, INT_ACK = 0x064, STATUS = 0x070,
  Q_DESC_LO = 0x080, Q_DESC_HI = 0x084, Q_DRIVER_LO = 0x090, Q_DRIVER_HI = 0x094, Q_DEVICE_LO = 0x0a0,
  Q_DEVICE_HI = 0x0a4, CONFIG_GEN = 0x0fc, CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64, S_FAILED = 128 };
#define F_VERSION_1 32
#define QSIZE 8
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

struct desc { u64 addr; u32 len; u16 flags; u16 next; };
struct avail { u16 flags; u16 idx; u16 ring[QSIZE]; u16 used_event; };
struct used_elem { u32 id; u32 len; };
struct used { u16 flags; u16 idx; struct used_elem ring[QSIZE]; u16 avail_event; };
struct queue { struct desc desc[QSIZE] __attribute__((aligned(16))); struct avail avail __attribute__((aligned(2)));
               struct used used __attribute__((aligned(4))); u16 last_used; u16 num; };

static struct queue queues[8][2] __attribute__((aligned(4096)));

/* ---- SBI console ---- */
static long sbi(long eid, long fid, long a0, long a1, long a2) {
  register long r0 asm("a0") = a0, r1 asm("a1") = a1, r2 asm("a2") = a2;
  register long r6 asm("a6") = fid, r7 asm("a7") = eid;
  asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return r0;
}
static void putc_(char c) { sbi(1, 0, c, 0, 0); } /* legacy console_putchar: works on OpenSBI and ringzero */
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void putdec(u64 v) { char b[24]; int i = 0; do { b[i++] = '0' + v % 10; v /= 10; } while (v); while (i) putc_(b[--i]); }
static void puthex(u64 v, int digits) { for (int i = digits - 1; i >= 0; i--) putc_("0123456789abcdef"[(v >> (4 * i)) & 15]); }
static u64 rdtime(void) { u64 t; asm volatile("rdtime %0" : "=r"(t)); return t; }
static void *memset_(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
static int memcmp_(const void *a, const void *b, u64 n) { const u8 *x = a, *y = b; for (; n; n--, x++, y++) if (*x != *y) return *x - *y; return 0; }
void *memset(void *d, int c, unsigned long n) { return memset_(d, c, n); }
void *memcpy(void *d, const void *s, unsigned long n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }

/* ---- transport ---- */
static int init_device(u64 base, u64 want_features) {
  R(base, STATUS) = 0; /* reset (§4.2.3.1) */
  if (R(base, STATUS) != 0) return -1;
  R(base, STATUS) = S_ACK;
  R(base, STATUS) = S_ACK | S_DRIVER;
  R(base, DEV_FEATURES_SEL) = 1;
  u64 f = (u64)R(base, DEV_FEATURES) << 32;
  R(base, DEV_FEATURES_SEL) = 0;
  f |= R(base, DEV_FEATURES);
  if (!(f & (1UL << F_VERSION_1))) return -2;
  u64 accept = f & (want_features | (1UL << F_VERSION_1));
  R(base, DRV_FEATURES_SEL) = 1;
  R(base, DRV_FEATURES) = (u32)(accept >> 32);
  R(base, DRV_FEATURES_SEL) = 0;
  R(base, DRV_FEATURES) = (u32)accept;
  R(base, STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK;
  if (!(R(base, STATUS) & S_FEATURES_OK)) return -3;
  return 0;
}
static struct queue *setup_queue(u64 base, int slot, int q) {
  struct queue *vq = &queues[slot][q];
  memset_(vq, 0, sizeof *vq);
  R(base, QUEUE_SEL) = q;
  if (R(base, QUEUE_READY)) return 0;
  u32 max = R(base, QUEUE_NUM_MAX);
  if (max == 0) return 0;
  vq->num = max < QSIZE ? max : QSIZE;
  R(base, QUEUE_NUM) = vq->num;
  R(base, Q_DESC_LO) = (u32)(u64)vq->desc; R(base, Q_DESC_HI) = (u32)((u64)vq->desc >> 32);
  R(base, Q_DRIVER_LO) = (u32)(u64)&vq->avail; R(base, Q_DRIVER_HI) = (u32)((u64)&vq->avail >> 32);
  R(base, Q_DEVICE_LO) = (u32)(u64)&vq->used; R(base, Q_DEVICE_HI) = (u32)((u64)&vq->used >> 32);
  R(base, QUEUE_READY) = 1;
  return vq;
}
/* Puts a chain of n descriptors (starting at index 0) in the avail ring and notifies. */
static void submit(u64 base, int q, struct queue *vq, u16 head) {
  vq->avail.ring[vq->avail.idx % vq->num] = head;
  asm volatile("fence rw, rw" ::: "memory"); /* descriptors and ring entry before idx (§2.7.13) */
  vq->avail.idx++;
  asm volatile("fence rw, rw" ::: "memory");
  R(base, QUEUE_NOTIFY) = q;
}
/* Polls for one used element (up to ms milliseconds at the 10 MHz timebase); returns its length or -1. */
static long wait_used(u64 base, struct queue *vq, u64 ms) {
  u64 end = rdtime() + ms * 10000;
  while (*(volatile u16 *)&vq->used.idx == vq->last_used) {
    if (rdtime() > end) return -1;
    if (R(base, STATUS) & S_NEEDS_RESET) return -2;
  }
  asm volatile("fence rw, rw" ::: "memory");
  long len = vq->used.ring[vq->last_used % vq->num].len;
  vq->last_used++;
  R(base, INT_ACK) = R(base, INT_STATUS);
  return len;
}

/* ---- devices ---- */
static u8 buf[4096] __attribute__((aligned(16)));
static u8 buf2[4096] __attribute__((aligned(16)));

struct blk_req { u32 type; u32 reserved; u64 sector; };
static int blk_io(u64 base, struct queue *vq, u32 type, u64 sector, u8 *data, u32 len, u8 *status) {
  static struct blk_req req;
  req.type = type; req.reserved = 0; req.sector = sector;
  /* header, data (none for FLUSH: zero-length buffers are not allowed), status (§5.2.6) */
  int d = 0;
  vq->desc[d] = (struct desc){ (u64)&req, sizeof req, DESC_F_NEXT, (u16)(d + 1) }; d++;
  if (len) { vq->desc[d] = (struct desc){ (u64)data, len, (u16)(DESC_F_NEXT | (type == 0 ? DESC_F_WRITE : 0)), (u16)(d + 1) }; d++; }
  vq->desc[d] = (struct desc){ (u64)status, 1, DESC_F_WRITE, 0 };
  *status = 0xff;
  submit(base, 0, vq, 0);
  return wait_used(base, vq, 2000) < 0 ? -1 : *status;
}
static int test_blk(u64 base, int slot) {
  if (init_device(base, 1UL << 9 /* FLUSH */)) { puts_("virtio-blk: feature negotiation failed\n"); return 1; }
  struct queue *vq = setup_queue(base, slot, 0);
  if (!vq) return 1;
  R(base, STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
  u64 cap = *(volatile u32 *)(base + CONFIG) | (u64) * (volatile u32 *)(base + CONFIG + 4) << 32;
  puts_("virtio-blk: capacity "); putdec(cap); puts_(" sectors\n");
  static u8 st;
  for (int i = 0; i < 512; i++) buf[i] = (u8)(i * 7 + 3);
  memcpy(buf, "ringzero virtio-blk sector 1", 28);
  int w = blk_io(base, vq, 1 /* OUT */, 1, buf, 512, &st);
  memset_(buf2, 0, 512);
  int r = blk_io(base, vq, 0 /* IN */, 1, buf2, 512, &st);
  int same = memcmp_(buf, buf2, 512) == 0;
  puts_("virtio-blk: write status "); putdec(w); puts_(", read status "); putdec(r);
  puts_(same ? ", sector 1 read back ok\n" : ", sector 1 MISMATCH\n");
  int f = blk_io(base, vq, 4 /* FLUSH */, 0, buf2, 0, &st);
  puts_("virtio-blk: flush status "); putdec(f); puts_("\n");
  int bad = blk_io(base, vq, 0, cap, buf2, 512, &st); /* one past the end: IOERR (1) */
  puts_("virtio-blk: read past the end gives status "); putdec(bad); puts_("\n");
  return !(w == 0 && r == 0 && same && f == 0 && bad == 1);
}
static int test_rng(u64 base, int slot) {
  if (init_device(base, 0)) return 1;
  struct queue *vq = setup_queue(base, slot, 0);
  if (!vq) return 1;
  R(base, STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
  memset_(buf, 0, 64);
  vq->desc[0] = (struct desc){ (u64)buf, 64, DESC_F_WRITE, 0 };
  submit(base, 0, vq, 0);
  long n = wait_used(base, vq, 2000);
  int zeros = 0;
  for (int i = 0; i < n; i++) zeros += buf[i] == 0;
  puts_("virtio-rng: "); putdec(n < 0 ? 0 : n); puts_(" bytes of entropy\n");
  return !(n > 0 && zeros < n);
}
static int test_console(u64 base, int slot) {
  if (init_device(base, 0)) return 1;
  struct queue *rx = setup_queue(base, slot, 0);
  struct queue *tx = setup_queue(base, slot, 1);
  if (!rx || !tx) return 1;
  R(base, STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
  static const char line[] = "hello from the virtio console\n";
  tx->desc[0] = (struct desc){ (u64)line, sizeof line - 1, 0, 0 };
  submit(base, 1, tx, 0);
  long n = wait_used(base, tx, 2000);
  puts_("virtio-console: wrote a line on port 0\n");
  return n < 0;
}
static int test_net(u64 base, int slot) {
  if (init_device(base, 1UL << 5 /* MAC */ | 1UL << 16 /* STATUS */)) return 1;
  struct queue *rx = setup_queue(base, slot, 0);
  struct queue *tx = setup_queue(base, slot, 1);
  if (!rx || !tx) return 1;
  u8 mac[6];
  for (int i = 0; i < 6; i++) mac[i] = *(volatile u8 *)(base + CONFIG + i);
  /* one receive buffer: virtio_net_hdr (12 bytes with VERSION_1) + a full frame */
  rx->desc[0] = (struct desc){ (u64)buf2, 1526, DESC_F_WRITE, 0 };
  rx->avail.ring[0] = 0;
  rx->avail.idx = 1;
  R(base, STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
  R(base, QUEUE_NOTIFY) = 0;
  puts_("virtio-net: mac ");
  for (int i = 0; i < 6; i++) { puthex(mac[i], 2); if (i < 5) putc_(':'); }
  puts_("\n");
  /* ARP who-has 10.0.2.2 tell 10.0.2.15 (QEMU's user-network layout) */
  u8 *p = buf;
  memset_(p, 0, 12 + 42);
  u8 *e = p + 12;
  for (int i = 0; i < 6; i++) { e[i] = 0xff; e[6 + i] = mac[i]; }
  e[12] = 0x08; e[13] = 0x06;
  u8 arp[] = { 0, 1, 8, 0, 6, 4, 0, 1 };
  memcpy(e + 14, arp, 8);
  memcpy(e + 22, mac, 6);
  u8 spa[] = { 10, 0, 2, 15 }, tpa[] = { 10, 0, 2, 2 };
  memcpy(e + 28, spa, 4);
  memcpy(e + 38, tpa, 4);
  tx->desc[0] = (struct desc){ (u64)p, 12 + 42, 0, 0 };
  submit(base, 1, tx, 0);
  long sent = wait_used(base, tx, 2000);
  long got = wait_used(base, rx, 2000);
  puts_("virtio-net: sent an ARP request, ");
  if (got < 0) { puts_("no frame came back\n"); return 1; }
  u8 *f = buf2 + 12;
  int reply = got >= 12 + 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2;
  puts_(reply ? "ARP reply from " : "frame of ");
  if (reply) { for (int i = 0; i < 4; i++) { putdec(f[28 + i]); if (i < 3) putc_('.'); } puts_(" at ");
               for (int i = 0; i < 6; i++) { puthex(f[22 + i], 2); if (i < 5) putc_(':'); } }
  else putdec(got - 12);
  puts_("\n");
  return sent < 0;
}

int main(void) {
  int fails = 0, found = 0;
  puts_("virtio probe guest: scanning virtio-mmio slots\n");
  for (int slot = 0; slot < 8; slot++) {
    u64 base = MMIO_BASE + slot * MMIO_STRIDE;
    if (R(base, MAGIC) != 0x74726976) continue;
    u32 id = R(base, DEVICE_ID), ver = R(base, VERSION);
    if (id == 0) continue;
    found++;
    puts_("slot "); putdec(slot); puts_(": device "); putdec(id); puts_(" version "); putdec(ver); puts_("\n");
    if (ver != 2) { fails++; continue; }
    int r = 0;
    switch (id) {
      case 1: r = test_net(base, slot); break;
      case 2: r = test_blk(base, slot); break;
      case 3: r = test_console(base, slot); break;
      case 4: r = test_rng(base, slot); break;
      default: puts_("  (no test for this device)\n");
    }
    if (r) { puts_("  FAILED\n"); fails++; }
  }
  puts_("virtio probe guest: "); putdec(found); puts_(" devices, "); putdec(fails); puts_(" failed\n");
  return fails;
}
