// Sdtrig: the debug trigger CSRs (RISC-V debug spec 1.0 §5.7) for native
// debugging, without Debug Mode: two address-match triggers, each of type 2
// (mcontrol, deprecated, reset type as on QEMU) or type 6 (mcontrol6, §5.7.13),
// or disabled (type 15). A trigger matches on the virtual address of an
// executed instruction, a load or a store in the modes its m/s/u bits enable,
// and raises a breakpoint exception before the instruction executes (action 0,
// "before"; tval 0, as QEMU). The rest of the WARL fields hold the only values
// implemented: no Debug Mode (dmode, action 1), no chaining, no data (select)
// or range matches (match 0: equal), no hit bits, no H extension (vs, vu).
//
// Compare values (§5.7.13 select=0): the instruction's address for execute;
// every byte address the access touches for loads and stores (the lowest one
// is required, the others recommended). size (0 = any) restricts a trigger to
// accesses (or instructions) of that many bytes.

/** Number of triggers (tselect 0..TRIGGERS-1). */
export const TRIGGERS = 2;

const TYPE_SHIFT = 60n;
const TYPE_MCONTROL = 2n;
const TYPE_MCONTROL6 = 6n;
const TYPE_DISABLED = 15n;
/** m, s, u, execute, store, load: bits 6, 4:0 in both mcontrol and mcontrol6. */
const MODE_AND_OPS = 0x5fn;
export const TDATA1_RESET = TYPE_MCONTROL << TYPE_SHIFT;
/** tinfo (§5.7.5): version 1 (ratified 1.0) and the types every trigger supports: 2, 6, 15. */
export const TINFO = (1n << 24n) | (1n << 2n) | (1n << 6n) | (1n << 15n);

/** Access sizes in bytes by size encoding (§5.7.13); 0 = any; undefined = not implemented. */
const SIZE_BYTES: readonly (number | undefined)[] = [0, 1, 2, 4, undefined, 8];

export const TRIG_LOAD = 1;
export const TRIG_STORE = 2;
export const TRIG_EXEC = 4;

export class Triggers {
  tselect = 0;
  readonly tdata1: bigint[] = new Array(TRIGGERS).fill(TDATA1_RESET);
  readonly tdata2: bigint[] = new Array(TRIGGERS).fill(0n);
  /** Any trigger armed for execute / for loads or stores (the hart's fast paths check these). */
  exec = false;
  data = false;
  // decoded per trigger: operations (TRIG_*), privilege mask (bit p for privilege p), size in
  // bytes (0 = any), tdata2 as (lo, hi) words and as a JS number (NaN when not exact)
  private readonly ops = new Int32Array(TRIGGERS);
  private readonly privs = new Int32Array(TRIGGERS);
  private readonly sizes = new Int32Array(TRIGGERS);
  private readonly lo = new Int32Array(TRIGGERS);
  private readonly hi = new Int32Array(TRIGGERS);
  private readonly num = new Float64Array(TRIGGERS);

  constructor() {
    for (let i = 0; i < TRIGGERS; i++) this.decode(i);
  }

  /** tselect is WARL (§5.7.1): an index >= TRIGGERS leaves it unchanged (QEMU does the same). */
  writeSelect(v: bigint): void {
    if (v < BigInt(TRIGGERS)) this.tselect = Number(v);
  }

  /** tdata1 write (§5.7.2): legalise the WARL fields of the type written. */
  writeData1(v: bigint): void {
    const i = this.tselect;
    const type = v >> TYPE_SHIFT;
    let nv: bigint;
    if (type === 0n || type === TYPE_DISABLED) {
      // "Writing 0 to this register must result in a trigger that is disabled" (type 15 when the
      // trigger supports several types); type 15 ignores every other bit (dmode is 0 here)
      nv = TYPE_DISABLED << TYPE_SHIFT;
    } else if (type === TYPE_MCONTROL) {
      // mcontrol: sizehi (22:21) and sizelo (17:16) form the size encoding
      const size = Number((((v >> 21n) & 3n) << 2n) | ((v >> 16n) & 3n));
      nv = (TYPE_MCONTROL << TYPE_SHIFT) | (v & MODE_AND_OPS);
      if (SIZE_BYTES[size] !== undefined) nv |= v & ((3n << 21n) | (3n << 16n));
    } else if (type === TYPE_MCONTROL6) {
      // mcontrol6 (§5.7.13): size is bits 18:16
      const size = Number((v >> 16n) & 7n);
      nv = (TYPE_MCONTROL6 << TYPE_SHIFT) | (v & MODE_AND_OPS);
      if (SIZE_BYTES[size] !== undefined) nv |= v & (7n << 16n);
    } else {
      return; // a type this trigger does not support: WARL keeps the trigger as it was
    }
    this.tdata1[i] = nv;
    this.decode(i);
  }

  writeData2(v: bigint): void {
    this.tdata2[this.tselect] = v;
    this.decode(this.tselect);
  }

  private decode(i: number): void {
    const t1 = this.tdata1[i];
    const type = t1 >> TYPE_SHIFT;
    const low = Number(t1 & 0xffffffffn);
    let size = 0;
    if (type === TYPE_MCONTROL) size = SIZE_BYTES[((low >>> 21) & 3) * 4 + ((low >>> 16) & 3)] ?? 0;
    else if (type === TYPE_MCONTROL6) size = SIZE_BYTES[(low >>> 16) & 7] ?? 0;
    const on = type === TYPE_MCONTROL || type === TYPE_MCONTROL6;
    const privs = on ? ((low >> 3) & 1) | (((low >> 4) & 1) << 1) | (((low >> 6) & 1) << 3) : 0;
    this.ops[i] = privs ? (low & 1 ? TRIG_LOAD : 0) | (low & 2 ? TRIG_STORE : 0) | (low & 4 ? TRIG_EXEC : 0) : 0;
    this.privs[i] = privs;
    this.sizes[i] = size;
    const t2 = this.tdata2[i];
    this.lo[i] = Number(t2 & 0xffffffffn) | 0;
    this.hi[i] = Number((t2 >> 32n) & 0xffffffffn) | 0;
    const s = BigInt.asIntN(64, t2);
    this.num[i] = s >= -(1n << 53n) && s < 1n << 53n ? Number(s) : Number.NaN;
    let exec = false;
    let data = false;
    for (let k = 0; k < TRIGGERS; k++) {
      if (this.ops[k] & TRIG_EXEC) exec = true;
      if (this.ops[k] & (TRIG_LOAD | TRIG_STORE)) data = true;
    }
    this.exec = exec;
    this.data = data;
  }

  /**
   * Does an execute trigger match the instruction at `pc` in privilege `priv`? `ilen` is the
   * instruction's length in bytes, or 0 when it cannot be fetched (then only size=any matches).
   */
  matchExec(pc: number, priv: number, ilen: number): boolean {
    for (let i = 0; i < TRIGGERS; i++) {
      if (!(this.ops[i] & TRIG_EXEC) || !((this.privs[i] >> priv) & 1) || this.num[i] !== pc) continue;
      const size = this.sizes[i];
      if (size === 0 || size === ilen) return true;
    }
    return false;
  }

  /** Is an execute trigger armed at `pc` at all (whatever the length)? */
  execAt(pc: number, priv: number): boolean {
    for (let i = 0; i < TRIGGERS; i++) {
      if (this.ops[i] & TRIG_EXEC && (this.privs[i] >> priv) & 1 && this.num[i] === pc) return true;
    }
    return false;
  }

  /** Does a load/store trigger (ops: TRIG_LOAD and/or TRIG_STORE) match bytes [addr, addr+size)? */
  matchData(lo: number, hi: number, size: number, ops: number, priv: number): boolean {
    for (let i = 0; i < TRIGGERS; i++) {
      if (!(this.ops[i] & ops) || !((this.privs[i] >> priv) & 1)) continue;
      const ts = this.sizes[i];
      if (ts !== 0 && ts !== size) continue;
      // tdata2 - addr (mod 2^64) < size: tdata2 is one of the accessed byte addresses
      const dlo = (this.lo[i] - lo) | 0;
      const dhi = (this.hi[i] - hi - (this.lo[i] >>> 0 < lo >>> 0 ? 1 : 0)) | 0;
      if (dhi === 0 && dlo >>> 0 < size) return true;
    }
    return false;
  }

  /** Is the 4 KiB virtual page of (lo, hi) watched by a load/store trigger (so never cached in a TLB)? */
  pageWatched(lo: number, hi: number): boolean {
    for (let i = 0; i < TRIGGERS; i++) {
      if (this.ops[i] & (TRIG_LOAD | TRIG_STORE) && this.hi[i] === hi && (this.lo[i] ^ lo) >>> 12 === 0) return true;
    }
    return false;
  }
}
