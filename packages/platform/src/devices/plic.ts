// SiFive-compatible PLIC (RISC-V PLIC spec 1.0.0; the register map Linux's
// drivers/irqchip/irq-sifive-plic.c drives). Sources 1..ndev are
// level-triggered: the gateway forwards a request while the line is high and
// the source is not claimed; completing a source whose line is still high
// makes it pending again. Contexts are numbered as on QEMU virt: hart h has
// context 2h (M-mode, MEIP) and 2h+1 (S-mode, SEIP); each context drives one
// IrqLine.
import * as z from "../zod.js";
import { PlatformError, PlatformErrorCode, parseConfig, parseState } from "./errors.js";
import type { AccessCounters, AccessSize, IrqLine, MmioDevice } from "./types.js";
import { low32 } from "./types.js";

/** Register offsets (PLIC spec §3 memory map). */
export const PLIC_PRIORITY = 0x00_0000; // + 4*source: source priority
export const PLIC_PENDING = 0x00_1000; // + 4*word: pending bits (read-only)
export const PLIC_ENABLE = 0x00_2000; // + 0x80*context + 4*word: enable bits
export const PLIC_ENABLE_STRIDE = 0x80;
export const PLIC_CONTEXT = 0x20_0000; // + 0x1000*context: threshold, claim/complete
export const PLIC_CONTEXT_STRIDE = 0x1000;
export const PLIC_THRESHOLD = 0x0; // within a context page
export const PLIC_CLAIM = 0x4; // within a context page: read claims, write completes
/** Maximum source count (spec: 1023 sources) and context count (15872). */
export const PLIC_MAX_SOURCES = 1023;
export const PLIC_MAX_CONTEXTS = 15872;

export const PlicConfigSchema = z.object({
  /** Number of sources (riscv,ndev); sources are 1..ndev. QEMU virt: 96. */
  ndev: z._default(z.int().check(z.minimum(1), z.maximum(PLIC_MAX_SOURCES)), 96),
  /** Highest priority (a 2^n-1 mask); QEMU virt has 3 priority bits: 7. */
  maxPriority: z._default(
    z.int().check(
      z.minimum(1),
      z.maximum(0xffff_ffff),
      z.refine((p) => ((p + 1) & p) === 0, "maxPriority must be 2^n-1"),
    ),
    7,
  ),
});
export type PlicConfig = z.input<typeof PlicConfigSchema>;

export const PlicStateSchema = z.object({
  version: z.literal(1),
  ndev: z.int().check(z.minimum(1), z.maximum(PLIC_MAX_SOURCES)),
  maxPriority: z.int().check(z.minimum(1), z.maximum(0xffff_ffff)),
  /** priority[s] for sources 0..ndev (index 0 unused, always 0). */
  priority: z.array(z.int().check(z.minimum(0), z.maximum(0xffff_ffff))),
  /** Sources whose input line is high. */
  levels: z.array(z.int().check(z.minimum(1))),
  /** Sources with a pending request. */
  pending: z.array(z.int().check(z.minimum(1))),
  /** Sources claimed and not yet completed. */
  claimed: z.array(z.int().check(z.minimum(1))),
  contexts: z.array(
    z.object({
      threshold: z.int().check(z.minimum(0), z.maximum(0xffff_ffff)),
      enabled: z.array(z.int().check(z.minimum(1))),
    }),
  ),
});
export type PlicState = z.infer<typeof PlicStateSchema>;

export class Plic implements MmioDevice {
  readonly ndev: number;
  readonly maxPriority: number;
  readonly counters: AccessCounters = { badAccesses: 0 };
  private readonly words: number;
  private readonly priority: Uint32Array;
  private readonly level: Uint32Array;
  private readonly pending: Uint32Array;
  private readonly claimed: Uint32Array;
  private readonly enable: Uint32Array[];
  private readonly threshold: Uint32Array;
  private readonly outputs: readonly IrqLine[];
  private readonly outLevel: boolean[];
  private readonly sourceLines: IrqLine[];

  /** `contexts[i]` is the line context i drives (hart h: 2h → MEIP, 2h+1 → SEIP). */
  constructor(contexts: readonly IrqLine[], config: PlicConfig = {}) {
    const c = parseConfig(PlicConfigSchema, config, "plic");
    if (contexts.length < 1 || contexts.length > PLIC_MAX_CONTEXTS) {
      throw new PlatformError(PlatformErrorCode.CONFIG_INVALID, { contexts: contexts.length }, "1..15872 contexts");
    }
    this.ndev = c.ndev;
    this.maxPriority = c.maxPriority;
    this.words = (c.ndev >> 5) + 1;
    this.priority = new Uint32Array(c.ndev + 1);
    this.level = new Uint32Array(this.words);
    this.pending = new Uint32Array(this.words);
    this.claimed = new Uint32Array(this.words);
    this.enable = contexts.map(() => new Uint32Array(this.words));
    this.threshold = new Uint32Array(contexts.length);
    this.outputs = contexts;
    this.outLevel = contexts.map(() => false);
    this.sourceLines = [];
    for (let s = 0; s <= c.ndev; s++) {
      this.sourceLines.push({ set: (level: boolean) => this.setLevel(s, level) });
    }
  }

  /** The input line of source `source` (1..ndev), for a device to raise. */
  irq(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source > this.ndev) {
      throw new PlatformError(PlatformErrorCode.CONFIG_INVALID, { source, ndev: this.ndev }, "no such PLIC source");
    }
    return this.sourceLines[source];
  }

  /** Number of contexts (two per hart on virt). */
  get contextCount(): number {
    return this.outputs.length;
  }

  /** Sets the input level of a source; out-of-range sources are ignored. */
  setLevel(source: number, level: boolean): void {
    if (source < 1 || source > this.ndev) return;
    const w = source >> 5;
    const bit = 1 << (source & 31);
    if (level) {
      if (this.level[w] & bit) return;
      this.level[w] |= bit;
      // Gateway: forward one request unless the source is in flight (spec §5).
      if (!(this.claimed[w] & bit)) this.pending[w] |= bit;
    } else {
      if (!(this.level[w] & bit)) return;
      this.level[w] &= ~bit;
      // Level source dropped before its claim: withdraw the request (as QEMU does).
      this.pending[w] &= ~bit;
    }
    this.update();
  }

  /** True when source `source` is pending (for tests and introspection). */
  isPending(source: number): boolean {
    return source >= 1 && source <= this.ndev && (this.pending[source >> 5] & (1 << (source & 31))) !== 0;
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 4 || offset & 3 || offset < 0) return this.bad();
    if (offset < PLIC_PENDING) {
      const s = offset >> 2;
      return s <= this.ndev ? this.priority[s] : this.bad();
    }
    if (offset < PLIC_ENABLE) {
      const w = (offset - PLIC_PENDING) >> 2;
      return w < this.words ? this.pending[w] : this.bad();
    }
    if (offset < PLIC_CONTEXT) {
      const ctx = Math.floor((offset - PLIC_ENABLE) / PLIC_ENABLE_STRIDE);
      const w = ((offset - PLIC_ENABLE) % PLIC_ENABLE_STRIDE) >> 2;
      return ctx < this.outputs.length && w < this.words ? this.enable[ctx][w] : this.bad();
    }
    const ctx = Math.floor((offset - PLIC_CONTEXT) / PLIC_CONTEXT_STRIDE);
    if (ctx >= this.outputs.length) return this.bad();
    const reg = (offset - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE;
    if (reg === PLIC_THRESHOLD) return this.threshold[ctx];
    if (reg === PLIC_CLAIM) return this.claim(ctx);
    return this.bad();
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    if (size !== 4 || offset & 3 || offset < 0) {
      this.bad();
      return;
    }
    const v = low32(value);
    if (offset < PLIC_PENDING) {
      const s = offset >> 2;
      if (s === 0 || s > this.ndev) {
        this.bad();
        return;
      }
      this.priority[s] = v & this.maxPriority; // WARL: implemented priority bits only
      this.update();
      return;
    }
    if (offset < PLIC_ENABLE) {
      this.bad(); // pending bits are read-only (spec §6)
      return;
    }
    if (offset < PLIC_CONTEXT) {
      const ctx = Math.floor((offset - PLIC_ENABLE) / PLIC_ENABLE_STRIDE);
      const w = ((offset - PLIC_ENABLE) % PLIC_ENABLE_STRIDE) >> 2;
      if (ctx >= this.outputs.length || w >= this.words) {
        this.bad();
        return;
      }
      this.enable[ctx][w] = v & this.sourceMask(w);
      this.update();
      return;
    }
    const ctx = Math.floor((offset - PLIC_CONTEXT) / PLIC_CONTEXT_STRIDE);
    const reg = (offset - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE;
    if (ctx >= this.outputs.length) {
      this.bad();
    } else if (reg === PLIC_THRESHOLD) {
      this.threshold[ctx] = v & this.maxPriority;
      this.update();
    } else if (reg === PLIC_CLAIM) {
      this.complete(ctx, v);
    } else {
      this.bad();
    }
  }

  /** Claim (spec §9): the highest-priority pending enabled source above threshold; ties go to the lowest id. */
  private claim(ctx: number): number {
    const s = this.best(ctx);
    if (s !== 0) {
      const w = s >> 5;
      const bit = 1 << (s & 31);
      this.pending[w] &= ~bit;
      this.claimed[w] |= bit;
      this.update();
    }
    return s;
  }

  /** Completion (spec §10): ignored unless the source is enabled for this context. */
  private complete(ctx: number, source: number): void {
    if (source < 1 || source > this.ndev) return;
    const w = source >> 5;
    const bit = 1 << (source & 31);
    if (!(this.enable[ctx][w] & bit) || !(this.claimed[w] & bit)) return;
    this.claimed[w] &= ~bit;
    if (this.level[w] & bit) this.pending[w] |= bit;
    this.update();
  }

  private best(ctx: number): number {
    const en = this.enable[ctx];
    let bestPrio = this.threshold[ctx];
    let best = 0;
    for (let w = 0; w < this.words; w++) {
      let bits = this.pending[w] & en[w];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const s = (w << 5) | b;
        const p = this.priority[s];
        if (p > bestPrio) {
          bestPrio = p;
          best = s;
        }
      }
    }
    return best;
  }

  private update(): void {
    for (let ctx = 0; ctx < this.outputs.length; ctx++) {
      const level = this.best(ctx) !== 0;
      if (level !== this.outLevel[ctx]) {
        this.outLevel[ctx] = level;
        this.outputs[ctx].set(level);
      }
    }
  }

  private sourceMask(w: number): number {
    // Bit 0 of word 0 is source 0 (does not exist); bits above ndev are hardwired 0.
    let m = 0xffff_ffff;
    if (w === 0) m &= ~1;
    const top = this.ndev - (w << 5);
    if (top < 31) m &= top < 0 ? 0 : (2 ** (top + 1) - 1) >>> 0;
    return m >>> 0;
  }

  private bad(): 0 {
    this.counters.badAccesses++;
    return 0;
  }

  state(): PlicState {
    return {
      version: 1,
      ndev: this.ndev,
      maxPriority: this.maxPriority,
      priority: Array.from(this.priority),
      levels: this.ids(this.level),
      pending: this.ids(this.pending),
      claimed: this.ids(this.claimed),
      contexts: this.enable.map((en, i) => ({ threshold: this.threshold[i], enabled: this.ids(en) })),
    };
  }

  /** Rebuilds a PLIC from `state()` output; the context count must match `contexts`. */
  static fromState(state: unknown, contexts: readonly IrqLine[]): Plic {
    const s = parseState(PlicStateSchema, state, "plic");
    if (s.contexts.length !== contexts.length || s.priority.length !== s.ndev + 1) {
      throw new PlatformError(PlatformErrorCode.STATE_INVALID, {
        device: "plic",
        contexts: s.contexts.length,
        lines: contexts.length,
        priorities: s.priority.length,
      });
    }
    const p = new Plic(contexts, { ndev: s.ndev, maxPriority: s.maxPriority });
    const ids = [...s.levels, ...s.pending, ...s.claimed, ...s.contexts.flatMap((c) => c.enabled)];
    if (ids.some((id) => id > s.ndev)) {
      throw new PlatformError(
        PlatformErrorCode.STATE_INVALID,
        { device: "plic", ndev: s.ndev },
        "source id out of range",
      );
    }
    s.priority.forEach((v, i) => {
      p.priority[i] = i === 0 ? 0 : v & s.maxPriority;
    });
    for (const id of s.levels) p.level[id >> 5] |= 1 << (id & 31);
    for (const id of s.pending) p.pending[id >> 5] |= 1 << (id & 31);
    for (const id of s.claimed) p.claimed[id >> 5] |= 1 << (id & 31);
    s.contexts.forEach((c, i) => {
      p.threshold[i] = c.threshold & s.maxPriority;
      for (const id of c.enabled) p.enable[i][id >> 5] |= 1 << (id & 31);
    });
    p.update();
    return p;
  }

  private ids(words: Uint32Array): number[] {
    const out: number[] = [];
    for (let s = 1; s <= this.ndev; s++) if (words[s >> 5] & (1 << (s & 31))) out.push(s);
    return out;
  }
}
