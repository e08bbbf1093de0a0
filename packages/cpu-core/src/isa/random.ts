// Encoding and random generation from the table, for differential tests of
// the interpreter, the translator and the disassembler.
import { decode } from "./decode.js";
import { OPERANDS, type OperandName, operandValueOk, putOperand } from "./operands.js";
import type { InsnSpec } from "./table.js";

/**
 * Encode `spec` with the given operand values (every operand of the entry is
 * required; `upper`/`c.lui` take the shifted value, offsets are in bytes).
 * Returns undefined if a value is out of range or the result is reserved.
 */
export function encode(spec: InsnSpec, values: Readonly<Partial<Record<OperandName, number>>>): number | undefined {
  let insn = spec.match;
  for (const name of spec.operands) {
    const v = values[name];
    if (v === undefined || !operandValueOk(name, v)) return undefined;
    insn |= putOperand(name, v);
  }
  insn >>>= 0;
  return decode(insn) === spec ? insn : undefined;
}

function pick(name: OperandName, rand: () => number): number {
  const [min, max, step] = OPERANDS[name].range;
  const n = (max - min) / step + 1;
  // Bias toward the extremes and zero, where encoders and decoders break.
  const r = rand();
  let k: number;
  if (r < 0.1) k = 0;
  else if (r < 0.2) k = n - 1;
  else if (r < 0.25 && min < 0) k = -min / step;
  else k = Math.min(n - 1, Math.floor(rand() * n));
  const v = min + k * step;
  const shift = (OPERANDS[name] as { shift?: number }).shift;
  return shift ? v * 2 ** shift : v;
}

/**
 * A valid encoding of `spec` with random operands, respecting its reserved
 * encodings (constraints and reserved rounding modes). `rand` returns [0, 1).
 */
export function randomInstruction(spec: InsnSpec, rand: () => number): number {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const values: Partial<Record<OperandName, number>> = {};
    for (const name of spec.operands) values[name] = pick(name, rand);
    const insn = encode(spec, values);
    if (insn !== undefined) return insn;
  }
  throw new RangeError(`no valid encoding of ${spec.mnemonic} found`);
}
