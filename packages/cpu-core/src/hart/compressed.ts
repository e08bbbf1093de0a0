// RVC expansion (RISC-V unpriv §16, RV64C): every 16-bit parcel maps to the
// 32-bit instruction it stands for, so the interpreter executes one encoding.
// The table is built once (64 Ki entries); 0 marks a reserved or illegal parcel.

function rType(f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op | 0;
}
function iType(imm: number, rs1: number, f3: number, rd: number, op: number): number {
  return ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op | 0;
}
function sType(imm: number, rs2: number, rs1: number, f3: number, op: number): number {
  return (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op | 0;
}
function bType(imm: number, rs2: number, rs1: number, f3: number): number {
  return (
    (((imm >> 12) & 1) << 31) |
    (((imm >> 5) & 0x3f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) |
    (((imm >> 11) & 1) << 7) |
    0x63 |
    0
  );
}
function jType(imm: number, rd: number): number {
  return (
    (((imm >> 20) & 1) << 31) |
    (((imm >> 1) & 0x3ff) << 21) |
    (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12) |
    (rd << 7) |
    0x6f |
    0
  );
}
const bit = (v: number, i: number) => (v >> i) & 1;
const sext = (v: number, bits: number) => (v << (32 - bits)) >> (32 - bits);

/** Expand one 16-bit RVC parcel (RV64) to its 32-bit equivalent; 0 when reserved/illegal. */
export function expandCompressed(c: number): number {
  const op = c & 3;
  const f3 = (c >> 13) & 7;
  const rdFull = (c >> 7) & 31;
  const rs2Full = (c >> 2) & 31;
  const rdP = 8 + ((c >> 2) & 7); // rd' / rs2'
  const rs1P = 8 + ((c >> 7) & 7); // rs1' / rd'
  if (op === 0) {
    switch (f3) {
      case 0: {
        // c.addi4spn: nzuimm[5:4|9:6|2|3]
        const imm = (((c >> 11) & 3) << 4) | (((c >> 7) & 15) << 6) | (bit(c, 6) << 2) | (bit(c, 5) << 3);
        if (imm === 0) return 0; // reserved (includes the all-zero illegal parcel)
        return iType(imm, 2, 0, rdP, 0x13);
      }
      case 1: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6); // c.fld
        return iType(imm, rs1P, 3, rdP, 0x07);
      }
      case 2: {
        const imm = (((c >> 10) & 7) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6); // c.lw
        return iType(imm, rs1P, 2, rdP, 0x03);
      }
      case 3: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6); // c.ld
        return iType(imm, rs1P, 3, rdP, 0x03);
      }
      case 5: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6); // c.fsd
        return sType(imm, rdP, rs1P, 3, 0x27);
      }
      case 6: {
        const imm = (((c >> 10) & 7) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6); // c.sw
        return sType(imm, rdP, rs1P, 2, 0x23);
      }
      case 7: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6); // c.sd
        return sType(imm, rdP, rs1P, 3, 0x23);
      }
      default:
        return 0; // f3=4 reserved
    }
  }
  if (op === 1) {
    const imm6 = sext((bit(c, 12) << 5) | ((c >> 2) & 31), 6);
    switch (f3) {
      case 0: // c.addi (c.nop when rd=0; HINT when imm=0)
        return iType(imm6, rdFull, 0, rdFull, 0x13);
      case 1: // c.addiw (rd != 0)
        if (rdFull === 0) return 0;
        return iType(imm6, rdFull, 0, rdFull, 0x1b);
      case 2: // c.li
        return iType(imm6, 0, 0, rdFull, 0x13);
      case 3: {
        if (rdFull === 2) {
          // c.addi16sp: nzimm[9|4|6|8:7|5]
          const imm = sext(
            (bit(c, 12) << 9) | (bit(c, 6) << 4) | (bit(c, 5) << 6) | (((c >> 3) & 3) << 7) | (bit(c, 2) << 5),
            10,
          );
          if (imm === 0) return 0;
          return iType(imm, 2, 0, 2, 0x13);
        }
        if (imm6 === 0) return 0; // c.lui with nzimm=0 reserved
        return (imm6 << 12) | (rdFull << 7) | 0x37 | 0; // c.lui (rd=0: HINT)
      }
      case 4: {
        const f2 = (c >> 10) & 3;
        const sh = (bit(c, 12) << 5) | ((c >> 2) & 31);
        if (f2 === 0) return iType(sh, rs1P, 5, rs1P, 0x13); // c.srli
        if (f2 === 1) return iType(sh | 0x400, rs1P, 5, rs1P, 0x13); // c.srai
        if (f2 === 2) return iType(imm6, rs1P, 7, rs1P, 0x13); // c.andi
        const f = ((c >> 5) & 3) | (bit(c, 12) << 2);
        switch (f) {
          case 0:
            return rType(0x20, rdP, rs1P, 0, rs1P, 0x33); // c.sub
          case 1:
            return rType(0, rdP, rs1P, 4, rs1P, 0x33); // c.xor
          case 2:
            return rType(0, rdP, rs1P, 6, rs1P, 0x33); // c.or
          case 3:
            return rType(0, rdP, rs1P, 7, rs1P, 0x33); // c.and
          case 4:
            return rType(0x20, rdP, rs1P, 0, rs1P, 0x3b); // c.subw
          case 5:
            return rType(0, rdP, rs1P, 0, rs1P, 0x3b); // c.addw
          default:
            return 0;
        }
      }
      case 5: {
        // c.j: imm[11|4|9:8|10|6|7|3:1|5]
        const imm = sext(
          (bit(c, 12) << 11) |
            (bit(c, 11) << 4) |
            (((c >> 9) & 3) << 8) |
            (bit(c, 8) << 10) |
            (bit(c, 7) << 6) |
            (bit(c, 6) << 7) |
            (((c >> 3) & 7) << 1) |
            (bit(c, 2) << 5),
          12,
        );
        return jType(imm, 0);
      }
      default: {
        // c.beqz / c.bnez: imm[8|4:3|7:6|2:1|5]
        const imm = sext(
          (bit(c, 12) << 8) | (((c >> 10) & 3) << 3) | (((c >> 5) & 3) << 6) | (((c >> 3) & 3) << 1) | (bit(c, 2) << 5),
          9,
        );
        return bType(imm, 0, rs1P, f3 === 6 ? 0 : 1);
      }
    }
  }
  if (op === 2) {
    switch (f3) {
      case 0: {
        const sh = (bit(c, 12) << 5) | rs2Full; // c.slli
        return iType(sh, rdFull, 1, rdFull, 0x13);
      }
      case 1: {
        const imm = (bit(c, 12) << 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6); // c.fldsp
        return iType(imm, 2, 3, rdFull, 0x07);
      }
      case 2: {
        if (rdFull === 0) return 0; // c.lwsp rd=0 reserved
        const imm = (bit(c, 12) << 5) | (((c >> 4) & 7) << 2) | (((c >> 2) & 3) << 6);
        return iType(imm, 2, 2, rdFull, 0x03);
      }
      case 3: {
        if (rdFull === 0) return 0; // c.ldsp rd=0 reserved
        const imm = (bit(c, 12) << 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6);
        return iType(imm, 2, 3, rdFull, 0x03);
      }
      case 4: {
        if (bit(c, 12) === 0) {
          if (rs2Full === 0) {
            if (rdFull === 0) return 0; // reserved
            return iType(0, rdFull, 0, 0, 0x67); // c.jr
          }
          return rType(0, rs2Full, 0, 0, rdFull, 0x33); // c.mv
        }
        if (rs2Full === 0) {
          if (rdFull === 0) return 0x00100073; // c.ebreak
          return iType(0, rdFull, 0, 1, 0x67); // c.jalr
        }
        return rType(0, rs2Full, rdFull, 0, rdFull, 0x33); // c.add
      }
      case 5: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6); // c.fsdsp
        return sType(imm, rs2Full, 2, 3, 0x27);
      }
      case 6: {
        const imm = (((c >> 9) & 15) << 2) | (((c >> 7) & 3) << 6); // c.swsp
        return sType(imm, rs2Full, 2, 2, 0x23);
      }
      default: {
        const imm = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6); // c.sdsp
        return sType(imm, rs2Full, 2, 3, 0x23);
      }
    }
  }
  return 0;
}

/** A compressed-table entry not expanded yet (no 16-bit instruction expands to 0xffff_ffff). */
const NOT_EXPANDED = -1;

let table: Int32Array | undefined;
/**
 * The 64 Ki-entry expansion table: parcel -> its 32-bit instruction, 0 (illegal) or NOT_EXPANDED.
 * Entries are filled on first use (compressedEntry): building all of them took ~11 ms of every
 * process's (and VP thread's) start, for the few thousand parcels a guest uses.
 */
export function compressedTable(): Int32Array {
  table ??= new Int32Array(65536).fill(NOT_EXPANDED);
  return table;
}

/** Parcel `c`'s entry of `ctab` (compressedTable): its instruction or 0, expanded on first use. */
export function compressedEntry(ctab: Int32Array, c: number): number {
  const t = ctab[c];
  if (t !== NOT_EXPANDED) return t;
  const v = (c & 3) === 3 ? 0 : expandCompressed(c);
  ctab[c] = v;
  return v;
}
