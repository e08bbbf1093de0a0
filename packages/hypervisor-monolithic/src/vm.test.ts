// The monolithic hypervisor end to end with a small S-mode guest on the
// built-in SBI: console paths, RTC, SBI and Sstc timers with WFI sleeping,
// SRST power-off — and bare-metal M-mode guests through the finisher.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadElf } from "@ringzero/cpu-core";
import { buildElf, requireTool } from "@ringzero/cpu-core/testing";
import { describe, expect, it } from "vitest";
import { Vm } from "./vm.js";

const ok = requireTool("riscv64-unknown-elf-gcc");

function boot(elf: Uint8Array, sbi: boolean) {
  let out = "";
  const vm = new Vm({
    memory: 64 * 1024 * 1024,
    sbi,
    consoleOut: (b) => {
      out += new TextDecoder().decode(b);
    },
  });
  const img = loadElf(vm.bus, elf);
  vm.boot(Number(img.entry), 0);
  return { vm, output: () => out, symbols: img.symbols };
}

describe("Vm (monolithic)", () => {
  it.skipIf(!ok)("runs an S-mode guest on the SBI: consoles, RTC, timers with WFI, SRST shutdown", async () => {
    const elf = buildElf(readFileSync(join(import.meta.dirname, "testdata/sbi-guest.S"), "utf8"));
    const { vm, output, symbols } = boot(elf, true);
    const result = await vm.start();
    expect(output()).toBe("sbi-guest: hello from S-mode\nL\nsbi-guest: 4 timer interrupts, bye\n");
    expect(result).toEqual({ status: 0, reason: "shutdown" });
    const rtcAt = Number(symbols.get("rtc_seconds")) - 0x80000000;
    const seconds = Number(new DataView(vm.bus.buffer as ArrayBuffer).getBigUint64(rtcAt, true));
    expect(Math.abs(seconds - Date.now() / 1000)).toBeLessThan(5);
    const s = vm.stats();
    expect(s.exits.wfi).toBeGreaterThanOrEqual(4);
    expect(s.idleSeconds).toBeGreaterThan(0.005); // slept through the 2 ms timers instead of spinning
    expect(s.sbiCalls).toBeGreaterThanOrEqual(8);
    expect(vm.state).toBe("stopped");
  });

  it.skipIf(!ok)("a bare-metal guest ends through the test finisher with its code", async () => {
    const elf = buildElf(`
    .section .text.init, "ax"
    .globl _start
_start:
    li t0, 0x100000
    li t1, (7 << 16) | 0x3333
    sw t1, 0(t0)
1:  j 1b
`);
    const { vm } = boot(elf, false);
    expect(await vm.start()).toEqual({ status: 7, reason: "finisher-fail" });
  });

  it.skipIf(!ok)("pause, resume and stop from the host", async () => {
    const elf = buildElf(`
    .section .text.init, "ax"
    .globl _start
_start:
1:  j 1b
`);
    const { vm } = boot(elf, false);
    const done = vm.start();
    await new Promise((r) => setTimeout(r, 30));
    vm.pause();
    await new Promise((r) => setTimeout(r, 30));
    const paused = vm.stats().instructions;
    await new Promise((r) => setTimeout(r, 30));
    expect(vm.stats().instructions).toBe(paused);
    vm.resume();
    await new Promise((r) => setTimeout(r, 30));
    expect(vm.stats().instructions).toBeGreaterThan(paused);
    vm.stop();
    expect(await done).toEqual({ status: 0, reason: "stopped" });
  });

  it.skipIf(!ok)(
    "an access to a hole in the physical map is an access fault for the guest, not a host crash",
    async () => {
      const elf = buildElf(`
    .section .text.init, "ax"
    .globl _start
_start:
    la t0, trap
    csrw mtvec, t0
    li t0, 0x3000000
    lw t1, 0(t0)
    j 1f
    .align 4
trap:
    csrr t2, mcause
    li t0, 0x100000
    li t1, 5
    bne t2, t1, 1f
    li t1, 0x5555
    sw t1, 0(t0)
1:  li t0, 0x100000
    li t1, 0x13333
    sw t1, 0(t0)
2:  j 2b
`);
      const { vm } = boot(elf, false);
      expect(await vm.start()).toEqual({ status: 0, reason: "finisher-pass" });
    },
  );
});

describe("createVm (from a VmConfig)", () => {
  it("rejects a bad config, a missing kernel and a non-kernel file with typed errors", async () => {
    const { createVm, VmError } = await import("./create.js");
    const out = { consoleOut: () => {} };
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof VmError ? e.code : `untyped: ${String(e)}`;
      }
      return "no error";
    };
    expect(code(() => createVm({ kernel: "x", memory: 3 }, out))).toBe("CONFIG_INVALID");
    expect(code(() => createVm({ kernel: "/nonexistent/Image" }, out))).toBe("KERNEL_UNREADABLE");
    expect(code(() => createVm({ kernel: import.meta.filename }, out))).toBe("KERNEL_FORMAT");
  });

  it.skipIf(!ok)("boots an ELF from a file on the SBI", async () => {
    const { createVm } = await import("./create.js");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const f = join(mkdtempSync(join(tmpdir(), "rz-mono-")), "g.elf");
    writeFileSync(f, buildElf(readFileSync(join(import.meta.dirname, "testdata/sbi-guest.S"), "utf8")));
    let text = "";
    const vm = createVm(
      { kernel: f, memory: 64 * 1024 * 1024 },
      {
        consoleOut: (b) => {
          text += new TextDecoder().decode(b);
        },
      },
    );
    expect(await vm.start()).toEqual({ status: 0, reason: "shutdown" });
    expect(text).toContain("hello from S-mode");
  });
});
