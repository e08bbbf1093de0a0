// VSPs of the user's own: the plug-in point of the parent partition. A
// definition names the channel type (the offer's interface GUID, vmbus.md
// §2.3), the module the VSP worker imports (its `createVsp`) and the module
// the child's paravisor imports for the paired VSC (its `createVsc`, which
// returns the virtio device the guest sees). The parent offers the channel,
// runs the VSP in a worker of its own and restarts it like the built-in ones
// (storage, 9p, network and console go through the same worker contract,
// `VspService`, in vsp-worker.ts).
import type { GrantedMemory } from "@ringzero/hypervisor-micro";
import type { Channel } from "@ringzero/vmbus";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";
import * as z from "./zod.js";

/** What a VSP module's `createVsp` returns: the parent's end of one channel, in the VSP's worker thread. */
export interface VspService {
  /** The child opened the channel (again after a restart or a re-offer): serve it. */
  attach(channel: Channel): void;
  /** Figures for `stats()` and the monitor's `info vsp` (numbers only; others are left out). */
  readonly counters?: object;
  /** Graceful stop (`vsp restart NAME`, power-off): answer what is in flight, release what it holds. */
  quiesce?(): void | Promise<void>;
}

/** What `createVsp` gets. */
export interface VspContext {
  /** The definition's name (the monitor's `vsp kill NAME`). */
  readonly name: string;
  /** The definition's `vsp.data` (structured-cloned into the worker). */
  readonly data: unknown;
  /**
   * The child's RAM grant while the channel is attached, for GPA-direct packets (requests that
   * name guest buffers by page: `viewsOfRanges(ram, packet.header)`); undefined unless the
   * definition says `guestMemory: true` (and before the first attachment).
   */
  readonly guestMemory: () => GrantedMemory | undefined;
}

/** The export a VSP module must have: `export function createVsp(ctx) { … }` (may be async: it opens the resource). */
export type CreateVsp = (ctx: VspContext) => VspService | Promise<VspService>;

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Names the built-in devices answer to on the monitor (`storage1`, `net`, ...): not for custom VSPs. */
const RESERVED = /^(storage|9p|network|net|console|balloon|rng)\d*$/;

const ModuleSchema = z.strictObject({
  /** A module URL (`file:`, `data:`, ...) or, under Node, a file path (resolved against the working directory). */
  module: z.union([z.string().check(z.minLength(1)), z.instanceof(URL)]),
  /** Anything structured-clone can copy (the worker and the paravisor each get a copy). */
  data: z.optional(z.unknown()),
});

export const CustomVspSchema = z.strictObject({
  /** Lower-case letters, digits and '-', starting with a letter; unique; not a built-in device's name. */
  name: z.string().check(
    z.regex(/^[a-z][a-z0-9-]{0,31}$/, "lower-case letters, digits and '-', starting with a letter (≤ 32)"),
    z.refine((n) => !RESERVED.test(n), "a built-in device's name"),
  ),
  /** The channel type: the offer's interface GUID, which the VSC checks. */
  interfaceId: z.string().check(z.regex(GUID, "a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")),
  /** The offer's instance GUID (default: one derived from the definition's position). */
  instanceId: z.optional(z.string().check(z.regex(GUID, "a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"))),
  /** The parent's end: a module exporting `createVsp` (CreateVsp), run in a worker thread of the parent. */
  vsp: ModuleSchema,
  /** The child's end: a module exporting `createVsc` (partition-child's CreateVsc), run in the child's paravisor. */
  vsc: ModuleSchema,
  /**
   * How long a successor waits after this VSP's worker was killed, in ms (default 0): for
   * resources that outlive the worker (a process it started, say). Its node:fs requests do not:
   * Node finishes or cancels them before the worker's exit.
   */
  killGraceMs: z.optional(z.int().check(z.minimum(0), z.maximum(10_000))),
  /** Give the VSP the child's RAM grant (`ctx.guestMemory()`), as the storage VSP has it (default false). */
  guestMemory: z.optional(z.boolean()),
  /** Ring bytes per direction, a power of two (default 16 KiB). */
  ringBytes: z.optional(
    z.int().check(
      z.minimum(4096),
      z.maximum(4 * 1024 * 1024),
      z.refine((n) => (n & (n - 1)) === 0, "a power of two"),
    ),
  ),
});

/** A VSP of the user's own, as `createMicroVm`'s `vsps` option takes it. */
export type CustomVsp = z.input<typeof CustomVspSchema>;

/** A checked definition, as it travels to the parent's thread (URLs as strings, data cloned). */
export interface CustomVspInit {
  readonly name: string;
  readonly interfaceId: string;
  readonly instanceId: string;
  readonly vsp: { readonly module: string; readonly data: unknown };
  readonly vsc: { readonly module: string; readonly data: unknown };
  readonly ringBytes: number;
  readonly killGraceMs: number;
  readonly guestMemory: boolean;
}

/** Resolves a module that is a file path (the host's: Node's createMicroVm passes pathToFileURL). */
export type ResolveModule = (path: string) => string;

function moduleHref(m: string | URL, resolvePath: ResolveModule | undefined): string {
  if (m instanceof URL) return m.href;
  if (/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(m) && !/^[a-zA-Z]:[\\/]/.test(m)) return new URL(m).href;
  if (!resolvePath) throw new Error(`"${m}" is not a URL, and this host resolves no file paths`);
  return resolvePath(m);
}

/** The instance GUID of custom VSP `index` when the definition names none (stable across restarts). */
export function customInstanceId(index: number): string {
  return `72696e67-7a65-726f-8001-${index.toString(16).padStart(12, "0")}`;
}

/** Checks `vsps` (CONFIG_INVALID naming the field on any mistake) and makes them ready for the parent's thread. */
export function parseCustomVsps(vsps: readonly unknown[] | undefined, resolvePath?: ResolveModule): CustomVspInit[] {
  const out: CustomVspInit[] = [];
  for (const [i, v] of (vsps ?? []).entries()) {
    const r = CustomVspSchema.safeParse(v);
    if (!r.success) {
      const issue = r.error.issues[0];
      const path = ["vsps", i, ...(issue?.path ?? [])].join(".");
      throw new MicroVmError(MicroVmErrorCode.CONFIG_INVALID, { path }, `${path}: ${issue?.message ?? "invalid"}`);
    }
    const d = r.data;
    const path = `vsps.${i}`;
    if (out.some((o) => o.name === d.name))
      throw new MicroVmError(MicroVmErrorCode.CONFIG_INVALID, { path }, `${path}.name: "${d.name}" twice`);
    let vsp: CustomVspInit["vsp"];
    let vsc: CustomVspInit["vsc"];
    try {
      vsp = { module: moduleHref(d.vsp.module, resolvePath), data: structuredClone(d.vsp.data) };
      vsc = { module: moduleHref(d.vsc.module, resolvePath), data: structuredClone(d.vsc.data) };
    } catch (e) {
      throw new MicroVmError(MicroVmErrorCode.CONFIG_INVALID, { path }, `${path}: ${(e as Error).message}`);
    }
    out.push({
      name: d.name,
      interfaceId: d.interfaceId.toLowerCase(),
      instanceId: (d.instanceId ?? customInstanceId(i)).toLowerCase(),
      vsp,
      vsc,
      ringBytes: d.ringBytes ?? 16384,
      killGraceMs: d.killGraceMs ?? 0,
      guestMemory: d.guestMemory ?? false,
    });
  }
  return out;
}

/** Only the numeric counters of a service (what crosses the worker's port and reaches `stats()`). */
export function numericCounters(c: object | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!c || typeof c !== "object") return out;
  for (const [k, v] of Object.entries(c)) if (typeof v === "number") out[k] = v;
  return out;
}
