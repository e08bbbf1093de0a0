// The slice of the WebAssembly JS API the translator uses, typed here so that the package needs
// neither the DOM lib nor a particular @types/node (WebAssembly JS API 2.0 §5).

/** A WebAssembly.Memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/** A WebAssembly.Table of functions. */
export interface WasmTable {
  readonly length: number;
  grow(delta: number): number;
  set(index: number, value: unknown): void;
}

interface WasmApi {
  Table: new (d: { initial: number; element: "anyfunc" }) => WasmTable;
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  compile(bytes: Uint8Array): Promise<object>;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}

/** The host's WebAssembly object, or undefined where there is none. */
export const wasmApi: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
