// Table-driven decoder: INSTRUCTIONS bucketed by major opcode (32-bit) or by
// quadrant+funct3 (16-bit), then a short linear scan with mask/match and the
// entry's reserved-encoding constraints.
import { INSTRUCTIONS, type InsnSpec, operandsLegal } from "./table.js";

/** Length of the instruction whose low halfword is given (§1.5: 16-bit iff bits 1:0 != 11). */
export function insnLength(lowHalfword: number): 2 | 4 {
  return (lowHalfword & 3) === 3 ? 4 : 2;
}

// 32-bit: bucket by bits 6:0 (128). 16-bit: bucket by bits 15:13 and 1:0 (32).
const wide: InsnSpec[][] = Array.from({ length: 128 }, () => []);
const narrow: InsnSpec[][] = Array.from({ length: 32 }, () => []);
for (const s of INSTRUCTIONS) {
  if (s.length === 4) wide[s.match & 0x7f].push(s);
  else narrow[((s.match >>> 11) & 0x1c) | (s.match & 3)].push(s);
}

/**
 * The table entry for `insn`, or undefined if the encoding is illegal or
 * reserved in RV64GC. For a 16-bit instruction only the low halfword is used.
 */
export function decode(insn: number): InsnSpec | undefined {
  let bucket: InsnSpec[];
  if ((insn & 3) === 3) {
    bucket = wide[insn & 0x7f];
  } else {
    insn &= 0xffff;
    bucket = narrow[((insn >>> 11) & 0x1c) | (insn & 3)];
  }
  for (let i = 0; i < bucket.length; i++) {
    const s = bucket[i];
    if ((insn & s.mask) >>> 0 === s.match && operandsLegal(s, insn)) return s;
  }
  return undefined;
}
