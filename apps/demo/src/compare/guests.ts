// Tiny guests that `ringzero compare` writes at run time (no toolchain
// needed): a handful of RV64 instructions in a minimal ELF64 file, S-mode on
// the hypervisor's SBI like the embedded demo guest.
//  - start: its first instruction stores a byte to the 16550 UART (THR at
//    0x1000_0000), so "VM create → that byte on the host" times start-up to
//    the first guest instruction's effect; then SBI SRST shutdown.
//  - loop: an ALU loop of a known instruction count, for guest MIPS when no
//    rzbench ELF (../shared/bench) is at hand; then SBI SRST shutdown.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const RAM_BASE = 0x8000_0000;
const UART_THR = 0x1000_0000;
/** SBI SRST extension id ("SRST"), function 0 = system_reset (SBI 2.0 §10). */
const SBI_EXT_SRST = 0x5352_5354;

// Registers by ABI name.
const ZERO = 0;
const T0 = 5;
const T1 = 6;
const T2 = 7;
const A0 = 10;
const A1 = 11;
const A6 = 16;
const A7 = 17;

// RV64I encodings (unprivileged spec, chapter 2 / 4).
const lui = (rd: number, imm20: number) => ((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37;
const addi = (rd: number, rs1: number, imm: number) => ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
const xor = (rd: number, rs1: number, rs2: number) => (rs2 << 20) | (rs1 << 15) | (4 << 12) | (rd << 7) | 0x33;
const sb = (rs2: number, rs1: number, off: number) =>
  (((off >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | ((off & 0x1f) << 7) | 0x23;
/** bne rs1, rs2, off (B-type; off even, ±4 KiB). */
const bne = (rs1: number, rs2: number, off: number) =>
  (((off >> 12) & 1) << 31) |
  (((off >> 5) & 0x3f) << 25) |
  (rs2 << 20) |
  (rs1 << 15) |
  (1 << 12) |
  (((off >> 1) & 0xf) << 8) |
  (((off >> 11) & 1) << 7) |
  0x63;
const ECALL = 0x0000_0073;
/** jal x0, 0: spin here (never reached: the SRST call does not return). */
const SPIN = 0x0000_006f;

/** li rd, value for 0 <= value < 2^31 (lui + addi with the sign carry). */
function li(rd: number, value: number): number[] {
  const lo = ((value & 0xfff) << 20) >> 20;
  const hi = ((value - lo) >>> 12) & 0xfffff;
  return hi === 0 ? [addi(rd, ZERO, lo)] : [lui(rd, hi), addi(rd, rd, lo)];
}

const SHUTDOWN = [...li(A7, SBI_EXT_SRST), addi(A6, ZERO, 0), addi(A0, ZERO, 0), addi(A1, ZERO, 0), ECALL, SPIN];

/** The start guest's code: 'R' '\n' to the UART, then shutdown. */
export function startGuestCode(): number[] {
  return [
    lui(T0, UART_THR >>> 12),
    addi(T1, ZERO, 0x52), // 'R'
    sb(T1, T0, 0),
    addi(T1, ZERO, 0x0a),
    sb(T1, T0, 0),
    ...SHUTDOWN,
  ];
}

/** Instructions the loop executes per iteration. */
export const LOOP_BODY = 4;

/** The loop guest's code: `iterations` rounds of a 4-instruction ALU loop, then shutdown. */
export function loopGuestCode(iterations: number): number[] {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations >= 2 ** 31) throw new RangeError("iterations");
  const setup = li(T0, iterations);
  return [
    ...setup,
    addi(T1, T1, 1), // loop: t1 += 1
    xor(T2, T2, T1), // t2 ^= t1
    addi(T0, T0, -1), // t0 -= 1
    bne(T0, ZERO, -12), // back to loop
    ...SHUTDOWN,
  ];
}

/** A minimal ELF64 RISC-V executable: one PT_LOAD at RAM base holding `code`, entry there. */
export function elfImage(code: readonly number[]): Uint8Array {
  const EHDR = 64;
  const PHDR = 56;
  const offset = EHDR + PHDR + 8; // code 8-byte aligned after the one program header
  const bytes = new Uint8Array(offset + code.length * 4);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]); // \x7fELF, ELFCLASS64, little-endian, EV_CURRENT
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 243, true); // EM_RISCV
  dv.setUint32(20, 1, true); // e_version
  dv.setBigUint64(24, BigInt(RAM_BASE), true); // e_entry
  dv.setBigUint64(32, BigInt(EHDR), true); // e_phoff
  dv.setUint32(48, 0x5, true); // e_flags: RVC | double-float ABI
  dv.setUint16(52, EHDR, true); // e_ehsize
  dv.setUint16(54, PHDR, true); // e_phentsize
  dv.setUint16(56, 1, true); // e_phnum
  dv.setUint16(58, 64, true); // e_shentsize (no sections)
  const p = EHDR;
  dv.setUint32(p, 1, true); // PT_LOAD
  dv.setUint32(p + 4, 0x5, true); // PF_R | PF_X
  dv.setBigUint64(p + 8, BigInt(offset), true);
  dv.setBigUint64(p + 16, BigInt(RAM_BASE), true); // p_vaddr
  dv.setBigUint64(p + 24, BigInt(RAM_BASE), true); // p_paddr
  dv.setBigUint64(p + 32, BigInt(code.length * 4), true); // p_filesz
  dv.setBigUint64(p + 40, BigInt(code.length * 4), true); // p_memsz
  dv.setBigUint64(p + 48, 4n, true); // p_align
  code.forEach((w, i) => {
    dv.setUint32(offset + i * 4, w >>> 0, true);
  });
  return bytes;
}

export interface GeneratedGuests {
  readonly start: string;
  readonly loop: string;
  /** Instructions the loop guest retires (setup, loop, shutdown call). */
  readonly loopInstructions: number;
  readonly dir: string;
}

/** Writes both guests to a fresh temporary directory. */
export function writeGuests(loopIterations = 5_000_000): GeneratedGuests {
  const dir = mkdtempSync(join(tmpdir(), "rz-compare-"));
  const start = join(dir, "start.elf");
  const loop = join(dir, "loop.elf");
  writeFileSync(start, elfImage(startGuestCode()));
  const code = loopGuestCode(loopIterations);
  writeFileSync(loop, elfImage(code));
  const setup = code.length - LOOP_BODY - SHUTDOWN.length;
  return { start, loop, dir, loopInstructions: setup + LOOP_BODY * loopIterations + SHUTDOWN.length - 1 };
}
