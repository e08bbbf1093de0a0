// Applying and deleting internal snapshots (qemu-img snapshot -a / -d),
// checked against qemu-img doing the same on a copy of the image.
import { copyFileSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskErrorCode } from "../../errors.js";
import { NodeFileHost } from "../../io/node-file.js";
import { createImage, openImage } from "../../open.js";
import { rz } from "../../testing-internal/cli.js";
import { firstDiff, HAVE_QEMU, pattern, qemuCheck, qemuImg, tempDir } from "../../testing-internal/qemu.js";
import type { Qcow2Image } from "./image.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const SIZE = 8 * MiB;

describe.skipIf(!HAVE_QEMU)("qcow2 snapshot apply and delete", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-snap-");
  });
  afterAll(() => t.cleanup());

  /** Writes through the library and into the expected-content mirror. */
  async function write(f: string, mirror: Uint8Array, off: number, data: Uint8Array): Promise<void> {
    const img = await openImage(host, f, { readOnly: false });
    await img.write(off, data);
    await img.close();
    mirror.set(data, off);
  }

  function contents(f: string): Uint8Array {
    const raw = `${f}.raw`;
    qemuImg(["convert", "-O", "raw", f, raw]);
    return new Uint8Array(readFileSync(raw));
  }

  function clean(f: string): void {
    const c = qemuCheck(f);
    expect([c.status, c.json.corruptions ?? 0, c.json.leaks ?? 0]).toEqual([0, 0, 0]);
  }

  for (const lazy of [false, true])
    it(`apply and delete, interleaved with copy-on-write writes${lazy ? " (lazy refcounts)" : ""}`, async () => {
      const f = t.path(`s-${lazy}.qcow2`);
      await (
        await createImage(host, f, { format: "qcow2", size: SIZE, qcow2: { clusterBits: 12, lazyRefcounts: lazy } })
      ).close();
      const m = new Uint8Array(SIZE);
      await write(f, m, 0, pattern(3 * MiB, 1));
      await write(f, m, 6 * MiB, pattern(50000, 2));
      const s1 = m.slice();
      expect((await rz("snapshot", "-c", "s1", f)).code).toBe(0);
      await write(f, m, MiB - 100, pattern(300000, 3)); // copy-on-write of shared clusters
      qemuImg(["snapshot", "-c", "s2", f]); // one snapshot made by qemu-img
      const s2 = m.slice();
      await write(f, m, 2 * MiB, pattern(100000, 4));
      await write(f, m, 7 * MiB, pattern(4096, 5));
      clean(f);

      // the same operations by qemu-img on a copy must give the same contents
      const q = t.path(`q-${lazy}.qcow2`);
      copyFileSync(f, q);
      expect((await rz("snapshot", "-a", "s1", f)).code).toBe(0);
      qemuImg(["snapshot", "-a", "s1", q]);
      clean(f);
      expect(firstDiff(contents(f), s1)).toBe(-1);
      expect(qemuImg(["compare", f, q]).stdout).toContain("Images are identical.");

      // writing after an apply copies what the snapshots still share
      m.set(s1);
      await write(f, m, 100, pattern(5000, 6));
      clean(f);
      expect((await rz("snapshot", "-a", "2", f)).code).toBe(0); // by id
      clean(f);
      expect(firstDiff(contents(f), s2)).toBe(-1);

      expect((await rz("snapshot", "-d", "s1", f)).code).toBe(0);
      qemuImg(["snapshot", "-d", "s1", q]);
      clean(f);
      expect(qemuImg(["snapshot", "-l", f]).stdout).not.toContain("s1");
      expect(qemuImg(["snapshot", "-l", f]).stdout).toContain("s2");
      expect((await rz("snapshot", "-a", "s2", q)).code).toBe(0);
      expect(qemuImg(["compare", f, q]).stdout).toContain("Images are identical.");
      expect((await rz("snapshot", "-d", "s2", f)).code).toBe(0);
      clean(f);
      expect(qemuImg(["snapshot", "-l", f]).stdout).toBe("");
      expect(firstDiff(contents(f), s2)).toBe(-1);
      // with no snapshot left, every cluster is referenced once: writes happen in place
      const img = (await openImage(host, f, { readOnly: false })) as Qcow2Image;
      expect((await img.check()).leaks).toBe(0);
      await img.close();
    });

  it("unknown snapshots and snapshots of another disk size are typed errors", async () => {
    const f = t.path("err.qcow2");
    qemuImg(["create", "-f", "qcow2", f, "4M"]);
    qemuImg(["snapshot", "-c", "small", f]);
    const img = (await openImage(host, f, { readOnly: false })) as Qcow2Image;
    await img.resize(8 * MiB);
    await expect(img.applySnapshot("nope")).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
    await expect(img.deleteSnapshot("nope")).rejects.toMatchObject({ code: DiskErrorCode.NOT_FOUND });
    await expect(img.applySnapshot("small")).rejects.toMatchObject({ code: DiskErrorCode.UNSUPPORTED });
    await img.deleteSnapshot("small");
    await img.close();
    clean(f);
    const r = await rz("snapshot", "-a", "x", "-d", "y", f);
    expect(r.code).toBe(1);
  });
});
