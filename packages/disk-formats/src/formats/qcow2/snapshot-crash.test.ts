// Crash consistency of snapshot create / delete / apply and resize by write index: each
// operation runs against a store that dies after its k-th write, for every k
// in turn, and each result (under the three crash models of FaultStore) is
// checked with qemu-img check: no corruption, leaks allowed, and the active
// disk reads either as before or as after the operation.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../io/memory.js";
import { CRASH_MODELS, type FaultStore, runUntilKilled } from "../../testing-internal/fault-store.js";
import { HAVE_QEMU, pattern, qemuCheck, tempDir } from "../../testing-internal/qemu.js";
import { Qcow2Image } from "./image.js";

const MiB = 1024 * 1024;

interface Geometry {
  name: string;
  clusterBits: number;
  refcountOrder: number;
  size: number;
}
const GEOMETRIES: Geometry[] = [
  { name: "4k clusters, 16-bit refcounts", clusterBits: 12, refcountOrder: 4, size: 8 * MiB },
  // 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters and the
  // refcount table 4096, so the operations allocate refcount blocks and grow the table.
  { name: "512 B clusters, 64-bit refcounts", clusterBits: 9, refcountOrder: 6, size: 4 * MiB },
];

/** A v3 image with data, zero and compressed clusters and snapshot "s0" taken half-way. */
async function baseImage(g: Geometry): Promise<Uint8Array> {
  const store = new MemoryStore("base");
  const img = await Qcow2Image.create(store, {
    size: g.size,
    clusterBits: g.clusterBits,
    refcountOrder: g.refcountOrder,
  });
  const cs = 2 ** g.clusterBits;
  await img.write(1000, pattern(300_000, 1));
  await img.writeCompressed(g.size - 4 * cs, new Uint8Array(cs).fill(7));
  await img.write(g.size / 2 + 3, pattern(100_000, 2));
  await img.createSnapshot("s0");
  await img.write(5000, pattern(20_000, 3)); // copy-on-write of shared tables and clusters
  await img.writeZeroes(64 * cs, 8 * cs);
  await img.write(g.size - 200_000, pattern(50_000, 4));
  await img.close();
  return store.bytes();
}

/** What the guest sees (disk contents and snapshot names); the library's own check must find no corruption either. */
async function digest(bytes: Uint8Array, size: number): Promise<string> {
  const img = await Qcow2Image.open(new MemoryStore("d", true, bytes), { readOnly: true });
  const own = await img.check();
  if (own.corruptions > 0) return `ringzero check: ${own.messages.join("; ")}`;
  const h = createHash("sha1");
  h.update(await img.read(0, size));
  h.update(img.snapshots.map((s) => s.name).join(","));
  await img.close();
  return h.digest("hex");
}

type Op = "create" | "delete" | "apply" | "resize";
const run = (op: Op) => async (store: FaultStore) => {
  const img = await Qcow2Image.open(store, { readOnly: false });
  if (op === "create") await img.createSnapshot("s1");
  else if (op === "delete") await img.deleteSnapshot("s0");
  else if (op === "apply") await img.applySnapshot("s0");
  else await img.resize(img.size() * 40); // a larger L1 table
  await img.close();
};

describe.skipIf(!HAVE_QEMU)("qcow2 metadata operations killed at every write", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-snapcrash-");
  });
  afterAll(() => t.cleanup());

  for (const g of GEOMETRIES)
    for (const op of ["create", "delete", "apply", "resize"] as const)
      it(`${op === "resize" ? "resize (grows the L1 table)" : `snapshot ${op}`} (${g.name})`, async () => {
        const base = await baseImage(g);
        const full = await runUntilKilled(base, Number.POSITIVE_INFINITY, run(op));
        const total = full.store.writes;
        const before = await digest(base, g.size);
        const after = await digest(await full.store.persisted("prefix"), g.size);
        const sizes = new Set([before, after]);
        const seen = new Set<string>();
        const bad: string[] = [];
        let checked = 0;
        let leaky = 0;
        // FAULT_STRIDE (measurements of slow code only) samples every n-th write index
        const stride = Number(process.env.FAULT_STRIDE ?? 1);
        for (let k = 0; k <= total; k += k + stride > total && k < total ? total - k : stride) {
          const r = await runUntilKilled(base, k, run(op));
          expect(r.killed).toBe(k < total);
          for (const model of CRASH_MODELS) {
            const bytes = await r.store.persisted(model);
            const key = createHash("sha1").update(bytes).digest("hex");
            if (seen.has(key)) continue;
            seen.add(key);
            const f = t.path(`${op}-${g.clusterBits}-${k}-${model}.qcow2`);
            writeFileSync(f, bytes);
            const chk = qemuCheck(f);
            checked++;
            if (chk.status === 3) leaky++;
            const corruptions = Number(chk.json.corruptions ?? 0);
            if (corruptions > 0 || ![0, 3].includes(chk.status))
              bad.push(`k=${k} ${model}: ${JSON.stringify(chk.json)}`);
            // the guest sees the disk (and snapshot list) as before or as after the operation
            const d = await digest(bytes, g.size).catch((e: Error) => `unreadable: ${e.message}`);
            if (!sizes.has(d)) bad.push(`k=${k} ${model}: contents neither before nor after`);
          }
        }
        console.log(
          `snapshot ${op} (${g.name}): ${total} writes, ${checked} distinct images, ${leaky} with leaks, ${bad.filter((b) => !b.includes("neither")).length} corrupt, ${bad.filter((b) => b.includes("neither")).length} neither before nor after`,
        );
        expect(bad).toEqual([]);
      });

  it("convert into a new qcow2 (no flushes until the end, like qemu-img's cache=unsafe): killed at every write, writes in order", async () => {
    const g = GEOMETRIES[1]!;
    const src = await Qcow2Image.open(new MemoryStore("src", true, await baseImage(g)), { readOnly: true });
    const data = await src.read(0, g.size);
    await src.close();
    const convert = async (store: FaultStore) => {
      const img = await Qcow2Image.create(store, { size: g.size, clusterBits: 12 });
      const chunk = 64 * 1024;
      for (let off = 0; off < g.size; off += chunk) {
        const part = data.subarray(off, off + chunk);
        if (part.some((x) => x !== 0)) await img.write(off, part);
      }
      await img.close();
    };
    const full = await runUntilKilled(new Uint8Array(0), Number.POSITIVE_INFINITY, convert);
    const total = full.store.writes;
    const bad: string[] = [];
    // writes 1-2 (truncate, the initial layout) make the image: before them there is none to check
    for (let k = 2; k <= total; k++) {
      const r = await runUntilKilled(new Uint8Array(0), k, convert);
      const f = t.path(`convert-${k}.qcow2`);
      writeFileSync(f, await r.store.persisted("prefix"));
      const chk = qemuCheck(f);
      if (Number(chk.json.corruptions ?? 0) > 0 || ![0, 3].includes(chk.status))
        bad.push(`k=${k}: ${JSON.stringify(chk.json)}`);
    }
    console.log(`convert: ${total} writes, ${total - 1} crash images, ${bad.length} bad`);
    expect(total).toBeGreaterThan(30);
    expect(bad).toEqual([]);
  });
});
