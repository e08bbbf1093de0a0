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
  get(index: number): unknown;
}

interface WasmApi {
  Table: new (d: { initial: number; element: "anyfunc" }) => WasmTable;
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  compile(bytes: Uint8Array): Promise<object>;
  validate(bytes: Uint8Array): boolean;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}

/** The host's WebAssembly object, or undefined where there is none. */
export const wasmApi: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * Whether the host has WebAssembly tail calls (return_call: WebAssembly 3.0; V8 11.2, Firefox
 * 121, Safari 18.2): the translator chains traces with them (wasm-block.ts chained()), and
 * leaves every exit to its dispatcher without.
 */
export const wasmTailCalls: boolean =
  wasmApi?.validate(
    // (module (type (func)) (func (type 0) return_call 0))
    new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 6, 1, 4, 0, 18, 0, 11]),
  ) === true;
