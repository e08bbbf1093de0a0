// The parent thread's handle on one VSP worker: it starts the worker, hands
// it the channel's data plane once the child opens the channel, forwards the
// child's signals to it, and when the worker ends (killed, crashed, or
// restarted on request) rescinds the channel, starts a successor and offers
// the device again (vmbus.md §4: rescind, RELID_RELEASED, re-offer with the
// same channel ID). The child's VSC re-issues what was in flight.
import type { GrantedMemory, HostThread, SharedSintConnection } from "@ringzero/hypervisor-micro";
import { channelDataPlane, type ServerChannel, type VmbusServer } from "@ringzero/vmbus";
import type { ParentHost } from "./host.js";
import type { ToVsp, VspInit, VspKind, VspToParent } from "./vsp-protocol.js";

export interface VspHostCounters {
  /** Workers started after the first. */
  restarts: number;
  /** Ends the parent asked for abruptly (`vsp kill`). */
  kills: number;
  /** Ends nobody asked for (an exception, an exit). */
  crashes: number;
  /** Graceful restarts. */
  graceful: number;
  /** Rescinds sent because the serving worker ended. */
  rescinds: number;
  /** Ring violations the worker found (the channel is rescinded and re-offered). */
  violations: number;
  /** Frames or bytes for a worker that was not serving (dropped). */
  dropped: number;
}

/** A worker that dies this many times in a row within CRASH_WINDOW_MS of its start is not restarted again. */
const CRASH_LOOP = 5;
const CRASH_WINDOW_MS = 1000;

export interface VspHostOptions {
  readonly name: string;
  readonly kind: VspKind;
  readonly init: VspInit;
  readonly interfaceId: string;
  readonly instanceId: string;
  /** The wait before a successor after a kill (default 0: see onExit). */
  readonly killGraceMs?: number;
  /** Hand the worker the child's RAM grant with the data plane (storage always has it). */
  readonly guestMemory?: boolean;
  /** Network frames and console bytes from the worker. */
  readonly onFrames?: (frames: Uint8Array[]) => void;
  readonly onConsole?: (chunks: Uint8Array[]) => void;
}

export class VspHost {
  readonly counters: VspHostCounters = {
    restarts: 0,
    kills: 0,
    crashes: 0,
    graceful: 0,
    rescinds: 0,
    violations: 0,
    dropped: 0,
  };
  private worker: HostThread | undefined;
  private ready = false;
  private attached: ServerChannel | undefined;
  private channel: ServerChannel | undefined;
  private server: VmbusServer | undefined;
  private env: { sint: SharedSintConnection; ram: () => GrantedMemory | undefined } | undefined;
  private readonly doorbell = new Int32Array(new SharedArrayBuffer(4));
  private ending: "kill" | "graceful" | "violation" | undefined;
  private closed = false;
  private startedAt = 0;
  private quickDeaths = 0;
  private lastCounters: Record<string, number> = {};
  private readonly counterWaiters = new Map<number, (c: Record<string, number>) => void>();
  private nextCountersId = 1;
  private readonly exitWaiters: (() => void)[] = [];
  private spare: Promise<HostThread | undefined> | undefined;

  constructor(
    private readonly host: Pick<ParentHost, "threads" | "vspModule">,
    readonly o: VspHostOptions,
  ) {}

  get name(): string {
    return this.o.name;
  }

  /** Spawns a worker and resolves once its modules are loaded (undefined if it ended first). */
  private spawn(): Promise<HostThread | undefined> {
    return new Promise((resolve) => {
      const w = this.host.threads.spawn(this.host.vspModule, this.o.init);
      const off = w.onMessage((m) => {
        if ((m as VspToParent).kind !== "loaded") return;
        off();
        resolve(w);
      });
      w.onExit(() => resolve(undefined)); // an error is reported through the exit
    });
  }

  /**
   * Starts serving: a warm spare takes over if one is loaded, else a new
   * worker; rejects with the worker's message if it cannot open its resource.
   * After a restart, the next spare loads in the background.
   */
  async start(): Promise<void> {
    const spare = this.spare;
    this.spare = undefined;
    const warm = spare ? await spare : undefined;
    if (warm?.alive) await this.takeOver(warm);
    else {
      const w = await this.spawn();
      if (!w) throw new Error(`the ${this.o.name} VSP ended while loading`);
      await this.takeOver(w);
    }
    if (this.counters.restarts > 0 && !this.closed) this.spare = this.spawn();
  }

  private takeOver(w: HostThread): Promise<void> {
    return new Promise((resolve, reject) => {
      this.worker = w;
      this.ready = false;
      this.startedAt = performance.now();
      let settled = false;
      w.onMessage((message) => {
        const m = message as VspToParent;
        if (m.kind === "ready") {
          this.ready = true;
          if (!settled) {
            settled = true;
            resolve();
          }
          this.attach();
        } else if (m.kind === "error") {
          if (!settled) {
            settled = true;
            reject(Object.assign(new Error(m.message), { code: m.code }));
          }
        } else this.onMessage(m);
      });
      w.onError((e) => {
        if (!settled) {
          settled = true;
          reject(e);
        }
      });
      w.onExit(() => {
        if (!settled) {
          settled = true;
          reject(new Error(`the ${this.o.name} VSP exited while starting`));
        }
        if (this.worker === w) this.onExit();
      });
      w.postMessage({ kind: "open" } satisfies ToVsp);
    });
  }

  /** Offers the device on `server`; the data plane goes to the worker whenever the channel opens. */
  offer(server: VmbusServer, sint: SharedSintConnection, ram: () => GrantedMemory | undefined): void {
    this.server = server;
    this.env = { sint, ram };
    this.watch(server.offer({ interfaceId: this.o.interfaceId, instanceId: this.o.instanceId }));
  }

  private watch(ch: ServerChannel): void {
    this.channel = ch;
    ch.onSignal(() => {
      if (this.attached !== ch) return;
      Atomics.add(this.doorbell, 0, 1);
      Atomics.notify(this.doorbell, 0);
    });
    ch.onStateChange((state) => {
      if (state === "open") this.attach();
      else if (this.attached === ch) {
        this.attached = undefined;
        this.post({ kind: "detach" });
      }
    });
  }

  private attach(): void {
    const ch = this.channel;
    const env = this.env;
    if (!ch || !env || !this.ready || this.attached === ch || ch.state !== "open") return;
    const plane = channelDataPlane(ch);
    if (!plane) return;
    this.attached = ch;
    this.post({
      kind: "attach",
      plane,
      signal: env.sint,
      doorbell: this.doorbell.buffer as SharedArrayBuffer,
      ram: this.o.kind === "storage" || this.o.guestMemory ? env.ram()?.transfer() : undefined,
    });
  }

  private post(m: ToVsp): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: VspToParent): void {
    switch (m.kind) {
      case "frames":
        this.o.onFrames?.(m.frames);
        return;
      case "console":
        this.o.onConsole?.(m.chunks);
        return;
      case "counters":
        this.lastCounters = m.counters; // id 0: the final ones, sent as the worker stops
        this.counterWaiters.get(m.id)?.(m.counters);
        this.counterWaiters.delete(m.id);
        return;
      case "violation":
        // The guest end corrupted its ring: end this worker (so nothing touches the ring pages
        // the child will reuse), rescind, and serve the re-offer from a fresh one.
        this.counters.violations++;
        this.ending = "violation";
        void this.worker?.terminate();
        return;
      case "stopped":
        return;
    }
  }

  /** Network frames for the guest; dropped (counted) while no worker serves the channel. */
  sendFrames(frames: Uint8Array[]): void {
    if (!this.worker || this.attached === undefined) {
      this.counters.dropped += frames.length;
      return;
    }
    this.post({ kind: "frames", frames });
  }

  input(bytes: Uint8Array): void {
    if (!this.worker) {
      this.counters.dropped++;
      return;
    }
    this.post({ kind: "input", bytes });
  }

  /** Abrupt: the worker is terminated wherever it is, requests and all. Resolves once a successor runs. */
  kill(): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error(`${this.o.name} is not running (restarting or given up)`));
    this.ending = "kill";
    const exited = this.nextExit();
    void w.terminate();
    return exited;
  }

  /** Graceful: the worker answers what it holds, closes its resource and ends; a successor takes over. */
  restart(): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error(`${this.o.name} is not running (restarting or given up)`));
    this.ending = "graceful";
    const exited = this.nextExit();
    this.post({ kind: "stop" });
    return exited;
  }

  private settleExits(): void {
    for (const w of this.exitWaiters.splice(0)) w();
  }

  private nextExit(): Promise<void> {
    return new Promise((r) => this.exitWaiters.push(r));
  }

  private onExit(): void {
    this.worker = undefined;
    this.ready = false;
    const how = this.ending;
    this.ending = undefined;
    if (this.closed) {
      // The VM is powering off (close()): the end was asked for, not a crash.
      this.settleExits();
      return;
    }
    if (how === "kill") this.counters.kills++;
    else if (how === "graceful") this.counters.graceful++;
    else if (how === undefined) this.counters.crashes++; // a violation is counted where it is found
    const quick = performance.now() - this.startedAt < CRASH_WINDOW_MS && how === undefined;
    this.quickDeaths = quick ? this.quickDeaths + 1 : 0;
    this.rescindAndReoffer();
    if (this.quickDeaths >= CRASH_LOOP) {
      // A crash loop: leave the device rescinded; the child's requests fail after its own timeout.
      this.settleExits();
      return;
    }
    this.counters.restarts++;
    // No wait by default: "exit" comes after Node ended the worker's environment, which cancels
    // its queued file requests and waits for the running ones (CleanupHandles; vsp-host.test.ts),
    // so nothing of the dead worker lands on a file the successor opens; the storage VSP's image
    // I/O is moreover blocking, on the worker's own thread. A custom VSP whose resources outlive
    // its worker (a process it started, say) asks for a wait (killGraceMs).
    const grace = how === "graceful" ? 0 : (this.o.killGraceMs ?? 0);
    new Promise((r) => setTimeout(r, grace))
      .then(() => this.start())
      .then(
        () => {
          this.settleExits();
        },
        () => {
          this.counters.crashes++;
          this.settleExits();
        },
      );
  }

  /** Rescinds an opened channel and queues the re-offer (sent when the child releases the ID). */
  private rescindAndReoffer(): void {
    const ch = this.channel;
    const server = this.server;
    if (!ch || !server) return;
    if (ch.state !== "open" && ch.state !== "opening" && ch.state !== "closing") return; // never opened, or already rescinded
    if (this.attached === ch) {
      this.attached = undefined;
      this.post({ kind: "detach" });
    }
    this.counters.rescinds++;
    server.revoke(ch);
    this.watch(server.offer({ interfaceId: this.o.interfaceId, instanceId: this.o.instanceId }));
  }

  /** The worker's counters (the last known ones if it does not answer within 500 ms). */
  async deviceCounters(): Promise<Record<string, number>> {
    const w = this.worker;
    if (!w) return this.lastCounters;
    const id = this.nextCountersId++;
    const c = await new Promise<Record<string, number>>((resolve) => {
      const timer = setTimeout(() => resolve(this.lastCounters), 500);
      this.counterWaiters.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.post({ kind: "counters", id });
    });
    this.lastCounters = c;
    return c;
  }

  /** Ends the worker for good (the VM is powering off): a graceful stop, terminated after 2 s. */
  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = undefined;
    if (spare) void spare.then((w) => w?.terminate());
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((r) => w.onExit(() => r()));
    this.post({ kind: "stop" });
    const timer = setTimeout(() => void w.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
