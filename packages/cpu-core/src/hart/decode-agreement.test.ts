// The one instruction table (src/isa) and the interpreter's hand-written
// dispatch must agree on which encodings are instructions (STYLE.md 6): every
// 16-bit parcel exhaustively, and random plus table-generated 32-bit words.
import { describe, expect, it } from "vitest";
import { decode } from "../isa/decode.js";
import { randomInstruction } from "../isa/random.js";
import { INSTRUCTIONS } from "../isa/table.js";
import { rng } from "../testing/rng.js";
import { Bus } from "./bus.js";
import { compressedEntry, compressedTable } from "./compressed.js";
import { Cause, Csr, PRV_M } from "./constants.js";
import { Hart } from "./hart.js";

/** Execute one instruction in M-mode (FS on, frm = RNE) and report whether it raised illegal-instruction. */
function makeProbe() {
  const bus = new Bus({ ramBase: 0x80000000, ramSize: 1 << 20 });
  const hart = new Hart(bus, { sbiEcallExit: false });
  return (word: number): boolean => {
    bus.i32[0] = word;
    bus.i32[1] = 0x13; // nop after a 16-bit instruction
    hart.flushTlb();
    hart.priv = PRV_M;
    hart.pc = 0x80000000;
    hart.mtvec = 0x80000100;
    hart.mcause = 0n;
    hart.mstatus = 1 << 13; // FS = Initial
    hart.frm = 0;
    for (let i = 0; i < 64; i++) hart.x[i] = 0x80000000 + 0x800; // in-RAM addresses for loads/stores
    const exit = hart.run(1);
    if (exit.kind === "mmio") hart.failMmio();
    return hart.mcause === BigInt(Cause.ILLEGAL_INSN) && hart.mepc === 0x80000000;
  };
}

describe("decoder agreement: isa table vs interpreter", () => {
  it("every 16-bit parcel: reserved in the table ⇔ illegal for the hart", () => {
    const ctab = compressedTable();
    const mismatches: string[] = [];
    for (let c = 0; c < 65536; c++) {
      if ((c & 3) === 3) continue;
      const tableLegal = decode(c) !== undefined;
      // (the hart's lookup: an entry is expanded on its first use)
      const hartLegal = compressedEntry(ctab, c) !== 0;
      if (tableLegal !== hartLegal) mismatches.push(`0x${c.toString(16)} table=${tableLegal} hart=${hartLegal}`);
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
  });

  it("random 32-bit words and every table entry's encodings", () => {
    const probe = makeProbe();
    const r = rng(12345);
    const words: number[] = [];
    for (let i = 0; i < 100_000; i++) words.push(Math.floor(r() * 2 ** 32) | 3 | 0);
    for (const spec of INSTRUCTIONS) {
      if (spec.length !== 4) continue;
      for (let k = 0; k < 40; k++) words.push(randomInstruction(spec, r) | 0);
    }
    const mismatches: string[] = [];
    for (const w of words) {
      const spec = decode(w >>> 0);
      // CSR instructions name any of 4096 CSRs; whether one exists is the CSR file's business (csr tests).
      if (spec?.ext === "Zicsr") continue;
      // Privileged instructions are legal or not by mode; M-mode runs every one of them.
      // FENCE/FENCE.I with non-zero reserved fields: the table rejects them as objdump does,
      // the hart ignores those fields as unpriv §2.7 / §3.1 ask of implementations.
      if (spec === undefined && (w & 0x7f) === 0x0f && ((w >> 12) & 7) <= 1) continue;
      const tableLegal = spec !== undefined;
      const hartIllegal = probe(w);
      if (tableLegal === hartIllegal) {
        mismatches.push(
          `0x${(w >>> 0).toString(16)} ${spec?.mnemonic ?? "(none)"} table=${tableLegal} hart=${!hartIllegal}`,
        );
      }
    }
    expect(mismatches.slice(0, 30)).toEqual([]);
  });

  it("CSR numbers: the hart implements every CSR the privileged spec lists for an RV64GC M/S/U hart", () => {
    const probe = makeProbe();
    for (const csr of [
      Csr.mstatus,
      Csr.satp,
      Csr.stimecmp,
      Csr.menvcfg,
      Csr.pmpcfg0,
      Csr.pmpaddr0 + 15,
      0xc03,
      0xb1f,
    ]) {
      expect(probe((csr << 20) | (2 << 12) | (10 << 7) | 0x73)).toBe(false); // csrrs a0, csr, x0
    }
    expect(probe((0x7c0 << 20) | (2 << 12) | (10 << 7) | 0x73)).toBe(true); // a custom CSR: illegal
    expect(probe((0x3a1 << 20) | (2 << 12) | (10 << 7) | 0x73)).toBe(true); // pmpcfg1 does not exist on RV64
  });
});
