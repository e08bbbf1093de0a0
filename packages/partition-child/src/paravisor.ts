// The child partition's paravisor (vmbus.md §3.3: OpenHCL's place in the
// partition): it runs in the VP's thread above the guest and emulates, for
// the unmodified guest, the devices of QEMU virt's board that are neither
// the microkernel's (PLIC, CLINT) nor intercepted by the parent (UART,
// finisher): the goldfish RTC and the eight virtio-mmio slots. The virtio
// devices are @ringzero/virtio's models; their back ends are VSCs on VMBus
// channels to the parent's VSPs. No disk image, socket or host file is ever
// opened here.
import {
  type HvClient,
  HvStatus,
  type Paravisor,
  type ParavisorContext,
  type RegionInfo,
  SintTransport,
  unwrap,
} from "@ringzero/hypervisor-micro";
import { EmptyVirtioSlot, GoldfishRtc, VIRT } from "@ringzero/platform";
import {
  arrayGuestMemory,
  Virtio9p,
  VirtioBalloon,
  VirtioBlk,
  VirtioConsole,
  type VirtioDevice,
  VirtioMmioTransport,
  VirtioNet,
  VirtioRng,
} from "@ringzero/virtio";
import { type ClientChannel, type ClientOffer, type GpaRange, VmbusClient } from "@ringzero/vmbus";
import { DeviceInterface, NINEP_MAX_MESSAGE } from "@ringzero/vmbus/protocols";
import { BalloonVsc } from "./balloon-vsc.js";
import { loadVsc, type VscContext, type VscInstance } from "./custom.js";
import { PageAllocator } from "./gpa.js";
import { NinePVsc } from "./ninep-vsc.js";
import { ConsoleVsc, NetworkVsc, StorageVsc } from "./vsc.js";
import * as z from "./zod.js";

/** SINT of VMBus control messages and channel events (vmbus.md §2.1: VMBUS_SINT = 2). */
export const VMBUS_SINT = 2;
/** SINT of the partition-setup handshake (the grants the parent needs before VMBus starts). */
export const SETUP_SINT = 3;
export const SetupMessage = { HELLO: 0x10, READY: 0x11 } as const;

const DeviceSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("blk"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
    serial: z.string().check(z.maxLength(20)),
  }),
  z.strictObject({
    kind: z.literal("net"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
    mac: z.string(),
  }),
  z.strictObject({
    kind: z.literal("console"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
  }),
  z.strictObject({
    kind: z.literal("9p"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
    mountTag: z.string().check(z.minLength(1), z.maxLength(255)),
  }),
  z.strictObject({ kind: z.literal("rng"), slot: z.int().check(z.minimum(0), z.maximum(7)) }),
  z.strictObject({
    kind: z.literal("balloon"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
  }),
  /** A VSP of the user's own: `module` exports `createVsc` (custom.ts). */
  z.strictObject({
    kind: z.literal("custom"),
    slot: z.int().check(z.minimum(0), z.maximum(7)),
    instanceId: z.string(),
    interfaceId: z.string(),
    module: z.string().check(z.minLength(1)),
    data: z.unknown(),
    ringBytes: z.int().check(
      z.minimum(4096),
      z.maximum(4 * 1024 * 1024),
      z.refine((n) => (n & (n - 1)) === 0, "a power of two"),
    ),
  }),
]);
type Device = z.infer<typeof DeviceSchema>;

export const ParavisorDataSchema = z.strictObject({
  /** The parent partition's ID (VMBus server). */
  parent: z.int().check(z.minimum(1)),
  /** The virtio devices by slot (from the VmConfig, placed by the parent). */
  devices: z.array(DeviceSchema).check(z.maxLength(8)),
  /** Ring bytes per direction for storage and network channels (power of two). */
  ringBytes: z._default(z.int().check(z.minimum(16384), z.maximum(4 * 1024 * 1024)), 256 * 1024),
});
export type ParavisorData = z.input<typeof ParavisorDataSchema>;

type Region = RegionInfo & { buffer: SharedArrayBuffer };

/** A VSC that survives its channel being rescinded and re-offered. */
interface Reconnectable {
  detach(): void;
  attach(channel: ClientChannel): void;
}

/**
 * How each device's VSC is made, once its channel is open: the built-in ones
 * here, a custom one by its module's `createVsc`, all as a VscInstance. The
 * interface each expects, its ring size and its counters' label go with it.
 */
const VSCS: {
  [K in Exclude<Device["kind"], "rng">]: {
    readonly label: string;
    readonly interfaceId: (d: Extract<Device, { kind: K }>) => string;
    readonly ringBytes: (d: Extract<Device, { kind: K }>, data: { ringBytes: number }) => number;
    readonly create: (d: Extract<Device, { kind: K }>, ctx: VscContext) => Promise<VscInstance>;
  };
} = {
  blk: {
    label: "blk",
    interfaceId: () => DeviceInterface.storage,
    ringBytes: (_d, data) => data.ringBytes,
    create: async (d, ctx) => {
      const vsc = await StorageVsc.connect(ctx.channel, ctx.ram);
      return { device: new VirtioBlk({ backend: vsc, serial: d.serial }), counters: vsc.counters, ...reconnects(vsc) };
    },
  },
  net: {
    label: "net",
    interfaceId: () => DeviceInterface.network,
    ringBytes: (_d, data) => data.ringBytes,
    create: async (d, ctx) => {
      const vsc = new NetworkVsc(ctx.channel);
      return { device: new VirtioNet({ backend: vsc, mac: d.mac }), counters: vsc.counters, ...reconnects(vsc) };
    },
  },
  "9p": {
    label: "9p",
    interfaceId: () => DeviceInterface.ninep,
    // Rings that hold two largest messages each way (9P requests and replies are one packet each).
    ringBytes: () => 1024 * 1024,
    create: async (d, ctx) => {
      const vsc = new NinePVsc(ctx.channel);
      const device = new Virtio9p({ handler: vsc, mountTag: d.mountTag, maxRequestBytes: NINEP_MAX_MESSAGE });
      return { device, counters: vsc.counters, ...reconnects(vsc) };
    },
  },
  balloon: {
    label: "balloon",
    interfaceId: () => DeviceInterface.balloon,
    ringBytes: () => 16384,
    // The balloon runs here; the parent sets its target over a control channel it serves itself.
    create: async (_d, ctx) => {
      const balloon = new VirtioBalloon();
      const vsc = new BalloonVsc(ctx.channel, balloon);
      return { device: balloon, counters: vsc.counters };
    },
  },
  console: {
    label: "console",
    interfaceId: () => DeviceInterface.console,
    ringBytes: () => 16384,
    create: async (_d, ctx) => {
      let con: VirtioConsole | undefined;
      const vsc = new ConsoleVsc(ctx.channel, (b) => con?.input(b));
      con = new VirtioConsole({ output: (b) => vsc.write(b) });
      return { device: con, counters: vsc.counters, ...reconnects(vsc) };
    },
  },
  custom: {
    label: "custom",
    interfaceId: (d) => d.interfaceId,
    ringBytes: (d) => d.ringBytes,
    create: (d, ctx) => loadVsc(d.module, { ...ctx, data: d.data }),
  },
};

function reconnects(vsc: Reconnectable): Reconnectable {
  return { detach: () => vsc.detach(), attach: (channel) => vsc.attach(channel) };
}

export interface ParavisorCounters {
  readonly vmbus: Record<string, number>;
  readonly devices: Record<string, Record<string, number>>;
}

/** Runs `p` to completion while pumping this thread's SINT transports (the VP loop is not running yet). */
async function pumping<T>(hv: HvClient, poll: () => void, p: Promise<T>): Promise<T> {
  let done = false;
  const settled = p.finally(() => {
    done = true;
  });
  while (!done) {
    const seen = hv.doorbell;
    poll();
    if (done) break;
    await Promise.race([settled.catch(() => {}), hv.waitDoorbell(seen, 50)]);
  }
  return settled;
}

export async function createParavisor(ctx: ParavisorContext): Promise<Paravisor> {
  const data = ParavisorDataSchema.parse(ctx.data);
  const hv = ctx.hv;
  const rtc = new GoldfishRtc({ irq: ctx.irq(VIRT.rtc.irq), clock: () => ctx.wallClockNs() });
  ctx.addMmio("rtc", VIRT.rtc.base, VIRT.rtc.size, rtc);
  const ram = ctx.regions.find((r) => r.kind === "ram") as Region;
  // RAM is the buffer's first `size` bytes: the microkernel keeps the VP's hart state after it
  const memory = arrayGuestMemory(ram.gpa, new Uint8Array(ram.buffer, 0, ram.size));
  const used = new Set(data.devices.map((d) => d.slot));
  for (let slot = 0; slot < VIRT.virtio.count; slot++) {
    if (!used.has(slot))
      ctx.addMmio(
        `virtio${slot}`,
        VIRT.virtio.base + slot * VIRT.virtio.stride,
        VIRT.virtio.size,
        new EmptyVirtioSlot(),
      );
  }
  const place = (slot: number, device: VirtioDevice) => {
    const transport = new VirtioMmioTransport({ device, memory, irq: ctx.irq(VIRT.virtio.firstIrq + slot) });
    ctx.addMmio(`virtio${slot}`, VIRT.virtio.base + slot * VIRT.virtio.stride, VIRT.virtio.size, transport);
    return transport;
  };
  const counters: { vmbus: Record<string, number>; devices: Record<string, Record<string, number>> } = {
    vmbus: {},
    devices: {},
  };
  const pollers: (() => void)[] = [() => rtc.poll()];
  const needsBus = data.devices.some((d) => d.kind !== "rng");
  let transport: SintTransport | undefined;
  if (needsBus) {
    const priv = ctx.regions.find((r) => r.kind === "private") as Region | undefined;
    if (!priv) throw new Error("the paravisor needs a private memory region for its rings");
    transport = await connectParent(hv, data.parent, ram, priv);
    const t = transport;
    pollers.unshift(() => t.poll());
    const client = new VmbusClient({ control: t, signals: t });
    /** The newest offer per device (re-offers replace it): a failed reopen is retried while it is current. */
    const offers = new Map<string, ClientOffer>();
    client.onOffer((o) => offers.set(o.instanceId, o));
    await pumping(hv, () => t.poll(), client.connect());
    const alloc = new PageAllocator(priv);
    /** Each device keeps its ring pages for life: a re-offered channel reopens on them (re-initialized). */
    const rings = new Map<string, { view: Uint8Array; range: GpaRange; downstreamOffset: number }>();
    const open = async (
      instanceId: string,
      ringBytes: number,
      offer = offers.get(instanceId),
      timeoutMs?: number,
    ): Promise<ClientChannel> => {
      if (!offer) throw new Error(`the parent offered no channel ${instanceId}`);
      let ring = rings.get(instanceId);
      if (!ring) {
        const a = alloc.allocate(2 * (4096 + ringBytes));
        if (!a) throw new Error("paravisor ring memory exhausted");
        ring = { ...a, downstreamOffset: 4096 + ringBytes };
        rings.set(instanceId, ring);
      }
      return client.open(offer, {
        ring: ring.view,
        ringGpadl: ring.range,
        downstreamOffset: ring.downstreamOffset,
        timeoutMs,
      });
    };
    /** What a rescind and a re-offer do to each device's VSC (vmbus.md §4: the VSC reconnects). */
    const reconnectable = new Map<string, { ringBytes: number; vsc: Reconnectable }>();
    const stats = { rescinds: 0, reoffers: 0, reopenFailures: 0 };
    counters.devices.vmbusChannels = stats;
    for (const d of data.devices) {
      if (d.kind === "rng") continue;
      const kind = VSCS[d.kind] as (typeof VSCS)["custom"];
      const dev = d as Extract<Device, { kind: "custom" }>;
      const ringBytes = kind.ringBytes(dev, data);
      const channel = await pumping(hv, () => t.poll(), open(d.instanceId, ringBytes));
      if (channel.offer.interfaceId !== kind.interfaceId(dev).toLowerCase())
        throw new Error(`${d.instanceId} is not a ${kind.label} channel`);
      const vsc = await pumping(hv, () => t.poll(), kind.create(dev, { channel, data: undefined, memory, ram }));
      place(d.slot, vsc.device);
      counters.devices[`${kind.label}@${d.slot}`] = (vsc.counters ?? {}) as Record<string, number>;
      const { detach, attach } = vsc;
      if (detach && attach)
        reconnectable.set(d.instanceId, {
          ringBytes,
          vsc: { detach: () => detach.call(vsc), attach: (c) => attach.call(vsc, c) },
        });
    }
    const rescinded = new Set<string>();
    const reopen = (offer: ClientOffer, r: { ringBytes: number; vsc: Reconnectable }, attempt: number): void => {
      // 2 s per attempt (not the 5 s default): a reopen that gets no answer is retried well before
      // the VSC's 30 s reconnect window ends.
      open(offer.instanceId, r.ringBytes, offer, 2000).then(
        (channel) => r.vsc.attach(channel),
        () => {
          stats.reopenFailures++;
          // Rescinded meanwhile: the next offer opens again. Otherwise the offer stays unopened
          // and the VSC's requests would wait for nothing: try again, a few times, backing off.
          if (rescinded.has(offer.instanceId) || offers.get(offer.instanceId) !== offer || attempt >= 8) return;
          setTimeout(() => reopen(offer, r, attempt + 1), 20 * 2 ** attempt);
        },
      );
    };
    client.onRescind((offer) => {
      const r = reconnectable.get(offer.instanceId);
      if (!r) return;
      stats.rescinds++;
      rescinded.add(offer.instanceId);
      r.vsc.detach();
    });
    client.onOffer((offer) => {
      const r = reconnectable.get(offer.instanceId);
      if (!r || !rescinded.delete(offer.instanceId)) return; // the offers already open are replayed at subscription
      stats.reoffers++;
      reopen(offer, r, 0);
    });
    counters.vmbus = t.counters;
  }
  for (const d of data.devices) {
    // Entropy needs no host resource: it stays in the paravisor.
    if (d.kind === "rng") place(d.slot, new VirtioRng());
  }
  return {
    poll: () => {
      for (const p of pollers) p();
    },
    nextDeadlineMs: () => rtc.nanosUntilAlarm() / 1e6,
  };
}

/**
 * The setup handshake: grant the parent the ring pages and the guest's RAM
 * (the pages GPADLs and GPA-direct packets may name), tell it the grant IDs
 * on SINT 3 and wait until it has accepted them; then VMBus runs on SINT 2.
 */
async function connectParent(hv: HvClient, parent: number, ram: Region, priv: Region): Promise<SintTransport> {
  const ringGrant = await hv.must("GrantPages", {
    partitionId: hv.partitionId,
    gpa: priv.gpa,
    size: priv.size,
    grantee: parent,
    writable: true,
  });
  const ramGrant = await hv.must("GrantPages", {
    partitionId: hv.partitionId,
    gpa: ram.gpa,
    size: ram.size,
    grantee: parent,
    writable: true,
  });
  const setup = unwrap("ConnectSint", await hv.connect(parent, 0, SETUP_SINT));
  const hello = new Uint8Array(8);
  new DataView(hello.buffer).setUint32(0, ringGrant.grantId, true);
  new DataView(hello.buffer).setUint32(4, ramGrant.grantId, true);
  const t0 = performance.now();
  while (setup.postMessage(SetupMessage.HELLO, hello, hv.partitionId).status !== HvStatus.SUCCESS) {
    if (performance.now() - t0 > 5000) throw new Error("the parent does not take setup messages");
    await new Promise((r) => setTimeout(r, 1));
  }
  const inbox = hv.queue(SETUP_SINT);
  for (;;) {
    const seen = hv.doorbell;
    const m = inbox.take();
    if (m && m.origin === parent && m.type === SetupMessage.READY) {
      const status = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength).getUint32(0, true);
      if (status !== 0) throw new Error(`the parent refused the setup (status ${status})`);
      break;
    }
    if (m) continue;
    if (performance.now() - t0 > 10_000) throw new Error("the parent did not answer the setup");
    await hv.waitDoorbell(seen, 100);
  }
  return new SintTransport(hv, unwrap("ConnectSint", await hv.connect(parent, 0, VMBUS_SINT)));
}
