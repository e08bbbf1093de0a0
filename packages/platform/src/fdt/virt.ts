// The device tree of ringzero's virt board, in the shape QEMU's virt machine
// generates (hw/riscv/virt.c; ../shared/reference/qemu-virt.dts) as Linux
// sees it after firmware edits (qemu-virt-as-linux-sees-it.dts: the PLIC's
// M-mode contexts marked absent with 0xffffffff, since no firmware runs in
// M-mode). Only the configured devices get nodes.

import { PlatformError, PlatformErrorCode, parseConfig } from "../devices/errors.js";
import { VIRT } from "../devices/types.js";
import * as z from "../zod.js";
import { FdtNode, writeDtb } from "./dtb.js";

// riscv,isa as Linux 6.1 parses it (arch/riscv/kernel/cpufeature.c): the base
// "rv32"/"rv64", single-letter extensions starting with i, e or g, then
// multi-letter extensions separated by underscores.
const ISA = /^rv(32|64)[ieg][a-z]*(_[a-z][a-z0-9]*)*$/;

const u64 = z.int().check(z.minimum(0), z.maximum(Number.MAX_SAFE_INTEGER));

export const VirtDeviceTreeOptionsSchema = z
  .object({
    memory: z.object({
      base: z._default(u64, VIRT.ram.base),
      size: u64.check(z.minimum(1)),
    }),
    harts: z._default(z.int().check(z.minimum(1), z.maximum(512)), 1),
    /** The hart's ISA string as `riscv,isa`, e.g. "rv64imafdc_zicsr_zifencei_sstc". */
    isa: z.string().check(z.regex(ISA, "not a RISC-V ISA string (rv64imafdc_zicsr...)")),
    mmuType: z._default(z.enum(["riscv,sv39", "riscv,sv48"]), "riscv,sv48"),
    /** Also emit `riscv,isa-base` and `riscv,isa-extensions` (Linux >= 6.7 reads them; QEMU 7.2 does not emit them). */
    isaExtensions: z._default(z.boolean(), false),
    timebaseFrequency: z._default(z.int().check(z.minimum(1), z.maximum(0xffff_ffff)), VIRT.timebaseFrequency),
    devices: z._default(
      z.object({
        plic: z._default(z.boolean(), true),
        clint: z._default(z.boolean(), true),
        uart: z._default(z.boolean(), true),
        rtc: z._default(z.boolean(), true),
        /** The SiFive test finisher, with syscon-poweroff and syscon-reboot nodes. */
        testFinisher: z._default(z.boolean(), true),
        /** virtio-mmio slots (0..7) with a device behind them. */
        virtio: z._default(z.array(z.int().check(z.minimum(0), z.maximum(VIRT.virtio.count - 1))), []),
      }),
      { plic: true, clint: true, uart: true, rtc: true, testFinisher: true, virtio: [] },
    ),
    /** Give the PLIC's M-mode contexts their MEIP (as QEMU's own tree) instead of marking them absent. */
    plicMModeContexts: z._default(z.boolean(), false),
    chosen: z._default(
      z.object({
        bootargs: z.optional(z.string().check(z.maxLength(4096))),
        initrd: z.optional(z.object({ start: u64, end: u64 })),
        /** Default: the UART's path when there is a UART. */
        stdoutPath: z.optional(z.string().check(z.maxLength(256))),
        rngSeed: z.optional(
          z.instanceof(Uint8Array).check(z.refine((b) => b.length <= 512, "rng-seed of at most 512 bytes")),
        ),
      }),
      {},
    ),
    /** Regions under /reserved-memory (no-map is not set: Linux only keeps off them). */
    reservedMemory: z._default(
      z.array(
        z.object({
          name: z._default(z.string().check(z.regex(/^[A-Za-z0-9,._+-]{1,31}$/)), "resv"),
          base: u64,
          size: u64.check(z.minimum(1)),
        }),
      ),
      [],
    ),
  })
  .check(
    z.superRefine((o, ctx) => {
      const d = o.devices;
      if (!d.plic && (d.uart || d.rtc || d.virtio.length > 0)) {
        ctx.addIssue({
          code: "custom",
          message: "UART, RTC and virtio need the PLIC for their interrupts",
          path: ["devices"],
        });
      }
      if (new Set(d.virtio).size !== d.virtio.length) {
        ctx.addIssue({ code: "custom", message: "duplicate virtio slot", path: ["devices", "virtio"] });
      }
      const i = o.chosen.initrd;
      if (i && i.end < i.start)
        ctx.addIssue({ code: "custom", message: "initrd end before start", path: ["chosen", "initrd"] });
    }),
  );
export type VirtDeviceTreeOptions = z.input<typeof VirtDeviceTreeOptionsSchema>;

/** An ISA string split into its base and extension list (riscv,isa-base / riscv,isa-extensions). */
export function parseIsaString(isa: string): { base: string; extensions: string[] } {
  const s = isa.toLowerCase();
  if (!ISA.test(s)) throw new PlatformError(PlatformErrorCode.CONFIG_INVALID, { isa }, "not a RISC-V ISA string");
  const [head, ...multi] = s.split("_");
  const xlen = head.slice(2, 4);
  const ext: string[] = [];
  const add = (e: string) => {
    if (!ext.includes(e)) ext.push(e);
  };
  for (const ch of head.slice(4)) {
    if (ch === "g") for (const e of ["i", "m", "a", "f", "d", "zicsr", "zifencei"]) add(e);
    else add(ch);
  }
  for (const m of multi) add(m);
  return { base: `rv${xlen}i`, extensions: ext };
}

const hex = (n: number) => n.toString(16);
const hi = (n: number) => Math.floor(n / 2 ** 32);
const lo = (n: number) => n % 2 ** 32;
/** A 2-cell address or size. */
const pair = (n: number): [number, number] => [hi(n), lo(n)];
/** One cell when the value fits, else two (Linux reads either; QEMU writes one for 32-bit initrd addresses). */
const cellsFor = (n: number): number[] => (n <= 0xffff_ffff ? [n] : pair(n));

/** Paths of the nodes a hypervisor may need (stdout-path, aliases). */
export const VIRT_PATHS = {
  uart: `/soc/serial@${hex(VIRT.uart.base)}`,
  rtc: `/soc/rtc@${hex(VIRT.rtc.base)}`,
  plic: `/soc/plic@${hex(VIRT.plic.base)}`,
  clint: `/soc/clint@${hex(VIRT.clint.base)}`,
  test: `/soc/test@${hex(VIRT.test.base)}`,
} as const;

/** Builds the board's tree (to inspect or extend before `writeDtb`). */
export function buildVirtFdt(options: VirtDeviceTreeOptions): FdtNode {
  const o = parseConfig(VirtDeviceTreeOptionsSchema, options, "virt device tree");
  const d = o.devices;
  let nextPhandle = 1;
  const root = new FdtNode();
  root
    .cells("#address-cells", 2)
    .cells("#size-cells", 2)
    .string("compatible", "riscv-virtio")
    .string("model", "riscv-virtio,qemu");

  if (o.reservedMemory.length > 0) {
    const rm = root.child("reserved-memory").cells("#address-cells", 2).cells("#size-cells", 2).empty("ranges");
    o.reservedMemory.forEach((r, i) => {
      rm.child(`${r.name}${i}@${hex(r.base)}`).cells("reg", ...pair(r.base), ...pair(r.size));
    });
  }

  const chosen = root.child("chosen");
  if (o.chosen.initrd) {
    chosen.cells("linux,initrd-end", ...cellsFor(o.chosen.initrd.end));
    chosen.cells("linux,initrd-start", ...cellsFor(o.chosen.initrd.start));
  }
  if (o.chosen.bootargs !== undefined) chosen.string("bootargs", o.chosen.bootargs);
  const stdout = o.chosen.stdoutPath ?? (d.uart ? VIRT_PATHS.uart : undefined);
  if (stdout !== undefined) chosen.string("stdout-path", stdout);
  if (o.chosen.rngSeed) chosen.bytes("rng-seed", o.chosen.rngSeed);

  // Phandles in QEMU's order: per hart the cpu then its interrupt controller, then the PLIC, then the finisher.
  const cpuPhandle: number[] = [];
  const intcPhandle: number[] = [];
  for (let h = 0; h < o.harts; h++) {
    cpuPhandle.push(nextPhandle++);
    intcPhandle.push(nextPhandle++);
  }
  const plicPhandle = d.plic ? nextPhandle++ : 0;
  const testPhandle = d.testFinisher ? nextPhandle++ : 0;

  if (d.testFinisher) {
    for (const [node, value] of [
      ["poweroff", 0x5555],
      ["reboot", 0x7777],
    ] as const) {
      root
        .child(node)
        .cells("value", value)
        .cells("offset", 0)
        .cells("regmap", testPhandle)
        .string("compatible", `syscon-${node}`);
    }
  }

  root
    .child(`memory@${hex(o.memory.base)}`)
    .string("device_type", "memory")
    .cells("reg", ...pair(o.memory.base), ...pair(o.memory.size));

  const cpus = root
    .child("cpus")
    .cells("#address-cells", 1)
    .cells("#size-cells", 0)
    .cells("timebase-frequency", o.timebaseFrequency);
  const isa = o.isa.toLowerCase();
  const parsedIsa = parseIsaString(isa);
  for (let h = 0; h < o.harts; h++) {
    const cpu = cpus
      .child(`cpu@${hex(h)}`)
      .cells("phandle", cpuPhandle[h])
      .string("device_type", "cpu")
      .cells("reg", h)
      .string("status", "okay")
      .string("compatible", "riscv")
      .string("riscv,isa", isa);
    if (o.isaExtensions)
      cpu.string("riscv,isa-base", parsedIsa.base).strings("riscv,isa-extensions", parsedIsa.extensions);
    cpu.string("mmu-type", o.mmuType);
    cpu
      .child("interrupt-controller")
      .cells("#interrupt-cells", 1)
      .empty("interrupt-controller")
      .string("compatible", "riscv,cpu-intc")
      .cells("phandle", intcPhandle[h]);
  }
  const cluster = cpus.child("cpu-map").child("cluster0");
  for (let h = 0; h < o.harts; h++) cluster.child(`core${h}`).cells("cpu", cpuPhandle[h]);

  const soc = root
    .child("soc")
    .cells("#address-cells", 2)
    .cells("#size-cells", 2)
    .string("compatible", "simple-bus")
    .empty("ranges");
  if (d.rtc) {
    soc
      .child(`rtc@${hex(VIRT.rtc.base)}`)
      .cells("interrupts", VIRT.rtc.irq)
      .cells("interrupt-parent", plicPhandle)
      .cells("reg", ...pair(VIRT.rtc.base), ...pair(VIRT.rtc.size))
      .string("compatible", "google,goldfish-rtc");
  }
  if (d.uart) {
    soc
      .child(`serial@${hex(VIRT.uart.base)}`)
      .cells("interrupts", VIRT.uart.irq)
      .cells("interrupt-parent", plicPhandle)
      .cells("clock-frequency", VIRT.uart.clockFrequency)
      .cells("reg", ...pair(VIRT.uart.base), ...pair(VIRT.uart.size))
      .string("compatible", "ns16550a");
  }
  if (d.testFinisher) {
    soc
      .child(`test@${hex(VIRT.test.base)}`)
      .cells("phandle", testPhandle)
      .cells("reg", ...pair(VIRT.test.base), ...pair(VIRT.test.size))
      .strings("compatible", ["sifive,test1", "sifive,test0", "syscon"]);
  }
  // QEMU adds the slots from the top down, so the last slot probes first.
  for (const slot of [...d.virtio].sort((a, b) => b - a)) {
    const base = VIRT.virtio.base + slot * VIRT.virtio.stride;
    soc
      .child(`virtio_mmio@${hex(base)}`)
      .cells("interrupts", VIRT.virtio.firstIrq + slot)
      .cells("interrupt-parent", plicPhandle)
      .cells("reg", ...pair(base), ...pair(VIRT.virtio.size))
      .string("compatible", "virtio,mmio");
  }
  if (d.plic) {
    // Contexts 2h (M-mode external, irq 11) and 2h+1 (S-mode external, irq 9); 0xffffffff marks a context absent.
    const ext: number[] = [];
    for (let h = 0; h < o.harts; h++)
      ext.push(intcPhandle[h], o.plicMModeContexts ? 11 : 0xffff_ffff, intcPhandle[h], 9);
    soc
      .child(`plic@${hex(VIRT.plic.base)}`)
      .cells("phandle", plicPhandle)
      .cells("riscv,ndev", VIRT.plic.ndev)
      .cells("reg", ...pair(VIRT.plic.base), ...pair(VIRT.plic.size))
      .cells("interrupts-extended", ...ext)
      .empty("interrupt-controller")
      .strings("compatible", ["sifive,plic-1.0.0", "riscv,plic0"])
      .cells("#address-cells", 0)
      .cells("#interrupt-cells", 1);
  }
  if (d.clint) {
    // Per hart: machine software (3) and machine timer (7) interrupts.
    const ext: number[] = [];
    for (let h = 0; h < o.harts; h++) ext.push(intcPhandle[h], 3, intcPhandle[h], 7);
    soc
      .child(`clint@${hex(VIRT.clint.base)}`)
      .cells("interrupts-extended", ...ext)
      .cells("reg", ...pair(VIRT.clint.base), ...pair(VIRT.clint.size))
      .strings("compatible", ["sifive,clint0", "riscv,clint0"]);
  }
  return root;
}

/** The DTB of the virt board for `options`. */
export function buildVirtDeviceTree(options: VirtDeviceTreeOptions): Uint8Array {
  return writeDtb(buildVirtFdt(options));
}
