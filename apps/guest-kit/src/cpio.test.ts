import { spawnSync } from "node:child_process";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { type CpioEntry, readCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, writeCpio } from "./cpio.js";
import { GuestKitError } from "./errors.js";

const sample: CpioEntry[] = [
  { type: "dir", path: "bin" },
  { type: "file", path: "bin/busybox", data: Buffer.from("\x7fELF not really\n"), mode: 0o755 },
  { type: "symlink", path: "bin/sh", target: "busybox" },
  { type: "dir", path: "dev" },
  { type: "char", path: "dev/console", major: 5, minor: 1 },
  { type: "dir", path: "etc", mode: 0o700 },
  {
    type: "file",
    path: "etc/passwd",
    data: Buffer.from("root:x:0:0:root:/root:/bin/sh\n"),
    uid: 1000,
    gid: 1001,
    mtime: 1_700_000_000,
  },
  { type: "file", path: "etc/empty", data: new Uint8Array(0) },
  { type: "file", path: "etc/odd", data: Buffer.from([1, 2, 3]) },
];

function hasCpio(): boolean {
  return spawnSync("cpio", ["--version"], { stdio: "ignore" }).status === 0;
}

describe("writeCpio (newc)", () => {
  it("writes the exact newc header layout", () => {
    const a = writeCpio([{ type: "file", path: "a", data: Buffer.from("xy") }]);
    const head = a.toString("latin1", 0, 110);
    expect(head.slice(0, 6)).toBe("070701");
    // ino 1, mode 0100644, uid 0, gid 0, nlink 1, mtime 0, size 2, dev 0/0, rdev 0/0, namesize 2, check 0
    expect(head.slice(6)).toBe(
      ["1", "81A4", "0", "0", "1", "0", "2", "0", "0", "0", "0", "2", "0"].map((h) => h.padStart(8, "0")).join(""),
    );
    // name "a\0" + 0 pad (112 % 4 = 0), data "xy" + 2 pad, then the trailer
    expect(a.toString("latin1", 110, 112)).toBe("a\0");
    expect(a.toString("latin1", 112, 116)).toBe("xy\0\0");
    expect(a.toString("latin1", 116, 122)).toBe("070701");
    expect(a.includes(Buffer.from("TRAILER!!!\0"))).toBe(true);
    expect(a.length % 4).toBe(0);
  });

  it("round-trips through its own reader", () => {
    const recs = readCpio(writeCpio(sample));
    expect(recs.map((r) => r.name)).toEqual(sample.map((e) => e.path));
    const byName = new Map(recs.map((r) => [r.name, r]));
    expect(byName.get("bin")?.mode).toBe(S_IFDIR | 0o755);
    expect(byName.get("bin/busybox")?.mode).toBe(S_IFREG | 0o755);
    expect(Buffer.from(byName.get("bin/sh")?.data ?? []).toString()).toBe("busybox");
    expect(byName.get("bin/sh")?.mode).toBe(S_IFLNK | 0o777);
    const con = byName.get("dev/console");
    expect(con && [con.mode & S_IFMT, con.rdevMajor, con.rdevMinor]).toEqual([S_IFCHR, 5, 1]);
    const pw = byName.get("etc/passwd");
    expect(pw && [pw.uid, pw.gid, pw.mtime]).toEqual([1000, 1001, 1_700_000_000]);
    expect(new Set(recs.map((r) => r.ino)).size).toBe(recs.length);
  });

  it("round-trips arbitrary files (property)", () => {
    const name = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,20}$/).filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(name, fc.uint8Array({ maxLength: 300 })), { selector: (t) => t[0], maxLength: 12 }),
        (files) => {
          const entries: CpioEntry[] = files.map(([n, data]) => ({ type: "file", path: n, data }));
          const recs = readCpio(writeCpio(entries));
          expect(recs.map((r) => [r.name, Buffer.from(r.data).toString("hex")])).toEqual(
            files.map(([n, d]) => [n, Buffer.from(d).toString("hex")]),
          );
        },
      ),
    );
  });

  it.each([
    ["absolute path", { type: "dir", path: "/etc" }],
    ["dot-dot", { type: "dir", path: "a/../b" }],
    ["empty component", { type: "dir", path: "a//b" }],
    ["trailing slash", { type: "dir", path: "a/" }],
    ["NUL", { type: "dir", path: "a\0b" }],
    ["trailer name", { type: "dir", path: "TRAILER!!!" }],
    ["type bits in mode", { type: "file", path: "f", data: new Uint8Array(0), mode: 0o100644 }],
    ["negative major", { type: "char", path: "c", major: -1, minor: 0 }],
  ] as [string, CpioEntry][])("rejects %s", (_why, entry) => {
    expect(() => writeCpio([entry])).toThrow(GuestKitError);
  });

  it("rejects duplicates and children before their parent", () => {
    expect(() =>
      writeCpio([
        { type: "dir", path: "a" },
        { type: "dir", path: "a" },
      ]),
    ).toThrow(/duplicate/);
    expect(() => writeCpio([{ type: "file", path: "a/b", data: new Uint8Array(0) }])).toThrow(/parent/);
    expect(() =>
      writeCpio([
        { type: "file", path: "a", data: new Uint8Array(0) },
        { type: "dir", path: "a/b" },
      ]),
    ).toThrow(/parent/);
  });
});

describe("readCpio on hostile input", () => {
  const good = writeCpio(sample);
  it("gives typed errors for every truncation", () => {
    // The trailer's name ends 3 bytes before the end (121-byte entry, padded to 124).
    const complete = good.length - 3;
    for (let n = 0; n < complete; n++) {
      expect(() => readCpio(good.subarray(0, n)), `length ${n}`).toThrow(GuestKitError);
    }
    expect(readCpio(good.subarray(0, complete))).toHaveLength(sample.length);
  });
  it("never throws anything but GuestKitError on random bytes or corrupted fields", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(), fc.nat(255), (noise, at, byte) => {
        for (const input of [noise, Buffer.concat([Buffer.from("070701"), noise])]) {
          try {
            readCpio(input);
          } catch (e) {
            expect(e).toBeInstanceOf(GuestKitError);
          }
        }
        const corrupt = Buffer.from(good);
        corrupt[at % corrupt.length] = byte;
        try {
          readCpio(corrupt);
        } catch (e) {
          expect(e).toBeInstanceOf(GuestKitError);
        }
      }),
    );
  });
  it("rejects a huge declared size without allocating", () => {
    const a = writeCpio([{ type: "file", path: "f", data: Buffer.from("x") }]);
    a.write("FFFFFFFF", 6 + 6 * 8, "latin1");
    expect(() => readCpio(a)).toThrow(/truncated data/);
  });
});

describe("interoperability with GNU cpio", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const skip = !hasCpio() && process.env.CI !== "true";
  it.skipIf(skip)("cpio -t lists and cpio -i extracts byte-identical contents", () => {
    if (!hasCpio()) throw new Error("GNU cpio is missing: apt-get install -y cpio (scripts/setup.sh)");
    const archive = writeCpio(sample);
    const list = spawnSync("cpio", ["-t", "-v", "--quiet"], { input: archive, encoding: "utf8" });
    expect(list.status, list.stderr).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines.map((l) => (l.split(/\s+/).at(-1) === "busybox" ? "bin/sh" : l.split(/\s+/).at(-1)))).toEqual(
      sample.map((e) => e.path),
    );
    expect(lines.find((l) => l.endsWith("dev/console"))).toMatch(/^crw-------\s+1\s+root\s+root\s+5,\s+1 /);
    expect(lines.find((l) => l.includes("bin/sh"))).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/);

    // Extract everything but the device node (mknod may be refused in a container).
    const dir = mkdtempSync(join(tmpdir(), "rz-cpio-"));
    dirs.push(dir);
    const noDev = writeCpio(sample.filter((e) => e.type !== "char"));
    const x = spawnSync("cpio", ["-i", "-d", "-m", "--quiet", "--no-absolute-filenames"], {
      cwd: dir,
      input: noDev,
      encoding: "utf8",
    });
    expect(x.status, x.stderr).toBe(0);
    for (const e of sample) {
      if (e.type === "file") {
        expect(readFileSync(join(dir, e.path)).equals(Buffer.from(e.data)), e.path).toBe(true);
        expect(lstatSync(join(dir, e.path)).mode & 0o7777).toBe(e.mode ?? 0o644);
      }
      if (e.type === "symlink") expect(readlinkSync(join(dir, e.path))).toBe(e.target);
    }
    expect(lstatSync(join(dir, "etc/passwd")).mtimeMs).toBe(1_700_000_000_000);
  });
});
