// The VmConfig's virtio devices, placed in the board's virtio-mmio slots and
// called inline from the vCPU loop's MMIO exits (ARCHITECTURE.md §4: the
// monolithic build runs device models and back ends in the hypervisor).
// Slots are given from 7 downwards in config order (drives first), as QEMU
// virt assigns them, so the first drive is /dev/vda.

import type { NetBackend as StackBackend, UserNet, VirtualSwitch } from "@ringzero/net-stack/node";
import type { VmConfig } from "@ringzero/platform";
import type { VirtioBalloon, VirtioConsole, VirtioDevice, VirtioMmioTransport, VirtioNet } from "@ringzero/virtio/node";
import { VmError, VmErrorCode } from "./errors.js";
import type { Vm } from "./vm.js";

/** Runs one back end's open; its failure (a DiskError, NinePError, socket error…) becomes a VmError naming the device. */
async function opening<T>(device: string, path: string | undefined, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (e) {
    const cause = e as { code?: unknown; message?: unknown };
    throw new VmError(
      VmErrorCode.DEVICE_OPEN,
      { device, path, cause: typeof cause.code === "string" ? cause.code : undefined },
      `${device}${path ? ` (${path})` : ""}: ${String(cause.message ?? e)}`,
    );
  }
}

/** The devices a running VM exposes to its host (balloon target, statistics). */
export interface VmDevices {
  readonly transports: readonly {
    readonly slot: number;
    readonly name: string;
    readonly transport: VirtioMmioTransport;
  }[];
  readonly balloon?: VirtioBalloon;
  readonly console?: VirtioConsole;
  readonly net?: VirtioNet;
  readonly userNet?: UserNet;
  /** With `listen`: the switch joining this VM's NIC, the NAT and other processes' NICs. */
  readonly netSwitch?: VirtualSwitch;
}

export interface AttachOptions {
  readonly consoleOut: (bytes: Uint8Array) => void;
}

/** Opens back ends and attaches every virtio device the config names. Closes what it opened on failure. */
export async function attachDevices(vm: Vm, config: VmConfig, options: AttachOptions): Promise<VmDevices> {
  const wanted =
    config.drives.length + config.shares.length > 0 ||
    config.net.mode !== "none" ||
    config.console === "virtio" ||
    config.rng ||
    config.balloon;
  if (!wanted) return { transports: [] };
  // Loaded on demand: a VM without devices (and every CLI start) skips ~70 ms of module loading.
  const v = await import("@ringzero/virtio/node");
  const { arrayGuestMemory, VirtioMmioTransport } = v;
  const memory = arrayGuestMemory(vm.bus.ramBase, new Uint8Array(vm.bus.buffer, 0, vm.bus.ramSize));
  const transports: { slot: number; name: string; transport: VirtioMmioTransport }[] = [];
  const closers: (() => void | Promise<void>)[] = [];
  let slot = 8;
  const place = (name: string, device: VirtioDevice) => {
    slot--;
    const transport = new VirtioMmioTransport({ device, memory });
    transport.attachIrq(vm.attachVirtio(slot, transport));
    transports.push({ slot, name, transport });
  };
  const out: { -readonly [K in keyof VmDevices]: VmDevices[K] } = { transports };
  try {
    if (config.drives.length > 0) {
      const { openImage } = await import("@ringzero/disk-formats");
      const host = new (await import("@ringzero/disk-formats/node")).NodeFileHost();
      for (const [i, d] of config.drives.entries()) {
        const format = d.format === "auto" ? undefined : d.format;
        const image = await opening(`drive ${i}`, d.path, () =>
          openImage(host, d.path, { format, readOnly: d.readOnly }),
        );
        closers.push(() => image.close());
        const serial = `ringzero-vd${String.fromCharCode(97 + i)}`;
        place(`blk${i}`, new v.VirtioBlk({ backend: image, readOnly: d.readOnly, serial }));
      }
    }
    const mac = config.net.mac ?? "52:54:00:12:34:56";
    const ns = config.net.mode !== "none" ? await import("@ringzero/net-stack/node") : undefined;
    if (ns && config.net.mode === "user") {
      const n = config.net;
      const user = await opening("net user", undefined, () =>
        ns.UserNet.create({
          network: n.network,
          gateway: n.gateway,
          dns: n.dns,
          dhcpStart: n.dhcpStart,
          restrict: n.restrict,
          dnsUpstream: n.dnsUpstream,
          hostForwards: n.hostfwd.map((f) => ({ protocol: f.protocol, hostPort: f.hostPort, guestPort: f.guestPort })),
        }),
      );
      closers.push(() => user.close());
      let stack: StackBackend = user;
      if (n.pcap) {
        const file = n.pcap;
        const pcap = await opening("net pcap", file, () => new ns.PcapWriter(file));
        closers.push(() => pcap.close());
        stack = ns.capture(user, pcap);
      }
      if (n.listen) {
        // The NIC and the NAT on a switch; other processes' NICs join through the endpoint.
        const sw = new ns.VirtualSwitch();
        sw.connect(stack);
        stack = sw.createPort();
        const endpoint = n.listen;
        const server = await opening("net listen", endpoint, () => ns.listenSwitch(endpoint, sw));
        closers.push(() => new Promise<void>((r) => server.close(() => r())));
        out.netSwitch = sw;
      }
      out.userNet = user;
      out.net = new v.VirtioNet({ backend: stack, mac });
      place("net0", out.net);
    } else if (ns && config.net.mode === "socket") {
      const endpoint = config.net.connect as string;
      const link = await opening("net connect", endpoint, () => ns.connectSwitch(endpoint));
      closers.push(() => link.close());
      out.net = new v.VirtioNet({ backend: link, mac });
      place("net0", out.net);
    }
    for (const [i, s] of config.shares.entries()) {
      const server = await opening(
        `share ${i}`,
        s.path,
        () => new v.NinePServer({ root: s.path, readOnly: s.readOnly }),
      );
      place(`9p${i}`, new v.Virtio9p({ handler: server, mountTag: s.tag ?? `share${i}` }));
    }
    if (config.console === "virtio") {
      out.console = new v.VirtioConsole({ output: options.consoleOut });
      const con = out.console;
      vm.setConsoleInput((b) => con.input(b));
      place("console", con);
    }
    if (config.rng) place("rng", new v.VirtioRng());
    if (config.balloon) {
      out.balloon = new v.VirtioBalloon();
      place("balloon", out.balloon);
    }
  } catch (e) {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
    throw e;
  }
  for (const c of closers) vm.onStop(c);
  return out;
}
