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
    // slept through the 2 ms timers instead of spinning; a loaded host may deliver a tick
    // before its WFI, which the guest then skips, so not all four need to sleep
    expect(s.exits.wfi).toBeGreaterThanOrEqual(2);
    expect(s.idleSeconds).toBeGreaterThan(0.002);
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

describe("virtio-mmio slots", () => {
  it.skipIf(!ok)(
    "a device in slot 3 answers at 0x10004000 and its interrupt wakes a guest sleeping in WFI",
    async () => {
      // S-mode guest: enable PLIC source 4 (slot 3) for context 1 (S), read the device's
      // magic, WFI with only SEIE enabled, claim, then SRST with the claimed source as reason.
      const elf = buildElf(`
    .section .text.init, "ax"
    .globl _start
_start:
    li      t0, 0x0c000000 + 4*4    # PLIC priority[4] = 1
    li      t1, 1
    sw      t1, 0(t0)
    li      t0, 0x0c002080          # context 1 enables, word 0
    li      t1, 1 << 4
    sw      t1, 0(t0)
    li      t0, 0x0c201000          # context 1 threshold = 0
    sw      zero, 0(t0)
    li      t0, 0x10004000
    lw      s0, 0(t0)               # the device's first register
    li      t1, 0x74726976          # "virt"
    bne     s0, t1, fail
    li      t0, 1 << 9              # sie.SEIE only; sstatus.SIE stays 0: WFI still wakes
    csrw    sie, t0
1:  wfi
    csrr    t0, sip
    andi    t0, t0, 1 << 9
    beqz    t0, 1b
    li      t0, 0x0c201004          # claim
    lw      a1, 0(t0)
    sw      a1, 0(t0)               # complete
    addi    a1, a1, -4              # reason 0 when source 4 was claimed
    li      a7, 0x53525354
    li      a6, 0
    li      a0, 0
    ecall
fail:
    li      a7, 0x53525354
    li      a6, 0
    li      a0, 0
    li      a1, 9
    ecall
`);
      const vm = new Vm({ memory: 16 * 1024 * 1024, sbi: true, consoleOut: () => {} });
      const reads: number[] = [];
      const line = vm.attachVirtio(3, {
        read: (offset) => {
          reads.push(offset);
          return 0x74726976;
        },
        write: () => {},
      });
      expect(() => vm.attachVirtio(3, { read: () => 0, write: () => {} })).toThrow(/not free/);
      expect(() => vm.attachVirtio(8, { read: () => 0, write: () => {} })).toThrow(/not free/);
      vm.boot(Number(loadElf(vm.bus, elf).entry), 0);
      const done = vm.start();
      // Raised from the host's event loop while the guest sleeps (no timer armed: the
      // loop would otherwise sleep up to a second per check).
      const raisedAt = performance.now();
      setTimeout(() => line.set(true), 20);
      const r = await done;
      expect(r).toEqual({ status: 0, reason: "shutdown" });
      expect(reads).toEqual([0]);
      expect(performance.now() - raisedAt).toBeLessThan(900);
    },
  );
});

describe("createVm (from a VmConfig)", () => {
  it("rejects a bad config, a missing kernel and a non-kernel file with typed errors", async () => {
    const { createVm, VmError } = await import("./create.js");
    const out = { consoleOut: () => {} };
    const code = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (e) {
        return e instanceof VmError ? e.code : `untyped: ${String(e)}`;
      }
      return "no error";
    };
    expect(await code(() => createVm({ kernel: "x", memory: 3 }, out))).toBe("CONFIG_INVALID");
    expect(await code(() => createVm({ kernel: "/nonexistent/Image" }, out))).toBe("KERNEL_UNREADABLE");
    expect(await code(() => createVm({ kernel: import.meta.filename }, out))).toBe("KERNEL_FORMAT");
  });

  it.skipIf(!ok)(
    "opens the config's virtio devices in slots 7 downwards; back ends that cannot open give DEVICE_OPEN",
    async () => {
      const { createVm, VmError } = await import("./create.js");
      const { mkdtempSync, writeFileSync, mkdirSync } = await import("node:fs");
      const { tmpdir } = await import("node:os");
      const dir = mkdtempSync(join(tmpdir(), "rz-mono-dev-"));
      const kernel = join(dir, "g.elf");
      writeFileSync(kernel, buildElf(readFileSync(join(import.meta.dirname, "testdata/sbi-guest.S"), "utf8")));
      const out = { consoleOut: () => {} };
      const failure = async (extra: Record<string, unknown>) => {
        try {
          await createVm({ kernel, memory: 64 * 1024 * 1024, ...extra }, out);
        } catch (e) {
          return e instanceof VmError ? { code: e.code, context: e.context } : { untyped: String(e) };
        }
        return "no error";
      };
      // a qcow2 magic over a lying header: the disk-formats error is carried as the cause
      const bad = new Uint8Array(512);
      bad.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]);
      writeFileSync(join(dir, "bad.qcow2"), bad);
      expect(await failure({ drives: [{ path: join(dir, "missing.img") }] })).toMatchObject({
        code: "DEVICE_OPEN",
        context: { device: "drive 0" },
      });
      expect(await failure({ drives: [{ path: join(dir, "bad.qcow2") }] })).toMatchObject({
        code: "DEVICE_OPEN",
        context: { device: "drive 0", cause: expect.any(String) },
      });
      expect(await failure({ shares: [{ path: join(dir, "no-such-dir") }] })).toMatchObject({
        code: "DEVICE_OPEN",
        context: { device: "share 0" },
      });
      writeFileSync(join(dir, "disk.img"), new Uint8Array(1 << 20));
      mkdirSync(join(dir, "share"));
      const vm = await createVm(
        {
          kernel,
          memory: 64 * 1024 * 1024,
          drives: [{ path: join(dir, "disk.img"), format: "raw" }],
          shares: [{ path: join(dir, "share") }],
          console: "virtio",
          rng: true,
          balloon: true,
        },
        out,
      );
      expect(vm.devices.transports.map((t) => [t.slot, t.name])).toEqual([
        [7, "blk0"],
        [6, "9p0"],
        [5, "console"],
        [4, "rng"],
        [3, "balloon"],
      ]);
      expect(vm.devices.balloon).toBeDefined();
      expect(await vm.start()).toEqual({ status: 0, reason: "shutdown" });
    },
  );

  it("a guest that fails to load after its devices opened releases them (a hostfwd port is free again)", async () => {
    const { createVm } = await import("./create.js");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { createServer } = await import("node:net");
    const listen = (port: number) =>
      new Promise<import("node:net").Server>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve(s));
      });
    const probe = await listen(0);
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    // A Linux Image header claiming 128 MiB: it cannot fit in 64 MiB of RAM.
    const h = new Uint8Array(64);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x0400006f, true);
    dv.setBigUint64(8, 0x200000n, true);
    dv.setBigUint64(16, 128n << 20n, true);
    dv.setUint32(32, 2, true);
    h.set(new TextEncoder().encode("RISCV\0\0\0RSC\x05"), 48);
    const kernel = join(mkdtempSync(join(tmpdir(), "rz-mono-rel-")), "Image");
    writeFileSync(kernel, h);
    await expect(
      createVm(
        {
          kernel,
          memory: 64 * 1024 * 1024,
          net: { mode: "user", hostfwd: [{ protocol: "tcp", hostPort: port, guestPort: 22 }] },
        },
        { consoleOut: () => {} },
      ),
    ).rejects.toThrow();
    const again = await listen(port);
    await new Promise((r) => again.close(r));
  });

  it("takes the kernel and initrd as bytes and the memory as a size string", async () => {
    const { createVm, VmError } = await import("./create.js");
    const h = new Uint8Array(64);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x0400006f, true);
    dv.setBigUint64(8, 0x200000n, true);
    dv.setBigUint64(16, 0x10000n, true);
    dv.setUint32(32, 2, true);
    h.set(new TextEncoder().encode("RISCV\0\0\0RSC\x05"), 48);
    const vm = await createVm(
      { kernel: h, initrd: new Uint8Array(4096).fill(7), memory: "96M" },
      { consoleOut: () => {} },
    );
    expect(vm.stats().instructions).toBe(0);
    await vm.release();
    const failure = (config: Parameters<typeof createVm>[0]) =>
      createVm(config, { consoleOut: () => {} }).then(
        () => "no error",
        (e) => (e instanceof VmError ? `${e.code}: ${e.message}` : String(e)),
      );
    expect(await failure({ kernel: h, memory: "lots" })).toMatch(/^CONFIG_INVALID: memory: invalid size/);
    expect(await failure({ kernel: h, memory: "3M" })).toMatch(/^CONFIG_INVALID: memory/); // not a multiple of 2 MiB
    expect(await failure({ kernel: new Uint8Array(100) })).toMatch(/^KERNEL_FORMAT: \(kernel bytes\) is neither/);
  });

  it("user networking on another network: QEMU's net= with .2/.3/.15 derived", async () => {
    const { createVm } = await import("./create.js");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const h = new Uint8Array(64);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x0400006f, true);
    dv.setBigUint64(8, 0x200000n, true);
    dv.setBigUint64(16, 0x10000n, true);
    dv.setUint32(32, 2, true);
    h.set(new TextEncoder().encode("RISCV\0\0\0RSC\x05"), 48);
    const kernel = join(mkdtempSync(join(tmpdir(), "rz-mono-net-")), "Image");
    writeFileSync(kernel, h);
    const vm = await createVm(
      { kernel, memory: 64 * 1024 * 1024, net: { mode: "user", network: "10.0.3.0/24" } },
      { consoleOut: () => {} },
    );
    try {
      expect(vm.devices.userNet?.config).toMatchObject({
        network: "10.0.3.0/24",
        gateway: "10.0.3.2",
        dns: "10.0.3.3",
        dhcpStart: "10.0.3.15",
      });
    } finally {
      await vm.release();
    }
  });

  it.skipIf(!ok)("boots an ELF from a file on the SBI", async () => {
    const { createVm } = await import("./create.js");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const f = join(mkdtempSync(join(tmpdir(), "rz-mono-")), "g.elf");
    writeFileSync(f, buildElf(readFileSync(join(import.meta.dirname, "testdata/sbi-guest.S"), "utf8")));
    let text = "";
    const vm = await createVm(
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
