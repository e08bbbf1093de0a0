// RAM in a shared WebAssembly.Memory (kernel.ts MapGpaPages, vp.ts): the VP's
// translator runs its WebAssembly back end on the partition's RAM, every other
// view of that RAM (grants) still sees exactly RAM, and a kernel made with
// ramMemory "buffer" keeps the plain SharedArrayBuffer and the JavaScript back end.
import { afterEach, describe, expect, it } from "vitest";
import { GrantedMemory } from "./memory.js";
import { type Microkernel, ROOT_PARTITION_ID } from "./node.js";
import { unwrap } from "./status.js";
import { cpuKernel, cpuWorkload, startCpuPartition } from "./testing/cpu-guest.js";

const ROOT = ROOT_PARTITION_ID;
const RAM_BASE = 0x8000_0000;
const MiB = 1024 * 1024;

/** Polls `k`'s counters of partition `id`'s VP until `done` holds or 20 s pass. */
async function until(k: Microkernel, id: number, done: (c: Record<string, number>) => boolean) {
  const t0 = performance.now();
  let c = k.vpCounters(id, 0) ?? {};
  while (!done(c) && performance.now() - t0 < 20_000) {
    await new Promise((r) => setTimeout(r, 20));
    c = k.vpCounters(id, 0) ?? {};
  }
  return c;
}

describe("partition RAM in a shared WebAssembly.Memory", () => {
  let k: Microkernel | undefined;
  afterEach(async () => {
    await k?.shutdown();
    k = undefined;
  });

  it("the VP's translator runs WebAssembly blocks", async () => {
    k = cpuKernel();
    const id = startCpuPartition(k, "wasm", cpuWorkload(), undefined, "translator");
    const c = await until(k, id, (c) => c.translatorWasmBlocks > 0);
    expect(c.translatorWasmBlocks).toBeGreaterThan(0);
    expect(c.translatorBlocks).toBeGreaterThanOrEqual(c.translatorWasmBlocks);
    expect(c.instructions).toBeGreaterThan(0);
  });

  it('ramMemory "buffer": plain SharedArrayBuffer RAM, the JavaScript back end', async () => {
    k = cpuKernel(0, "buffer");
    const id = startCpuPartition(k, "js", cpuWorkload(), undefined, "translator");
    const c = await until(k, id, (c) => c.translatorBlocks > 0);
    expect(c.translatorBlocks).toBeGreaterThan(0);
    expect(c.translatorWasmBlocks).toBe(0);
  });

  it("grants see RAM only: the hart-state windows after RAM are out of reach", () => {
    k = cpuKernel();
    const id = unwrap("CreatePartition", k.hypercall(ROOT, "CreatePartition", { name: "g" })).partitionId;
    unwrap("MapGpaPages", k.hypercall(ROOT, "MapGpaPages", { partitionId: id, gpa: RAM_BASE, size: MiB, kind: "ram" }));
    // the quota counts guest memory, not the kernel's per-VP state
    expect(k.stats().memoryBytes).toBe(MiB);
    const { grantId } = unwrap(
      "GrantPages",
      k.hypercall(ROOT, "GrantPages", { partitionId: id, gpa: RAM_BASE, size: MiB, grantee: ROOT, writable: true }),
    );
    const t = unwrap("AcceptGrant", k.hypercall(ROOT, "AcceptGrant", { grantId }));
    expect(t.buffer.byteLength).toBeGreaterThan(MiB); // RAM, then the hart-state reserve
    const mem = new GrantedMemory(t);
    expect(mem.view(RAM_BASE + MiB - 1, 1)).toBeDefined();
    expect(mem.view(RAM_BASE + MiB - 1, 2)).toBeUndefined();
    expect(mem.write(RAM_BASE + MiB, Uint8Array.of(1))).toBe(false);
    // Beyond RAM is no address of the partition either.
    expect(
      k.hypercall(ROOT, "GrantPages", {
        partitionId: id,
        gpa: RAM_BASE + MiB,
        size: 4096,
        grantee: ROOT,
        writable: false,
      }).status,
    ).not.toBe(0);
  });
});
