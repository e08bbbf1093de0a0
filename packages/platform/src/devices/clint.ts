// SiFive CLINT (as on QEMU virt, hw/intc/riscv_aclint.c; SiFive FU540 manual
// ch. 9): per hart an msip word (MSIP line) and a 64-bit mtimecmp (MTIP line
// = mtime >= mtimecmp), and one 64-bit mtime counting at the device tree's
// timebase-frequency (10 MHz on virt). Time comes from an injectable clock
// returning ticks; writing mtime moves an offset over it. MTIP depends on
// time, so a hypervisor calls `poll()` when it wakes and sleeps until
// `nextDeadline()`. Construction touches no line (the harts may not exist
// yet): `reset()` — or the first `poll()` — drives them, MTIP high as QEMU
// virt has it at reset.
import * as z from "../zod.js";
import { PlatformError, PlatformErrorCode, parseState } from "./errors.js";
import type { AccessCounters, AccessSize, IrqLine, MmioDevice } from "./types.js";
import { depositU64, low32, sliceU64, VIRT } from "./types.js";

/** Register offsets (FU540 manual §9.1). */
export const CLINT_MSIP = 0x0000; // + 4*hart: bit 0 = machine software interrupt
export const CLINT_MTIMECMP = 0x4000; // + 8*hart: 64-bit timer compare
export const CLINT_MTIME = 0xbff8; // 64-bit time
export const CLINT_MAX_HARTS = 4095;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * Host monotonic time in ticks of `frequency` Hz, starting near 0.
 * `performance.now()` (Node and browsers; browsers coarsen it to 5-100 µs).
 */
export function hostTickClock(frequency: number = VIRT.timebaseFrequency): () => number {
  const start = performance.now();
  const perMs = frequency / 1000;
  return () => Math.floor((performance.now() - start) * perMs);
}

/** The lines of one hart. */
export interface ClintHartLines {
  readonly msip: IrqLine;
  readonly mtip: IrqLine;
}

export const ClintStateSchema = z.object({
  version: z.literal(1),
  /** mtime when the state was taken, as a decimal string; a restore continues from it. */
  mtime: z.string().check(z.regex(/^\d{1,20}$/)),
  harts: z.array(
    z.object({
      msip: z.boolean(),
      /** mtimecmp as a decimal string (64-bit unsigned). */
      mtimecmp: z.string().check(z.regex(/^\d{1,20}$/)),
    }),
  ),
});
export type ClintState = z.infer<typeof ClintStateSchema>;

export class Clint implements MmioDevice {
  readonly counters: AccessCounters = { badAccesses: 0 };
  private readonly clock: () => number;
  private readonly lines: readonly ClintHartLines[];
  private readonly msip: boolean[];
  private readonly mtimecmp: bigint[];
  private readonly mtip: boolean[];
  private offset = 0n;
  /** False until the lines were driven once (reset() or the first poll()): construction calls no line. */
  private driven = false;

  /** `harts[h]` are hart h's MSIP/MTIP lines; `clock` returns ticks (default: host monotonic at 10 MHz). */
  constructor(harts: readonly ClintHartLines[], clock: () => number = hostTickClock()) {
    if (harts.length < 1 || harts.length > CLINT_MAX_HARTS) {
      throw new PlatformError(PlatformErrorCode.CONFIG_INVALID, { harts: harts.length }, "1..4095 harts");
    }
    this.lines = harts;
    this.clock = clock;
    this.msip = harts.map(() => false);
    // mtimecmp resets to 0 as on QEMU virt (the privileged spec leaves it
    // unspecified), so MTIP is high until software programs a compare value.
    this.mtimecmp = harts.map(() => 0n);
    this.mtip = harts.map(() => false);
  }

  /**
   * The reset state, as QEMU virt: msip 0 and mtimecmp 0 on every hart (so
   * MTIP is high until software programs a compare value), and every line
   * driven to match. Call it once the harts exist, before the first
   * instruction; mtime keeps running.
   */
  reset(): void {
    this.msip.fill(false);
    this.mtimecmp.fill(0n);
    this.driven = false;
    this.poll();
  }

  /** mtime now, as a number of ticks (what the hart's `time` CSR reads: pass `() => clint.time()` as timeSource). */
  time(): number {
    return Number(this.mtime());
  }

  /** mtime now (64-bit unsigned). */
  mtime(): bigint {
    return BigInt.asUintN(64, BigInt(this.clock()) + this.offset);
  }

  /**
   * The mtime value at which the next MTIP rises: the earliest mtimecmp of a
   * hart whose MTIP is low, or Infinity when none is armed. A value at or
   * below `time()` means `poll()` is due now.
   */
  nextDeadline(): number {
    if (!this.driven) return 0; // the lines were never driven: poll() is due
    let d = Number.POSITIVE_INFINITY;
    for (let h = 0; h < this.mtimecmp.length; h++) {
      const cmp = this.mtimecmp[h];
      if (cmp !== U64_MAX && !this.mtip[h]) d = Math.min(d, Number(cmp));
    }
    return d;
  }

  /** Re-evaluates every MTIP line against the current time (the first call drives every line). */
  poll(): void {
    const now = this.mtime();
    if (!this.driven) {
      this.driven = true;
      for (let h = 0; h < this.lines.length; h++) {
        this.mtip[h] = now >= this.mtimecmp[h];
        this.lines[h].msip.set(this.msip[h]);
        this.lines[h].mtip.set(this.mtip[h]);
      }
      return;
    }
    for (let h = 0; h < this.lines.length; h++) this.setMtip(h, now >= this.mtimecmp[h]);
  }

  read(offset: number, size: AccessSize): number | bigint {
    const reg = this.locate(offset, size);
    if (!reg) return this.bad();
    const [kind, hart, shift] = reg;
    if (kind === "msip") return this.msip[hart] ? 1 : 0;
    const v = kind === "mtimecmp" ? this.mtimecmp[hart] : this.mtime();
    return sliceU64(v, shift, size);
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    const reg = this.locate(offset, size);
    if (!reg) {
      this.bad();
      return;
    }
    const [kind, hart, shift] = reg;
    if (kind === "msip") {
      const level = (low32(value) & 1) === 1;
      if (level !== this.msip[hart]) {
        this.msip[hart] = level;
        if (this.driven) this.lines[hart].msip.set(level);
        else this.poll();
      }
      return;
    }
    if (kind === "mtimecmp") {
      this.mtimecmp[hart] = depositU64(this.mtimecmp[hart], shift, size, value);
      if (this.driven) this.setMtip(hart, this.mtime() >= this.mtimecmp[hart]);
      else this.poll();
      return;
    }
    const now = this.mtime();
    const next = depositU64(now, shift, size, value);
    this.offset += next - now;
    this.poll();
  }

  /** The register an access hits: msip (4-byte, aligned), or 1..8 bytes within one 64-bit register. */
  private locate(
    offset: number,
    size: AccessSize,
  ): [kind: "msip" | "mtimecmp" | "mtime", hart: number, shift: number] | undefined {
    if (offset < 0 || offset % size !== 0) return undefined;
    const n = this.lines.length;
    if (offset < CLINT_MSIP + 4 * n) return size === 4 ? ["msip", offset >> 2, 0] : undefined;
    if (offset >= CLINT_MTIMECMP && offset < CLINT_MTIMECMP + 8 * n) {
      const rel = offset - CLINT_MTIMECMP;
      return ["mtimecmp", rel >> 3, rel & 7];
    }
    if (offset >= CLINT_MTIME && offset < CLINT_MTIME + 8) return ["mtime", 0, offset - CLINT_MTIME];
    return undefined;
  }

  private setMtip(hart: number, level: boolean): void {
    if (level !== this.mtip[hart]) {
      this.mtip[hart] = level;
      this.lines[hart].mtip.set(level);
    }
  }

  private bad(): 0 {
    this.counters.badAccesses++;
    return 0;
  }

  state(): ClintState {
    return {
      version: 1,
      mtime: this.mtime().toString(),
      harts: this.msip.map((m, h) => ({ msip: m, mtimecmp: this.mtimecmp[h].toString() })),
    };
  }

  /**
   * Rebuilds a CLINT from `state()` output over `harts` lines and a clock;
   * mtime continues from the saved value. Like the constructor it calls no
   * line: the first `poll()` drives them to the restored levels.
   */
  static fromState(state: unknown, harts: readonly ClintHartLines[], clock?: () => number): Clint {
    const s = parseState(ClintStateSchema, state, "clint");
    if (s.harts.length !== harts.length) {
      throw new PlatformError(PlatformErrorCode.STATE_INVALID, {
        device: "clint",
        harts: s.harts.length,
        lines: harts.length,
      });
    }
    const c = new Clint(harts, clock);
    c.offset = BigInt.asUintN(64, BigInt(s.mtime)) - BigInt(c.clock());
    s.harts.forEach((h, i) => {
      c.mtimecmp[i] = BigInt.asUintN(64, BigInt(h.mtimecmp));
      c.msip[i] = h.msip;
    });
    return c;
  }
}
