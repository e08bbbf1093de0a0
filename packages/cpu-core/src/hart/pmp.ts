// Physical memory protection: 16 entries, TOR / NA4 / NAPOT, lock bits
// (RISC-V priv 1.12 §3.7). Ranges are kept as numbers (exact below 2^53; the
// board's physical space is far smaller), recomputed on every CSR write.

export const PMP_ENTRIES = 16;
const PMP_R = 1;
const PMP_W = 2;
const PMP_X = 4;
const PMP_A_SHIFT = 3;
const PMP_L = 0x80;
const A_OFF = 0;
const A_TOR = 1;
const A_NA4 = 2;
const A_NAPOT = 3;

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;

/** Result of checking a page for caching in the TLB. */
export const PAGE_DENY = 0;
export const PAGE_ALLOW = 1;
export const PAGE_PARTIAL = 2;

export class Pmp {
  readonly cfg = new Uint8Array(PMP_ENTRIES);
  readonly addr: bigint[] = new Array<bigint>(PMP_ENTRIES).fill(0n);
  private readonly lo = new Float64Array(PMP_ENTRIES);
  private readonly hi = new Float64Array(PMP_ENTRIES); // exclusive
  /** Number of entries with A != OFF (0 = fast path for M-mode). */
  active = 0;
  /** True when any active entry is locked (then M-mode accesses are checked too). */
  anyLocked = false;

  /** pmpcfgN (N even, RV64) as a 64-bit value. */
  readCfg(reg: number): bigint {
    let v = 0n;
    const base = reg * 4;
    if (base >= PMP_ENTRIES) return 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(this.cfg[base + i]);
    return v;
  }

  writeCfg(reg: number, value: bigint): void {
    const base = reg * 4;
    if (base >= PMP_ENTRIES) return;
    for (let i = 0; i < 8; i++) {
      const e = base + i;
      if (this.cfg[e] & PMP_L) continue; // locked: writes ignored, §3.7.1.3
      let c = Number((value >> BigInt(8 * i)) & 0xffn) & 0x9f;
      if ((c & (PMP_R | PMP_W)) === PMP_W) c &= ~PMP_W; // R=0,W=1 is reserved: WARL to R=W=0
      this.cfg[e] = c;
    }
    this.recompute();
  }

  readAddr(i: number): bigint {
    return i < PMP_ENTRIES ? this.addr[i] : 0n;
  }

  writeAddr(i: number, value: bigint): void {
    if (i >= PMP_ENTRIES) return;
    if (this.cfg[i] & PMP_L) return;
    // A locked TOR entry also locks the pmpaddr below it.
    if (i + 1 < PMP_ENTRIES && this.cfg[i + 1] & PMP_L && ((this.cfg[i + 1] >> PMP_A_SHIFT) & 3) === A_TOR) return;
    this.addr[i] = value & ((1n << 54n) - 1n); // pmpaddr holds PA[55:2]
    this.recompute();
  }

  private recompute(): void {
    let active = 0;
    let locked = false;
    for (let i = 0; i < PMP_ENTRIES; i++) {
      const a = (this.cfg[i] >> PMP_A_SHIFT) & 3;
      const addr = this.addr[i];
      let lo = 0n;
      let hi = 0n;
      if (a === A_TOR) {
        lo = i === 0 ? 0n : this.addr[i - 1] << 2n;
        hi = addr << 2n;
      } else if (a === A_NA4) {
        lo = addr << 2n;
        hi = lo + 4n;
      } else if (a === A_NAPOT) {
        // trailing ones select the size: 2^(t+3) bytes
        let t = 0n;
        while (t < 54n && (addr >> t) & 1n) t++;
        const size = 1n << (t + 3n);
        lo = (addr << 2n) & ~(size - 1n);
        hi = lo + size;
      }
      this.lo[i] = Number(lo);
      this.hi[i] = Number(hi);
      if (a !== A_OFF) {
        active++;
        if (this.cfg[i] & PMP_L) locked = true;
      }
    }
    this.active = active;
    this.anyLocked = locked;
  }

  /** Check an access of `size` bytes at `pa` from privilege `priv` (priv 1.12 §3.7.1). */
  check(pa: number, size: number, access: number, priv: number): boolean {
    const end = pa + size;
    for (let i = 0; i < PMP_ENTRIES; i++) {
      const c = this.cfg[i];
      if (((c >> PMP_A_SHIFT) & 3) === A_OFF) continue;
      const lo = this.lo[i];
      const hi = this.hi[i];
      if (end <= lo || pa >= hi) continue; // no byte matches
      if (pa < lo || end > hi) return false; // partial match fails
      if (priv === 3 && !(c & PMP_L)) return true;
      const need = access === ACCESS_READ ? PMP_R : access === ACCESS_WRITE ? PMP_W : PMP_X;
      return (c & need) !== 0;
    }
    return priv === 3; // no match: M succeeds, S/U fail (entries are implemented)
  }

  /** Whether every byte of [start, end) allows the access: walks the range piecewise between entry boundaries. */
  rangeAllowed(start: number, end: number, access: number, priv: number): boolean {
    let p = start;
    while (p < end) {
      if (!this.check(p, 1, access, priv)) return false;
      let next = end;
      for (let i = 0; i < PMP_ENTRIES; i++) {
        if (((this.cfg[i] >> PMP_A_SHIFT) & 3) === A_OFF) continue;
        const lo = this.lo[i];
        const hi = this.hi[i];
        if (lo > p && lo < next) next = lo;
        if (hi > p && hi < next) next = hi;
      }
      p = next;
    }
    return true;
  }

  /** Classify a whole 4 KiB page for the TLB: allowed throughout, denied, or mixed (check per access). */
  checkPage(page: number, access: number, priv: number): number {
    if (priv === 3 && !this.anyLocked) return PAGE_ALLOW;
    const end = page + 4096;
    for (let i = 0; i < PMP_ENTRIES; i++) {
      const c = this.cfg[i];
      if (((c >> PMP_A_SHIFT) & 3) === A_OFF) continue;
      const lo = this.lo[i];
      const hi = this.hi[i];
      if (end <= lo || page >= hi) continue;
      if (page < lo || end > hi) return PAGE_PARTIAL;
      if (priv === 3 && !(c & PMP_L)) return PAGE_ALLOW;
      const need = access === ACCESS_READ ? PMP_R : access === ACCESS_WRITE ? PMP_W : PMP_X;
      return c & need ? PAGE_ALLOW : PAGE_DENY;
    }
    return priv === 3 ? PAGE_ALLOW : PAGE_DENY;
  }
}
