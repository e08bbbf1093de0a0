// Runs every selected workload under both hypervisors, alternating, N runs
// each, in this process: run 1 goes mono then micro, run 2 micro then mono,
// and so on, so warm-up and background load fall on both sides alike.
import { HYPERVISORS, type Hypervisor, MEASURES, na, type Outcome, type Section } from "./measures.js";
import type { CompareRecord } from "./schema.js";
import { type Summary, summarize } from "./stats.js";
import type { Workload, WorkloadContext } from "./workloads.js";

export interface RunnerOptions {
  readonly runs: number;
  readonly workloads: readonly Workload[];
  readonly context: WorkloadContext;
  /** Called before each step ("run 2/3 · cpu · micro"). */
  readonly progress?: (text: string) => void;
}

/** The measures of `w` in the selected sections. */
function selected(w: Workload, sections: ReadonlySet<Section>): string[] {
  return w.measures.filter((id) => {
    const d = MEASURES.find((x) => x.id === id);
    return d !== undefined && sections.has(d.section);
  });
}

export async function runAll(o: RunnerOptions): Promise<CompareRecord[]> {
  const records: CompareRecord[] = [];
  const sections = o.context.sections;
  for (const w of o.workloads) {
    if (!w.warmup || selected(w, sections).length === 0) continue;
    for (const hv of HYPERVISORS) {
      o.progress?.(`warm-up · ${w.id} · ${hv}`);
      await w.run(hv, o.context).catch(() => undefined);
    }
  }
  for (let run = 1; run <= o.runs; run++) {
    const order: readonly Hypervisor[] = run % 2 === 1 ? HYPERVISORS : [...HYPERVISORS].reverse();
    for (const w of o.workloads) {
      const ids = selected(w, sections);
      if (ids.length === 0 || (w.once && run > 1)) continue;
      for (const hv of order) {
        o.progress?.(`run ${run}/${o.runs} · ${w.id} · ${hv}`);
        let sample: Record<string, Outcome>;
        try {
          sample = await w.run(hv, o.context);
        } catch (e) {
          // A workload that fails is a row of reasons, never the end of the command.
          const why = na(`error: ${(e as Error).message.split("\n")[0]}`);
          sample = Object.fromEntries(ids.map((id) => [id, why]));
        }
        for (const id of ids) {
          const out = sample[id] ?? na("not produced by this run");
          records.push(
            "value" in out && Number.isFinite(out.value)
              ? { measure: id, hypervisor: hv, run, workload: w.id, value: out.value }
              : {
                  measure: id,
                  hypervisor: hv,
                  run,
                  workload: w.id,
                  value: null,
                  reason: "reason" in out ? out.reason : "not a finite number",
                },
          );
        }
      }
    }
  }
  return records;
}

/** Median, spread and ratio per measure, in MEASURES order. */
export function summaries(records: readonly CompareRecord[]): Summary[] {
  const out: Summary[] = [];
  for (const d of MEASURES) {
    const rs = records.filter((r) => r.measure === d.id);
    if (rs.length === 0) continue;
    const col = (hv: Hypervisor): Outcome[] =>
      rs
        .filter((r) => r.hypervisor === hv)
        .map((r) => (r.value === null ? { reason: r.reason ?? "n/a" } : { value: r.value }));
    out.push(summarize(d.id, { monolithic: col("monolithic"), micro: col("micro") }));
  }
  return out;
}
