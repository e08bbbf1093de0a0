// Guest physical memory as the hart sees it: one RAM region backed by an
// ArrayBuffer or SharedArrayBuffer; every other physical address is MMIO and
// leaves run() as an `mmio` exit for the hypervisor to complete.
//
// A bus that allocates its own RAM puts it at offset 0 of a WebAssembly.Memory,
// followed by a reserve for hart state (register files, data TLBs): the
// translator's WebAssembly back end reaches RAM and that state in one memory.

import { CpuError, CpuErrorCode } from "../errors.js";
import * as z from "../zod.js";
import { type WasmMemory, wasmApi } from "./wasm-api.js";

export const BusConfigSchema = z.object({
  /** Guest-physical base of RAM (QEMU virt: 0x8000_0000). Page-aligned. */
  ramBase: z.int().check(
    z.nonnegative(),
    z.refine((v) => v % 4096 === 0, "ramBase must be 4 KiB aligned"),
  ),
  /** RAM size in bytes: a positive multiple of 4 KiB, at most 2^31 bytes for typed-array indexing. */
  ramSize: z.int().check(
    z.positive(),
    z.maximum(2 ** 31),
    z.refine((v) => v % 4096 === 0, "ramSize must be a multiple of 4 KiB"),
  ),
});
export type BusConfig = z.input<typeof BusConfigSchema>;

/** Bytes of hart state a hart takes from its bus's memory (see Hart: registers, control, data TLBs). */
export const HART_STATE_BYTES = 4096 + 16 * 128 * 1024 + 1024 * 1024 + 4 * 64 * 1024;
/** Harts whose state fits in the memory of a bus that allocated its own RAM. */
const STATE_HARTS = 8;
const WASM_PAGE = 65536;

export class Bus {
  readonly ramBase: number;
  readonly ramSize: number;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly i32: Int32Array;
  /** Physical pages (page numbers relative to RAM) whose stores must leave the fast path (HTIF tohost). */
  readonly watchedPages = new Set<number>();
  /** The WebAssembly.Memory holding RAM at offset 0 (when the bus allocated RAM itself), or undefined. */
  readonly memory: WasmMemory | undefined;
  /** Pages of `memory`. */
  readonly memoryPages: number = 0;
  private stateNext = 0;

  constructor(config: BusConfig, buffer?: ArrayBuffer | SharedArrayBuffer) {
    const parsed = BusConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new CpuError(CpuErrorCode.CONFIG_INVALID, { config }, parsed.error.issues.map((i) => i.message).join("; "));
    }
    this.ramBase = parsed.data.ramBase;
    this.ramSize = parsed.data.ramSize;
    if (buffer && buffer.byteLength !== this.ramSize) {
      throw new CpuError(CpuErrorCode.CONFIG_INVALID, { ramSize: this.ramSize, bufferSize: buffer.byteLength });
    }
    let memory: WasmMemory | undefined;
    const api = wasmApi;
    if (buffer === undefined && api !== undefined) {
      const pages = Math.ceil((this.ramSize + STATE_HARTS * HART_STATE_BYTES) / WASM_PAGE);
      try {
        memory = new api.Memory({ initial: pages, maximum: pages });
        this.memoryPages = pages;
        this.stateNext = this.ramSize;
      } catch {
        memory = undefined; // no address space for it: a plain buffer (the JavaScript back end only)
      }
    }
    this.memory = memory;
    this.buffer = buffer ?? memory?.buffer ?? new ArrayBuffer(this.ramSize);
    this.u8 = new Uint8Array(this.buffer, 0, this.ramSize);
    this.u16 = new Uint16Array(this.buffer, 0, this.ramSize >> 1);
    this.i32 = new Int32Array(this.buffer, 0, this.ramSize >> 2);
  }

  /**
   * Take HART_STATE_BYTES of hart state from the memory's reserve: its byte offset in `buffer`, or
   * undefined (no WebAssembly memory, or the reserve is used up).
   */
  allocHartState(): number | undefined {
    if (this.memory === undefined || this.stateNext + HART_STATE_BYTES > this.memoryPages * WASM_PAGE) return undefined;
    const at = this.stateNext;
    this.stateNext += HART_STATE_BYTES;
    return at;
  }

  /** True when [pa, pa+len) lies inside RAM. */
  inRam(pa: number, len = 1): boolean {
    return pa >= this.ramBase && pa + len <= this.ramBase + this.ramSize;
  }

  /** Copy bytes into RAM at a guest-physical address (loaders). */
  write(pa: number, data: Uint8Array): void {
    if (!this.inRam(pa, data.length)) {
      throw new CpuError(CpuErrorCode.ELF_OUTSIDE_RAM, { address: pa, length: data.length });
    }
    this.u8.set(data, pa - this.ramBase);
  }

  /** Copy bytes out of RAM (a view is returned for zero-copy callers). */
  read(pa: number, len: number): Uint8Array {
    if (!this.inRam(pa, len)) throw new CpuError(CpuErrorCode.ELF_OUTSIDE_RAM, { address: pa, length: len });
    return this.u8.subarray(pa - this.ramBase, pa - this.ramBase + len);
  }

  /** Make stores to this physical address leave the fast path (used for HTIF tohost). */
  watch(pa: number): void {
    if (this.inRam(pa)) this.watchedPages.add(Math.floor((pa - this.ramBase) / 4096));
  }
}
