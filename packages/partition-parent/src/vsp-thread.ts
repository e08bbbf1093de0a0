// One VSP in its own worker thread of the parent partition (as a Hyper-V
// device runs in the root's worker process, or an OpenVMM device out of
// process): it serves one channel's rings, which the parent thread hands it
// as a data plane, and owns what the device needs (the disk image for
// storage). What must outlive it stays with the parent thread: the VMBus
// control plane (so the channel can be rescinded and re-offered) and the
// user-mode network's connections (network frames and console bytes cross
// the worker's port). Killing this thread loses only the requests it held,
// which the child's VSC re-issues on the re-offered channel.
//
// Host-neutral: vsp-worker.ts runs it in a Node worker thread (host files, 9p
// over a directory); a browser's Worker bundle calls `runVspThread` with no
// host files: a drive is then a Blob (a File the user picked) or an http(s)
// URL, read lazily, its writes kept in memory (disk-formats' RemoteHost).
//
// Every VSP is a VspService (custom.ts): a built-in's constructor makes it,
// or, for a VSP of the user's own, its module's `createVsp`, imported at spawn.
import { type FormatName, openImage, RemoteHost, type StoreHost } from "@ringzero/disk-formats";
import { GrantedMemory, SintConnection, type ThreadSelf } from "@ringzero/hypervisor-micro";
import type { NetBackend } from "@ringzero/net-stack";
import type { NinePHandler } from "@ringzero/virtio";
import { DataPlaneChannel } from "@ringzero/vmbus";
import { type CreateVsp, numericCounters, type VspService } from "./custom.js";
import { ConsoleVsp, NetworkVsp, NinePVsp, StorageVsp } from "./vsp.js";
import { batcher, type ToVsp, type VspInit, type VspToParent } from "./vsp-protocol.js";

/** What a VSP thread may use of its host. */
export interface VspThreadHost {
  /**
   * Host files for drives given by path (Node: disk-formats' NodeFileHost, blocking: no write
   * of a killed worker outlives it); absent: a drive's path is an http(s) URL.
   */
  readonly files?: () => StoreHost;
  /** A 9P server over a host directory (Node: virtio's NinePServer); absent: no 9p shares. */
  readonly ninePServer?: (share: { path: string; readOnly: boolean; maxMsize: number }) => NinePHandler & {
    close(): Promise<void>;
  };
  /** fetch for drives given by URL (default: the global one, called bound). */
  readonly fetch?: typeof fetch;
}

/** Serves one VSP (`self.data` is its VspInit) until the parent stops or terminates the thread. */
export function runVspThread(self: ThreadSelf, host: VspThreadHost = {}): void {
  const init = self.data as VspInit;
  const send = (m: VspToParent, transfer?: ArrayBuffer[]) => self.postMessage(m, transfer ?? []);

  let ram: GrantedMemory | undefined;
  let channel: DataPlaneChannel | undefined;
  let doorbell: Int32Array | undefined;
  let stopping = false;
  let receiveFrame: ((frame: Uint8Array) => void) | null = null;

  // Modules load at spawn (a warm spare waits in "loaded"); the resource opens on "open", when this worker takes over.
  let closeResource: (() => Promise<void>) | undefined;

  type Vsp = VspService & { input?(bytes: Uint8Array): void };

  /** A custom VSP's `createVsp`, imported at spawn; a module that fails to load is reported on "open". */
  let customCreate: CreateVsp | undefined;
  let loadError: Error | undefined;
  async function load(): Promise<void> {
    if (init.kind !== "custom") return;
    try {
      const mod = (await import(/* @vite-ignore */ init.module)) as { createVsp?: unknown };
      if (typeof mod.createVsp !== "function") throw new Error(`${init.module} exports no createVsp function`);
      customCreate = mod.createVsp as CreateVsp;
    } catch (e) {
      loadError = e instanceof Error ? e : new Error(String(e));
    }
  }

  async function createVsp(): Promise<Vsp> {
    if (init.kind === "custom") {
      if (!customCreate) throw loadError ?? new Error(`${init.module}: not loaded`);
      const v = (await customCreate({ name: init.name, data: init.data, guestMemory: () => ram })) as Vsp | undefined;
      if (!v || typeof v.attach !== "function")
        throw new Error(`${init.name}: createVsp returned no service (an object with attach(channel))`);
      return v;
    }
    if (init.kind === "storage") {
      const d = init.drive;
      // fetch passed bound: a browser rejects an unbound call of its fetch ("Illegal invocation").
      const doFetch = host.fetch ?? ((input: Parameters<typeof fetch>[0], i?: RequestInit) => fetch(input, i));
      // A Blob drive, else host files where the host has them (Node), else the path is a URL.
      const files: StoreHost =
        d.file !== undefined
          ? new RemoteHost({ [d.path]: d.file }, { fetch: doFetch })
          : host.files
            ? host.files()
            : new RemoteHost({}, { fetch: doFetch });
      const image = await openImage(files, d.path, {
        format: d.format as FormatName | undefined,
        readOnly: d.readOnly,
      });
      return new StorageVsp(image, () => ram);
    }
    if (init.kind === "9p") {
      const s = init.share;
      if (!host.ninePServer) throw new Error("this host has no 9p server (host directories are Node only)");
      const server = host.ninePServer(s);
      closeResource = () => server.close();
      return new NinePVsp(server);
    }
    if (init.kind === "network") {
      const frames = batcher((items) => send({ kind: "frames", frames: items }));
      const backend: NetBackend = {
        send: (frame) => frames(frame.slice()),
        setReceiver: (r) => {
          receiveFrame = r;
        },
      } as NetBackend;
      return new NetworkVsp(backend);
    }
    const out = batcher((items) => send({ kind: "console", chunks: items }));
    return new ConsoleVsp((bytes) => out(bytes.slice()));
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
      vsp = await createVsp();
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown };
      send({
        kind: "error",
        message: String(err.message ?? e),
        code: typeof err.code === "string" ? err.code : undefined,
      });
      self.exit(1);
      return;
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

  const loaded = load();
  self.onMessage((message) => {
    const m = message as ToVsp;
    if (m.kind === "open") {
      void loaded.then(open);
      return;
    }
    if (!vsp) {
      if (m.kind === "stop") self.exit(0); // a spare that never took over
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
          self.exit(0);
        })();
        return;
    }
  });
  void loaded.then(() => send({ kind: "loaded" }));
}
