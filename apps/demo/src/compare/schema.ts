// The --json document of `ringzero compare` (version 1), as a zod schema: the
// documentation of the format and its validator. README "ringzero compare"
// describes the fields.
import { z } from "zod";
import { HYPERVISORS, SECTIONS } from "./measures.js";

export const COMPARE_SCHEMA_ID = "ringzero-compare/1";

const finite = z.number().refine(Number.isFinite, "finite number");

export const MeasureSchema = z
  .object({
    id: z.string().min(1),
    section: z.enum(SECTIONS),
    label: z.string(),
    unit: z.string(),
    better: z.enum(["lower", "higher", "none"]),
  })
  .strict();

/** One measure of one run under one hypervisor: a value, or the reason there is none. */
export const RecordSchema = z
  .object({
    measure: z.string().min(1),
    hypervisor: z.enum(HYPERVISORS),
    /** 1-based run number; static measures (the TCB) have run 1 only. */
    run: z.number().int().min(1),
    /** The workload that produced it (start, embedded, cpu, tcb, linux, fault). */
    workload: z.string(),
    value: finite.nullable(),
    /** Present exactly when value is null. */
    reason: z.string().min(1).optional(),
  })
  .strict()
  .refine((r) => (r.value === null) === (r.reason !== undefined), {
    message: "a record has a value or a reason, not both",
  });

const ColumnSchema = z.union([
  z.object({ n: z.number().int().min(1), median: finite, min: finite, max: finite }).strict(),
  z.object({ reason: z.string().min(1) }).strict(),
]);

export const SummarySchema = z
  .object({
    measure: z.string(),
    monolithic: ColumnSchema,
    micro: ColumnSchema,
    /** micro median / mono median, with the extremes the runs allow. */
    ratio: z.union([
      z.object({ median: finite, low: finite, high: finite }).strict(),
      z.object({ reason: z.string().min(1) }).strict(),
    ]),
  })
  .strict();

export const MachineSchema = z
  .object({
    platform: z.string(),
    arch: z.string(),
    cpuModel: z.string(),
    cpus: z.number().int(),
    memoryBytes: z.number(),
    loadAverage: z.array(z.number()),
    node: z.string(),
    v8: z.string(),
  })
  .strict();

export const CompareReportSchema = z
  .object({
    schema: z.literal(COMPARE_SCHEMA_ID),
    /** ISO 8601 start time. */
    startedAt: z.string(),
    seconds: finite,
    machine: MachineSchema,
    /** @ringzero package versions, and the git commit when run from a checkout. */
    versions: z.record(z.string(), z.string()),
    options: z
      .object({
        runs: z.number().int().min(1),
        sections: z.array(z.enum(SECTIONS)),
        memoryBytes: z.number().int(),
        cpuGuest: z.string(),
        kernel: z.string().optional(),
        initrd: z.string().optional(),
      })
      .strict(),
    measures: z.array(MeasureSchema),
    records: z.array(RecordSchema),
    summary: z.array(SummarySchema),
  })
  .strict();

export type CompareReport = z.infer<typeof CompareReportSchema>;
export type CompareRecord = z.infer<typeof RecordSchema>;
