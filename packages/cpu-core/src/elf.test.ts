// ELF loader: well-formed files load; hostile files give ELF_MALFORMED /
// ELF_OUTSIDE_RAM with the field and offset, never another exception.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadElf, parseElf } from "./elf.js";
import { CpuError, CpuErrorCode } from "./errors.js";
import { Bus } from "./hart/bus.js";

/** A minimal valid ELF64 RISC-V executable: one PT_LOAD of `code` at `paddr`, entry at paddr. */
function makeElf(code: Uint8Array, paddr = 0x80000000n, entry = paddr): Uint8Array {
  const buf = new Uint8Array(64 + 56 + code.length);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 0xf3, true); // EM_RISCV
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, entry, true);
  dv.setBigUint64(32, 64n, true); // phoff
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint32(64, 1, true); // PT_LOAD
  dv.setUint32(68, 5, true);
  dv.setBigUint64(72, 120n, true); // offset
  dv.setBigUint64(80, paddr, true);
  dv.setBigUint64(88, paddr, true);
  dv.setBigUint64(96, BigInt(code.length), true);
  dv.setBigUint64(104, BigInt(code.length) + 16n, true); // 16 bytes of .bss
  buf.set(code, 120);
  return buf;
}

const code = new Uint8Array([0x6f, 0, 0, 0]); // j .

describe("ELF loader", () => {
  it("loads PT_LOAD segments at their physical address and zeroes .bss", () => {
    const bus = new Bus({ ramBase: 0x80000000, ramSize: 1 << 16 });
    bus.u8.fill(0xaa);
    const img = loadElf(bus, makeElf(code));
    expect(img.entry).toBe(0x80000000n);
    expect([...bus.u8.subarray(0, 4)]).toEqual([...code]);
    expect(bus.u8.subarray(4, 20).every((b) => b === 0)).toBe(true);
    expect(bus.u8[20]).toBe(0xaa);
  });

  const cases: [string, (b: Uint8Array, dv: DataView) => void, string, RegExp][] = [
    [
      "bad magic",
      (b) => {
        b[0] = 0;
      },
      CpuErrorCode.ELF_MALFORMED,
      /magic/,
    ],
    [
      "32-bit class",
      (b) => {
        b[4] = 1;
      },
      CpuErrorCode.ELF_MALFORMED,
      /ELF64/,
    ],
    [
      "big-endian",
      (b) => {
        b[5] = 2;
      },
      CpuErrorCode.ELF_MALFORMED,
      /little-endian/,
    ],
    ["another machine", (_b, dv) => dv.setUint16(18, 62, true), CpuErrorCode.ELF_MALFORMED, /RISC-V/],
    [
      "program headers past the end",
      (_b, dv) => dv.setBigUint64(32, 1n << 40n, true),
      CpuErrorCode.ELF_MALFORMED,
      /outside the file/,
    ],
    [
      "segment data past the end",
      (_b, dv) => dv.setBigUint64(96, 1n << 20n, true),
      CpuErrorCode.ELF_MALFORMED,
      /p_filesz|outside/,
    ],
    ["absurd p_memsz", (_b, dv) => dv.setBigUint64(104, 1n << 60n, true), CpuErrorCode.ELF_MALFORMED, /absurd/],
    ["segment outside RAM", (_b, dv) => dv.setBigUint64(88, 0x1000n, true), CpuErrorCode.ELF_OUTSIDE_RAM, /paddr/],
    ["entry outside RAM", (_b, dv) => dv.setBigUint64(24, 0x1000n, true), CpuErrorCode.ELF_OUTSIDE_RAM, /entry/],
  ];
  for (const [name, mutate, code2, re] of cases) {
    it(`rejects ${name} with ${code2}`, () => {
      const elf = makeElf(code);
      mutate(elf, new DataView(elf.buffer));
      const bus = new Bus({ ramBase: 0x80000000, ramSize: 1 << 16 });
      try {
        loadElf(bus, elf);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(CpuError);
        expect((e as CpuError).code).toBe(code2);
        expect((e as CpuError).message).toMatch(re);
      }
    });
  }

  it("never throws anything but CpuError on mutated or truncated files (property)", () => {
    const base = makeElf(code);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        fc.nat(base.length),
        (edits, cut) => {
          const elf = base.slice(0, Math.max(cut, 1));
          for (const [at, v] of edits) if (at < elf.length) elf[at] = v;
          const bus = new Bus({ ramBase: 0x80000000, ramSize: 1 << 16 });
          try {
            loadElf(bus, elf);
          } catch (e) {
            if (!(e instanceof CpuError)) throw e;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("parses symbols (tohost) from the section headers of a real toolchain's output", () => {
    // covered end to end by apps/demo's tohost tests; here: a file without sections has no symbols
    expect(parseElf(makeElf(code)).symbols.size).toBe(0);
  });
});
