// Names read from images reach the terminal escaped (human output) or as
// qemu-img's ASCII-only JSON; errors naming them stay one line.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rz } from "../testing-internal/cli.js";
import { HAVE_QEMU, qemuImg, tempDir } from "../testing-internal/qemu.js";
import { escapeName, qemuJson } from "./escape.js";

/** Any byte a terminal would act on, other than the line breaks between output lines. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

// ESC [31m (colour), newline, backslash, DEL, C1 CSI, right-to-left override, and a plain é.
const HOSTILE = "a\u001b[31mb\nc\\d\u007f\u009b\u202eé";

describe("escapeName / qemuJson", () => {
  it("escapes control bytes, backslashes, C1 and bidi controls; keeps printable text", () => {
    expect(escapeName(HOSTILE)).toBe("a\\x1B[31mb\\nc\\\\d\\x7F\\u{009B}\\u{202E}é");
    expect(escapeName("disk-1.qcow2 日本")).toBe("disk-1.qcow2 日本");
    expect(escapeName("\t\r\0")).toBe("\\t\\r\\x00");
    expect(CONTROL.test(escapeName(HOSTILE))).toBe(false);
  });
  it("property: any string escapes to one line without control characters, and the JSON parses back", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (s) => {
        const e = escapeName(s);
        expect(CONTROL.test(e) || e.includes("\n")).toBe(false);
        expect(JSON.parse(qemuJson({ s })).s).toBe(s);
        expect(/[^\u0020-\u007e\n]/.test(qemuJson({ s }))).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
  it("writes JSON as QEMU's json-writer: printable ASCII only, upper-case \\u escapes", () => {
    expect(qemuJson({ n: HOSTILE }, 0)).toBe('{"n":"a\\u001B[31mb\\nc\\\\d\\u007F\\u009B\\u202E\\u00E9"}');
    expect(qemuJson({ n: "\\u0041 😀" }, 0)).toBe('{"n":"\\\\u0041 \\uD83D\\uDE00"}');
    expect(JSON.parse(qemuJson({ n: HOSTILE }))).toEqual({ n: HOSTILE });
  });
});

describe.skipIf(!HAVE_QEMU)("names read from images, printed by ringzero-img", () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir("rz-escape-");
  });
  afterAll(() => t.cleanup());

  it("info: a hostile backing file name is escaped; JSON byte-identical to qemu-img's", async () => {
    const f = t.path("top.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", HOSTILE, "-F", "raw", f, "1M"]);

    const human = await rz("info", f);
    expect(human.code).toBe(0);
    expect(CONTROL.test(human.out)).toBe(false);
    const line = human.out.split("\n").find((l) => l.startsWith("backing file:"));
    expect(line).toMatch(/^backing file: a\\x1B\[31mb\\nc\\\\d\\x7F\\u\{009B\}\\u\{202E\}é \(actual path: .*\)$/);
    expect(human.out).toContain("\nbacking file format: raw\n");

    // qemu-img's JSON escapes every non-ASCII character; the backing name lines match byte for byte.
    const pick = (s: string) =>
      s
        .split("\n")
        .filter((l) => /"(full-)?backing-filename"/.test(l))
        .map((l) => l.trim().replace(/,$/, ""))
        .sort();
    const ours = await rz("info", "--output", "json", f);
    const theirs = qemuImg(["info", "--output", "json", f]).stdout;
    expect(pick(ours.out)).toEqual(pick(theirs));
    expect(pick(ours.out)).toHaveLength(2);
    expect(/[^\n\u0020-\u007e]/.test(ours.out)).toBe(false);

    // check and map open the chain: the missing backing file is one error line, its name escaped.
    for (const verb of ["check", "map"]) {
      const r = await rz(verb, f);
      if (verb === "map") expect(r.code).toBe(1);
      if (r.err) {
        expect(r.err.split("\n")).toHaveLength(2);
        expect(CONTROL.test(r.err)).toBe(false);
      }
    }
    const m = await rz("map", f);
    expect(m.err).toContain("a\\x1B[31mb\\nc\\\\d");
    expect(qemuImg(["map", f], { allowFail: true }).status).toBe(1); // qemu-img refuses too
  });

  it("snapshot names and ids with control bytes: escaped in info and snapshot -l", async () => {
    const f = t.path("snap.qcow2");
    qemuImg(["create", "-q", "-f", "qcow2", f, "1M"]);
    qemuImg(["snapshot", "-c", "x\u001b]0;owned\u0007\ny", f]);
    expect(qemuImg(["snapshot", "-l", f]).stdout).toContain("\u001b]0;owned"); // qemu-img prints it raw
    for (const argv of [
      ["info", f],
      ["snapshot", "-l", f],
    ]) {
      const r = await rz(...argv);
      expect(r.code).toBe(0);
      expect(CONTROL.test(r.out)).toBe(false);
      expect(r.out).toContain("x\\x1B]0;owned\\x07\\ny");
    }
    const j = await rz("info", "--output", "json", f);
    expect(JSON.parse(j.out).snapshots[0].name).toBe("x\u001b]0;owned\u0007\ny");
    expect(j.out).toContain('"name": "x\\u001B]0;owned\\u0007\\ny"');
  });
});
