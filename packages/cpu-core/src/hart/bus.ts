// Guest physical memory as the hart sees it: one RAM region backed by an
// ArrayBuffer or SharedArrayBuffer; every other physical address is MMIO and
// leaves run() as an `mmio` exit for the hypervisor to complete.
//
// A bus that allocates its own RAM puts it at offset 0 of a WebAssembly.Memory,
// followed by a reserve for hart state (register files, data TLBs): the
// translator's WebAssembly back end reaches RAM and that state in one memory.
// A host that shares RAM between threads (the microkernel) makes that memory
// itself, shared, and gives each thread's bus the memory and its part of the
// reserve (`new Bus(config, { memory, stateOffset, stateBytes })`).

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

/**
 * RAM in a WebAssembly.Memory made by the caller: RAM at offset 0, hart state taken from
 * [stateOffset, stateOffset + stateBytes). A shared memory (its buffer a SharedArrayBuffer, for
 * RAM seen by several threads) must have been created with `maximum` equal to `initial`: the
 * translator's modules import it with exactly those limits (WebAssembly 2.0 §3.2.3, shared
 * memories must declare a maximum; §4.5.2 import matching).
 */
export const BusMemorySchema = z.object({
  memory: z.custom<WasmMemory>(
    (m) => typeof m === "object" && m !== null && isBuffer((m as { buffer?: unknown }).buffer),
    "memory must be a WebAssembly.Memory",
  ),
  /** Byte offset of this bus's hart-state reserve (default: the end of RAM). 4 KiB aligned, at or after RAM. */
  stateOffset: z.optional(
    z.int().check(
      z.nonnegative(),
      z.refine((v) => v % 4096 === 0, "stateOffset must be 4 KiB aligned"),
    ),
  ),
  /** Bytes of that reserve (default: the rest of the memory); HART_STATE_BYTES per hart. */
  stateBytes: z.optional(z.int().check(z.nonnegative())),
});
export type BusMemory = z.input<typeof BusMemorySchema>;

/** Bytes of hart state a hart takes from its bus's memory (see Hart: registers, control, data TLBs). */
export const HART_STATE_BYTES = 4096 + 16 * 128 * 1024 + 1024 * 1024 + 4 * 64 * 1024;
/** Harts whose state fits in the memory of a bus that allocated its own RAM. */
const STATE_HARTS = 8;
const WASM_PAGE = 65536;

export class Bus {
  readonly ramBase: number;
  readonly ramSize: number;
  /** RAM at offset 0; with a WebAssembly memory it is longer than RAM (hart state follows): use u8. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly i32: Int32Array;
  /** Physical pages (page numbers relative to RAM) whose stores must leave the fast path (HTIF tohost). */
  readonly watchedPages = new Set<number>();
  /** The WebAssembly.Memory holding RAM at offset 0 (allocated by the bus or given to it), or undefined. */
  readonly memory: WasmMemory | undefined;
  /** Pages of `memory`. */
  readonly memoryPages: number = 0;
  private stateNext = 0;
  private stateEnd = 0;

  /**
   * `ram`: absent (the bus allocates RAM, in a WebAssembly.Memory where the host has one), a
   * buffer of exactly ramSize bytes (RAM only: the translator's JavaScript back end), or a
   * caller's WebAssembly.Memory with RAM at offset 0 (see BusMemorySchema).
   */
  constructor(config: BusConfig, ram?: ArrayBuffer | SharedArrayBuffer | BusMemory) {
    const parsed = BusConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new CpuError(CpuErrorCode.CONFIG_INVALID, { config }, parsed.error.issues.map((i) => i.message).join("; "));
    }
    this.ramBase = parsed.data.ramBase;
    this.ramSize = parsed.data.ramSize;
    if (ram !== undefined && !isBuffer(ram)) {
      const given = this.useMemory(ram);
      this.memory = given.memory;
      this.memoryPages = given.pages;
      this.buffer = given.memory.buffer;
      this.u8 = new Uint8Array(this.buffer, 0, this.ramSize);
      this.u16 = new Uint16Array(this.buffer, 0, this.ramSize >> 1);
      this.i32 = new Int32Array(this.buffer, 0, this.ramSize >> 2);
      return;
    }
    const buffer = ram;
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
        this.stateEnd = pages * WASM_PAGE;
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
    if (this.memory === undefined || this.stateNext + HART_STATE_BYTES > this.stateEnd) return undefined;
    const at = this.stateNext;
    this.stateNext += HART_STATE_BYTES;
    return at;
  }

  /** Checks a caller's memory (BusMemorySchema) and takes its hart-state reserve. */
  private useMemory(ram: BusMemory): { memory: WasmMemory; pages: number } {
    const parsed = BusMemorySchema.safeParse(ram);
    if (!parsed.success) {
      throw new CpuError(CpuErrorCode.CONFIG_INVALID, {}, parsed.error.issues.map((i) => i.message).join("; "));
    }
    const { memory } = parsed.data;
    const size = memory.buffer.byteLength;
    const stateOffset = parsed.data.stateOffset ?? this.ramSize;
    const stateBytes = parsed.data.stateBytes ?? Math.max(0, size - stateOffset);
    const context = { ramSize: this.ramSize, memoryBytes: size, stateOffset, stateBytes };
    if (size < this.ramSize || size % WASM_PAGE !== 0)
      throw new CpuError(CpuErrorCode.CONFIG_INVALID, context, "the memory must hold RAM at offset 0");
    if (stateOffset < this.ramSize || stateOffset + stateBytes > size)
      throw new CpuError(
        CpuErrorCode.CONFIG_INVALID,
        context,
        "the hart-state reserve must lie after RAM, inside the memory",
      );
    const pages = size / WASM_PAGE;
    if (!importsAsTranslatorDoes(memory, pages))
      throw new CpuError(
        CpuErrorCode.CONFIG_INVALID,
        context,
        "the memory cannot be imported with its size as minimum (and, shared, as maximum): make it with maximum = initial",
      );
    this.stateNext = stateOffset;
    this.stateEnd = stateOffset + stateBytes;
    return { memory, pages };
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

function isBuffer(v: unknown): v is ArrayBuffer | SharedArrayBuffer {
  return v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer);
}

/**
 * True when `memory` links to an import declared as the translator's modules declare theirs
 * (wasm-block.ts assemble(): "e"."m", `pages` as minimum and, when shared, as maximum). A module
 * of one import section, instantiated once per bus: a memory made with a larger maximum fails
 * here with a typed error rather than in the hart's first compile.
 */
function importsAsTranslatorDoes(memory: WasmMemory, pages: number): boolean {
  const api = wasmApi;
  if (api === undefined) return false;
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  // import section (WebAssembly 2.0 §5.5.5): one import, "e"."m", memory (0x02) with limits §5.3.7
  const entry = [1, 0x01, 0x65, 0x01, 0x6d, 0x02, shared ? 0x03 : 0x00, ...uleb(pages), ...(shared ? uleb(pages) : [])];
  const bytes = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x02, ...uleb(entry.length), ...entry);
  try {
    new api.Instance(new api.Module(bytes), { e: { m: memory } });
    return true;
  } catch {
    return false;
  }
}

function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}
