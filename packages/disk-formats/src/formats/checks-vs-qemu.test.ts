// Header checks qemu-img makes, on mutated images: each decision (open or
// refuse, check clean or corrupt) is compared with qemu-img's on the same file.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskErrorCode } from "../errors.js";
import { NodeFileHost } from "../io/node-file.js";
import { openImage } from "../open.js";
import { rz } from "../testing-internal/cli.js";
import { HAVE_QEMU, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";

const MiB = 1024 * 1024;
const host = new NodeFileHost();

describe.skipIf(!HAVE_QEMU)("checks compared with qemu-img on mutated images", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-checks-");
  });
  afterAll(() => t.cleanup());

  /** Copies `src` to `name` with `fn` applied to its bytes; returns the path. */
  function mutate(src: string, name: string, fn: (b: Buffer, dv: DataView) => Buffer | undefined): string {
    const b = Buffer.from(readFileSync(src));
    const out = fn(b, new DataView(b.buffer, b.byteOffset, b.byteLength)) ?? b;
    const f = t.path(name);
    writeFileSync(f, out);
    return f;
  }

  /** qemu-img info refuses `f` (with `fmt`), and so does the library, with `code`. */
  async function bothRefuse(f: string, fmt: string, code: string, qemuMessage: RegExp): Promise<void> {
    const q = qemuImg(["info", "-f", fmt, f], { allowFail: true });
    expect(q.status).toBe(1);
    expect(q.stderr).toMatch(qemuMessage);
    await expect(openImage(host, f, { readOnly: true, format: fmt as "raw" })).rejects.toMatchObject({ code });
    const r = await rz("info", "-f", fmt, f);
    expect(r.code).toBe(1);
    expect(r.err.split("\n")).toHaveLength(2);
  }

  it("VHD: footer checksum, and free_data_block_offset past the end of the file", async () => {
    const v = t.path("v.vhd");
    qemuImg(["create", "-q", "-f", "vpc", v, "8M"]);
    qemuIo(v, ["write -P 1 0 64k", "write -P 2 4M 4k"], "vpc");
    // a footer field changed without its checksum: the copy at offset 0 (dynamic disks) ...
    await bothRefuse(
      mutate(v, "v-sum0.vhd", (b) => {
        b[24]! ^= 1;
        return undefined;
      }),
      "vpc",
      DiskErrorCode.INVALID_HEADER,
      /Incorrect header checksum/,
    );
    // ... and the only one of a fixed disk
    const fx = t.path("f.vhd");
    qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=fixed", fx, "1M"]);
    await bothRefuse(
      mutate(fx, "f-sum.vhd", (b) => {
        b[b.length - 512 + 30]! ^= 1;
        return undefined;
      }),
      "vpc",
      DiskErrorCode.INVALID_HEADER,
      /Incorrect header checksum/,
    );
    // the last block cut short (footer kept): QEMU's "free_data_block_offset points after the end of file"
    await bothRefuse(
      mutate(v, "v-cut.vhd", (b) => Buffer.concat([b.subarray(0, b.length - 512 - 4096), b.subarray(b.length - 512)])),
      "vpc",
      DiskErrorCode.TRUNCATED,
      /free_data_block_offset points after the end of file/,
    );
    // the untouched image opens in both
    expect(qemuImg(["info", v]).status).toBe(0);
    expect((await rz("info", v)).code).toBe(0);
  });

  it("VHDX: BAT entries past the end of the file are refused on open and counted by check", async () => {
    const x = t.path("x.vhdx");
    qemuImg(["create", "-q", "-f", "vhdx", x, "64M"]);
    qemuIo(x, ["write -P 1 0 64k", "write -P 2 40M 4k"], "vhdx");
    const size = readFileSync(x).length;
    const cases = [
      // entry 0 moved past the end of the file
      mutate(x, "x-start.vhdx", (_b, dv) => {
        const e = dv.getBigUint64(2 * MiB, true);
        dv.setBigUint64(2 * MiB, (e & 0xfffffn) | (BigInt(size / MiB + 5) << 20n), true);
        return undefined;
      }),
      // the file truncated inside the last block
      mutate(x, "x-end.vhdx", (b) => b.subarray(0, size - MiB)),
    ];
    for (const f of cases) {
      expect(qemuImg(["info", f], { allowFail: true }).stderr).toMatch(/points after end of file/);
      await expect(openImage(host, f, { readOnly: true })).rejects.toMatchObject({ code: DiskErrorCode.OUT_OF_BOUNDS });
      const q = qemuImg(["check", "--output", "json", f], { allowFail: true });
      const r = await rz("check", "--output", "json", f);
      expect([r.code, JSON.parse(r.out).corruptions]).toEqual([q.status, JSON.parse(q.stdout).corruptions]);
      expect(r.code).toBe(2);
      const human = await rz("check", f);
      expect(human.err).toMatch(/VHDX BAT entry \d+ (start|end) offset \d+ points after end of file/);
      expect(human.out).toContain("1 errors were found on the image.");
    }
  });

  it("VHDX: a corrupt first region table: qemu-img refuses; here a warning, and check reports it", async () => {
    const x = t.path("r.vhdx");
    qemuImg(["create", "-q", "-f", "vhdx", x, "8M"]);
    qemuIo(x, ["write -P 3 0 64k"], "vhdx");
    const f = mutate(x, "r1.vhdx", (b) => {
      b[192 * 1024 + 20]! ^= 1;
      return undefined;
    });
    expect(qemuImg(["info", f], { allowFail: true }).status).toBe(1);
    const info = await rz("info", f);
    expect(info.code).toBe(0);
    expect(info.err).toBe(
      "ringzero-img: warning: region table 1 is corrupt (signature or CRC-32C): using region table 2\n",
    );
    const chk = await rz("check", f);
    expect(chk.code).toBe(2);
    expect(chk.err).toContain("ERROR region table 1 is corrupt");
    // the data is still read through the second copy
    const conv = await rz("convert", "-O", "raw", f, t.path("r1.raw"));
    expect(conv.code).toBe(0);
    expect(
      readFileSync(t.path("r1.raw"))
        .subarray(0, 65536)
        .every((x) => x === 3),
    ).toBe(true);
    // both copies corrupt: refused
    const both = mutate(f, "r2.vhdx", (b) => {
      b[256 * 1024 + 20]! ^= 1;
      return undefined;
    });
    await expect(openImage(host, both, { readOnly: true })).rejects.toMatchObject({
      code: DiskErrorCode.INVALID_HEADER,
    });
  });

  it("VDI: link and parent UUIDs must be null, version 1.1 only", async () => {
    const d = t.path("d.vdi");
    qemuImg(["create", "-q", "-f", "vdi", d, "8M"]);
    const cases: Array<[string, (dv: DataView) => void, RegExp]> = [
      ["link", (dv) => dv.setUint8(0x1a8 + 3, 7), /non-NULL link UUID/],
      ["parent", (dv) => dv.setUint8(0x1b8 + 5, 9), /non-NULL parent UUID/],
      ["v1.0", (dv) => dv.setUint32(0x44, 0x00010000, true), /version 1\.0/],
      ["v1.2", (dv) => dv.setUint32(0x44, 0x00010002, true), /version 1\.2/],
      ["v2.1", (dv) => dv.setUint32(0x44, 0x00020001, true), /version 2\.1/],
    ];
    for (const [name, fn, msg] of cases) {
      const f = mutate(d, `d-${name}.vdi`, (_b, dv) => {
        fn(dv);
        return undefined;
      });
      await bothRefuse(f, "vdi", DiskErrorCode.UNSUPPORTED, msg);
    }
  });

  it("qcow2: an unaligned snapshot table offset (even with no snapshots) and a 16-byte backing format", async () => {
    const q = t.path("q.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", q, "8M"]);
    await bothRefuse(
      mutate(q, "q-snap.qcow2", (_b, dv) => {
        dv.setBigUint64(64, 12345n);
        return undefined;
      }),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /Snapshot table offset invalid/,
    );
    // an aligned offset past the end of the file with no snapshots is accepted by both
    const past = mutate(q, "q-past.qcow2", (_b, dv) => {
      dv.setBigUint64(64, 1n << 40n);
      return undefined;
    });
    expect(qemuImg(["info", past]).status).toBe(0);
    expect((await rz("info", past)).code).toBe(0);
    // backing format extension of 16 bytes ("raw" NUL-padded), then the end marker
    writeFileSync(t.path("back.raw"), new Uint8Array(8 * MiB));
    const bk = t.path("bk.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "back.raw", bk, "8M"]);
    const f = mutate(bk, "bk-fmt16.qcow2", (b, dv) => {
      const hl = dv.getUint32(100);
      const nameAt = Number(dv.getBigUint64(8));
      b.fill(0, hl, nameAt);
      dv.setUint32(hl, 0xe2792aca);
      dv.setUint32(hl + 4, 16);
      b.write("raw", hl + 8, "latin1");
      return undefined;
    });
    await bothRefuse(f, "qcow2", DiskErrorCode.INVALID_HEADER, /ext_backing_format: len=16 too large/);
  });
  it("qcow2: header extensions too large for their area, a bitmaps extension of the wrong length, a crypto extension without encryption", async () => {
    const q = t.path("qx.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", q, "8M"]);
    /** The extension area rewritten: `exts` from the header's end, then zeros (the end marker). */
    const withExts = (name: string, exts: [number, number][], backingAt?: number) =>
      mutate(q, name, (b, dv) => {
        const hl = dv.getUint32(100);
        b.fill(0, hl, 4096);
        let pos = hl;
        for (const [type, len] of exts) {
          dv.setUint32(pos, type);
          dv.setUint32(pos + 4, len);
          pos += 8 + Math.ceil(len / 8) * 8;
        }
        if (backingAt !== undefined) {
          dv.setBigUint64(8, BigInt(hl + backingAt));
          dv.setUint32(16, 3);
          b.write("abc", hl + backingAt, "latin1");
        }
        return undefined;
      });
    // data running past the first cluster, or past the backing file name
    await bothRefuse(
      withExts("qx-big.qcow2", [[0x12345678, 65536]]),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /Header extension too large/,
    );
    await bothRefuse(
      withExts("qx-name.qcow2", [[0x12345678, 16]], 16),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /Header extension too large/,
    );
    // the 8-byte extension header itself crossing the backing file name (the end marker too)
    await bothRefuse(
      withExts("qx-strad.qcow2", [], 4),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /Header extension too large/,
    );
    // bitmaps: any length but 24 refused; 24 (autoclear bit clear) accepted by both
    await bothRefuse(
      withExts("qx-bm8.qcow2", [[0x23852875, 8]]),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /bitmaps_ext: Invalid extension length/,
    );
    const bm24 = withExts("qx-bm24.qcow2", [[0x23852875, 24]]);
    expect(qemuImg(["info", bm24]).status).toBe(0);
    expect((await rz("info", bm24)).code).toBe(0);
    await bothRefuse(
      withExts("qx-crypto.qcow2", [[0x0537be77, 16]]),
      "qcow2",
      DiskErrorCode.INVALID_HEADER,
      /CRYPTO header extension only expected with LUKS/,
    );
    // unknown extensions of any fitting length, and a name right after the end marker, are accepted by both
    for (const f of [withExts("qx-unk.qcow2", [[0x12345678, 9]]), withExts("qx-ok.qcow2", [[0x12345678, 8]], 24)]) {
      expect(qemuImg(["info", f]).status).toBe(0);
      expect((await rz("info", f)).code).toBe(0);
    }
    // a backing file name of 1024 bytes: "Backing file name too long" in both
    const long = mutate(q, "qx-long.qcow2", (b, dv) => {
      const hl = dv.getUint32(100);
      b.fill(0, hl, 4096);
      dv.setBigUint64(8, BigInt(hl + 8));
      dv.setUint32(16, 1024);
      b.fill(0x78, hl + 8, hl + 8 + 1024);
      return undefined;
    });
    await bothRefuse(long, "qcow2", DiskErrorCode.INVALID_HEADER, /Backing file name too long/);
  });
  it("VMDK: a sparse extent's capacity and its descriptor line disagree: the capacity counts, as in qemu-img", async () => {
    const m = t.path("m.vmdk");
    qemuImg(["create", "-q", "-f", "vmdk", m, "8M"]);
    qemuIo(m, ["write -P 4 0 64k", "write -P 5 3M 64k"], "vmdk");
    for (const sectors of [8192, 32768]) {
      const f = mutate(m, `m-${sectors}.vmdk`, (_b, dv) => {
        dv.setBigUint64(12, BigInt(sectors), true);
        return undefined;
      });
      const q = JSON.parse(qemuImg(["info", "--output", "json", f]).stdout)["virtual-size"];
      const img = await openImage(host, f, { readOnly: true });
      expect([sectors, img.size()]).toEqual([sectors, q]);
      expect((await img.read(0, 65536)).every((x) => x === 4)).toBe(true);
      await img.close();
      // the same content through both
      const r = await rz("convert", "-O", "raw", f, `${f}.rz.raw`);
      expect(r.code).toBe(0);
      qemuImg(["convert", "-O", "raw", f, `${f}.q.raw`]);
      expect(Buffer.compare(readFileSync(`${f}.rz.raw`), readFileSync(`${f}.q.raw`))).toBe(0);
    }
  });
  it("sizes that are not a multiple of 512: created rounded up, read as qemu-img reads them", async () => {
    for (const fmt of ["qcow2", "vdi"] as const) {
      // created here: qemu-img create rounds up to sectors, and so does this
      const f = t.path(`odd.${fmt}`);
      expect((await rz("create", "-f", fmt, f, "1000")).code).toBe(0);
      const q = JSON.parse(qemuImg(["info", "--output", "json", "-f", fmt, f]).stdout)["virtual-size"];
      expect([fmt, q]).toEqual([fmt, 1024]);
      expect(JSON.parse((await rz("info", "--output", "json", f)).out)["virtual-size"]).toBe(1024);
    }
    // header sizes written odd: qcow2 reads them rounded down (qcow2_do_open), VDI rounded up (vdi_open)
    const q2 = t.path("odd-h.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", q2, "1M"]);
    const vd = t.path("odd-h.vdi");
    qemuImg(["create", "-q", "-f", "vdi", vd, "1M"]);
    for (const [f, off, le] of [
      [q2, 24, false],
      [vd, 0x170, true],
    ] as const) {
      const m = mutate(f, `m-${f.split("/").pop()}`, (_b, dv) => {
        dv.setBigUint64(off, BigInt(1024 * 1024 - 700), le);
        return undefined;
      });
      const q = JSON.parse(qemuImg(["info", "--output", "json", m]).stdout)["virtual-size"];
      const r = await rz("info", "--output", "json", m);
      expect([m, JSON.parse(r.out)["virtual-size"]]).toEqual([m, q]);
    }
    // resize: qemu-img refuses sizes that are not multiples of 512, and so does this
    expect(qemuImg(["resize", q2, "2000000"], { allowFail: true }).stderr).toMatch(/multiple of 512/);
    const r = await rz("resize", q2, "2000000");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/multiple of 512/);
  });
});
