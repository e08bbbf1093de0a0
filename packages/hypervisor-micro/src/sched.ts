// CPU time (ARCHITECTURE.md §4): a credit scheduler in the spirit of Xen's
// credit1 (xen/common/sched/credit.c: csched_acct). Every accounting period
// the kernel thread hands each metered partition credit, in microseconds of
// CPU time, by weight out of the CPU budget and never above its cap; a VP
// spends credit as its thread burns CPU and, once its partition's credit is
// gone, parks in Atomics.wait until the next period's credit wakes it. The
// host OS still places the VP threads on cores: the scheduler cannot run a
// thread, only withhold CPU from it, so weights decide the split of a capped
// budget (contention the kernel creates) and caps are hard ceilings.
//
// Shared words of a VP area (see synic.ts Vp.SCHED_*): METERED (0: the VP
// never parks), CREDIT (µs, the kernel adds, the VP subtracts); the VP
// publishes its thread's CPU time as a counter (cpuMicrosLo/Hi) and its parked
// time (throttledMicros). The VP thread's CPU clock is in thread-clock.ts.
import * as z from "./zod.js";

/** Xen credit1's default weight (CSCHED_DEFAULT_WEIGHT); weights are relative. */
export const DEFAULT_WEIGHT = 256;
export const MAX_WEIGHT = 65_535;
/** Accounting period of the kernel's credit tick (Xen credit1: 10 ms ticks, 30 ms accounting). */
export const SCHED_PERIOD_MS = 20;
/**
 * Credit a partition may hold, in periods of its grant: enough to catch up
 * after the host OS kept its thread off the CPU for a while (steal), not
 * enough to hoard.
 */
const CEILING_PERIODS = 5;
/**
 * Smallest ceiling (µs): one credit1 time slice (30 ms, CSCHED_DEFAULT_TSLICE_MS),
 * so a light partition, whose five periods are little, does not lose its
 * credit while the host keeps its thread waiting.
 */
const MIN_CEILING = 30_000;
/** A partition that slept in WFI during a period is granted at most this multiple of what it used, plus MIN_SLEEPER_GRANT. */
const SLEEPER_HEADROOM = 2;
const MIN_SLEEPER_GRANT = 1_000;
/**
 * With a budget, a busy partition whose thread the host runs for a share h of
 * its runnable time is granted at most max(h/2, h - STEAL_SLACK × (1 - h)) of
 * a period: all of it without steal, less than h the more the host steals
 * (its share wobbles), never nothing.
 */
const STEAL_SLACK = 0.25;

/** A partition's scheduling parameters (SetPartitionSchedule, CreatePartition). */
export const ScheduleSchema = z.strictObject({
  /** Relative share of the CPU budget under contention, 1..65535 (default 256). */
  weight: z._default(z.int().check(z.minimum(1), z.maximum(MAX_WEIGHT)), DEFAULT_WEIGHT),
  /** Hard ceiling in % of one host CPU; 0 = uncapped (one VP per partition, so 1..100). */
  capPercent: z._default(z.int().check(z.minimum(0), z.maximum(100)), 0),
});
export type Schedule = z.output<typeof ScheduleSchema>;
export type ScheduleInput = z.input<typeof ScheduleSchema>;

/** The CPU budget all child partitions share, in % of one host CPU; 0 = unlimited (no pool). */
export const CpuBudgetSchema = z.number().check(z.minimum(0), z.maximum(100 * 1024));

/** One partition's view at the accounting tick. */
export interface AccountInput {
  readonly weight: number;
  readonly capPercent: number;
  /** CPU time its VPs used during the period (µs). */
  readonly used: number;
  /** One of its VPs slept in WFI during the period (it ran out of work, not of credit). */
  readonly slept: boolean;
  /**
   * The fraction of the time its VP thread was runnable that the host OS let
   * it run (recent history; 1 = no steal). Absent: 1.
   */
  readonly hostShare?: number;
}

export interface CreditGrant {
  /** False: the partition is not metered (no budget and no cap) and never parks. */
  readonly metered: boolean;
  /** Credit added this period (µs). */
  readonly grant: number;
  /**
   * Its credit is clamped to at most this after the grant. Debt is never
   * forgiven: a slice that overran (a long translation, a GC pause) is paid
   * back by parking longer, or a cap would not hold on average.
   */
  readonly ceiling: number;
}

/**
 * One accounting period: the budget (budgetPercent × period, or nothing when
 * 0) is water-filled by weight over the partitions, each limited by its cap
 * and, when it slept in WFI, by SLEEPER_HEADROOM × what it used (work
 * conservation: what an idle partition does not need goes to the busy ones,
 * where Xen credit1 takes idle domains off its active list). Without a
 * budget, a capped partition gets cap × period and an uncapped one is not
 * metered at all. With a budget and host steal, the budget shrinks until
 * every busy partition can spend its grant (see STEAL_SLACK).
 */
export function distributeCredits(
  parts: readonly AccountInput[],
  periodMicros: number,
  budgetPercent: number,
): CreditGrant[] {
  const capLimit = (p: AccountInput) =>
    p.capPercent > 0 ? (p.capPercent * periodMicros) / 100 : Number.POSITIVE_INFINITY;
  const grants = parts.map((p) => (budgetPercent > 0 || p.capPercent > 0 ? 0 : Number.NaN));
  if (budgetPercent <= 0) {
    parts.forEach((p, i) => {
      if (p.capPercent > 0) grants[i] = capLimit(p);
    });
  } else {
    const limit = parts.map((p) =>
      Math.min(capLimit(p), p.slept ? SLEEPER_HEADROOM * p.used + MIN_SLEEPER_GRANT : Number.POSITIVE_INFINITY),
    );
    const budget = (budgetPercent * periodMicros) / 100;
    waterFill(parts, limit, budget, grants);
    // Steal-aware: a busy partition whose thread the host runs only part of the time it is runnable
    // cannot spend more than that part of the period. Shrink the budget until each can spend its
    // grant, so the weights divide what the host actually gives instead of the host deciding.
    let scale = 1;
    parts.forEach((p, i) => {
      const h = p.hostShare ?? 1;
      const can = Math.max(h / 2, h - STEAL_SLACK * (1 - h)) * periodMicros;
      if (!p.slept && grants[i] > can) scale = Math.min(scale, can / grants[i]);
    });
    if (scale < 1) waterFill(parts, limit, budget * scale, grants);
  }
  return grants.map((g) =>
    Number.isNaN(g)
      ? { metered: false, grant: 0, ceiling: 0 }
      : { metered: true, grant: Math.floor(g), ceiling: Math.max(MIN_CEILING, Math.ceil(CEILING_PERIODS * g)) },
  );
}

/**
 * Water-filling: share what is left by weight among the open partitions;
 * whoever's fair share reaches its limit gets the limit and leaves; repeat
 * until nobody saturates.
 */
function waterFill(parts: readonly AccountInput[], limit: readonly number[], budget: number, grants: number[]): void {
  const open = new Set(parts.map((_, i) => i));
  let fixed = 0;
  while (open.size > 0) {
    const left = Math.max(0, budget - fixed);
    let w = 0;
    for (const i of open) w += parts[i].weight;
    const saturated = [...open].filter((i) => (left * parts[i].weight) / w >= limit[i]);
    if (saturated.length === 0) {
      for (const i of open) grants[i] = (left * parts[i].weight) / w;
      return;
    }
    for (const i of saturated) {
      grants[i] = limit[i];
      fixed += limit[i];
      open.delete(i);
    }
  }
}
