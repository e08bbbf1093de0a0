// VHDX log replay ([MS-VHDX] 2.3.3) against qemu-img: a log qemu-io really
// left behind (a write failed between the log entry and its replay), crafted
// logs (data and zero descriptors, entries wrapping the end of the log), and
// corrupt logs, each replayed here and by `qemu-img check -r all` and compared.
import { copyFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../cli/main.js";
import { DiskError, DiskErrorCode } from "../errors.js";
import { MemoryStore } from "../io/memory.js";
import { NodeFileHost } from "../io/node-file.js";
import { openImage } from "../open.js";
import { firstDiff, HAVE_QEMU, pattern, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";
import {
  buildEntry,
  type EntrySpec,
  patchFile,
  placeEntry,
  readFileRange,
  setLogGuid,
} from "../testing-internal/vhdx-log-builder.js";
import { crc32c, VhdxImage } from "./vhdx.js";

const host = new NodeFileHost();
const MiB = 1024 * 1024;
const LOG = MiB; // qemu-img's layout: log at 1 MiB (1 MiB long), BAT at 2 MiB
const LOG_LEN = MiB;
const BAT = 2 * MiB;
const GUID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const OTHER_GUID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);

/** The BAT entry of a fully present block at `fileOffset`. */
const present = (fileOffset: number) => (BigInt(fileOffset / MiB) << 20n) | 6n;

describe.skipIf(!HAVE_QEMU)("VHDX log replay", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-vhdxlog-");
  });
  afterAll(() => t.cleanup());

  /** Replays `f` with qemu-img (on a copy) and with ringzero (in place); both must agree and check clean. */
  async function replayBoth(f: string): Promise<string> {
    const q = `${f}.qemu.vhdx`;
    copyFileSync(f, q);
    const r = qemuImg(["check", "-r", "all", q], { allowFail: true });
    const img = await openImage(host, f, { readOnly: false });
    await img.close();
    expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(qemuImg(["compare", "-f", "vhdx", "-F", "vhdx", q, f]).stdout).toContain("Images are identical.");
    // the log is empty now: a read-only open works
    (await openImage(host, f, { readOnly: true })).close();
    return q;
  }

  /** Replays `f` here only (where qemu-img 7.2 behaves differently), then `qemu-img check` must pass. */
  async function replayOurs(f: string): Promise<void> {
    const img = await openImage(host, f, { readOnly: false });
    await img.close();
    expect(qemuImg(["check", f]).stdout).toContain("No errors were found on the image.");
  }

  it("replays a log qemu-io left behind (BAT update journalled, write failed before the replay)", async () => {
    const f = t.path("real.vhdx");
    const cfg = t.path("blkdebug.cfg");
    // fail every write to the BAT's first sector: the log entry is written and flushed, its replay fails
    writeFileSync(cfg, `[inject-error]\nevent = "pwritev"\nsector = "${BAT / 512}"\nerrno = "5"\n`);
    qemuImg(["create", "-f", "vhdx", f, "64M"]);
    expect(() => qemuIo(`blkdebug:${cfg}:${f}`, ["write -P 0xab 0 4k"], "vhdx")).toThrow();
    expect(qemuImg(["info", f], { allowFail: true }).stderr).toContain("contains a log that needs to be replayed");
    await expect(openImage(host, f, { readOnly: true })).rejects.toMatchObject({
      code: DiskErrorCode.NEEDS_REPLAY,
      context: { format: "vhdx" },
    });
    await replayBoth(f);
    const img = await openImage(host, f, { readOnly: true });
    expect((await img.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
    expect((await img.read(4096, 4096)).every((b) => b === 0)).toBe(true);
    await img.close();
  });

  it("ringzero-img check: refuses without -r, replays with -r all and reports it as qemu-img does", async () => {
    const f = t.path("cli.vhdx");
    qemuImg(["create", "-f", "vhdx", f, "64M"]);
    const cfg = t.path("blkdebug2.cfg");
    writeFileSync(cfg, `[inject-error]\nevent = "pwritev"\nsector = "${BAT / 512}"\nerrno = "5"\n`);
    expect(() => qemuIo(`blkdebug:${cfg}:${f}`, ["write -P 0xcd 0 4k"], "vhdx")).toThrow();
    const copies = ["q1", "q2", "r2"].map((n) => {
      copyFileSync(f, t.path(`${n}.vhdx`));
      return t.path(`${n}.vhdx`);
    });
    const run = async (...argv: string[]) => {
      let out = "";
      let err = "";
      const code = await runCli(argv, {
        stdout: (x) => {
          out += x;
        },
        stderr: (x) => {
          err += x;
        },
        isTTY: false,
      });
      return { code, out, err };
    };
    const refused = await run("check", f);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("NEEDS_REPLAY");
    const q = qemuImg(["check", "-r", "all", copies[0]!]);
    const r = await run("check", "-r", "all", f);
    expect(r.code).toBe(0);
    expect(r.out).toBe(q.stdout);
    const qj = qemuImg(["check", "-r", "all", "--output", "json", copies[1]!]).stdout;
    const rj = await run("check", "-r", "all", "--output", "json", copies[2]!);
    expect(JSON.parse(rj.out)).toEqual({ ...JSON.parse(qj), filename: copies[2] });
    expect((await run("check", f)).out).toBe("No errors were found on the image.\n");
  });

  /**
   * A qemu-img image with block 1 written, then two journalled updates:
   * e1 (at `e1At` in the log): the BAT sector mapping block 0 to 8 MiB of
   * data appended at the file's end; e2 (right after it): zeroes the first
   * 64 KiB of block 1 and writes one 4 KiB sector 1 MiB into it.
   */
  function crafted(name: string, tweak: (e1: EntrySpec, e2: EntrySpec) => void = () => {}, e1At = 0) {
    const e2At = (e1At + 8192) % LOG_LEN;
    const f = t.path(name);
    qemuImg(["create", "-f", "vhdx", f, "64M"]);
    qemuIo(f, ["write -P 0x11 8M 1M"], "vhdx");
    const block1 = Number(new DataView(readFileRange(f, BAT + 8, 8).buffer).getBigUint64(0, true) >> 20n) * MiB;
    expect(block1).toBe(8 * MiB);
    const newBlock = 16 * MiB;
    const block0 = pattern(8 * MiB, 7);
    patchFile(f, newBlock, block0);
    const batSector = readFileRange(f, BAT, 4096);
    new DataView(batSector.buffer).setBigUint64(0, present(newBlock), true);
    const sector = pattern(4096, 9);
    const e1: EntrySpec = {
      seq: 41n,
      tail: e1At,
      logGuid: GUID,
      descriptors: [{ kind: "data", fileOffset: BAT, sector: batSector }],
      flushedFileOffset: 16 * MiB,
      lastFileOffset: 24 * MiB,
    };
    const e2: EntrySpec = {
      seq: 42n,
      tail: e1At,
      logGuid: GUID,
      descriptors: [
        { kind: "zero", fileOffset: block1, length: 64 * 1024 },
        { kind: "data", fileOffset: block1 + MiB, sector },
      ],
      flushedFileOffset: 24 * MiB,
      lastFileOffset: 24 * MiB,
    };
    tweak(e1, e2);
    const b1 = buildEntry(e1);
    const b2 = buildEntry(e2);
    placeEntry(f, LOG, LOG_LEN, e1At, b1); // 8 KiB: wraps when e1At is the log's last sector
    placeEntry(f, LOG, LOG_LEN, e2At, b2);
    setLogGuid(f, GUID);
    // expected disk contents after replaying e1 only, and e1 + e2
    const before = new Uint8Array(64 * MiB);
    before.fill(0x11, 8 * MiB, 9 * MiB);
    const afterE1 = before.slice();
    afterE1.set(block0, 0);
    const afterE2 = afterE1.slice();
    afterE2.fill(0, 8 * MiB, 8 * MiB + 64 * 1024);
    afterE2.set(sector, 9 * MiB);
    return { f, b2, before, afterE1, afterE2 };
  }

  async function contents(f: string): Promise<Uint8Array> {
    const img = await openImage(host, f, { readOnly: true });
    const b = await img.read(0, img.size());
    await img.close();
    return b;
  }

  it("replays data and zero descriptors from the tail", async () => {
    const { f, afterE2 } = crafted("crafted.vhdx");
    await expect(openImage(host, f, { readOnly: true })).rejects.toBeInstanceOf(DiskError);
    await replayBoth(f);
    expect(firstDiff(await contents(f), afterE2)).toBe(-1);
    const raw = t.path("expected.raw");
    writeFileSync(raw, afterE2);
    expect(qemuImg(["compare", "-F", "raw", f, raw]).stdout).toContain("Images are identical.");
  });

  it("an entry wrapping around the end of the log", async () => {
    // qemu-img 7.2 does not replay this one the same way (observed: it keeps e2 alone, found first while
    // scanning from the log's start), so the result is checked against the expected contents instead.
    const { f, afterE2 } = crafted("wrap.vhdx", undefined, LOG_LEN - 4096);
    await replayOurs(f);
    const raw = t.path("expected-wrap.raw");
    writeFileSync(raw, afterE2);
    expect(qemuImg(["compare", "-F", "raw", f, raw]).stdout).toContain("Images are identical.");
  });

  it("a bad checksum or a torn data sector in the head entry: the valid prefix is replayed", async () => {
    const a = crafted("badsum.vhdx");
    patchFile(a.f, LOG + 8192 + 4096 + 100, new Uint8Array([0x5a])); // inside e2's data sector
    await replayBoth(a.f);
    expect(firstDiff(await contents(a.f), a.afterE1)).toBe(-1);
    // torn: e2's data sector carries another sequence number; the checksum is fixed so only that check catches it.
    // 2.3.1.4 makes e2 invalid, so e1 alone is replayed; qemu-img 7.2 accepts e2 while scanning and then
    // refuses the image when its replay meets the mismatch.
    const b = crafted("torn.vhdx");
    const e2 = b.b2.slice();
    new DataView(e2.buffer).setUint32(4096 + 4092, 7, true);
    new DataView(e2.buffer).setUint32(4, crc32c(e2, 4), true);
    placeEntry(b.f, LOG, LOG_LEN, 8192, e2);
    copyFileSync(b.f, `${b.f}.copy`);
    expect(qemuImg(["check", "-r", "all", `${b.f}.copy`], { allowFail: true }).stderr).toContain("Invalid argument");
    await replayOurs(b.f);
    expect(firstDiff(await contents(b.f), b.afterE1)).toBe(-1);
  });

  it("entries of another log GUID are not replayed (the file opens as it was)", async () => {
    const { f, before } = crafted("guid.vhdx");
    setLogGuid(f, OTHER_GUID);
    expect((await contents(f)).length).toBe(64 * MiB); // no active sequence: read-only opens work, as in qemu-img
    await replayBoth(f);
    expect(firstDiff(await contents(f), before)).toBe(-1);
  });

  it("a sequence gap: the head whose tail is outside its chain is incomplete, the older sequence wins", async () => {
    // e2 jumps from 41 to 43 and names e1 as its tail: chain [e2] is not a complete sequence (2.3.2).
    // (QEMU ignores Tail and would replay e2 alone; the spec's rule is followed here.)
    const { f, afterE1 } = crafted("gap.vhdx", (_e1, e2) => {
      e2.seq = 43n;
    });
    await replayOurs(f);
    expect(firstDiff(await contents(f), afterE1)).toBe(-1);
    // with its own position as tail, e2 alone is the newest complete sequence; e1 is not replayed
    // (qemu-img 7.2 does not compare the second entry's sequence number and replays both)
    const g = crafted("gap2.vhdx", (_e1, e2) => {
      e2.seq = 43n;
      e2.tail = 8192;
    });
    await replayOurs(g.f);
    const expected = g.before.slice();
    expected.fill(0, 8 * MiB, 8 * MiB + 64 * 1024);
    expected.set(pattern(4096, 9), 9 * MiB);
    expect(firstDiff(await contents(g.f), expected)).toBe(-1);
  });

  it("a FlushedFileOffset beyond the file (truncated file) and descriptors into the headers are typed errors", async () => {
    const a = crafted("trunc.vhdx", (_e1, e2) => {
      e2.flushedFileOffset = 64 * MiB;
    });
    await expect(openImage(host, a.f, { readOnly: false })).rejects.toMatchObject({
      code: DiskErrorCode.TRUNCATED,
      context: { format: "vhdx", offset: LOG + 8192 + 48 },
    });
    expect(qemuImg(["check", "-r", "all", a.f], { allowFail: true }).status).not.toBe(0); // qemu-img refuses it too
    const b = crafted("header.vhdx", (_e1, e2) => {
      e2.descriptors = [{ kind: "zero", fileOffset: 64 * 1024, length: 4096 }];
    });
    await expect(openImage(host, b.f, { readOnly: false })).rejects.toMatchObject({
      code: DiskErrorCode.METADATA_OVERLAP,
    });
  });
});

describe("hostile VHDX logs", () => {
  it("property: mutated log entries give a DiskError or a working image, never a crash", async () => {
    const s = new MemoryStore("l.vhdx");
    const img = await VhdxImage.create(s, { size: 8 * MiB, blockSize: MiB });
    await img.write(0, pattern(4096, 3));
    await img.close();
    const base = s.bytes();
    const batSector = base.slice(BAT, BAT + 4096);
    const entry = buildEntry({
      seq: 5n,
      tail: 0,
      logGuid: GUID,
      descriptors: [
        { kind: "data", fileOffset: BAT, sector: batSector },
        { kind: "zero", fileOffset: 6 * MiB, length: 8192 },
      ],
      flushedFileOffset: MiB,
      lastFileOffset: 8 * MiB,
    });
    const withLog = base.slice();
    withLog.set(entry, LOG);
    for (const at of [64 * 1024, 128 * 1024]) {
      withLog.set(GUID, at + 48);
      new DataView(withLog.buffer).setUint32(at + 4, crc32c(withLog.subarray(at, at + 4096), 4), true);
    }
    // a log region that is absurdly large or lies beyond the file: typed errors naming the header field
    for (const [len, off, code] of [
      [128 * MiB, LOG, DiskErrorCode.TOO_LARGE],
      [LOG_LEN, 1024 * MiB, DiskErrorCode.OUT_OF_BOUNDS],
      [LOG_LEN + 4096, LOG, DiskErrorCode.INVALID_HEADER],
    ] as const) {
      const b = withLog.slice();
      for (const at of [64 * 1024, 128 * 1024]) {
        const dv = new DataView(b.buffer, at, 4096);
        dv.setUint32(68, len, true);
        dv.setBigUint64(72, BigInt(off), true);
        dv.setUint32(4, crc32c(b.subarray(at, at + 4096), 4), true);
      }
      await expect(VhdxImage.open(new MemoryStore("h", false, b), { readOnly: false })).rejects.toMatchObject({
        code,
        context: { format: "vhdx" },
      });
    }
    // sanity: the unmutated log replays
    const ok = await VhdxImage.open(new MemoryStore("ok", false, withLog.slice()), { readOnly: false });
    expect((await ok.read(0, 4096)).every((v, i) => v === pattern(4096, 3)[i])).toBe(true);
    await ok.close();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(entry.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (muts, fixSum) => {
          const b = withLog.slice();
          for (const [o, v] of muts) b[LOG + o] = v;
          if (fixSum) {
            const e = b.subarray(LOG, LOG + entry.length);
            new DataView(e.buffer, e.byteOffset).setUint32(4, crc32c(e, 4), true);
          }
          try {
            const i = await VhdxImage.open(new MemoryStore("p", false, b), { readOnly: false });
            await i.read(0, 8192);
            await i.close();
          } catch (e) {
            if (!(e instanceof DiskError)) throw e;
            expect(e.format).toBe("vhdx");
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
