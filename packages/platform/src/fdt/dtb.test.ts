import { describe, expect, it } from "vitest";
import { PlatformError } from "../devices/errors.js";
import { FDT_MAGIC, FdtNode, writeDtb } from "./dtb.js";
import { compile, decompile, parseDts, requireDtc } from "./dtc.js";

requireDtc();

describe("DTB writer", () => {
  it("writes a v17 header, reservations and blocks that dtc reads back", () => {
    const root = new FdtNode();
    root.cells("#address-cells", 2).cells("#size-cells", 2).string("model", "m");
    const n = root.child("node@1000");
    n.strings("compatible", ["a,b", "c"])
      .u64("reg", 0x1000, 0x1_0000_0000n)
      .empty("flag")
      .bytes("raw", Uint8Array.of(1, 2, 3));
    n.child("leaf").string("model", "x");
    const dtb = writeDtb(root, { reservations: [{ address: 0x8000_0000, size: 0x8_0000 }], bootCpuid: 0 });
    const dv = new DataView(dtb.buffer, dtb.byteOffset);
    expect(dv.getUint32(0)).toBe(FDT_MAGIC);
    expect(dv.getUint32(4)).toBe(dtb.length);
    expect(dv.getUint32(20)).toBe(17);
    expect(dv.getUint32(24)).toBe(16);
    expect(dv.getUint32(16) % 8).toBe(0); // reservation block 8-byte aligned
    expect(dv.getUint32(8) % 4).toBe(0); // structure block 4-byte aligned
    // Strings are deduplicated: "model" once although used twice.
    const strings = Buffer.from(dtb.subarray(dv.getUint32(12), dv.getUint32(12) + dv.getUint32(32))).toString("latin1");
    expect(strings.split("\0").filter((s) => s === "model")).toHaveLength(1);

    const { dts, warnings } = decompile(dtb);
    expect(warnings).toBe("");
    expect(dts).toContain("/memreserve/\t0x0000000080000000 0x0000000000080000;");
    const t = parseDts(dts);
    expect(t.get("/")?.get("model")).toBe('"m"');
    expect(t.get("/node@1000")?.get("compatible")).toBe('"a,b\\0c"');
    expect(t.get("/node@1000")?.get("reg")).toBe("<0x00 0x1000 0x01 0x00>");
    expect(t.get("/node@1000")?.get("flag")).toBe("");
    expect(t.get("/node@1000")?.get("raw")).toBe("[01 02 03]");
    expect(t.get("/node@1000/leaf")?.get("model")).toBe('"x"');
  });

  it("matches dtc's own encoding of the same source byte for byte", () => {
    const dts = `/dts-v1/;\n/ {\n\tmodel = "q";\n\ta {\n\t\tv = <0x01 0x02>;\n\t\ts = "x\\0yy";\n\t\tmodel = "z";\n\t};\n};\n`;
    const root = new FdtNode();
    root.string("model", "q");
    root.child("a").cells("v", 1, 2).strings("s", ["x", "yy"]).string("model", "z");
    expect(Buffer.from(writeDtb(root)).equals(Buffer.from(compile(dts)))).toBe(true);
  });

  it("refuses bad names, duplicates and out-of-range values with typed errors", () => {
    const root = new FdtNode();
    expect(() => root.child("")).toThrow(PlatformError);
    expect(() => root.child("has space")).toThrow(PlatformError);
    expect(() => root.child("a".repeat(32))).toThrow(PlatformError);
    root.child("ok@10");
    expect(() => root.child("ok@10")).toThrow(PlatformError);
    expect(() => root.cells("bad name", 1)).toThrow(PlatformError);
    expect(() => root.cells("v", -1)).toThrow(PlatformError);
    expect(() => root.cells("v", 2 ** 32)).toThrow(PlatformError);
    expect(() => root.cells("v", 1.5)).toThrow(PlatformError);
    expect(() => root.u64("v", -1n)).toThrow(PlatformError);
    expect(() => root.string("s", "a\0b")).toThrow(PlatformError);
    root.cells("v", 1);
    expect(() => root.cells("v", 2)).toThrow(PlatformError);
    expect(() => writeDtb(root, { reservations: [{ address: -1, size: 1 }] })).toThrow(PlatformError);
  });
});
