// Lock-step mode: one program on two harts, the interpreter and the translator,
// each on its own copy of the bare-metal board (testing/machine.ts's map). Both
// run the same budget slices (random lengths, so slices end inside and between
// blocks); after every slice the exits and the architectural state (pc,
// privilege, instret, x and f registers, trap CSRs, mstatus, satp) must be
// identical, and RAM must be at the end.
import { loadElf } from "../elf.js";
import { Bus } from "../hart/bus.js";
import { Hart, type HartExit, type HartOptions } from "../hart/hart.js";
import { rng } from "./rng.js";

export interface LockstepResult {
  /** Finisher/HTIF exit code (0 = pass), or undefined when the budget ran out. */
  code: number | undefined;
  output: string;
  instret: number;
  slices: number;
  /** The first difference between the engines, or undefined when they agreed throughout. */
  divergence: string | undefined;
  interpreter: Hart;
  translator: Hart;
}

function machine(elf: Uint8Array, ramSize: number, options: HartOptions): Hart {
  const bus = new Bus({ ramBase: 0x80000000, ramSize });
  const img = loadElf(bus, elf);
  const tohost = img.symbols.get("tohost");
  const hart = new Hart(bus, { ...options, tohost: tohost === undefined ? undefined : Number(tohost) });
  hart.pc = Number(img.entry);
  return hart;
}

/** The architectural state compared at every slice boundary, as text (first difference is reported). */
export function archState(h: Hart): Record<string, string> {
  const s: Record<string, string> = {
    pc: h.pc64.toString(16),
    priv: String(h.priv),
    instret: String(h.instret),
    mstatus: h.readMstatus().toString(16),
    fflags: String(h.fflags),
    frm: String(h.frm),
    mepc: String(h.mepc),
    mcause: h.mcause.toString(16),
    mtval: h.mtval.toString(16),
    sepc: String(h.sepc),
    scause: h.scause.toString(16),
    stval: h.stval.toString(16),
    satp: h.satp.toString(16),
    mip: String(h.mip),
  };
  for (let r = 1; r < 32; r++) s[`x${r}`] = `${h.x[2 * r + 1] >>> 0}:${h.x[2 * r] >>> 0}`;
  for (let r = 0; r < 32; r++) s[`f${r}`] = `${h.fw[2 * r + 1] >>> 0}:${h.fw[2 * r] >>> 0}`;
  return s;
}

function exitText(e: HartExit): string {
  return JSON.stringify(e, (_, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v));
}

/** Run `elf` on both engines in lock-step; stops at the first divergence. */
export function runLockstep(
  elf: Uint8Array,
  opts: { maxInstructions?: number; ramSize?: number; hart?: HartOptions; seed?: number; maxSlice?: number } = {},
): LockstepResult {
  const ramSize = opts.ramSize ?? 16 * 1024 * 1024;
  const a = machine(elf, ramSize, { ...opts.hart, engine: "interpreter" });
  const b = machine(elf, ramSize, { translateAfter: 1, ...opts.hart, engine: "translator" });
  const r = rng(opts.seed ?? 1);
  const max = opts.maxInstructions ?? 50_000_000;
  const maxSlice = opts.maxSlice ?? 300;
  let output = "";
  let slices = 0;
  const done = (code: number | undefined, divergence?: string): LockstepResult => {
    if (divergence === undefined && Buffer.compare(a.bus.u8, b.bus.u8) !== 0) divergence = "RAM differs at the end";
    return { code, output, instret: a.instret, slices, divergence, interpreter: a, translator: b };
  };
  for (;;) {
    if (a.instret >= max) return done(undefined);
    const budget = 1 + Math.floor(r() * maxSlice);
    const ea = a.run(budget);
    const eb = b.run(budget);
    slices++;
    if (exitText(ea) !== exitText(eb))
      return done(undefined, `slice ${slices}: exits ${exitText(ea)} / ${exitText(eb)}`);
    const sa = archState(a);
    const sb = archState(b);
    for (const k of Object.keys(sa)) {
      if (sa[k] !== sb[k]) {
        return done(undefined, `slice ${slices} (instret ${sa.instret}, pc ${sa.pc}): ${k} ${sa[k]} / ${sb[k]}`);
      }
    }
    switch (ea.kind) {
      case "mmio":
        if (ea.op === "write") {
          if (ea.address === 0x10000000) output += String.fromCharCode(Number(ea.value & 0xffn));
          a.completeMmio();
          b.completeMmio();
          if (ea.address === 0x100000) {
            const v = Number(ea.value & 0xffffffffn);
            if ((v & 0xffff) === 0x5555) return done(0);
            if ((v & 0xffff) === 0x3333) return done(v >>> 16);
          }
        } else {
          const v = ea.address === 0x10000005 ? 0x60n : 0n;
          a.completeMmio(v);
          b.completeMmio(v);
        }
        break;
      case "halt":
        return done(ea.code);
      case "budget":
        break;
      case "wfi":
        if (!a.interruptPending()) return done(undefined);
        break;
      default:
        return done(undefined);
    }
  }
}
