// rzio, the blk rows' random I/O tool: the appended initramfs archive reads
// back with the guest kit's cpio reader, the ELF runs (under qemu-riscv64 on
// a file) and prints the line compare parses.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { requireTool } from "@ringzero/cpu-core/testing";
import { readCpio, writeCpio } from "@ringzero/guest-kit";
import { afterAll, describe, expect, it } from "vitest";
import { initrdWithRzio, newcArchive, parseRzio, RZIO_ELF, rzioCommand, rzioFailure } from "./rzio.js";

const dir = mkdtempSync(join(tmpdir(), "rz-rzio-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("rzio", () => {
  it("is a static riscv64 ELF executable", () => {
    const elf = readFileSync(RZIO_ELF);
    expect([...elf.subarray(0, 5)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 2]);
    expect(elf.readUInt16LE(16)).toBe(2); // ET_EXEC: no loader, no PIE
    expect(elf.readUInt16LE(18)).toBe(243); // EM_RISCV
  });

  it.skipIf(!requireTool("riscv64-linux-gnu-gcc"))("the committed ELF is what build.sh makes of rzio.c", () => {
    const out = join(dir, "rebuilt.elf");
    const r = spawnSync("bash", [join(dirname(RZIO_ELF), "build.sh"), out], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(RZIO_ELF))).toBe(true);
  });

  it("newc archive: reads back with the kit's reader, name, mode and data intact, 4-byte aligned", () => {
    for (const size of [0, 1, 2, 3, 4, 4097]) {
      const data = Uint8Array.from({ length: size }, (_, i) => i * 7);
      const a = newcArchive("bin/rzio", data);
      expect(a.length % 4).toBe(0);
      const [e, ...rest] = readCpio(a);
      expect(rest).toHaveLength(0); // the trailer ends it
      expect(e.name).toBe("bin/rzio");
      expect(e.mode).toBe(0o100755);
      expect([...e.data]).toEqual([...data]);
    }
  });

  it("initrdWithRzio keeps the kit's archive whole and appends /bin/rzio after 4-byte padding", () => {
    const kit = gzipSync(writeCpio([{ type: "dir", path: "bin", mode: 0o755 }]));
    const base = join(dir, "kit.cpio.gz");
    writeFileSync(base, kit);
    const out = readFileSync(initrdWithRzio(base, join(dir, "with.cpio.gz")));
    expect(out.subarray(0, kit.length).equals(kit)).toBe(true);
    const at = kit.length + ((4 - (kit.length % 4)) % 4);
    expect(out.subarray(kit.length, at).every((b) => b === 0)).toBe(true);
    const [e] = readCpio(gunzipSync(out.subarray(at)));
    expect(e.name).toBe("bin/rzio");
    expect(Buffer.from(e.data).equals(readFileSync(RZIO_ELF))).toBe(true);
  });

  it("parses its result and failure lines, not the echoed command", () => {
    const echo = `rz# ${rzioCommand("read", 3)}\r\n`;
    expect(parseRzio(echo, "read")).toBeUndefined();
    expect(rzioFailure(echo)).toBeUndefined();
    expect(parseRzio(`${echo}RZIOPS read 1500 3000000000 0\r\n`, "read")).toEqual({ ops: 1500, seconds: 3, errors: 0 });
    expect(parseRzio("RZIOPS read 1500 3000000000 0", "write")).toBeUndefined();
    expect(rzioFailure("RZIOPS error open 6\n")).toBe("rzio: open failed with errno 6");
    expect(rzioFailure("sh: /bin/rzio: not found\n")).toBe("/bin/rzio: not found");
  });

  it.skipIf(!requireTool("qemu-riscv64"))("runs: random 4 KiB reads and writes on a file, one result line each", () => {
    const img = join(dir, "disk.img");
    writeFileSync(img, Buffer.alloc(4 * 1024 * 1024));
    for (const kind of ["read", "write"] as const) {
      const r = spawnSync("qemu-riscv64", [RZIO_ELF, kind, img, "1"], { encoding: "utf8", timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      const got = parseRzio(r.stdout, kind);
      expect(got?.ops).toBeGreaterThan(0);
      expect(got?.errors).toBe(0);
      expect(got?.seconds).toBeGreaterThanOrEqual(1);
    }
    expect(readFileSync(img).some((b) => b !== 0)).toBe(true); // the writes landed
    const bad = spawnSync("qemu-riscv64", [RZIO_ELF, "read", join(dir, "none"), "1"], { encoding: "utf8" });
    expect(bad.status).toBe(1);
    expect(rzioFailure(bad.stdout)).toBe("rzio: open failed with errno 2");
    expect(spawnSync("qemu-riscv64", [RZIO_ELF, "erase", img, "1"]).status).toBe(2);
  });
});
