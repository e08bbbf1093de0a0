// convert --salvage: where ringzero refuses data qemu-img reads (or cannot read), the
// conversion goes on, the unreadable sectors become zeros, counted and reported.
import { existsSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryHost, MemoryStore } from "../io/memory.js";
import type { ByteStore } from "../io/store.js";
import { rz, rzOn } from "../testing-internal/cli.js";
import { HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("convert --salvage on I/O errors", () => {
  it("sectors whose reads fail with an errno (EIO) become zeros and are reported", async () => {
    const data = pattern(MiB, 9);
    /** A host whose file `in.raw` fails every read touching bytes 4096..8191 with EIO. */
    class FaultyHost extends MemoryHost {
      override async open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
        const s = await super.open(name, options);
        if (name !== "in.raw") return s;
        return Object.assign(Object.create(s) as ByteStore, {
          read: async (offset: number, buf: Uint8Array) => {
            if (offset < 8192 && offset + buf.length > 4096)
              throw Object.assign(new Error("EIO: i/o error, read"), { errno: -5, code: "EIO" });
            return s.read(offset, buf);
          },
        });
      }
    }
    const host = new FaultyHost();
    host.files.set("in.raw", new MemoryStore("in.raw", false, data));
    // without --salvage: one error line, exit 1, the output removed
    const plain = await rzOn(host, "convert", "-f", "raw", "-O", "raw", "in.raw", "out.raw");
    expect(plain).toMatchObject({ code: 1, err: "ringzero-img: EIO: i/o error, read\n" });
    expect(host.files.has("out.raw")).toBe(false);
    const r = await rzOn(host, "convert", "--salvage", "-f", "raw", "-O", "raw", "in.raw", "out.raw");
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      "ringzero-img: warning: unreadable bytes 4096..8191 written as zeros: EIO: i/o error, read\n" +
        "ringzero-img: warning: salvaged: 4096 unreadable bytes (8 sectors, 1 ranges) written as zeros\n",
    );
    const out = host.files.get("out.raw")!.bytes();
    expect(out.subarray(4096, 8192).every((x) => x === 0)).toBe(true);
    expect(Buffer.from(out.subarray(0, 4096)).equals(Buffer.from(data.subarray(0, 4096)))).toBe(true);
    expect(Buffer.from(out.subarray(8192)).equals(Buffer.from(data.subarray(8192)))).toBe(true);
  });
});

describe.skipIf(!HAVE_QEMU)("ringzero-img convert --salvage", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-salvage-");
  });
  afterAll(() => t.cleanup());

  /** Without --salvage: one error line with `code`, exit 1, no output left behind. */
  async function refused(src: string, fmt: string, code: string): Promise<void> {
    const out = t.path(`refused-${fmt}.raw`);
    const r = await rz("convert", "-f", fmt, "-O", "raw", src, out);
    expect(r.code).toBe(1);
    expect(r.err.split("\n")).toHaveLength(2);
    expect(r.err).toContain(`(${code}, ${fmt}`);
    expect(existsSync(out)).toBe(false);
  }

  it("qcow2: a compressed cluster whose deflate stream is corrupt becomes zeros, as in qemu-img --salvage", async () => {
    const raw = t.path("text.raw");
    const text = Buffer.from("compressible text, line after line\n".repeat(8000)).subarray(0, 256 * KiB);
    writeFileSync(raw, text);
    const c = t.path("c.qcow2");
    qemuImg(["convert", "-c", "-O", "qcow2", raw, c]);
    // the second cluster's L2 entry: compressed; its stream's bytes flipped after the first two
    const b = readFileSync(c);
    const l1 = Number(b.readBigUInt64BE(40));
    const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    const entry = b.readBigUInt64BE(l2 + 8);
    expect(entry >> 62n).toBe(1n); // compressed
    const host = Number(entry & ((1n << 54n) - 1n)); // 64 KiB clusters: 62 - (16 - 8) offset bits
    for (let i = host + 2; i < host + 40; i++) b[i]! ^= 0x5a;
    const bad = t.path("c-bad.qcow2");
    writeFileSync(bad, b);

    expect(qemuImg(["convert", "-O", "raw", bad, t.path("q-plain.raw")], { allowFail: true }).status).toBe(1);
    await refused(bad, "qcow2", "BAD_COMPRESSED_DATA");

    const q = t.path("q-salvaged.raw");
    expect(qemuImg(["convert", "--salvage", "-O", "raw", bad, q]).status).toBe(0);
    const ours = t.path("rz-salvaged.raw");
    const r = await rz("convert", "--salvage", "-O", "raw", bad, ours);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      "ringzero-img: warning: unreadable bytes 65536..131071 written as zeros: compressed cluster does not inflate to one cluster (BAD_COMPRESSED_DATA, qcow2 at offset " +
        `${host})\n` +
        "ringzero-img: warning: salvaged: 65536 unreadable bytes (128 sectors, 1 ranges) written as zeros\n",
    );
    // byte-identical to qemu-img's salvage: the other clusters as they were, the bad one zeros
    const got = readFileSync(ours);
    expect(got.equals(readFileSync(q))).toBe(true);
    expect(got.subarray(0, 64 * KiB).equals(text.subarray(0, 64 * KiB))).toBe(true);
    expect(got.subarray(64 * KiB, 128 * KiB).every((x) => x === 0)).toBe(true);
    expect(got.subarray(128 * KiB).equals(text.subarray(128 * KiB))).toBe(true);
    // into qcow2 too (compressed again, -c): qemu-img compare agrees with qemu-img's salvage
    const oq = t.path("rz-salvaged.qcow2");
    expect((await rz("convert", "--salvage", "-c", "-O", "qcow2", bad, oq)).code).toBe(0);
    expect(qemuImg(["compare", "-f", "raw", "-F", "qcow2", q, oq]).status).toBe(0);
    expect(qemuImg(["check", oq]).status).toBe(0);
    // -q does not hide what was lost
    expect((await rz("convert", "-q", "--salvage", "-O", "raw", bad, t.path("q.raw"))).err).toContain("salvaged:");
  });

  it("VDI: a block past the end of the file (qemu-img reads zeros there) is refused; --salvage writes zeros and says so", async () => {
    const v = t.path("v.vdi");
    qemuImg(["create", "-q", "-f", "vdi", v, "4M"]);
    qemuIo(v, ["write -P 0x11 0 1M", "write -P 0x22 1M 1M", "write -P 0x33 2M 1M"], "vdi");
    const dataOffset = readFileSync(v).readUInt32LE(0x158);
    truncateSync(v, dataOffset + 2 * MiB); // the third block now starts at the end of the file
    await refused(v, "vdi", "OUT_OF_BOUNDS");
    const q = t.path("v-q.raw");
    expect(qemuImg(["convert", "-O", "raw", v, q]).status).toBe(0); // qemu-img: zeros, no error
    const ours = t.path("v-rz.raw");
    const r = await rz("convert", "--salvage", "-f", "vdi", "-O", "raw", v, ours);
    expect(r.code).toBe(0);
    expect(r.err).toContain("unreadable bytes 2097152..3145727 written as zeros: data block beyond end of file");
    expect(r.err).toContain("salvaged: 1048576 unreadable bytes (2048 sectors, 1 ranges)");
    expect(readFileSync(ours).equals(readFileSync(q))).toBe(true);
    // info and check still refuse it
    expect((await rz("info", v)).code).toBe(1);
  });

  it("VMDK: a grain inside the header and tables (qemu-img reads the metadata as data) becomes zeros", async () => {
    const k = t.path("k.vmdk");
    qemuImg(["create", "-q", "-f", "vmdk", k, "4M"]);
    qemuIo(k, ["write -P 0x44 0 64k", "write -P 0x55 1M 64k"], "vmdk");
    const b = readFileSync(k);
    const gd = Number(b.readBigUInt64LE(56)) * 512; // grain directory offset (sectors)
    const gt = b.readUInt32LE(gd) * 512;
    b.writeUInt32LE(5, gt + 16 * 4); // grain 16 (1 MiB, 64 KiB grains) -> sector 5: the descriptor's end, the grain directory and tables
    const bad = t.path("k-bad.vmdk");
    writeFileSync(bad, b);
    await refused(bad, "vmdk", "METADATA_OVERLAP");
    const q = t.path("k-q.raw");
    expect(qemuImg(["convert", "-O", "raw", bad, q]).status).toBe(0);
    const ours = t.path("k-rz.raw");
    const r = await rz("convert", "--salvage", "-O", "raw", bad, ours);
    expect(r.code).toBe(0);
    expect(r.err).toContain("unreadable bytes 1048576..1114111 written as zeros: grain inside the header and tables");
    expect(r.err).toContain("salvaged: 65536 unreadable bytes (128 sectors, 1 ranges)");
    const got = readFileSync(ours);
    const theirs = readFileSync(q);
    // qemu-img copies the image's own grain directory and tables into the guest's view there; here they
    // are zeros; the rest agrees
    expect(got.subarray(MiB, MiB + 64 * KiB).every((x) => x === 0)).toBe(true);
    expect(theirs.subarray(MiB, MiB + 64 * KiB).some((x) => x !== 0)).toBe(true);
    expect(got.subarray(0, MiB).equals(theirs.subarray(0, MiB))).toBe(true);
    expect(got.subarray(MiB + 64 * KiB).equals(theirs.subarray(MiB + 64 * KiB))).toBe(true);
    expect(got.subarray(0, 64 * KiB).every((x) => x === 0x44)).toBe(true);
  });

  it("an intact image converts with --salvage exactly as without, and says nothing", async () => {
    const v = t.path("ok.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", v, "2M"]);
    qemuIo(v, ["write -P 7 4k 100k"]);
    const r = await rz("convert", "--salvage", "-O", "raw", v, t.path("ok.raw"));
    expect(r).toMatchObject({ code: 0, err: "", out: "" });
    expect(qemuImg(["compare", "-f", "qcow2", "-F", "raw", v, t.path("ok.raw")]).status).toBe(0);
  });
});
