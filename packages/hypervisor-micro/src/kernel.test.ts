import { describe, expect, it } from "vitest";
import { HYPERCALL_NAMES, Hypercall } from "./hypercalls.js";
import { Microkernel as PortableMicrokernel } from "./kernel.js";
import { GrantedMemory } from "./memory.js";
import { Microkernel, ROOT_PARTITION_ID } from "./node.js";
import { HvStatus, hvStatusName } from "./status.js";
import { type HostThread, SPARE_VP_START, type ThreadSpawner } from "./thread.js";

const ROOT = ROOT_PARTITION_ID;
const MiB = 1024 * 1024;

function kernelWithChild(memory = 2 * MiB) {
  const k = new Microkernel({ memoryLimit: 64 * MiB });
  const c = k.hypercall(ROOT, "CreatePartition", { name: "child" });
  if (c.status !== 0) throw new Error("create");
  const id = c.value.partitionId;
  expect(
    k.hypercall(ROOT, "MapGpaPages", { partitionId: id, gpa: 0x8000_0000, size: memory, kind: "ram" }).status,
  ).toBe(0);
  return { k, id };
}

describe("slow hypercalls: access control and typed results", () => {
  it("only the root creates partitions; children cannot create grandchildren", () => {
    const { k, id } = kernelWithChild();
    expect(k.hypercall(id, "CreatePartition", { name: "x" }).status).toBe(HvStatus.ACCESS_DENIED);
    expect(k.hypercall(ROOT, "CreatePartition", { name: "y".repeat(65) }).status).toBe(HvStatus.INVALID_PARAMETER);
  });

  it("maps memory with alignment, overlap, kind and quota checks", () => {
    const { k, id } = kernelWithChild();
    const map = (gpa: number, size: number, kind: "ram" | "private" = "private") =>
      k.hypercall(ROOT, "MapGpaPages", { partitionId: id, gpa, size, kind }).status;
    expect(map(0x1_0000_0001, 4096)).toBe(HvStatus.INVALID_ALIGNMENT);
    expect(map(0x1_0000_0000, 100)).toBe(HvStatus.INVALID_ALIGNMENT);
    expect(map(0x8010_0000, 4096)).toBe(HvStatus.INVALID_PARAMETER); // inside RAM
    expect(map(0x2_0000_0000, 4096, "ram")).toBe(HvStatus.INVALID_PARAMETER); // second RAM region
    expect(map(0x2_0000_0000, 128 * MiB)).toBe(HvStatus.INSUFFICIENT_MEMORY);
    expect(map(0x1_0000_0000, 64 * 1024)).toBe(HvStatus.SUCCESS);
    expect(k.stats().memoryBytes).toBe(2 * MiB + 64 * 1024);
    expect(k.hypercall(ROOT, "MapGpaPages", { partitionId: 99, gpa: 0, size: 4096, kind: "ram" }).status).toBe(
      HvStatus.INVALID_PARTITION_ID,
    );
  });

  it("a partition sees another's memory only through a grant, checked per access, dead after revoke", () => {
    const { k, id } = kernelWithChild();
    // The root may grant itself its child's pages while the child has no VP (loading).
    const g = k.hypercall(ROOT, "GrantPages", {
      partitionId: id,
      gpa: 0x8000_1000,
      size: 8192,
      grantee: ROOT,
      writable: true,
    });
    expect(g.status).toBe(0);
    if (g.status !== 0) return;
    // Someone else cannot accept it.
    expect(k.hypercall(id, "AcceptGrant", { grantId: g.value.grantId }).status).toBe(HvStatus.ACCESS_DENIED);
    const t = k.hypercall(ROOT, "AcceptGrant", { grantId: g.value.grantId });
    expect(t.status).toBe(0);
    if (t.status !== 0) return;
    const mem = new GrantedMemory(t.value);
    expect(mem.write(0x8000_1000, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(mem.read(0x8000_1000, 3)).toEqual(Uint8Array.of(1, 2, 3));
    // Edges: the last byte is in, one past is out, the page before is out.
    expect(mem.view(0x8000_2fff, 1)).toBeDefined();
    expect(mem.view(0x8000_2fff, 2)).toBeUndefined();
    expect(mem.view(0x8000_0fff, 1)).toBeUndefined();
    expect(mem.view(Number.NaN, 1)).toBeUndefined();
    expect(mem.view(0x8000_1000, -1)).toBeUndefined();
    expect(k.hypercall(ROOT, "RevokeGrant", { grantId: g.value.grantId }).status).toBe(0);
    expect(mem.revoked).toBe(true);
    expect(mem.view(0x8000_1000, 1)).toBeUndefined();
    expect(mem.read(0x8000_1000, 1)).toBeUndefined();
    expect(mem.write(0x8000_1000, Uint8Array.of(9))).toBe(false);
    expect(k.hypercall(ROOT, "AcceptGrant", { grantId: g.value.grantId }).status).toBe(HvStatus.INVALID_PARAMETER);
  });

  it("read-only grants give copies, never live views", () => {
    const { k, id } = kernelWithChild();
    const g = k.hypercall(ROOT, "GrantPages", {
      partitionId: id,
      gpa: 0x8000_0000,
      size: 4096,
      grantee: ROOT,
      writable: false,
    });
    if (g.status !== 0) throw new Error("grant");
    const t = k.hypercall(ROOT, "AcceptGrant", { grantId: g.value.grantId });
    if (t.status !== 0) throw new Error("accept");
    const mem = new GrantedMemory(t.value);
    expect(mem.view(0x8000_0000, 16)).toBeUndefined();
    expect(mem.write(0x8000_0000, Uint8Array.of(1))).toBe(false);
    expect(mem.read(0x8000_0000, 16)).toHaveLength(16);
  });

  it("grants cover one mapped region, aligned, to another partition", () => {
    const { k, id } = kernelWithChild();
    const grant = (gpa: number, size: number, grantee = ROOT) =>
      k.hypercall(ROOT, "GrantPages", { partitionId: id, gpa, size, grantee, writable: true }).status;
    expect(grant(0x8000_0800, 4096)).toBe(HvStatus.INVALID_ALIGNMENT);
    expect(grant(0x8000_0000, 4 * MiB)).toBe(HvStatus.INVALID_PARAMETER); // past the region
    expect(grant(0x7fff_f000, 8192)).toBe(HvStatus.INVALID_PARAMETER); // straddles its start
    expect(grant(0x8000_0000, 4096, id)).toBe(HvStatus.INVALID_PARTITION_ID); // to itself
    expect(grant(0x8000_0000, 4096, 77)).toBe(HvStatus.INVALID_PARTITION_ID);
    // A child cannot grant its parent's memory, nor a sibling's.
    const c2 = k.hypercall(ROOT, "CreatePartition", { name: "c2" });
    if (c2.status !== 0) throw new Error("create");
    expect(
      k.hypercall(c2.value.partitionId, "GrantPages", {
        partitionId: id,
        gpa: 0x8000_0000,
        size: 4096,
        grantee: c2.value.partitionId,
        writable: true,
      }).status,
    ).toBe(HvStatus.ACCESS_DENIED);
  });

  it("intercepts and connections: range checks, parent/child only", () => {
    const { k, id } = kernelWithChild();
    expect(k.hypercall(ROOT, "InstallIntercept", { partitionId: id, base: 0x1000_0000, size: 0x100 }).status).toBe(0);
    expect(k.hypercall(ROOT, "InstallIntercept", { partitionId: id, base: 0x8000_0000, size: 0x100 }).status).toBe(
      HvStatus.INVALID_PARAMETER,
    );
    expect(k.hypercall(ROOT, "InstallIntercept", { partitionId: id, base: 0xffff_ff00, size: 0x200 }).status).toBe(
      HvStatus.INVALID_PARAMETER,
    );
    expect(k.hypercall(id, "InstallIntercept", { partitionId: id, base: 0x1000_0000, size: 0x100 }).status).toBe(
      HvStatus.ACCESS_DENIED, // a child cannot intercept its own accesses
    );
    const c2 = k.hypercall(ROOT, "CreatePartition", { name: "c2" });
    if (c2.status !== 0) throw new Error("create");
    // Siblings may not connect; SINT 0 is the kernel's; VPs must exist.
    expect(k.hypercall(c2.value.partitionId, "ConnectSint", { partitionId: id, vpIndex: 0, sint: 2 }).status).toBe(
      HvStatus.ACCESS_DENIED,
    );
    expect(k.hypercall(ROOT, "ConnectSint", { partitionId: id, vpIndex: 0, sint: 0 }).status).toBe(
      HvStatus.INVALID_PARAMETER,
    );
    expect(k.hypercall(ROOT, "ConnectSint", { partitionId: id, vpIndex: 0, sint: 2 }).status).toBe(
      HvStatus.INVALID_VP_INDEX,
    );
  });

  it("deleting a partition revokes every grant on it and frees its memory", () => {
    const { k, id } = kernelWithChild();
    const g = k.hypercall(ROOT, "GrantPages", {
      partitionId: id,
      gpa: 0x8000_0000,
      size: 4096,
      grantee: ROOT,
      writable: true,
    });
    if (g.status !== 0) throw new Error("grant");
    const t = k.hypercall(ROOT, "AcceptGrant", { grantId: g.value.grantId });
    if (t.status !== 0) throw new Error("accept");
    const mem = new GrantedMemory(t.value);
    expect(k.hypercall(ROOT, "DeletePartition", { partitionId: id }).status).toBe(0);
    expect(mem.revoked).toBe(true);
    expect(k.stats().memoryBytes).toBe(0);
    expect(k.hypercall(ROOT, "DeletePartition", { partitionId: id }).status).toBe(HvStatus.INVALID_PARTITION_ID);
    expect(k.hypercall(ROOT, "DeletePartition", { partitionId: ROOT }).status).toBe(HvStatus.INVALID_PARTITION_ID);
  });

  it("every status a slow call returns is in its documented set", () => {
    // Hostile inputs of every shape against every slow call.
    const { k, id } = kernelWithChild();
    const inputs: unknown[] = [
      undefined,
      null,
      {},
      { partitionId: id },
      { partitionId: "1" },
      { partitionId: id, gpa: -4096, size: 4096 },
      { grantId: 1e9 },
      { partitionId: id, vpIndex: 5, sint: 99 },
    ];
    for (const name of HYPERCALL_NAMES) {
      const spec = Hypercall[name];
      if (spec.path !== "slow" || name === "CreateVp") continue;
      for (const input of inputs) {
        for (const caller of [ROOT, id, 42]) {
          const r = k.hypercall(caller, name as never, input as never);
          if (r.status !== 0)
            expect(spec.errors, `${name} ${JSON.stringify(input)} -> ${hvStatusName(r.status)}`).toContain(
              hvStatusName(r.status),
            );
        }
      }
    }
  });
});

describe("a spare VP thread (spareVp)", () => {
  /** A ThreadSpawner that records what it was asked to start (no real threads). */
  function recordingThreads() {
    const spawned: { module: string; data: unknown; posted: unknown[]; terminated: boolean }[] = [];
    const threads: ThreadSpawner = {
      spawn(module, data) {
        const t = { module: String(module), data, posted: [] as unknown[], terminated: false };
        spawned.push(t);
        const thread: HostThread = {
          get alive() {
            return !t.terminated;
          },
          postMessage: (m) => {
            t.posted.push(m);
          },
          onMessage: () => () => {},
          onError: () => {},
          onExit: () => {},
          terminate: async () => {
            t.terminated = true;
          },
        };
        return thread;
      },
    };
    return { threads, spawned };
  }
  const boot = { pc: 0x8000_0000, mode: "supervisor" as const };
  function childWithRam(k: PortableMicrokernel): number {
    const c = k.hypercall(ROOT, "CreatePartition", { name: "child" });
    if (c.status !== 0) throw new Error("create");
    const id = c.value.partitionId;
    k.hypercall(ROOT, "MapGpaPages", { partitionId: id, gpa: 0x8000_0000, size: 2 * MiB, kind: "ram" });
    return id;
  }

  it("starts with the root partition and becomes the first CreateVp's thread, its VP in its first message", async () => {
    const { threads, spawned } = recordingThreads();
    const k = new PortableMicrokernel({ threads, vpWorker: new URL("file:///vp.js"), spareVp: true });
    k.startRoot(new URL("file:///root.js"), {});
    expect(spawned.map((t) => [t.module, t.data === SPARE_VP_START])).toEqual([
      ["file:///root.js", false],
      ["file:///vp.js", true],
    ]);
    const id = childWithRam(k);
    expect(k.hypercall(ROOT, "CreateVp", { partitionId: id, vpIndex: 0, boot }).status).toBe(HvStatus.SUCCESS);
    expect(spawned).toHaveLength(2); // no new thread
    const init = (spawned[1]?.posted[0] as { vpInit?: { partitionId: number; vpIndex: number } }).vpInit;
    expect([init?.partitionId, init?.vpIndex]).toEqual([id, 0]);
    await k.shutdown();
    expect(spawned.map((t) => t.terminated)).toEqual([true, true]);
  });

  it("an unused spare ends at shutdown; a dead one is replaced by a new thread", async () => {
    const a = recordingThreads();
    const k = new PortableMicrokernel({ threads: a.threads, vpWorker: new URL("file:///vp.js"), spareVp: true });
    k.startRoot(new URL("file:///root.js"), {});
    await k.shutdown();
    expect(a.spawned.map((t) => t.terminated)).toEqual([true, true]);

    const b = recordingThreads();
    const k2 = new PortableMicrokernel({ threads: b.threads, vpWorker: new URL("file:///vp.js"), spareVp: true });
    k2.startRoot(new URL("file:///root.js"), {});
    (b.spawned[1] as { terminated: boolean }).terminated = true; // the spare died before CreateVp
    const id = childWithRam(k2);
    expect(k2.hypercall(ROOT, "CreateVp", { partitionId: id, vpIndex: 0, boot }).status).toBe(HvStatus.SUCCESS);
    expect(b.spawned.map((t) => [t.module, t.data === SPARE_VP_START])).toEqual([
      ["file:///root.js", false],
      ["file:///vp.js", true],
      ["file:///vp.js", false],
    ]);
    await k2.shutdown();
  });

  it("off by default in the portable kernel", () => {
    const { threads, spawned } = recordingThreads();
    new PortableMicrokernel({ threads, vpWorker: new URL("file:///vp.js") }).startRoot(new URL("file:///root.js"), {});
    expect(spawned).toHaveLength(1);
  });
});
