// Crash consistency: a writer stopped at any point leaves an image that
// qemu-img check finds consistent (leaked clusters allowed, corruption not).
import { spawn } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../io/memory.js";
import { NodeFileHost, NodeFileStore } from "../../io/node-file.js";
import type { ByteStore } from "../../io/store.js";
import { createImage } from "../../open.js";
import { HAVE_QEMU, pattern, qemuCheck, qemuImg, tempDir } from "../../testing-internal/qemu.js";
import { Qcow2Image } from "./image.js";

/** Stops accepting writes after `budget` writes, like a process killed between two system calls. */
class DyingStore implements ByteStore {
  writes = 0;
  constructor(
    readonly inner: MemoryStore,
    private budget: number,
  ) {}
  get name() {
    return this.inner.name;
  }
  get readOnly() {
    return false;
  }
  size() {
    return this.inner.size();
  }
  read(o: number, b: Uint8Array) {
    return this.inner.read(o, b);
  }
  async write(o: number, d: Uint8Array) {
    if (this.writes >= this.budget) throw new Error("killed");
    this.writes++;
    await this.inner.write(o, d);
  }
  async truncate(n: number) {
    if (this.writes >= this.budget) throw new Error("killed");
    this.writes++;
    await this.inner.truncate(n);
  }
  flush() {
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
}

/** A workload touching every metadata path: L2 and refblock allocation, refcount table growth, compression, zeroing, discard, resize, snapshots and copy-on-write. */
async function workload(
  store: ByteStore,
  skip: (phase: "begin" | "end") => void = () => {},
  lazyRefcounts = false,
  deferMetadata = false,
): Promise<void> {
  const img = await Qcow2Image.create(store, {
    size: 8 * 1024 * 1024,
    clusterBits: 9,
    refcountOrder: 6,
    lazyRefcounts,
  });
  if (deferMetadata) img.deferMetadata();
  await img.write(1000, pattern(40000, 1));
  await img.writeCompressed(512 * 200, new Uint8Array(512).fill(3));
  await img.writeCompressed(512 * 201, new Uint8Array(512).fill(4));
  await img.write(3 * 1024 * 1024 - 7, pattern(2 * 1024 * 1024 + 100, 2)); // grows the refcount table
  await img.writeZeroes(2000, 5000);
  await img.discard(3 * 1024 * 1024, 8192);
  await img.write(512 * 200 + 10, pattern(600, 3)); // rewrite a compressed cluster
  await img.resize(64 * 1024 * 1024); // new L1 table
  await img.write(60 * 1024 * 1024, pattern(3000, 4));
  // Snapshot creation is one copy-on-write transaction (see image.ts "snapshots"): kill points inside it
  // are checked like the others (and at every write index in snapshot-crash.test.ts).
  skip("begin");
  await img.createSnapshot("s1");
  skip("end");
  await img.write(1500, pattern(3000, 5)); // copy-on-write of shared L2 tables and clusters
  await img.write(4 * 1024 * 1024, pattern(70000, 6));
  await img.close();
}

describe.skipIf(!HAVE_QEMU)("qcow2 crash consistency", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-crash-");
  });
  afterAll(() => t.cleanup());

  it("stopping the writer after any number of writes leaves no corruption", async () => {
    const full = new DyingStore(new MemoryStore("full"), Number.POSITIVE_INFINITY);
    const snapshotWrites: number[] = [];
    await workload(full, () => snapshotWrites.push(full.writes));
    const total = full.writes;
    expect(total).toBeGreaterThan(300);
    // Creation (truncate + one write of the whole layout) is not an image until it completes.
    const first = 3;
    const points = new Set<number>();
    for (let i = first; i <= first + 12; i++) points.add(i);
    for (let i = 0; i < 24; i++) points.add(first + Math.floor(((total - first) * i) / 24) + (i % 7));
    let withLeaks = 0;
    // 30 more points in the copy-on-write phase after the snapshot.
    const cow = total - snapshotWrites[1]!;
    expect(cow).toBeGreaterThan(30);
    for (let n = snapshotWrites[1]! + 1; n <= total; n += Math.ceil(cow / 30)) points.add(n);
    // every write of the snapshot creation too
    for (let n = snapshotWrites[0]! + 1; n <= snapshotWrites[1]!; n++) points.add(n);
    for (const n of [...points].filter((p) => p <= total)) {
      const store = new DyingStore(new MemoryStore("crash"), n);
      await workload(store).then(
        () => {},
        (e: Error) => {
          if (e.message !== "killed") throw e;
        },
      );
      const f = t.path(`crash-${n}.qcow2`);
      writeFileSync(f, store.inner.bytes());
      const chk = qemuCheck(f);
      if (chk.status === 3) withLeaks++;
      expect([n, chk.status, chk.json.corruptions ?? 0]).toEqual([n, chk.status === 3 ? 3 : 0, 0]);
      // and the library reopens it and keeps writing
      const img = await Qcow2Image.open(new MemoryStore("re", false, store.inner.bytes()));
      await img.write(0, new Uint8Array(100).fill(1));
      expect((await img.check()).corruptions).toBe(0);
      await img.close();
    }
    expect(withLeaks).toBeGreaterThan(0);
  });

  it("metadata write-behind (deferMetadata, convert's mode): stopping after any number of writes leaves no corruption, and the result reads as the write-through one", async () => {
    const plain = new DyingStore(new MemoryStore("plain"), Number.POSITIVE_INFINITY);
    await workload(plain);
    const full = new DyingStore(new MemoryStore("full"), Number.POSITIVE_INFINITY);
    await workload(full, undefined, false, true);
    const total = full.writes;
    // table writes gathered: fewer writes than write-through
    expect(total).toBeLessThan(plain.writes);
    const a = t.path("wb-plain.qcow2");
    const b = t.path("wb-full.qcow2");
    writeFileSync(a, plain.inner.bytes());
    writeFileSync(b, full.inner.bytes());
    expect(qemuCheck(b).status).toBe(0);
    expect(qemuImg(["compare", "-f", "qcow2", "-F", "qcow2", a, b]).stdout).toContain("Images are identical.");
    // creation (the first 3 writes) is not an image yet; then the first 40 write indexes, every
    // 10th, and the last 40 (close writes the pending tables). All 1,002 passed once; too slow for CI.
    const points = new Set<number>();
    for (let n = 3; n < total; n++) if (n < 43 || n % 10 === 0 || n >= total - 40) points.add(n);
    let withLeaks = 0;
    for (const n of points) {
      await new Promise((r) => setImmediate(r)); // let vitest's worker talk to its parent
      const store = new DyingStore(new MemoryStore("crash"), n);
      await workload(store, undefined, false, true).then(
        () => {},
        (e: Error) => {
          if (e.message !== "killed") throw e;
        },
      );
      const f = t.path(`wb-${n}.qcow2`);
      writeFileSync(f, store.inner.bytes());
      const chk = qemuCheck(f);
      if (chk.status === 3) withLeaks++;
      expect([n, chk.status, chk.json.corruptions ?? 0]).toEqual([n, chk.status === 3 ? 3 : 0, 0]);
    }
    console.log(`write-behind: ${total} writes (write-through ${plain.writes}), ${withLeaks} stops with leaks`);
  }, 180_000);

  it("lazy refcounts: a writer stopped at any point leaves a dirty image that check -r all and a read-write open repair", async () => {
    const full = new DyingStore(new MemoryStore("full"), Number.POSITIVE_INFINITY);
    await workload(full, undefined, true);
    const total = full.writes;
    let dirty = 0;
    for (let i = 0; i <= 24; i++) {
      const n = 3 + Math.floor(((total - 3) * i) / 24);
      const store = new DyingStore(new MemoryStore("crash"), n);
      await workload(store, undefined, true).then(
        () => {},
        (e: Error) => {
          if (e.message !== "killed") throw e;
        },
      );
      const f = t.path(`lazy-${n}.qcow2`);
      writeFileSync(f, store.inner.bytes());
      const info = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);
      if (info["dirty-flag"]) dirty++;
      // qemu-img repairs it (exit 0, nothing left) ...
      const q = `${f}.q`;
      copyFileSync(f, q);
      const rep = qemuImg(["check", "-r", "all", q], { allowFail: true });
      expect([n, rep.status]).toEqual([n, 0]);
      // ... and so does a read-write open here: qemu-img check then finds no error at all
      const img = await Qcow2Image.open(await NodeFileStore.open(f, { readOnly: false }));
      await img.close();
      const chk = qemuCheck(f);
      expect([n, chk.status, chk.json.corruptions ?? 0, chk.json.leaks ?? 0]).toEqual([n, 0, 0, 0]);
      expect(JSON.parse(qemuImg(["info", "--output", "json", f]).stdout)["dirty-flag"]).toBe(false);
      expect(qemuImg(["compare", "-f", "qcow2", "-F", "qcow2", q, f]).stdout).toContain("Images are identical.");
    }
    // the kill points between the first deferred refcount and close leave the dirty bit set
    expect(dirty).toBeGreaterThan(15);
  });

  it("a child process killed at random points leaves no corruption", async () => {
    const child = join(t.dir, "child.mjs");
    await build({
      entryPoints: [join(import.meta.dirname, "../../testing-internal/crash-child.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: child,
      logLevel: "warning",
    });
    const f = t.path("victim.qcow2");
    await (
      await createImage(new NodeFileHost(), f, { format: "qcow2", size: 64 * 1024 * 1024, qcow2: { clusterBits: 12 } })
    ).close();
    const lazy = t.path("lazy-victim.qcow2");
    await (
      await createImage(new NodeFileHost(), lazy, {
        format: "qcow2",
        size: 64 * 1024 * 1024,
        qcow2: { clusterBits: 12, lazyRefcounts: true },
      })
    ).close();
    // rounds 0-3: refcounts written through; rounds 4-7: lazy refcounts (dirty bit set, repaired by the next open)
    for (let round = 0; round < 8; round++) {
      const target = round < 4 ? f : lazy;
      const p = spawn(process.execPath, [child, target, String(round + 1)], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      p.stderr.on("data", (d) => {
        err += d;
      });
      await new Promise<void>((resolve, reject) => {
        p.stdout.once("data", () => resolve());
        p.once("exit", (code) => reject(new Error(`child exited early (${code}): ${err}`)));
      });
      await new Promise((r) => setTimeout(r, 30 + Math.random() * 200));
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
      if (round < 4) {
        const chk = qemuCheck(f);
        expect(chk.json.corruptions ?? 0).toBe(0);
        expect([0, 3]).toContain(chk.status);
        continue;
      }
      expect(JSON.parse(qemuImg(["info", "--output", "json", lazy]).stdout)["dirty-flag"]).toBe(true);
      const q = `${lazy}.q`;
      copyFileSync(lazy, q);
      expect(qemuImg(["check", "-r", "all", q], { allowFail: true }).status).toBe(0);
      // the next round's child opens it read-write, which repairs it; the last one is repaired here
      if (round === 7) {
        await (await Qcow2Image.open(await NodeFileStore.open(lazy, { readOnly: false }))).close();
        expect(qemuCheck(lazy).status).toBe(0);
      }
    }
  });
});
