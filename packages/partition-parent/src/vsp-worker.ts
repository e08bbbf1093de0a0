// One VSP in its own worker thread of the parent partition (as a Hyper-V
// device runs in the root's worker process, or an OpenVMM device out of
// process): it serves one channel's rings, which the parent thread hands it
// as a data plane, and owns what the device needs (the disk image for
// storage). What must outlive it stays with the parent thread: the VMBus
// control plane (so the channel can be rescinded and re-offered) and the
// user-mode network's connections (network frames and console bytes cross
// the worker's port). Killing this thread loses only the requests it held,
// which the child's VSC re-issues on the re-offered channel.
import { parentPort, workerData } from "node:worker_threads";
import type { FormatName } from "@ringzero/disk-formats";
import { GrantedMemory, SintConnection } from "@ringzero/hypervisor-micro";
import type { NetBackend } from "@ringzero/net-stack";
import { DataPlaneChannel } from "@ringzero/vmbus";
import { type CreateVsp, numericCounters, type VspService } from "./custom.js";
import { ConsoleVsp, NetworkVsp, NinePVsp, StorageVsp } from "./vsp.js";
import { batcher, type ToVsp, type VspInit, type VspToParent } from "./vsp-protocol.js";

const init = workerData as VspInit;
const port = parentPort;
if (!port) throw new Error("a VSP runs in a worker thread");
const send = (m: VspToParent, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);

let ram: GrantedMemory | undefined;
let channel: DataPlaneChannel | undefined;
let doorbell: Int32Array | undefined;
let stopping = false;
let receiveFrame: ((frame: Uint8Array) => void) | null = null;

/**
 * How this worker's VSP is made: a built-in's constructor, or the user's
 * module's `createVsp` (custom.ts). Every one is a VspService. Modules load
 * at spawn (a warm spare waits here); the resource opens on "open", when this
 * worker takes over. A module that fails to load is reported then.
 */
type Vsp = VspService & { input?(bytes: Uint8Array): void };
let closeResource: (() => Promise<void>) | undefined;

async function load(): Promise<() => Promise<Vsp>> {
  switch (init.kind) {
    case "storage": {
      const diskFormats = await import("@ringzero/disk-formats");
      const diskFormatsNode = await import("@ringzero/disk-formats/node");
      const d = init.drive;
      // Blocking I/O on this thread (it has nothing else to do): a write is done when its request
      // completes and none outlives the worker, by construction (Node also cancels or finishes a
      // terminated worker's thread-pool requests before its exit: vsp-host.test.ts), so a
      // successor opens the image as soon as this worker has exited.
      return async () => {
        const image = await diskFormats.openImage(new diskFormatsNode.NodeFileHost({ blocking: true }), d.path, {
          format: d.format as FormatName | undefined,
          readOnly: d.readOnly,
        });
        return new StorageVsp(image, () => ram);
      };
    }
    case "9p": {
      const virtio = await import("@ringzero/virtio/node");
      const s = init.share;
      return async () => {
        const server = new virtio.NinePServer({ root: s.path, readOnly: s.readOnly, maxMsize: s.maxMsize });
        closeResource = () => server.close();
        return new NinePVsp(server);
      };
    }
    case "network":
      return async () => {
        const frames = batcher((items) => send({ kind: "frames", frames: items }));
        const backend: NetBackend = {
          send: (frame) => frames(frame.slice()),
          setReceiver: (r) => {
            receiveFrame = r;
          },
        } as NetBackend;
        return new NetworkVsp(backend);
      };
    case "console":
      return async () => {
        const out = batcher((items) => send({ kind: "console", chunks: items }));
        return new ConsoleVsp((bytes) => out(bytes.slice()));
      };
    case "custom": {
      const { name, data } = init;
      const mod = (await import(init.module)) as { createVsp?: unknown };
      const create = mod.createVsp;
      if (typeof create !== "function") throw new Error(`${init.module} exports no createVsp function`);
      return async () => {
        const v = (await (create as CreateVsp)({ name, data, guestMemory: () => ram })) as Vsp | undefined;
        if (!v || typeof v.attach !== "function")
          throw new Error(`${name}: createVsp returned no service (an object with attach(channel))`);
        return v;
      };
    }
  }
}

let createVsp: (() => Promise<Vsp>) | undefined;
let loadError: unknown;
try {
  createVsp = await load();
} catch (e) {
  loadError = e;
}

let vsp: Vsp | undefined;

/** VMBus traffic of this worker's channels (ended attachments plus the current one). */
const ring = { packetsIn: 0, packetsOut: 0, signalsIn: 0, signalsOut: 0 };
function ringOf(ch: DataPlaneChannel | undefined) {
  return {
    packetsIn: ch?.reader.counters.packets ?? 0,
    packetsOut: ch?.writer.counters.packets ?? 0,
    signalsIn: ch?.counters.signalsIn ?? 0,
    signalsOut: ch?.counters.signalsOut ?? 0,
  };
}
function countersNow(v: Vsp): Record<string, number> {
  const c = ringOf(channel);
  return {
    ...numericCounters(v.counters),
    packetsIn: ring.packetsIn + c.packetsIn,
    packetsOut: ring.packetsOut + c.packetsOut,
    signalsIn: ring.signalsIn + c.signalsIn,
    signalsOut: ring.signalsOut + c.signalsOut,
  };
}
function retire(ch: DataPlaneChannel | undefined): void {
  const c = ringOf(ch);
  ring.packetsIn += c.packetsIn;
  ring.packetsOut += c.packetsOut;
  ring.signalsIn += c.signalsIn;
  ring.signalsOut += c.signalsOut;
}

async function open(): Promise<void> {
  try {
    if (!createVsp) throw loadError;
    vsp = await createVsp();
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    send({
      kind: "error",
      message: String(err.message ?? e),
      code: typeof err.code === "string" ? err.code : undefined,
    });
    process.exit(1);
  }
  send({ kind: "ready" });
}

type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };

/** Waits for the parent thread's doorbell and hands each ring to the channel (no polling). */
async function serveSignals(db: Int32Array, ch: DataPlaneChannel): Promise<void> {
  while (channel === ch && !stopping) {
    const seen = Atomics.load(db, 0);
    ch.deliverSignal();
    const w = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(db, 0, seen);
    if (w.async) await w.value;
  }
}

port.on("message", (m: ToVsp) => {
  if (m.kind === "open") {
    void open();
    return;
  }
  if (!vsp) {
    if (m.kind === "stop") process.exit(0); // a spare that never took over
    return;
  }
  const v = vsp;
  switch (m.kind) {
    case "attach": {
      retire(channel);
      channel?.detach();
      ram = m.ram ? new GrantedMemory(m.ram) : undefined;
      const sint = SintConnection.fromShared(m.signal);
      const ch = new DataPlaneChannel(m.plane, { signal: (id) => sint.signalEvent(id), onSignal: () => {} }, (e) =>
        send({ kind: "violation", code: e.code, message: e.message }),
      );
      channel = ch;
      doorbell = new Int32Array(m.doorbell);
      v.attach(ch);
      void serveSignals(doorbell, ch);
      return;
    }
    case "detach":
      retire(channel);
      channel?.detach();
      channel = undefined;
      if (doorbell) Atomics.notify(doorbell, 0);
      return;
    case "frames":
      for (const f of m.frames) receiveFrame?.(f);
      return;
    case "input":
      v.input?.(m.bytes);
      return;
    case "counters":
      send({ kind: "counters", id: m.id, counters: countersNow(v) });
      return;
    case "stop":
      // Graceful: finish what is in flight, flush and close the image, then end.
      stopping = true;
      void (async () => {
        await Promise.resolve(v.quiesce?.()).catch(() => {});
        await closeResource?.().catch(() => {});
        channel?.detach();
        send({ kind: "counters", id: 0, counters: countersNow(v) });
        send({ kind: "stopped" });
        process.exit(0);
      })();
      return;
  }
});
send({ kind: "loaded" });
