// qcow2 shrink (resize to a smaller size) against qemu-img resize --shrink on a copy of the same image.
import { copyFileSync, readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskErrorCode } from "../../errors.js";
import { NodeFileStore } from "../../io/node-file.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuIo, tempDir } from "../../testing-internal/qemu.js";
import { Qcow2Image } from "./image.js";

const MiB = 1024 * 1024;

describe.skipIf(!HAVE_QEMU)("qcow2 shrink", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-shrink-");
  });
  afterAll(() => t.cleanup());

  /** An image made by qemu-img: data on both sides of 5 MiB, compressed and zero clusters, optionally a snapshot. */
  function make(name: string, cs: string, snapshot: boolean): string {
    const f = t.path(name);
    qemuImg(["create", "-q", "-f", "qcow2", "-o", `cluster_size=${cs}`, f, "16M"]);
    qemuIo(f, ["write -P 1 0 1M", "write -P 2 4M 2M", "write -c -P 3 12M 64k", "write -z 8M 64k"]);
    if (snapshot) {
      qemuImg(["snapshot", "-c", "s0", f]);
      qemuIo(f, ["write -P 4 4608k 64k", "write -P 5 14M 64k"]);
    }
    return f;
  }

  for (const [cs, snapshot] of [
    ["4k", false],
    ["4k", true],
    ["512", true],
    ["64k", false],
  ] as const)
    it(`to 5 MiB and to 5 MiB + 1.5 KiB (${cs} clusters${snapshot ? ", with a snapshot" : ""}): as qemu-img resize --shrink`, async () => {
      for (const size of [5 * MiB, 5 * MiB + 1536]) {
        const ours = make(`o-${cs}-${snapshot}-${size}.qcow2`, cs, snapshot);
        const ref = `${ours}.ref`;
        copyFileSync(ours, ref);
        qemuImg(["resize", "-q", "--shrink", ref, String(size)]);
        const before = statSync(ours).size;
        const img = await Qcow2Image.open(await NodeFileStore.open(ours, { readOnly: false }));
        // data past the new end: refused unless asked
        await expect(img.resize(size)).rejects.toMatchObject({ code: DiskErrorCode.INVALID_REQUEST });
        await expect(img.resize(size + 1, { shrink: true })).rejects.toMatchObject({
          code: DiskErrorCode.INVALID_REQUEST,
        });
        await img.resize(size, { shrink: true });
        expect(img.size()).toBe(size);
        await img.close();
        // no corruption and no leak: every dropped cluster is freed
        const chk = qemuCheck(ours);
        expect([chk.status, chk.json.corruptions ?? 0, chk.json.leaks ?? 0]).toEqual([0, 0, 0]);
        expect(JSON.parse(qemuImg(["info", "--output", "json", ours]).stdout)["virtual-size"]).toBe(size);
        expect(qemuImg(["compare", "-f", "qcow2", "-F", "qcow2", ours, ref]).status).toBe(0);
        if (!snapshot) expect(statSync(ours).size).toBeLessThan(before);
        // the snapshot keeps its data (and its size)
        if (snapshot) {
          const back = await Qcow2Image.open(await NodeFileStore.open(ours, { readOnly: true }), { readOnly: true });
          expect(back.snapshots.map((s) => s.name)).toEqual(["s0"]);
          await back.close();
          qemuImg(["snapshot", "-a", "s0", ours]);
          expect(qemuCheck(ours).status).toBe(0);
          expect(JSON.parse(qemuImg(["info", "--output", "json", ours]).stdout)["virtual-size"]).toBe(16 * MiB);
          const raw = `${ours}.raw`;
          qemuImg(["convert", "-O", "raw", ours, raw]);
          expect(
            readFileSync(raw)
              .subarray(14 * MiB, 14 * MiB + 64 * 1024)
              .every((x) => x === 0),
          ).toBe(true);
          expect(
            readFileSync(raw)
              .subarray(5 * MiB, 6 * MiB)
              .every((x) => x === 2),
          ).toBe(true);
          continue;
        }
        // growing again: the dropped range reads as zeros (here and in qemu-img)
        const again = await Qcow2Image.open(await NodeFileStore.open(ours, { readOnly: false }));
        await again.resize(16 * MiB);
        expect((await again.read(size - 512, 2 * MiB)).subarray(512).every((x) => x === 0)).toBe(true);
        await again.close();
        expect(qemuCheck(ours).status).toBe(0);
      }
    });

  it("without data past the new end no consent is needed; sizes must be multiples of 512 (as qemu-img)", async () => {
    const f = t.path("empty.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", f, "16M"]);
    qemuIo(f, ["write -P 1 0 64k"]);
    const img = await Qcow2Image.open(await NodeFileStore.open(f, { readOnly: false }));
    await expect(img.resize(1000)).rejects.toMatchObject({ code: DiskErrorCode.INVALID_REQUEST });
    await expect(img.resize(20 * MiB + 1)).rejects.toMatchObject({ code: DiskErrorCode.INVALID_REQUEST });
    await img.resize(MiB);
    await img.close();
    expect(qemuCheck(f).status).toBe(0);
  });
});
