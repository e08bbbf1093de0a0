// Differential test against GNU binutils (Debian binutils-riscv64-unknown-elf):
// the table's encodings must be what `as` produces, and `disassemble` must
// print what `objdump -d` (and `-M no-aliases`) prints, for every entry with
// extreme and random operands, every CSR, rounding mode, fence set and aq/rl
// combination, every 16-bit halfword, and random 32-bit words.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CSR_NAMES } from "./csr-names.js";
import { decode } from "./decode.js";
import { createDisasmState, type DisasmState, disassemble } from "./disasm.js";
import { getOperand, OPERANDS, type OperandName } from "./operands.js";
import { encode, randomInstruction } from "./random.js";
import { INSTRUCTIONS, type InsnSpec } from "./table.js";

const AS = "riscv64-unknown-elf-as";
const OBJDUMP = "riscv64-unknown-elf-objdump";
const haveTools = [AS, OBJDUMP].every((t) => !spawnSync(t, ["--version"]).error);
const inCI = !!process.env.CI && process.env.CI !== "false";

if (!haveTools && !inCI) {
  console.warn(
    `[cpu-core isa] SKIPPING objdump differential tests: ${AS}/${OBJDUMP} not found (apt-get install binutils-riscv64-unknown-elf)`,
  );
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Item {
  readonly word: number;
  readonly len: 2 | 4;
  /** Assembly text, or undefined to emit the raw encoding with `.insn`. */
  text?: string;
}

const hex = (w: number) => `0x${(w >>> 0).toString(16)}`;
const raw = (it: Item) => `.insn ${it.len}, ${hex(it.word)}`;

/** Assembler text for a decoded word: the no-aliases disassembly with pc-relative targets as `.+off`. */
function asmText(spec: InsnSpec, word: number): string {
  let text = disassemble(word, 0n, { aliases: false }).replace(/ #.*$/, "");
  const pcrel = spec.operands.find((o) => OPERANDS[o].kind === "pcrel");
  if (pcrel) {
    const off = getOperand(pcrel, word);
    text = text.replace(/[0-9a-f]+$/, off < 0 ? `.${off}` : `.+${off}`);
  }
  return text;
}

function build(items: Item[], dir: string, name: string): string {
  const src = join(dir, `${name}.S`);
  const obj = join(dir, `${name}.o`);
  for (let pass = 0; pass < 4; pass++) {
    const out: string[] = [".option norelax", ".text", "_start:"];
    const lineOf: number[] = [];
    let rvc: boolean | undefined;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const wantRvc = it.len === 2;
      if (it.text !== undefined && rvc !== wantRvc) {
        out.push(wantRvc ? ".option rvc" : ".option norvc");
        rvc = wantRvc;
      }
      out.push(it.text ?? raw(it));
      lineOf[out.length] = i;
    }
    writeFileSync(src, `${out.join("\n")}\n`);
    const r = spawnSync(AS, ["-march=rv64gc", "-mpriv-spec=1.12", "-o", obj, src], {
      encoding: "utf8",
      maxBuffer: 1 << 28,
    });
    if (r.status === 0) return obj;
    // Lines the assembler refuses (HINTs, reserved-looking fields) are emitted raw.
    const bad = [...r.stderr.matchAll(/\.S:(\d+): Error/g)].map((m) => lineOf[Number(m[1])]);
    if (bad.length === 0 || bad.some((b) => b === undefined)) throw new Error(`as failed:\n${r.stderr.slice(0, 2000)}`);
    for (const b of bad) items[b].text = undefined;
  }
  throw new Error("as kept failing");
}

interface DumpLine {
  readonly pc: bigint;
  readonly word: number;
  readonly text: string;
}

function objdump(obj: string, noAliases: boolean): DumpLine[] {
  const args = ["-d", "-z", ...(noAliases ? ["-M", "no-aliases"] : []), obj];
  const r = spawnSync(OBJDUMP, args, { encoding: "utf8", maxBuffer: 1 << 29 });
  if (r.status !== 0) throw new Error(`objdump failed: ${r.stderr}`);
  const lines: DumpLine[] = [];
  for (const l of r.stdout.split("\n")) {
    const m = /^\s*([0-9a-f]+):\t([0-9a-f]+)\s*\t(.*)$/.exec(l);
    if (!m) continue;
    const text = m[3]
      .replace(/ <[^>]*>/g, "")
      .replace(/\s+/, " ")
      .trim();
    lines.push({ pc: BigInt(`0x${m[1]}`), word: Number.parseInt(m[2], 16), text });
  }
  return lines;
}

/** Encodings whose objdump 2.40 text knowingly differs from ours (see DESIGN.md). */
function knownDivergence(word: number, ours: string, theirs: string): boolean {
  const spec = decode(word);
  // Reserved rounding modes 5/6: we reject the encoding, objdump prints `,unknown`.
  if (!spec && /,unknown$/.test(theirs)) return true;
  // c.addi16sp with nzimm=0 is reserved (§28.5.1); objdump decodes it.
  if (!spec && (word & 0xef83) === 0x6101 && getOperand("c.addi16sp", word) === 0) return true;
  // Not RV64GC / priv 1.12 instructions that binutils still knows: uret (dropped N
  // extension), hret and sfence.vm (priv 1.9.1), dret (debug mode only).
  if (!spec && /^(uret|hret|sfence\.vm|dret)( |$)/.test(theirs)) return true;
  // Exact widening conversions keep an rm field (§21.3); objdump 2.40 only decodes rm=rne.
  if (spec && /^fcvt\.d\.(w|wu|s)$/.test(spec.mnemonic) && /^\.4byte/.test(theirs))
    return /,(rtz|rdn|rup|rmm|dyn)$/.test(ours);
  return false;
}

function compare(obj: string, items: readonly Item[] | undefined): { mismatches: string[]; count: number } {
  const mismatches: string[] = [];
  let count = 0;
  for (const noAliases of [false, true]) {
    const dump = objdump(obj, noAliases);
    const state: DisasmState = createDisasmState();
    if (items) expect(dump.length).toBe(items.length);
    for (let i = 0; i < dump.length; i++) {
      const d = dump[i];
      if (items && d.word !== items[i].word) {
        mismatches.push(`as encoded ${items[i].text} as ${hex(d.word)}, table says ${hex(items[i].word)}`);
        continue;
      }
      const ours = disassemble(d.word, d.pc, { aliases: !noAliases, state });
      count++;
      if (ours === d.text) continue;
      if (knownDivergence(d.word, ours, d.text)) continue;
      const why = decode(d.word) ? "" : " (decode: reserved)";
      mismatches.push(
        `${hex(d.word)} @${d.pc.toString(16)}${noAliases ? " no-aliases" : ""}: objdump "${d.text}" ours "${ours}"${why}`,
      );
    }
  }
  return { mismatches, count };
}

describe.runIf(haveTools)("isa vs GNU objdump 2.40", () => {
  const dir = mkdtempSync(join(tmpdir(), "rz-isa-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("table encodings assemble identically and disassemble as objdump prints them", () => {
    const rand = mulberry32(0x5eed);
    const items: Item[] = [];
    const push = (spec: InsnSpec, word: number | undefined, asText = true) => {
      if (word === undefined) return;
      items.push({ word, len: spec.length, text: asText ? asmText(spec, word) : undefined });
    };
    for (const spec of INSTRUCTIONS) {
      // Operand extremes: all minima, all maxima, all zeros / smallest non-zero.
      for (const pickOne of [
        (o: OperandName) => OPERANDS[o].range[0],
        (o: OperandName) => OPERANDS[o].range[1],
        (o: OperandName) => Math.max(OPERANDS[o].range[0], Math.min(OPERANDS[o].range[1], OPERANDS[o].range[2])),
      ]) {
        const vals: Partial<Record<OperandName, number>> = {};
        for (const o of spec.operands) {
          const v = pickOne(o);
          vals[o] = v * 2 ** ((OPERANDS[o] as { shift?: number }).shift ?? 0);
          if (o === "rm") vals[o] = 7;
        }
        push(spec, encode(spec, vals));
      }
      for (let k = 0; k < 12; k++) push(spec, randomInstruction(spec, rand));
      // Every rounding mode, every aq/rl combination, every fence set.
      const base = randomInstruction(spec, rand);
      if (spec.operands.includes("rm")) for (const rm of [0, 1, 2, 3, 4, 7]) push(spec, encode1(spec, base, "rm", rm));
      if (spec.operands.includes("aqrl")) for (let q = 0; q < 4; q++) push(spec, encode1(spec, base, "aqrl", q));
      if (spec.mnemonic === "fence")
        for (let ps = 0; ps < 256; ps++) push(spec, encode(spec, { pred: ps >> 4, succ: ps & 15 }));
      // Every CSR number, named or not, through csrrs and csrrwi.
      if (spec.mnemonic === "csrrs" || spec.mnemonic === "csrrwi") {
        for (let csr = 0; csr < 4096; csr++) {
          if (!CSR_NAMES.has(csr) && csr % 37 !== 0) continue;
          push(spec, encode1(spec, randomInstruction(spec, rand), "csr", csr));
        }
      }
      // Alias-selecting register choices: x0 / ra in every register operand.
      for (const special of [0, 1]) {
        const w = randomInstruction(spec, rand);
        for (const o of spec.operands) {
          if (OPERANDS[o].kind === "xreg" && OPERANDS[o].range[0] === 0) push(spec, encode1(spec, w, o, special));
        }
      }
    }
    // Random valid encodings of random entries, emitted raw.
    for (let k = 0; k < 4000; k++) {
      const spec = INSTRUCTIONS[Math.floor(rand() * INSTRUCTIONS.length)];
      push(spec, randomInstruction(spec, rand), false);
    }
    const obj = build(items, dir, "table");
    const { mismatches, count } = compare(obj, items);
    expect(mismatches.slice(0, 40)).toEqual([]);
    expect(count).toBeGreaterThan(2 * 8000);
  });

  it("every 16-bit encoding and random 32-bit words: decode rejects what objdump cannot decode", () => {
    const rand = mulberry32(0xc0ffee);
    const items: Item[] = [];
    for (let h = 0; h < 0x10000; h++) if ((h & 3) !== 3) items.push({ word: h, len: 2 });
    const opcodes = [...new Set(INSTRUCTIONS.filter((s) => s.length === 4).map((s) => s.match & 0x7f))];
    for (let k = 0; k < 20000; k++) {
      const hiBits = Math.floor(rand() * 2 ** 25) << 7;
      // Half the words use an opcode of the table, the rest any 32-bit opcode.
      const opc = k % 2 === 0 ? opcodes[k % opcodes.length] : (Math.floor(rand() * 32) << 2) | 3;
      if ((opc & 0x1f) === 0x1f) continue; // 48-bit and longer encodings
      items.push({ word: (hiBits | opc) >>> 0, len: 4 });
    }
    // Single-bit flips of valid encodings probe every reserved field next to a real instruction.
    for (const spec of INSTRUCTIONS) {
      for (let k = 0; k < 24; k++) {
        const w = (randomInstruction(spec, rand) ^ (1 << Math.floor(rand() * spec.length * 8))) >>> 0;
        if (spec.length === 2 ? (w & 3) !== 3 : (w & 3) === 3 && (w & 0x1f) !== 0x1f)
          items.push({ word: w, len: spec.length });
      }
    }
    const obj = build(items, dir, "space");
    const { mismatches, count } = compare(obj, items);
    expect(mismatches.slice(0, 40)).toEqual([]);
    expect(count).toBeGreaterThan(2 * 60000);
  });
});

describe.runIf(!haveTools && inCI)("isa vs GNU objdump 2.40", () => {
  it("needs the reference tools in CI", () => {
    throw new Error(
      `${AS} and ${OBJDUMP} are required in CI (Debian package binutils-riscv64-unknown-elf, see scripts/setup.sh)`,
    );
  });
});

function encode1(spec: InsnSpec, word: number, operand: OperandName, value: number): number | undefined {
  const vals: Partial<Record<OperandName, number>> = {};
  for (const o of spec.operands) vals[o] = getOperand(o, word);
  vals[operand] = value;
  return encode(spec, vals);
}
