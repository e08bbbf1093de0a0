// The child's half of a VSP of the user's own (partition-parent's `vsps`
// option): the paravisor imports the module the parent names and calls its
// `createVsc` with the opened channel; the virtio device it returns is placed
// in the slot the parent chose, and its `detach`/`attach` (when present) follow
// the channel through rescinds and re-offers (vmbus.md §4), as the built-in
// VSCs do. The built-in devices are made through the same `VscInstance` shape
// (paravisor.ts).
import type { GuestMemory, VirtioDevice } from "@ringzero/virtio";
import type { ClientChannel } from "@ringzero/vmbus";

/** What `createVsc` gets. */
export interface VscContext {
  /** The channel of the definition's interface, open. */
  readonly channel: ClientChannel;
  /** The definition's `vsc.data` (structured-cloned). */
  readonly data: unknown;
  /** The guest's RAM, as the virtio device models take it. */
  readonly memory: GuestMemory;
  /**
   * The guest's RAM as one buffer at `gpa` (for GPA-direct packets: vmbus `encodeGpaDirectHeader`):
   * its first `size` bytes (the buffer is longer: the microkernel keeps hart state after RAM).
   */
  readonly ram: { readonly gpa: number; readonly size: number; readonly buffer: SharedArrayBuffer };
}

/** A VSC and the device the guest sees. */
export interface VscInstance {
  /** Placed in a virtio-mmio slot; the unmodified guest's driver binds to it. */
  readonly device: VirtioDevice;
  /** Numbers for the paravisor's counters (`<kind>@<slot>`). */
  readonly counters?: object;
  /** The channel was rescinded (the parent's VSP ended): hold or fail requests until `attach`. */
  detach?(): void;
  /** The re-offered channel is open (a successor VSP serves it). */
  attach?(channel: ClientChannel): void;
}

/** The export a VSC module must have: `export function createVsc(ctx) { … }` (may be async: it may talk to the VSP first). */
export type CreateVsc = (ctx: VscContext) => VscInstance | Promise<VscInstance>;

/** Imports `module` and runs its `createVsc`; throws a message naming the module when either is wrong. */
export async function loadVsc(module: string, ctx: VscContext): Promise<VscInstance> {
  const mod = (await import(/* @vite-ignore */ module)) as { createVsc?: unknown };
  if (typeof mod.createVsc !== "function") throw new Error(`${module} exports no createVsc function`);
  const v = (await (mod.createVsc as CreateVsc)(ctx)) as VscInstance | undefined;
  const d = v?.device as { notify?: unknown; deviceId?: unknown } | undefined;
  if (!v || typeof d?.notify !== "function" || typeof d.deviceId !== "number")
    throw new Error(`${module}: createVsc returned no virtio device ({ device: VirtioDevice })`);
  return v;
}
