// ELF64 little-endian RISC-V loader (System V gABI, RISC-V ELF psABI). Every
// field read from the file is bounds-checked; a malformed file gives a
// CpuError ELF_MALFORMED with the offending field and offset, never a crash.

import { CpuError, CpuErrorCode } from "./errors.js";
import type { Bus } from "./hart/bus.js";
import * as z from "./zod.js";

const EM_RISCV = 0xf3;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const MAX_PHNUM = 256;
const MAX_SHNUM = 4096;

const u64 = z.bigint().check(z.nonnegative());
const HeaderSchema = z.object({
  magic: z.literal(0x464c457f, { message: "not an ELF file (bad magic)" }),
  class: z.literal(2, { message: "not ELF64" }),
  data: z.literal(1, { message: "not little-endian" }),
  version: z.literal(1, { message: "bad EI_VERSION" }),
  type: z.union([z.literal(2), z.literal(3)], { message: "not an executable (ET_EXEC/ET_DYN)" }),
  machine: z.literal(EM_RISCV, { message: "not a RISC-V ELF" }),
  entry: u64,
  phoff: u64,
  shoff: u64,
  phentsize: z.literal(56, { message: "bad e_phentsize" }),
  phnum: z.int().check(z.minimum(1, "no program headers"), z.maximum(MAX_PHNUM)),
  shentsize: z.int(),
  shnum: z.int().check(z.maximum(MAX_SHNUM)),
});

export interface ElfSegment {
  readonly paddr: number;
  readonly vaddr: bigint;
  readonly fileSize: number;
  readonly memSize: number;
  readonly offset: number;
  readonly flags: number;
}

export interface ElfImage {
  readonly entry: bigint;
  readonly segments: readonly ElfSegment[];
  /** Symbol name → value (functions and objects; first definition wins). */
  readonly symbols: ReadonlyMap<string, bigint>;
}

function malformed(field: string, offset: number, detail: string): CpuError {
  return new CpuError(CpuErrorCode.ELF_MALFORMED, { field, offset }, detail);
}

/** Parse an ELF64 RISC-V executable without loading it. */
export function parseElf(bytes: Uint8Array): ElfImage {
  if (bytes.length < 64) throw malformed("e_ident", 0, `file too short (${bytes.length} bytes)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const raw = {
    magic: dv.getUint32(0, true),
    class: bytes[4],
    data: bytes[5],
    version: bytes[6],
    type: dv.getUint16(16, true),
    machine: dv.getUint16(18, true),
    entry: dv.getBigUint64(24, true),
    phoff: dv.getBigUint64(32, true),
    shoff: dv.getBigUint64(40, true),
    phentsize: dv.getUint16(54, true),
    phnum: dv.getUint16(56, true),
    shentsize: dv.getUint16(58, true),
    shnum: dv.getUint16(60, true),
  };
  const parsed = HeaderSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(String(issue.path[0] ?? "header"), 0, issue.message);
  }
  const h = parsed.data;
  const fileLen = BigInt(bytes.length);
  if (h.phoff + BigInt(h.phnum * 56) > fileLen) throw malformed("e_phoff", 32, "program headers outside the file");
  const segments: ElfSegment[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const o = Number(h.phoff) + i * 56;
    if (dv.getUint32(o, true) !== PT_LOAD) continue;
    const offset = dv.getBigUint64(o + 8, true);
    const vaddr = dv.getBigUint64(o + 16, true);
    const paddr = dv.getBigUint64(o + 24, true);
    const filesz = dv.getBigUint64(o + 32, true);
    const memsz = dv.getBigUint64(o + 40, true);
    if (filesz > memsz) throw malformed("p_filesz", o + 32, `segment ${i}: p_filesz > p_memsz`);
    if (offset + filesz > fileLen) throw malformed("p_offset", o + 8, `segment ${i}: data outside the file`);
    if (memsz > 1n << 32n || paddr > 1n << 53n)
      throw malformed("p_memsz", o + 40, `segment ${i}: absurd size or address`);
    segments.push({
      paddr: Number(paddr),
      vaddr,
      fileSize: Number(filesz),
      memSize: Number(memsz),
      offset: Number(offset),
      flags: dv.getUint32(o + 4, true),
    });
  }
  if (segments.length === 0) throw malformed("e_phnum", 56, "no PT_LOAD segment");
  return { entry: h.entry, segments, symbols: readSymbols(bytes, dv, h.shoff, h.shentsize, h.shnum) };
}

function readSymbols(
  bytes: Uint8Array,
  dv: DataView,
  shoff: bigint,
  shentsize: number,
  shnum: number,
): Map<string, bigint> {
  const symbols = new Map<string, bigint>();
  if (shnum === 0 || shoff === 0n) return symbols;
  if (shentsize !== 64) throw malformed("e_shentsize", 58, "bad section header size");
  if (shoff + BigInt(shnum * 64) > BigInt(bytes.length))
    throw malformed("e_shoff", 40, "section headers outside the file");
  const base = Number(shoff);
  for (let i = 0; i < shnum; i++) {
    const o = base + i * 64;
    if (dv.getUint32(o + 4, true) !== SHT_SYMTAB) continue;
    const symOff = dv.getBigUint64(o + 24, true);
    const symSize = dv.getBigUint64(o + 32, true);
    const link = dv.getUint32(o + 40, true);
    if (symOff + symSize > BigInt(bytes.length)) throw malformed("sh_offset", o + 24, "symbol table outside the file");
    if (link >= shnum) throw malformed("sh_link", o + 40, "symbol table links to a missing string table");
    const so = base + link * 64;
    const strOff = Number(dv.getBigUint64(so + 24, true));
    const strSize = Number(dv.getBigUint64(so + 32, true));
    if (strOff + strSize > bytes.length) throw malformed("sh_offset", so + 24, "string table outside the file");
    const count = Number(symSize / 24n);
    for (let s = 1; s < count; s++) {
      const e = Number(symOff) + s * 24;
      const nameOff = dv.getUint32(e, true);
      if (nameOff >= strSize) continue;
      let end = strOff + nameOff;
      while (end < strOff + strSize && bytes[end] !== 0) end++;
      const name = new TextDecoder().decode(bytes.subarray(strOff + nameOff, end));
      if (name && !symbols.has(name)) symbols.set(name, dv.getBigUint64(e + 8, true));
    }
  }
  return symbols;
}

/** Copy the PT_LOAD segments of an ELF into RAM (at their physical addresses; .bss zeroed). */
export function loadElf(bus: Bus, bytes: Uint8Array): ElfImage {
  const img = parseElf(bytes);
  for (const s of img.segments) {
    if (s.memSize === 0) continue;
    if (!bus.inRam(s.paddr, s.memSize)) {
      throw new CpuError(CpuErrorCode.ELF_OUTSIDE_RAM, {
        paddr: `0x${s.paddr.toString(16)}`,
        memSize: s.memSize,
        ramBase: `0x${bus.ramBase.toString(16)}`,
        ramSize: bus.ramSize,
      });
    }
    const off = s.paddr - bus.ramBase;
    bus.u8.set(bytes.subarray(s.offset, s.offset + s.fileSize), off);
    bus.u8.fill(0, off + s.fileSize, off + s.memSize);
  }
  const entry = Number(img.entry);
  if (!bus.inRam(entry, 2)) {
    throw new CpuError(
      CpuErrorCode.ELF_OUTSIDE_RAM,
      { entry: `0x${img.entry.toString(16)}` },
      "entry point outside RAM",
    );
  }
  return img;
}
