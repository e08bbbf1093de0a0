// Lazy refcounts (qcow2.txt: compatible feature bit 0, incompatible bit 0
// "dirty"): writes defer refcount updates behind the dirty bit; close writes
// them and clears the bit; qemu-img sees exactly what it sees of its own images.
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeFileHost } from "../../io/node-file.js";
import { createImage, openImage } from "../../open.js";
import { HAVE_QEMU, pattern, qemuCheck, qemuImg, qemuIo, tempDir } from "../../testing-internal/qemu.js";
import type { Qcow2Image } from "./image.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const info = (f: string) => JSON.parse(qemuImg(["info", "--output", "json", f]).stdout);

describe.skipIf(!HAVE_QEMU)("qcow2 lazy refcounts", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-lazy-");
  });
  afterAll(() => t.cleanup());

  for (const creator of ["ringzero", "qemu-img"] as const) {
    it(`writes to a lazy image (created by ${creator}) set the dirty bit; close writes refcounts and clears it`, async () => {
      const f = t.path(`${creator}.qcow2`);
      if (creator === "qemu-img") qemuImg(["create", "-f", "qcow2", "-o", "lazy_refcounts=on", f, "64M"]);
      else
        await (await createImage(host, f, { format: "qcow2", size: 64 * MiB, qcow2: { lazyRefcounts: true } })).close();
      expect(info(f)["format-specific"].data["lazy-refcounts"]).toBe(true);
      expect(info(f)["dirty-flag"]).toBe(false);
      const img = (await openImage(host, f, { readOnly: false })) as Qcow2Image;
      expect(img.lazyRefcounts).toBe(true);
      await img.write(0, pattern(300000, 1));
      await img.write(40 * MiB + 5, pattern(70000, 2));
      await img.flush();
      // while open: the dirty bit is on disk and refcounts are stale, as qemu-img check reports for its own images
      expect(img.dirty).toBe(true);
      expect(info(f)["dirty-flag"]).toBe(true);
      const mid = qemuCheck(f);
      expect(mid.status).toBe(2);
      expect(mid.json.corruptions).toBeGreaterThan(0);
      // the library's own view of its refcounts is exact
      expect((await img.check()).corruptions).toBe(0);
      await img.close();
      expect(info(f)["dirty-flag"]).toBe(false);
      const chk = qemuCheck(f);
      expect([chk.status, chk.json.corruptions ?? 0, chk.json.leaks ?? 0]).toEqual([0, 0, 0]);
      qemuIo(f, ["read -P 0 300000 1000"]);
      const raw = t.path(`${creator}.raw`);
      qemuImg(["convert", "-O", "raw", f, raw]);
      const back = await openImage(host, raw, { readOnly: true });
      expect(Buffer.compare(await back.read(0, 300000), pattern(300000, 1))).toBe(0);
      expect(Buffer.compare(await back.read(40 * MiB + 5, 70000), pattern(70000, 2))).toBe(0);
      await back.close();
    });
  }

  it("an image qemu-io left dirty (abort) is repaired by a read-write open; qemu-img check agrees", async () => {
    const f = t.path("aborted.qcow2");
    qemuImg(["create", "-f", "qcow2", "-o", "lazy_refcounts=on", f, "64M"]);
    // qemu-io's abort command kills it with the writes done and the refcounts never written
    const r = spawnSync("qemu-io", [
      "-f",
      "qcow2",
      "-c",
      "write -P 0x5 0 256k",
      "-c",
      "write -P 0x6 10M 64k",
      "-c",
      "abort",
      f,
    ]);
    expect(r.signal).toBe("SIGABRT");
    expect(info(f)["dirty-flag"]).toBe(true);
    expect(qemuCheck(f).status).toBe(2); // qemu-img reports the stale refcounts of a dirty image as corruptions
    const img = await openImage(host, f, { readOnly: false });
    expect((await img.read(10 * MiB, 65536)).every((b) => b === 6)).toBe(true);
    await img.close();
    expect(info(f)["dirty-flag"]).toBe(false);
    const chk = qemuCheck(f);
    expect([chk.status, chk.json.corruptions ?? 0, chk.json.leaks ?? 0]).toEqual([0, 0, 0]);
  });

  it("read-only opens of a lazy image never set the dirty bit; images without the feature write through", async () => {
    const f = t.path("ro.qcow2");
    qemuImg(["create", "-f", "qcow2", "-o", "lazy_refcounts=on", f, "16M"]);
    const ro = (await openImage(host, f, { readOnly: true })) as Qcow2Image;
    await ro.read(0, 4096);
    await ro.close();
    expect(info(f)["dirty-flag"]).toBe(false);
    const g = t.path("eager.qcow2");
    qemuImg(["create", "-f", "qcow2", g, "16M"]);
    const w = (await openImage(host, g, { readOnly: false })) as Qcow2Image;
    await w.write(0, pattern(70000, 3));
    await w.flush();
    expect(w.dirty).toBe(false);
    expect(qemuCheck(g).status).toBe(0); // refcounts already on disk before close
    await w.close();
  });
});
