#!/usr/bin/env node
// A bare-metal RISC-V runner in ~60 lines from two published packages:
// @ringzero/cpu-core (the hart, RAM, the ELF loader, HTIF tohost) and
// @ringzero/platform (QEMU virt's UART and test finisher on an MMIO map).
// It runs riscv-tests and Spike-style programs: exit 0 when the program
// writes tohost = 1 or the finisher's PASS, the test number otherwise.
//
//   node runner.mjs program.elf [--max-instructions N]
import { readFileSync } from "node:fs";
import { Bus, Hart, loadElf } from "@ringzero/cpu-core";
import { MmioMap, SifiveTest, serveMmioExit, Uart16550, VIRT } from "@ringzero/platform";

const [file, flag, limitArg] = process.argv.slice(2);
if (!file || (flag !== undefined && flag !== "--max-instructions")) {
  process.stderr.write("usage: runner.mjs program.elf [--max-instructions N]\n");
  process.exit(2);
}
const limit = limitArg === undefined ? Number.POSITIVE_INFINITY : Number(limitArg);

// RAM at 0x8000_0000 as on QEMU virt; the ELF's segments go there.
const bus = new Bus({ ramBase: VIRT.ram.base, ramSize: 128 << 20 });
let image;
try {
  image = loadElf(bus, readFileSync(file));
} catch (e) {
  // A missing file, not an ELF, segments outside RAM: one line (cpu-core's errors carry a code).
  process.stderr.write(`runner: ${file}: ${e.code ?? "error"}: ${e.message}\n`);
  process.exit(2);
}
const tohost = image.symbols.get("tohost");
const hart = new Hart(bus, { tohost: tohost === undefined ? undefined : Number(tohost) });
hart.pc64 = image.entry;

// The devices a bare-metal program expects on virt: a 16550 for output, the
// SiFive test finisher to end the run. Everything else is an access fault.
let finished;
const mmio = new MmioMap()
  .add("uart", VIRT.uart.base, VIRT.uart.size, new Uart16550({ onTransmit: (b) => process.stdout.write(b) }))
  .add(
    "test",
    VIRT.test.base,
    VIRT.test.size,
    new SifiveTest((e) => {
      finished = e;
    }),
  );

let executed = 0;
for (;;) {
  const before = hart.instret;
  const exit = hart.run(Math.min(1_000_000, limit - executed));
  executed += Number(hart.instret - before);
  if (exit.kind === "mmio") serveMmioExit(hart, mmio, exit);
  else if (exit.kind === "halt") {
    // HTIF: tohost = 1 is PASS, (n << 1) | 1 is FAIL test n (riscv-tests' RVTEST_FAIL)
    process.stderr.write(
      `runner: tohost ${exit.code === 0 ? "PASS" : `FAIL ${exit.code}`} after ${executed} instructions\n`,
    );
    process.exit(exit.code);
  } else if (exit.kind === "wfi") {
    // No interrupt sources here: a program waiting for one waits forever.
    process.stderr.write(`runner: WFI with no interrupt source after ${executed} instructions\n`);
    process.exit(3);
  }
  if (finished) {
    const code = finished.kind === "pass" ? 0 : finished.kind === "fail" ? finished.code || 1 : 4;
    process.stderr.write(`runner: finisher ${finished.kind} after ${executed} instructions\n`);
    process.exit(code);
  }
  if (executed >= limit) {
    process.stderr.write(`runner: stopped after ${executed} instructions (--max-instructions)\n`);
    process.exit(124);
  }
}
