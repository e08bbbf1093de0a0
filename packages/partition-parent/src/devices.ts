// The parent's device side of a micro VM: it opens every host resource the
// VmConfig names before the child exists (so a missing image is an error
// before the guest runs, as under hypervisor-monolithic), then, once the
// child's VP runs, answers the paravisor's setup, serves VMBus and offers one
// channel per device.
import {
  type GrantedMemory,
  type HvClient,
  HvStatus,
  type SintConnection,
  SintTransport,
  unwrap,
} from "@ringzero/hypervisor-micro";
import type { VmConfig } from "@ringzero/platform";
import { type GpaRange, RequestChannel, VmbusServer } from "@ringzero/vmbus";
import {
  BalloonOp,
  type BalloonStatus,
  DeviceInterface,
  decodeBalloonStatus,
  deviceInstanceId,
  encodeBalloonRequest,
  NINEP_MAX_MESSAGE,
} from "@ringzero/vmbus/protocols";
import type { CustomVspInit } from "./custom.js";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";
import type { ParentHost } from "./host.js";
import { VspHost } from "./vsp-host.js";
import { batcher } from "./vsp-protocol.js";

/** The SINTs and setup messages the paravisor uses (partition-child's constants; no dependency on it). */
const VMBUS_SINT = 2;
const SETUP_SINT = 3;
const SETUP_HELLO = 0x10;
const SETUP_READY = 0x11;

/** Paravisor-private memory (ring pages), above any RAM the VmConfig allows. */
export const PRIVATE_GPA = 0x2_0000_0000;
export const PRIVATE_SIZE = 16 * 1024 * 1024;

export type ParavisorDevice =
  | { kind: "blk"; slot: number; instanceId: string; serial: string }
  | { kind: "net"; slot: number; instanceId: string; mac: string }
  | { kind: "console"; slot: number; instanceId: string }
  | { kind: "9p"; slot: number; instanceId: string; mountTag: string }
  | { kind: "rng"; slot: number }
  | { kind: "balloon"; slot: number; instanceId: string }
  | {
      kind: "custom";
      slot: number;
      instanceId: string;
      interfaceId: string;
      /** partition-child imports it and calls its `createVsc`. */
      module: string;
      data: unknown;
      ringBytes: number;
    };

/** Runs one back end's open; its failure becomes DEVICE_OPEN naming the device. */
async function opening<T>(device: string, path: string | undefined, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (e) {
    const cause = e as { code?: unknown; message?: unknown };
    throw new MicroVmError(
      MicroVmErrorCode.DEVICE_OPEN,
      { device, path, cause: typeof cause.code === "string" ? cause.code : undefined },
      `${device}${path ? ` (${path})` : ""}: ${String(cause.message ?? e)}`,
    );
  }
}

export class ParentDevices {
  readonly paravisor: ParavisorDevice[] = [];
  /** One VSP worker per device, named storage0.., 9p0.., network0, console0. */
  readonly vsps: VspHost[] = [];
  private readonly closers: (() => void | Promise<void>)[] = [];
  private ram: GrantedMemory | undefined;
  private rings: GrantedMemory | undefined;
  private transport: SintTransport | undefined;
  private setupReply: SintConnection | undefined;
  private server: VmbusServer | undefined;
  private console: VspHost | undefined;
  private childId = 0;
  private balloonWanted = false;
  /** The balloon control channel once the paravisor opened it (served here, in the parent's thread). */
  private balloonRc: RequestChannel | undefined;
  /** The balloon's state at its last answer (kept for the statistics once the child has stopped). */
  private lastBalloon: BalloonStatus | undefined;

  private constructor(
    private readonly host: ParentHost,
    private readonly files: Readonly<Record<string, Blob>>,
  ) {}

  /**
   * Opens the back ends of `config` and places the devices in slots 7, 6, ...
   * (first drive = vda); the user's own VSPs (`custom`) take the slots after
   * the built-in devices. A drive whose path names one of `files` is that
   * Blob (read by slices, writes in memory), not a host file.
   */
  static async open(
    config: VmConfig,
    consoleOut: (b: Uint8Array) => void,
    host: ParentHost,
    files: Readonly<Record<string, Blob>> = {},
    custom: readonly CustomVspInit[] = [],
  ): Promise<ParentDevices> {
    const d = new ParentDevices(host, files);
    try {
      await d.openAll(config, consoleOut, custom);
    } catch (e) {
      await d.close();
      throw e;
    }
    return d;
  }

  get needsBus(): boolean {
    return this.vsps.length > 0 || this.balloonWanted;
  }

  private async openAll(
    config: VmConfig,
    consoleOut: (b: Uint8Array) => void,
    custom: readonly CustomVspInit[],
  ): Promise<void> {
    let slot = 8;
    for (const [i, drive] of config.drives.entries()) {
      const format = drive.format === "auto" ? undefined : drive.format;
      const instanceId = deviceInstanceId("storage", i);
      // The VSP worker opens the image (again after a restart); opened read-only, the image refuses writes.
      const vsp = new VspHost(this.host, {
        name: `storage${i}`,
        kind: "storage",
        init: {
          kind: "storage",
          drive: { path: drive.path, format, readOnly: drive.readOnly, file: this.files[drive.path] },
        },
        interfaceId: DeviceInterface.storage,
        instanceId,
      });
      await opening(`drive ${i}`, drive.path, () => vsp.start());
      this.adopt(vsp);
      this.paravisor.push({
        kind: "blk",
        slot: --slot,
        instanceId,
        serial: `ringzero-vd${String.fromCharCode(97 + i)}`,
      });
    }
    for (const [i, share] of config.shares.entries()) {
      const instanceId = deviceInstanceId("ninep", i);
      // The VSP worker runs the 9P server over the host directory (a successor starts a new one).
      const vsp = new VspHost(this.host, {
        name: `9p${i}`,
        kind: "9p",
        init: { kind: "9p", share: { path: share.path, readOnly: share.readOnly, maxMsize: NINEP_MAX_MESSAGE } },
        interfaceId: DeviceInterface.ninep,
        instanceId,
      });
      await opening(`share ${i}`, share.path, () => vsp.start());
      this.adopt(vsp);
      this.paravisor.push({ kind: "9p", slot: --slot, instanceId, mountTag: share.tag ?? `share${i}` });
    }
    const net = config.net;
    if (net.mode === "user" || net.mode === "socket") {
      const openNet = this.host.openNet;
      if (!openNet)
        throw new MicroVmError(
          MicroVmErrorCode.DEVICE_OPEN,
          { device: "net" },
          `net ${net.mode}: this host has no network back end (Node's partition-parent/node has)`,
        );
      const backend = await openNet(net, opening, this.closers);
      const instanceId = deviceInstanceId("network", 0);
      const toNat = backend;
      const vsp = new VspHost(this.host, {
        name: "network0",
        kind: "network",
        init: { kind: "network" },
        interfaceId: DeviceInterface.network,
        instanceId,
        onFrames: (frames) => {
          for (const f of frames) toNat.send(f);
        },
      });
      backend.setReceiver(batcher((frames) => vsp.sendFrames(frames)));
      await opening("net", undefined, () => vsp.start());
      this.adopt(vsp);
      this.paravisor.push({ kind: "net", slot: --slot, instanceId, mac: net.mac ?? "52:54:00:12:34:56" });
    }
    if (config.console === "virtio") {
      const instanceId = deviceInstanceId("console", 0);
      const vsp = new VspHost(this.host, {
        name: "console0",
        kind: "console",
        init: { kind: "console" },
        interfaceId: DeviceInterface.console,
        instanceId,
        onConsole: (chunks) => {
          for (const c of chunks) consoleOut(c);
        },
      });
      await opening("console", undefined, () => vsp.start());
      this.adopt(vsp);
      this.console = vsp;
      this.paravisor.push({ kind: "console", slot: --slot, instanceId });
    }
    if (config.rng) this.paravisor.push({ kind: "rng", slot: --slot });
    if (config.balloon) {
      this.balloonWanted = true;
      this.paravisor.push({ kind: "balloon", slot: --slot, instanceId: deviceInstanceId("balloon", 0) });
    }
    for (const c of custom) {
      if (slot === 0)
        throw new MicroVmError(
          MicroVmErrorCode.CONFIG_INVALID,
          { path: "vsps", device: c.name },
          `${c.name}: no virtio-mmio slot left (QEMU virt has 8)`,
        );
      // The same worker, restarts and re-offers as the built-in VSPs: only the module differs.
      const vsp = new VspHost(this.host, {
        name: c.name,
        kind: "custom",
        init: { kind: "custom", name: c.name, module: c.vsp.module, data: c.vsp.data },
        interfaceId: c.interfaceId,
        instanceId: c.instanceId,
        killGraceMs: c.killGraceMs,
        guestMemory: c.guestMemory,
      });
      await opening(c.name, c.vsp.module, () => vsp.start());
      this.adopt(vsp);
      this.paravisor.push({
        kind: "custom",
        slot: --slot,
        instanceId: c.instanceId,
        interfaceId: c.interfaceId,
        module: c.vsc.module,
        data: c.vsc.data,
        ringBytes: c.ringBytes,
      });
    }
  }

  private adopt(vsp: VspHost): void {
    this.vsps.push(vsp);
    this.closers.push(() => vsp.close());
  }

  /**
   * The VSPs a monitor name designates: "storage" (every drive), "storage1", "9p" (every share), "network",
   * "console", a custom VSP's name, or "custom" (all of those).
   */
  find(name: string): VspHost[] {
    const n = name.toLowerCase();
    return this.vsps.filter((v) => v.name === n || v.o.kind === n || (n === "net" && v.o.kind === "network"));
  }

  /** Host console input for a virtio console; false when the console is the UART. */
  consoleInput(bytes: Uint8Array): boolean {
    if (!this.console) return false;
    this.console.input(bytes);
    return true;
  }

  /** The child's VP runs: connect to its SINTs, serve VMBus, offer the channels. */
  async serve(hv: HvClient, childId: number): Promise<void> {
    if (!this.needsBus) return;
    this.childId = childId;
    this.setupReply = unwrap("ConnectSint", await hv.connect(childId, 0, SETUP_SINT));
    const t = new SintTransport(hv, unwrap("ConnectSint", await hv.connect(childId, 0, VMBUS_SINT)));
    this.transport = t;
    const server = new VmbusServer({ control: t, signals: t, mapGpadl: (ranges) => this.mapGpadl(ranges) });
    this.server = server;
    const signal = unwrap("ConnectSint", await hv.connect(childId, 0, VMBUS_SINT)).share();
    for (const v of this.vsps) v.offer(server, signal, () => this.ram);
    if (this.balloonWanted) {
      const ch = server.offer({ interfaceId: DeviceInterface.balloon, instanceId: deviceInstanceId("balloon", 0) });
      ch.onStateChange((state) => {
        this.balloonRc?.dispose();
        this.balloonRc = state === "open" ? new RequestChannel(ch, { timeoutMs: 2000 }) : undefined;
      });
    }
  }

  /**
   * Sets the balloon's target (4 KiB pages) when `pages` is given, and returns
   * its state as the paravisor reports it; undefined without a balloon.
   */
  async balloon(pages?: number): Promise<BalloonStatus | undefined> {
    const rc = this.balloonRc;
    if (!rc) return undefined;
    const p = await rc.request(
      pages === undefined ? encodeBalloonRequest(BalloonOp.STATUS) : encodeBalloonRequest(BalloonOp.SET_TARGET, pages),
    );
    const status = decodeBalloonStatus(p.payload);
    if (status) this.lastBalloon = status;
    return status;
  }

  /** The ring GPADL: one page-contiguous range inside the rings grant (OpenVMM gpadl_ring.rs requires one range). */
  private mapGpadl(ranges: readonly GpaRange[]): Uint8Array | undefined {
    const rings = this.rings;
    if (!rings || ranges.length !== 1) return undefined;
    const r = ranges[0] as GpaRange;
    if (r.byteOffset !== 0 || r.pfns.length === 0 || r.byteCount !== r.pfns.length * 4096) return undefined;
    for (let i = 1; i < r.pfns.length; i++) if (r.pfns[i] !== (r.pfns[0] as number) + i) return undefined;
    return rings.view((r.pfns[0] as number) * 4096, r.byteCount);
  }

  /** Called from the parent's loop when the doorbell moves: the setup handshake, then VMBus. */
  async poll(hv: HvClient): Promise<void> {
    if (!this.needsBus) return;
    const inbox = hv.queue(SETUP_SINT);
    for (let m = inbox.take(); m; m = inbox.take()) {
      if (m.origin !== this.childId || m.type !== SETUP_HELLO || m.payload.length < 8) continue;
      const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
      const rings = await hv.acceptGrant(v.getUint32(0, true));
      const ram = await hv.acceptGrant(v.getUint32(4, true));
      let status = 1;
      if (
        rings.status === HvStatus.SUCCESS &&
        ram.status === HvStatus.SUCCESS &&
        rings.value.owner === this.childId &&
        ram.value.owner === this.childId
      ) {
        this.rings = rings.value;
        this.ram = ram.value;
        status = 0;
      }
      const reply = new Uint8Array(4);
      new DataView(reply.buffer).setUint32(0, status, true);
      this.setupReply?.postMessage(SETUP_READY, reply, hv.partitionId);
    }
    this.transport?.poll();
  }

  async stats(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    if (this.transport) out.vmbus = { ...this.transport.counters };
    if (this.server) out.server = { ...this.server.counters };
    if (this.lastBalloon) out.balloon = { ...this.lastBalloon };
    for (const v of this.vsps) out[v.name] = { ...(await v.deviceCounters()), vsp: { ...v.counters } };
    return out;
  }

  async close(): Promise<void> {
    for (const c of this.closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  }
}
