// The credit scheduler (sched.ts): the accounting arithmetic, the hypercall,
// and the proof of issue 9 with real VP threads running the CPU benchmark
// (testing/cpu-guest.ts): weights 2:1 on a capped budget split the CPU within
// 10 % of 2:1, and a 25 % cap holds within 5 points. Shares are CPU time of
// the VP threads (schedstat) over wall time, so they do not depend on how
// fast this shared machine runs the guest; a window in which the host OS kept
// a VP thread off the CPU (steal) for a large part is measured again, since
// no scheduler inside the process can give CPU the host does not.
import { afterEach, describe, expect, it } from "vitest";
import { Microkernel, ROOT_PARTITION_ID } from "./node.js";
import { DEFAULT_WEIGHT, distributeCredits } from "./sched.js";
import { HvStatus } from "./status.js";
import { type CpuShare, cpuKernel, cpuWorkload, measureShares, startCpuPartition } from "./testing/cpu-guest.js";

const ROOT = ROOT_PARTITION_ID;
const P = 20_000; // one period, µs

describe("distributeCredits: one accounting period", () => {
  const busy = (weight: number, capPercent = 0) => ({ weight, capPercent, used: P, slept: false });

  it("splits the budget by weight among busy partitions", () => {
    const g = distributeCredits([busy(512), busy(256)], P, 60);
    expect(g.map((x) => x.grant)).toEqual([8000, 4000]);
    expect(g.every((x) => x.metered)).toBe(true);
  });

  it("a cap is a ceiling; what it leaves goes to the others by weight", () => {
    const g = distributeCredits([busy(512, 10), busy(256), busy(256)], P, 100);
    expect(g.map((x) => x.grant)).toEqual([2000, 9000, 9000]);
  });

  it("a partition that slept in WFI gets what it used plus headroom; the busy ones get the rest", () => {
    const g = distributeCredits([{ weight: 256, capPercent: 0, used: 1000, slept: true }, busy(256)], P, 100);
    expect(g[0].grant).toBe(3000);
    expect(g[1].grant).toBe(17_000);
  });

  it("with a budget, steal shrinks the budget so each busy partition can spend its grant, by weight", () => {
    const g = distributeCredits([{ ...busy(512), hostShare: 0.4 }, busy(256)], P, 100);
    // 0.4 of the time it is runnable: 0.4 - 0.25 × 0.6 = 0.25 of a period at most, the other one half of that.
    expect(g[0].grant).toBe(5000);
    expect(g[1].grant).toBe(2500);
    const free = distributeCredits([{ ...busy(512), hostShare: 1 }, busy(256)], P, 150);
    expect(free.map((x) => x.grant)).toEqual([20_000, 10_000]);
  });

  it("without a budget only capped partitions are metered", () => {
    const g = distributeCredits([busy(256, 25), busy(256)], P, 0);
    expect(g[0]).toMatchObject({ metered: true, grant: 5000 });
    expect(g[1].metered).toBe(false);
  });

  it("never grants more than the budget, whatever the weights", () => {
    for (const ws of [[1], [1, 65535], [3, 3, 3], [100, 7, 9000, 1]]) {
      const g = distributeCredits(
        ws.map((w, i) => busy(w, i === 1 ? 30 : 0)),
        P,
        150,
      );
      expect(g.reduce((s, x) => s + x.grant, 0)).toBeLessThanOrEqual(1.5 * P);
    }
  });
});

describe("SetPartitionSchedule and CreatePartition's schedule", () => {
  it("validates weight and cap, only the parent sets them, stats show them", () => {
    const k = new Microkernel({ memoryLimit: 16 * 2 ** 20 });
    const c = k.hypercall(ROOT, "CreatePartition", { name: "c", schedule: { weight: 512, capPercent: 40 } });
    if (c.status !== 0) throw new Error("create");
    const id = c.value.partitionId;
    expect(k.stats().scheduler.partitions[0]).toMatchObject({ partitionId: id, weight: 512, capPercent: 40 });
    const set = (caller: number, input: object) =>
      k.hypercall(caller, "SetPartitionSchedule", { partitionId: id, ...input } as never).status;
    expect(set(ROOT, { weight: 0 })).toBe(HvStatus.INVALID_PARAMETER);
    expect(set(ROOT, { weight: 65_536 })).toBe(HvStatus.INVALID_PARAMETER);
    expect(set(ROOT, { capPercent: 101 })).toBe(HvStatus.INVALID_PARAMETER);
    expect(set(ROOT, { capPercent: 2.5 })).toBe(HvStatus.INVALID_PARAMETER);
    expect(set(ROOT, { weight: 10, bogus: 1 })).toBe(HvStatus.INVALID_PARAMETER);
    expect(set(id, { weight: 10 })).toBe(HvStatus.ACCESS_DENIED);
    expect(k.hypercall(ROOT, "SetPartitionSchedule", { partitionId: ROOT, weight: 10 }).status).toBe(
      HvStatus.INVALID_PARTITION_ID,
    );
    expect(set(ROOT, { capPercent: 25 })).toBe(HvStatus.SUCCESS);
    expect(k.stats().scheduler.partitions[0]).toMatchObject({ weight: DEFAULT_WEIGHT, capPercent: 25 });
    expect(k.hypercall(ROOT, "CreatePartition", { name: "d", schedule: { weight: -1 } } as never).status).toBe(
      HvStatus.INVALID_PARAMETER,
    );
    expect(() => new Microkernel({ cpuBudgetPercent: -5 })).toThrow();
  });
});

describe("proof: two CPU-bound partitions and a capped one (issue 9)", () => {
  let k: Microkernel | undefined;
  afterEach(async () => {
    await k?.shutdown();
    k = undefined;
  });
  const workload = cpuWorkload();
  const show = (label: string, xs: CpuShare[]) =>
    console.log(
      `${label} [${workload.name}]: ${xs
        .map(
          (x) =>
            `p${x.partitionId} cpu ${(100 * x.share).toFixed(1)} % parked ${(100 * x.parked).toFixed(0)} % steal ${(100 * x.steal).toFixed(0)} % ${x.mips.toFixed(0)} MIPS`,
        )
        .join(" | ")}`,
    );
  /** Until every VP has run guest code (thread start-up is not the guest's CPU), then a short warm-up. */
  async function running(kernel: Microkernel, ids: number[]): Promise<void> {
    const t0 = performance.now();
    while (ids.some((id) => !kernel.vpCounters(id, 0)?.instructions) && performance.now() - t0 < 5000)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
  }
  /** Windows until one in which the host gave the VPs their CPU (steal below 15 %), at most 3. */
  async function measure(ids: number[], ok: (xs: CpuShare[]) => boolean, label: string): Promise<CpuShare[]> {
    let xs: CpuShare[] = [];
    for (let i = 0; i < 3; i++) {
      xs = await measureShares(k as Microkernel, ids, 2000);
      show(label, xs);
      if (ok(xs) || xs.every((x) => x.steal < 0.15)) break;
    }
    return xs;
  }

  it("weights 2:1 on a 45 % budget: CPU shares within 10 % of 2:1, the budget holds", async () => {
    k = cpuKernel(45);
    const a = startCpuPartition(k, "heavy", workload, { weight: 512 });
    const b = startCpuPartition(k, "light", workload, { weight: 256 });
    await running(k, [a, b]);
    const inRange = (xs: CpuShare[]) => Math.abs(xs[0].share / xs[1].share / 2 - 1) <= 0.1;
    const xs = await measure([a, b], inRange, "weights 2:1, budget 45 %");
    const ratio = xs[0].share / xs[1].share;
    expect(ratio).toBeGreaterThanOrEqual(1.8);
    expect(ratio).toBeLessThanOrEqual(2.2);
    expect(xs[0].share + xs[1].share).toBeLessThanOrEqual(0.45 + 0.03);
    expect(xs[0].parked).toBeGreaterThan(0);
  }, 20_000);

  it("a cap of 25 % holds within 5 points", async () => {
    k = cpuKernel();
    const a = startCpuPartition(k, "capped", workload, { capPercent: 25 });
    await running(k, [a]);
    const inRange = (xs: CpuShare[]) => Math.abs(xs[0].share - 0.25) <= 0.05;
    const [x] = await measure([a], inRange, "cap 25 %");
    expect(x.share).toBeGreaterThanOrEqual(0.2);
    expect(x.share).toBeLessThanOrEqual(0.3);
    // The cap holds by parking: what the host gave the thread beyond the cap is parked time. On a
    // loaded host (CI's 2 cores) steal eats most of the window and less parking is needed:
    // parked ≈ 1 - steal - share, so require at least 0.1 or that remainder less 5 points.
    expect(x.parked).toBeGreaterThan(Math.min(0.1, 1 - x.steal - x.share - 0.05));
  }, 20_000);

  it("by default nothing is metered: no tick, no parking; lifting a cap at run time unparks", async () => {
    k = cpuKernel();
    const a = startCpuPartition(k, "free", workload);
    await running(k, [a]);
    const [x] = await measureShares(k, [a], 500);
    const st = k.stats().scheduler.partitions[0];
    expect(st).toMatchObject({ metered: false, parkedMicros: 0 });
    expect(x.share).toBeGreaterThan(0);
    // A cap set while it runs meters it at once; lifting the cap ends metering (and any park).
    expect(k.hypercall(ROOT, "SetPartitionSchedule", { partitionId: a, capPercent: 10 }).status).toBe(0);
    expect(k.stats().scheduler.partitions[0].metered).toBe(true);
    // Its first park ends (and is counted) after a slice or two; slices are long while rzbench warms up.
    const t0 = performance.now();
    while (k.stats().scheduler.partitions[0].parkedMicros === 0 && performance.now() - t0 < 3000)
      await new Promise((r) => setTimeout(r, 20));
    expect(k.stats().scheduler.partitions[0].parkedMicros).toBeGreaterThan(0);
    expect(k.hypercall(ROOT, "SetPartitionSchedule", { partitionId: a }).status).toBe(0);
    expect(k.stats().scheduler.partitions[0].metered).toBe(false);
    // A park under way ends at once (its time is counted when it ends, once the host runs the thread).
    await new Promise((r) => setTimeout(r, 500));
    const before = k.vpCounters(a, 0) ?? {};
    await new Promise((r) => setTimeout(r, 300));
    const after = k.vpCounters(a, 0) ?? {};
    expect(after.throttledMicros).toBe(before.throttledMicros);
    expect(after.instructions).toBeGreaterThan(before.instructions);
  }, 20_000);
});
