// Operand fields of RV64GC encodings: where each operand lives in the
// instruction word, how to extract and insert it, and which values are legal.
// RISC-V unprivileged spec 20240411: §2.3 (base formats), §2.3 fig. 2.4
// (immediate layouts), §28.2/§28.3 (RVC formats and immediate scrambling).

/** A contiguous run of instruction bits [hi..lo] holding immediate bits starting at `to`. */
type Seg = readonly [hi: number, lo: number, to: number];

export type OperandKind =
  | "xreg" // integer register, printed by ABI name
  | "freg" // floating-point register, printed by ABI name
  | "imm" // signed or unsigned decimal immediate
  | "shamt" // shift amount, printed in hex
  | "upper" // U-type / c.lui immediate, printed as its 20-bit field in hex
  | "pcrel" // branch or jump offset, printed as the absolute target address
  | "csr" // CSR number, printed by name
  | "uimm5" // 5-bit CSR immediate, printed in decimal
  | "rm" // rounding mode
  | "fence" // fence predecessor/successor set
  | "aqrl"; // AMO ordering bits, printed as a mnemonic suffix

export interface OperandDef {
  readonly kind: OperandKind;
  readonly segs: readonly Seg[];
  /** Sign bit of the assembled immediate (sign-extends from it), if signed. */
  readonly signBit?: number;
  /** Value added to the raw field (compressed register fields x8..x15 use 8). */
  readonly bias?: number;
  /** Left shift applied to the assembled value (U-type: 12). */
  readonly shift?: number;
  /** Legal values as [min, max, step] for generators; decode checks `invalid`. */
  readonly range: readonly [min: number, max: number, step: number];
  /** Encodings of this field that are reserved regardless of the instruction. */
  readonly invalid?: readonly number[];
}

const reg = (kind: "xreg" | "freg", hi: number, lo: number, bias = 0): OperandDef => ({
  kind,
  segs: [[hi, lo, 0]],
  bias,
  range: bias ? [8, 15, 1] : [0, 31, 1],
});

/** Every operand name used by the instruction table, the disassembler and the generator. */
export const OPERANDS = {
  // 32-bit formats (§2.3)
  rd: reg("xreg", 11, 7),
  rs1: reg("xreg", 19, 15),
  rs2: reg("xreg", 24, 20),
  frd: reg("freg", 11, 7),
  frs1: reg("freg", 19, 15),
  frs2: reg("freg", 24, 20),
  frs3: reg("freg", 31, 27),
  imm12: { kind: "imm", segs: [[31, 20, 0]], signBit: 11, range: [-2048, 2047, 1] },
  store12: {
    kind: "imm",
    segs: [
      [31, 25, 5],
      [11, 7, 0],
    ],
    signBit: 11,
    range: [-2048, 2047, 1],
  },
  branch: {
    kind: "pcrel",
    segs: [
      [31, 31, 12],
      [30, 25, 5],
      [11, 8, 1],
      [7, 7, 11],
    ],
    signBit: 12,
    range: [-4096, 4094, 2],
  },
  jump: {
    kind: "pcrel",
    segs: [
      [31, 31, 20],
      [30, 21, 1],
      [20, 20, 11],
      [19, 12, 12],
    ],
    signBit: 20,
    range: [-1048576, 1048574, 2],
  },
  upper: { kind: "upper", segs: [[31, 12, 0]], signBit: 19, shift: 12, range: [-524288, 524287, 1] },
  shamt: { kind: "shamt", segs: [[25, 20, 0]], range: [0, 63, 1] },
  shamtw: { kind: "shamt", segs: [[24, 20, 0]], range: [0, 31, 1] },
  csr: { kind: "csr", segs: [[31, 20, 0]], range: [0, 4095, 1] },
  uimm5: { kind: "uimm5", segs: [[19, 15, 0]], range: [0, 31, 1] },
  // §21.2 / §13.2: rm 101 and 110 are reserved.
  rm: { kind: "rm", segs: [[14, 12, 0]], range: [0, 7, 1], invalid: [5, 6] },
  pred: { kind: "fence", segs: [[27, 24, 0]], range: [0, 15, 1] },
  succ: { kind: "fence", segs: [[23, 20, 0]], range: [0, 15, 1] },
  aqrl: { kind: "aqrl", segs: [[26, 25, 0]], range: [0, 3, 1] },

  // Compressed formats (§28.2). Names ending in "p" are the 3-bit x8..x15 fields.
  "c.rd": reg("xreg", 11, 7),
  "c.rs2": reg("xreg", 6, 2),
  "c.frd": reg("freg", 11, 7),
  "c.frs2": reg("freg", 6, 2),
  "c.rdp": reg("xreg", 4, 2, 8),
  "c.rs1p": reg("xreg", 9, 7, 8),
  "c.rs2p": reg("xreg", 4, 2, 8),
  "c.frdp": reg("freg", 4, 2, 8),
  "c.frs2p": reg("freg", 4, 2, 8),
  "c.imm6": {
    kind: "imm",
    segs: [
      [12, 12, 5],
      [6, 2, 0],
    ],
    signBit: 5,
    range: [-32, 31, 1],
  },
  "c.shamt": {
    kind: "shamt",
    segs: [
      [12, 12, 5],
      [6, 2, 0],
    ],
    range: [0, 63, 1],
  },
  "c.lui": {
    kind: "upper",
    segs: [
      [12, 12, 5],
      [6, 2, 0],
    ],
    signBit: 5,
    shift: 12,
    range: [-32, 31, 1],
  },
  "c.addi16sp": {
    kind: "imm",
    segs: [
      [12, 12, 9],
      [6, 6, 4],
      [5, 5, 6],
      [4, 3, 7],
      [2, 2, 5],
    ],
    signBit: 9,
    range: [-512, 496, 16],
  },
  "c.addi4spn": {
    kind: "imm",
    segs: [
      [12, 11, 4],
      [10, 7, 6],
      [6, 6, 2],
      [5, 5, 3],
    ],
    range: [0, 1020, 4],
  },
  "c.lw": {
    kind: "imm",
    segs: [
      [12, 10, 3],
      [6, 6, 2],
      [5, 5, 6],
    ],
    range: [0, 124, 4],
  },
  "c.ld": {
    kind: "imm",
    segs: [
      [12, 10, 3],
      [6, 5, 6],
    ],
    range: [0, 248, 8],
  },
  "c.lwsp": {
    kind: "imm",
    segs: [
      [12, 12, 5],
      [6, 4, 2],
      [3, 2, 6],
    ],
    range: [0, 252, 4],
  },
  "c.ldsp": {
    kind: "imm",
    segs: [
      [12, 12, 5],
      [6, 5, 3],
      [4, 2, 6],
    ],
    range: [0, 504, 8],
  },
  "c.swsp": {
    kind: "imm",
    segs: [
      [12, 9, 2],
      [8, 7, 6],
    ],
    range: [0, 252, 4],
  },
  "c.sdsp": {
    kind: "imm",
    segs: [
      [12, 10, 3],
      [9, 7, 6],
    ],
    range: [0, 504, 8],
  },
  "c.branch": {
    kind: "pcrel",
    segs: [
      [12, 12, 8],
      [11, 10, 3],
      [6, 5, 6],
      [4, 3, 1],
      [2, 2, 5],
    ],
    signBit: 8,
    range: [-256, 254, 2],
  },
  "c.jump": {
    kind: "pcrel",
    segs: [
      [12, 12, 11],
      [11, 11, 4],
      [10, 9, 8],
      [8, 8, 10],
      [7, 7, 6],
      [6, 6, 7],
      [5, 3, 1],
      [2, 2, 5],
    ],
    signBit: 11,
    range: [-2048, 2046, 2],
  },
} as const satisfies Record<string, OperandDef>;

export type OperandName = keyof typeof OPERANDS;

const mask = (n: number): number => (n >= 32 ? 0xffffffff : (1 << n) - 1);

/** The operand's value in `insn`: register number, sign-extended immediate, CSR number… */
export function getOperand(name: OperandName, insn: number): number {
  const d: OperandDef = OPERANDS[name];
  let v = 0;
  for (const [hi, lo, to] of d.segs) v |= ((insn >>> lo) & mask(hi - lo + 1)) << to;
  if (d.signBit !== undefined) {
    const sh = 31 - d.signBit;
    v = (v << sh) >> sh;
  }
  if (d.shift) v = (v << d.shift) | 0;
  return v + (d.bias ?? 0);
}

/** The instruction bits that encode `value` in operand `name` (no range check). */
export function putOperand(name: OperandName, value: number): number {
  const d: OperandDef = OPERANDS[name];
  let v = value - (d.bias ?? 0);
  if (d.shift) v >>= d.shift;
  let bits = 0;
  for (const [hi, lo, to] of d.segs) bits |= ((v >>> to) & mask(hi - lo + 1)) << lo;
  return bits >>> 0;
}

/** Whether `value` is representable in operand `name` and not a reserved value. */
export function operandValueOk(name: OperandName, value: number): boolean {
  const d: OperandDef = OPERANDS[name];
  const [min, max, step] = d.range;
  const v = d.shift ? value / 2 ** d.shift : value;
  if (!Number.isInteger(v) || v < min || v > max || (v - min) % step !== 0) return false;
  return !d.invalid?.includes(v);
}
