#!/usr/bin/env node
// A Linux VMM without hypervisor-monolithic: the QEMU virt board assembled by
// hand from the published packages, with a virtio-blk disk from any image
// format and user-mode networking. What `createVm` does, in one file.
//
//   node vmm.mjs --kernel Image [--initrd initramfs] [--disk FILE] [--net] [--memory MiB] [--append ARGS]
//                [--device MODULE.mjs]...   (a module whose createDevice() returns a VirtioDevice)
//
// The console is the 16550 on stdio; the guest powers off through SBI SRST.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Bus, HART_ISA, HART_MMU, Hart, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP } from "@ringzero/cpu-core";
import { openImage } from "@ringzero/disk-formats";
import { NodeFileHost } from "@ringzero/disk-formats/node";
import { UserNet } from "@ringzero/net-stack/node";
import {
  buildVirtDeviceTree,
  Clint,
  EmptyVirtioSlot,
  enterKernel,
  GoldfishRtc,
  hostTickClock,
  loadLinuxBoot,
  MmioMap,
  Plic,
  SbiServer,
  SifiveTest,
  serveMmioExit,
  Uart16550,
  VIRT,
} from "@ringzero/platform";
import { arrayGuestMemory, VirtioBlk, VirtioMmioTransport, VirtioNet } from "@ringzero/virtio";

const { values: o } = parseArgs({
  options: {
    kernel: { type: "string" },
    initrd: { type: "string" },
    disk: { type: "string" },
    net: { type: "boolean" },
    memory: { type: "string", default: "256" },
    append: { type: "string", default: "console=ttyS0" },
    device: { type: "string", multiple: true, default: [] },
  },
});
if (!o.kernel) {
  process.stderr.write("usage: vmm.mjs --kernel Image [--initrd F] [--disk FILE] [--net] [--memory MiB]\n");
  process.exit(2);
}

// cpu-core: RAM and one hart. The CLINT is the hart's time source (10 MHz).
const clock = hostTickClock();
const bus = new Bus({ ramBase: VIRT.ram.base, ramSize: Number(o.memory) << 20 });
const hart = new Hart(bus, { sbiEcallExit: true, timeSource: clock });
let wake = () => {};
const line = (mask) => ({
  set: (level) => {
    hart.setInterrupt(mask, level);
    if (level) wake(); // a device interrupt ends a WFI sleep at once
  },
});

// platform: the devices the board's device tree names — interrupt controllers, UART, RTC,
// the test finisher (poweroff/reboot) — and empty virtio-mmio slots.
const plic = new Plic([line(MIP_MEIP), line(MIP_SEIP)], { ndev: VIRT.plic.ndev });
const clint = new Clint([{ msip: line(MIP_MSIP), mtip: line(MIP_MTIP) }], clock);
clint.reset(); // QEMU's reset levels on the hart's lines (MTIP high until mtimecmp is programmed)
const uart = new Uart16550({ irq: plic.irq(VIRT.uart.irq), onTransmit: (b) => process.stdout.write(b) });
const rtc = new GoldfishRtc({ irq: plic.irq(VIRT.rtc.irq) });
let poweredOff;
const finisher = new SifiveTest((e) => {
  poweredOff = { type: e.kind, reason: e.kind === "fail" ? e.code || 1 : 0 };
});
const mmio = new MmioMap()
  .add("test", VIRT.test.base, VIRT.test.size, finisher)
  .add("rtc", VIRT.rtc.base, VIRT.rtc.size, rtc)
  .add("clint", VIRT.clint.base, VIRT.clint.size, clint)
  .add("plic", VIRT.plic.base, VIRT.plic.size, plic)
  .add("uart", VIRT.uart.base, VIRT.uart.size, uart);
const slots = [];
const closers = [];
// virtio (+ disk-formats, net-stack): devices from slot 7 down, as QEMU virt.
const memory = arrayGuestMemory(bus.ramBase, new Uint8Array(bus.buffer, 0, bus.ramSize));
const place = (device) => {
  const slot = 7 - slots.length;
  const transport = new VirtioMmioTransport({ device, memory, irq: plic.irq(VIRT.virtio.firstIrq + slot) });
  mmio.add(`virtio${slot}`, VIRT.virtio.base + slot * VIRT.virtio.stride, VIRT.virtio.size, transport);
  slots.push(slot);
};
if (o.disk) {
  const image = await openImage(new NodeFileHost(), o.disk); // raw, qcow2, VMDK, VHD(X), VDI, …
  closers.push(() => image.close());
  place(new VirtioBlk({ backend: image }));
}
if (o.net) {
  const nat = await UserNet.create({}); // 10.0.2.0/24, DHCP, DNS, as QEMU's -net user
  closers.push(() => nat.close());
  place(new VirtioNet({ backend: nat, mac: "52:54:00:12:34:56" }));
}
for (const file of o.device) {
  // A device of your own (see examples/custom-virtio-device): any VirtioDevice subclass.
  const mod = await import(pathToFileURL(resolve(file)).href);
  place(mod.createDevice());
}
for (let s = 0; s < VIRT.virtio.count; s++)
  if (!slots.includes(s))
    mmio.add(`virtio${s}`, VIRT.virtio.base + s * VIRT.virtio.stride, VIRT.virtio.size, new EmptyVirtioSlot());

// platform: the kernel, initrd and a device tree of this board, where QEMU's firmware puts them.
const loaded = loadLinuxBoot(bus, {
  kernel: readFileSync(o.kernel),
  initrd: o.initrd ? readFileSync(o.initrd) : undefined,
  dtb: (layout) =>
    buildVirtDeviceTree({
      memory: { base: bus.ramBase, size: bus.ramSize },
      isa: HART_ISA,
      mmuType: `riscv,${HART_MMU}`,
      devices: { virtio: slots },
      chosen: { bootargs: o.append, initrd: layout.initrd },
    }),
});
enterKernel(hart, { entry: loaded.layout.entry, dtb: loaded.layout.dtb.start });

// platform: the SBI the kernel calls (timer, IPIs, console, reset), served on the host.
const sbi = new SbiServer({
  hartCount: 1,
  setTimer: (_h, t) => hart.writeCsr(0x14d, t), // stimecmp (Sstc)
  consoleWrite: (b) => process.stdout.write(b),
  consoleRead: () => new Uint8Array(0),
  sendIpi: () => hart.setInterrupt(MIP_SSIP, true),
  clearIpi: () => hart.setInterrupt(MIP_SSIP, false),
  remoteFence: (_h, kind) => (kind === "fence.i" ? hart.fenceI() : hart.flushTlb()),
  reset: (type, reason) => {
    poweredOff = { type, reason };
  },
  readGuest: (pa, len) => (bus.inRam(Number(pa), len) ? bus.read(Number(pa), len).slice() : undefined),
  writeGuest: (pa, data) => {
    if (!bus.inRam(Number(pa), data.length)) return false;
    bus.write(Number(pa), data);
    return true;
  },
});

// Host input to the UART once Linux's 8250 driver listens (a tty opened it).
const input = [];
process.stdin.on("data", (d) => {
  input.push(...d);
  wake();
});
const feed = () => {
  if (input.length && uart.receiving && uart.fifoEnabled)
    input.splice(0, uart.pushInput(Uint8Array.from(input.slice(0, 16))));
};

// The vCPU loop: run, serve exits; WFI sleeps until the next timer deadline or a device interrupt.
while (!poweredOff) {
  const until = performance.now() + 10;
  let idle = false;
  while (!poweredOff && performance.now() < until) {
    feed();
    const exit = hart.run(200_000);
    if (exit.kind === "mmio") serveMmioExit(hart, mmio, exit);
    else if (exit.kind === "ecall") sbi.handle(0, hart.x);
    else if (exit.kind === "wfi") {
      idle = true;
      break;
    } else {
      clint.poll();
      rtc.poll();
    }
  }
  if (idle) {
    clint.poll();
    rtc.poll();
    const ms = Math.min(1000, (Math.min(hart.nextTimerDeadline(), clint.nextDeadline()) - clock()) / 10_000);
    if (!hart.interruptPending() && ms > 0)
      await new Promise((r) => {
        wake = r;
        setTimeout(r, ms);
      });
    wake = () => {};
  } else await new Promise((r) => setImmediate(r)); // host I/O (disk, network) completes here
}
for (const c of closers) await c();
process.stderr.write(`vmm: powered off (${poweredOff.type}) after ${hart.instret} instructions\n`);
process.exit(poweredOff.reason === 0 ? 0 : 1);
