import { describe, expect, it } from "vitest";
import { CpuError, CpuErrorCode } from "../errors.js";
import { Bus, HART_STATE_BYTES } from "./bus.js";
import { Hart } from "./hart.js";
import { type WasmMemory, wasmApi } from "./wasm-api.js";

const BASE = 0x8000_0000;
const RAM = 1 << 20;
const PAGE = 65536;

function sharedMemory(pages: number, maximum = pages): WasmMemory {
  if (!wasmApi) throw new Error("no WebAssembly");
  return new wasmApi.Memory({ initial: pages, maximum, shared: true });
}

function configError(f: () => unknown): CpuError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CpuError);
    expect((e as CpuError).code).toBe(CpuErrorCode.CONFIG_INVALID);
    return e as CpuError;
  }
  return expect.unreachable("no CpuError");
}

/** addi a0,a0,1 ×3; j .-12 (RV64I): a loop the translator compiles. */
function loop(bus: Bus): void {
  const words = [0x0015_0513, 0x0015_0513, 0x0015_0513, 0xff5f_f06f];
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => {
    dv.setUint32(i * 4, w >>> 0, true);
  });
  bus.write(BASE, out);
}

describe("Bus over a caller's WebAssembly.Memory", () => {
  it("puts RAM at offset 0 and hands out hart state from the reserve, then none", () => {
    const pages = Math.ceil((RAM + 2 * HART_STATE_BYTES) / PAGE);
    const memory = sharedMemory(pages);
    const bus = new Bus({ ramBase: BASE, ramSize: RAM }, { memory, stateBytes: 2 * HART_STATE_BYTES });
    expect(bus.memory).toBe(memory);
    expect(bus.buffer).toBe(memory.buffer);
    expect(bus.memoryPages).toBe(pages);
    expect(bus.u8.length).toBe(RAM);
    bus.write(BASE + 5, Uint8Array.of(42));
    expect(new Uint8Array(memory.buffer)[5]).toBe(42);
    expect(bus.allocHartState()).toBe(RAM);
    expect(bus.allocHartState()).toBe(RAM + HART_STATE_BYTES);
    expect(bus.allocHartState()).toBeUndefined();
  });

  it("takes hart state from the window it is given (one per thread sharing the memory)", () => {
    const pages = Math.ceil((RAM + 2 * HART_STATE_BYTES) / PAGE);
    const memory = sharedMemory(pages);
    const a = new Bus({ ramBase: BASE, ramSize: RAM }, { memory, stateOffset: RAM, stateBytes: HART_STATE_BYTES });
    const b = new Bus(
      { ramBase: BASE, ramSize: RAM },
      { memory, stateOffset: RAM + HART_STATE_BYTES, stateBytes: HART_STATE_BYTES },
    );
    expect(a.allocHartState()).toBe(RAM);
    expect(a.allocHartState()).toBeUndefined();
    expect(b.allocHartState()).toBe(RAM + HART_STATE_BYTES);
    expect(b.allocHartState()).toBeUndefined();
  });

  it("runs WebAssembly blocks on a shared memory, the register file in its reserve", () => {
    const memory = sharedMemory(Math.ceil((RAM + HART_STATE_BYTES) / PAGE));
    const bus = new Bus({ ramBase: BASE, ramSize: RAM }, { memory });
    loop(bus);
    const hart = new Hart(bus, { engine: "translator", translateAfter: 1 });
    hart.pc = BASE;
    hart.run(100_000); // 25 000 times round the 4-instruction loop
    expect(hart.translatorStats()?.wasmBlocks).toBeGreaterThan(0);
    // a0 (x10) is words 20-21 of the register file, which starts the reserve (regs.ts)
    expect(hart.x[20]).toBe(75_000);
    expect(new Int32Array(memory.buffer, RAM, 64)[20]).toBe(75_000);
  });

  it("without room for hart state the hart runs the JavaScript back end", () => {
    const memory = sharedMemory(RAM / PAGE);
    const bus = new Bus({ ramBase: BASE, ramSize: RAM }, { memory });
    expect(bus.allocHartState()).toBeUndefined();
    loop(bus);
    const hart = new Hart(bus, { engine: "translator", translateAfter: 1 });
    hart.pc = BASE;
    hart.run(10_000);
    expect(hart.translatorStats()?.wasmBlocks).toBe(0);
    expect(hart.translatorStats()?.blocksTranslated).toBeGreaterThan(0);
  });

  it("rejects memories it cannot use, with CONFIG_INVALID", () => {
    const cfg = { ramBase: BASE, ramSize: RAM };
    configError(() => new Bus(cfg, { memory: sharedMemory(RAM / PAGE - 1) })); // smaller than RAM
    configError(() => new Bus(cfg, { memory: {} as WasmMemory }));
    configError(() => new Bus(cfg, { memory: sharedMemory(20), stateOffset: RAM - 4096 })); // overlaps RAM
    configError(() => new Bus(cfg, { memory: sharedMemory(20), stateOffset: RAM + 1 }));
    configError(() => new Bus(cfg, { memory: sharedMemory(20), stateBytes: 4 * PAGE + 1 })); // past the end
    // a shared memory whose maximum exceeds its size cannot be imported as the translator does
    const e = configError(() => new Bus(cfg, { memory: sharedMemory(20, 40) }));
    expect(e.message).toContain("maximum = initial");
  });

  it("keeps the old forms: its own memory, or a buffer of exactly ramSize", () => {
    const own = new Bus({ ramBase: BASE, ramSize: RAM });
    expect(own.memory).toBeDefined();
    expect(own.allocHartState()).toBe(RAM);
    const sab = new SharedArrayBuffer(RAM);
    const given = new Bus({ ramBase: BASE, ramSize: RAM }, sab);
    expect(given.buffer).toBe(sab);
    expect(given.memory).toBeUndefined();
    expect(given.allocHartState()).toBeUndefined();
    configError(() => new Bus({ ramBase: BASE, ramSize: RAM }, new ArrayBuffer(RAM + 4096)));
  });
});
