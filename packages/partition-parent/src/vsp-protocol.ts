// Messages between the parent partition's thread and its VSP workers.
import type { GrantTransfer, SharedSintConnection } from "@ringzero/hypervisor-micro";
import type { ChannelDataPlane } from "@ringzero/vmbus";

export type VspKind = "storage" | "network" | "console" | "9p" | "custom";

export type VspInit =
  | {
      readonly kind: "storage";
      readonly drive: {
        readonly path: string;
        readonly format?: string;
        readonly readOnly: boolean;
        /** The image as a Blob (a browser's File): read by slices, writes kept in memory. */
        readonly file?: Blob;
      };
    }
  | {
      readonly kind: "9p";
      readonly share: { readonly path: string; readonly readOnly: boolean; readonly maxMsize: number };
    }
  | { readonly kind: "network" }
  | { readonly kind: "console" }
  /** A VSP of the user's own: `module` (a URL) exports `createVsp` (see custom.ts). */
  | { readonly kind: "custom"; readonly name: string; readonly module: string; readonly data: unknown };

export type ToVsp =
  /** Take over: open the resource (a warm spare has its modules loaded already). */
  | { readonly kind: "open" }
  | {
      readonly kind: "attach";
      readonly plane: ChannelDataPlane;
      /** The child's VMBus SINT: the worker signals the guest end itself. */
      readonly signal: SharedSintConnection;
      /** One Int32 the parent thread bumps (and notifies) when the child signals the channel. */
      readonly doorbell: SharedArrayBuffer;
      /** The child's RAM grant (storage, and custom VSPs that asked for it, use guest buffers named by GPA). */
      readonly ram?: GrantTransfer;
    }
  | { readonly kind: "detach" }
  | { readonly kind: "frames"; readonly frames: Uint8Array[] }
  | { readonly kind: "input"; readonly bytes: Uint8Array }
  | { readonly kind: "counters"; readonly id: number }
  | { readonly kind: "stop" };

export type VspToParent =
  /** Modules loaded: the worker can take over. */
  | { readonly kind: "loaded" }
  /** The resource is open: the worker serves. */
  | { readonly kind: "ready" }
  | { readonly kind: "error"; readonly message: string; readonly code?: string }
  | { readonly kind: "violation"; readonly code: string; readonly message: string }
  | { readonly kind: "frames"; readonly frames: Uint8Array[] }
  | { readonly kind: "console"; readonly chunks: Uint8Array[] }
  | { readonly kind: "counters"; readonly id: number; readonly counters: Record<string, number> }
  | { readonly kind: "stopped" };

/** Frames or bytes for the other thread, handed over once per turn of the event loop (one postMessage per batch). */
export function batcher(flush: (items: Uint8Array[]) => void): (item: Uint8Array) => void {
  let items: Uint8Array[] = [];
  return (item) => {
    if (items.length === 0)
      queueMicrotask(() => {
        const out = items;
        items = [];
        flush(out);
      });
    items.push(item);
  };
}
