// The parent (root) partition's thread: what Hyper-V's root partition and its
// per-VM worker process do. It owns the host's resources, creates the child
// partition through hypercalls, loads the guest through a temporary grant,
// emulates the legacy devices whose MMIO it intercepts (the 16550 UART and
// the test finisher, as Hyper-V's worker process emulates COM ports), and
// answers the child's routed SBI calls (console, reset).
//
// Host-neutral: worker.ts runs it in a Node worker thread; a browser's Worker
// bundle calls `runParentThread(await webThreadSelf(), host)`.
import { HART_ISA, HART_MMU, parseElf } from "@ringzero/cpu-core";
import {
  decodeIntercept,
  type GrantedMemory,
  HvClient,
  HvStatus,
  type HvThreadInit,
  INTERCEPT_SINT,
  type Intercept,
  type ThreadSelf,
  unwrap,
  type VpControl,
} from "@ringzero/hypervisor-micro";
import { buildVirtDeviceTree, loadLinuxBoot, SifiveTest, Uart16550, VIRT } from "@ringzero/platform";
import { ParentDevices, PRIVATE_GPA, PRIVATE_SIZE } from "./devices.js";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";
import type { ParentHost } from "./host.js";
import { readGuestImages } from "./images.js";
import type { FromHost, ParentInit, ParentStats, PowerOffReason, ToHost } from "./protocol.js";

/** The command line when none is given (as hypervisor-monolithic). */
const DEFAULT_APPEND = "console=ttyS0";
const VIRTIO_CONSOLE_APPEND = "console=hvc1";

class Parent {
  readonly hv: HvClient;
  private vp: VpControl | undefined;
  private childId = 0;
  private readonly input: number[] = [];
  /**
   * Hold host input until a Linux guest's 8250 driver is receiving (received-data
   * interrupt on, FIFO enabled: what it does last when a tty opens the port;
   * probe and startup clear the FIFO), as hypervisor-monolithic does. ELF
   * guests may poll with interrupts off: input at once.
   */
  private holdInputUntilReceiving = false;
  private done = false;
  private readonly stats: { intercepts: Record<string, number>; badIntercepts: number } = {
    intercepts: {},
    badIntercepts: 0,
  };
  readonly uart = new Uart16550({
    irq: { set: (level) => this.vp?.assertInterrupt(VIRT.uart.irq, level) },
    onTransmit: (bytes) => this.send({ kind: "console", bytes: bytes.slice() }),
  });
  readonly finisher = new SifiveTest((e) => {
    if (e.kind === "pass") this.powerOff(0, "finisher-pass");
    else if (e.kind === "fail") this.powerOff(e.code, "finisher-fail");
    else this.powerOff(0, "finisher-reset");
  });
  private boot: { pc: number; a1: number; mode: "supervisor" | "machine" } | undefined;
  private devices: ParentDevices | undefined;
  /** The StopVp call of a power-off, once made. */
  private stopping: Promise<unknown> | undefined;

  constructor(
    hvInit: HvThreadInit,
    private readonly data: ParentInit,
    private readonly host: ParentHost,
    private readonly send: (m: ToHost) => void,
  ) {
    this.hv = new HvClient(hvInit);
  }

  /** Creates the child partition and loads the guest; the VP is created on "start". */
  async prepare(): Promise<void> {
    const data = this.data;
    const c = data.config;
    const images = readGuestImages(c, { kernel: data.kernelBytes, initrd: data.initrdBytes }, this.host.images);
    const hv = this.hv;
    this.devices = await ParentDevices.open(
      c,
      (bytes) => this.send({ kind: "console", bytes: bytes.slice() }),
      this.host,
      data.files,
      data.vsps ?? [],
    );
    this.childId = (await hv.must("CreatePartition", { name: "child" })).partitionId;
    const child = this.childId;
    await hv.must("MapGpaPages", { partitionId: child, gpa: VIRT.ram.base, size: c.memory, kind: "ram" });
    // The paravisor's own pages (VMBus rings): the guest cannot address them.
    if (this.devices.needsBus)
      await hv.must("MapGpaPages", { partitionId: child, gpa: PRIVATE_GPA, size: PRIVATE_SIZE, kind: "private" });
    // Loading: a grant of the child's RAM to this partition, revoked before the child runs.
    const { grantId } = await hv.must("GrantPages", {
      partitionId: child,
      gpa: VIRT.ram.base,
      size: c.memory,
      grantee: hv.partitionId,
      writable: true,
    });
    const ram = unwrap("AcceptGrant", await hv.acceptGrant(grantId));
    try {
      this.boot =
        images.kind === "linux" ? this.loadLinux(ram, images.kernel, images.initrd) : this.loadElf(ram, images.kernel);
      this.holdInputUntilReceiving = images.kind === "linux";
    } finally {
      await hv.must("RevokeGrant", { grantId });
    }
    // Legacy devices emulated here: the child's accesses become intercept messages.
    await hv.must("InstallIntercept", { partitionId: child, base: VIRT.uart.base, size: VIRT.uart.size });
    await hv.must("InstallIntercept", { partitionId: child, base: VIRT.test.base, size: VIRT.test.size });
  }

  private loadLinux(ram: GrantedMemory, kernel: Uint8Array, initrd: Uint8Array | undefined) {
    const c = this.data.config;
    const rngSeed = new Uint8Array(64);
    crypto.getRandomValues(rngSeed);
    const loaded = loadLinuxBoot(
      {
        ramBase: ram.gpa,
        ramSize: ram.size,
        write: (pa, bytes) => {
          if (!ram.write(pa, bytes))
            throw new MicroVmError(MicroVmErrorCode.KERNEL_FORMAT, { pa }, "image outside RAM");
        },
      },
      {
        kernel,
        initrd,
        dtb: (layout) =>
          buildVirtDeviceTree({
            memory: { base: ram.gpa, size: ram.size },
            isa: HART_ISA,
            devices: { virtio: (this.devices?.paravisor ?? []).map((d) => d.slot) },
            mmuType: `riscv,${HART_MMU}`,
            chosen: {
              bootargs: c.append ?? (c.console === "virtio" ? VIRTIO_CONSOLE_APPEND : DEFAULT_APPEND),
              initrd: layout.initrd ? { start: layout.initrd.start, end: layout.initrd.end } : undefined,
              rngSeed,
            },
          }),
      },
    );
    return { pc: loaded.layout.entry, a1: loaded.layout.dtb.start, mode: "supervisor" as const };
  }

  private loadElf(ram: GrantedMemory, bytes: Uint8Array) {
    const img = parseElf(bytes);
    for (const s of img.segments) {
      if (s.memSize === 0) continue;
      const body = new Uint8Array(s.memSize);
      body.set(bytes.subarray(s.offset, s.offset + s.fileSize));
      if (!ram.write(s.paddr, body))
        throw new MicroVmError(MicroVmErrorCode.KERNEL_FORMAT, { paddr: s.paddr }, "ELF segment outside RAM");
    }
    return {
      pc: Number(img.entry),
      a1: 0,
      mode: this.data.config.bios === "sbi" ? ("supervisor" as const) : ("machine" as const),
    };
  }

  async start(): Promise<void> {
    const boot = this.boot;
    const data = this.data;
    if (!boot) throw new Error("prepare() first");
    const r = await this.hv.createVp({
      partitionId: this.childId,
      vpIndex: 0,
      boot: {
        pc: boot.pc,
        a0: 0,
        a1: boot.a1,
        mode: boot.mode,
        maxInstructions: data.maxInstructions,
        deterministic: data.deterministic,
      },
      paravisor: data.paravisor,
      paravisorData: { parent: this.hv.partitionId, devices: this.devices?.paravisor ?? [] },
      engine: data.engine,
    });
    this.vp = unwrap("CreateVp", r);
    await this.devices?.serve(this.hv, this.childId);
    void this.serve();
  }

  /** The parent's event loop: intercept messages from the child on SINT 0. */
  private async serve(): Promise<void> {
    const q = this.hv.queue(INTERCEPT_SINT);
    while (!this.done) {
      const seen = this.hv.doorbell;
      for (let m = q.take(); m; m = q.take()) {
        const i = decodeIntercept(m.type, m.payload);
        if (!i || m.origin !== this.childId) {
          this.stats.badIntercepts++;
          continue;
        }
        this.stats.intercepts[i.kind] = (this.stats.intercepts[i.kind] ?? 0) + 1;
        this.intercept(i);
      }
      this.feedUart();
      await this.devices?.poll(this.hv);
      if (this.vp?.stopped && !this.done) this.powerOff(1, "error", "the child's VP thread ended");
      if (this.done) break;
      await this.hv.waitDoorbell(seen, 200);
    }
  }

  private intercept(i: Intercept): void {
    const vp = this.vp;
    if (!vp) return;
    switch (i.kind) {
      case "mmio": {
        const dev = this.deviceAt(i.address);
        if (i.write) {
          dev?.device.write(i.address - dev.base, i.size, i.size === 8 ? i.value : Number(i.value));
          if (!i.posted) {
            const status = dev ? HvStatus.SUCCESS : HvStatus.INVALID_PARAMETER;
            // a write that powered off (the finisher) completes once the VP is stopped: no
            // instruction runs after it
            if (this.stopping) void this.stopping.then(() => vp.completeIntercept(i.seq, status));
            else vp.completeIntercept(i.seq, status);
          }
        } else {
          const v = dev?.device.read(i.address - dev.base, i.size);
          vp.completeIntercept(i.seq, v === undefined ? HvStatus.INVALID_PARAMETER : HvStatus.SUCCESS, BigInt(v ?? 0));
        }
        this.feedUart();
        return;
      }
      case "sbi":
        if (i.op === "write") this.send({ kind: "console", bytes: i.bytes });
        else {
          const bytes = this.input.splice(0, Math.min(i.max, 8));
          let v = 0n;
          bytes.forEach((b, k) => {
            v |= BigInt(b) << BigInt(8 * k);
          });
          vp.completeIntercept(i.seq, HvStatus.SUCCESS, v, BigInt(bytes.length));
        }
        return;
      case "reset":
        if (i.type === "shutdown") this.powerOff(i.reason === 0 ? 0 : 1, "shutdown");
        else this.powerOff(0, "reboot", i.type);
        return;
      case "halt":
        this.powerOff(i.code, i.reason);
        return;
    }
  }

  private deviceAt(address: number) {
    if (address >= VIRT.uart.base && address < VIRT.uart.base + VIRT.uart.size)
      return { base: VIRT.uart.base, device: this.uart };
    if (address >= VIRT.test.base && address < VIRT.test.base + VIRT.test.size)
      return { base: VIRT.test.base, device: this.finisher };
    return undefined;
  }

  sendInput(bytes: Uint8Array): void {
    if (this.devices?.consoleInput(bytes)) return;
    for (const b of bytes) this.input.push(b);
    this.feedUart();
    // Wake our own loop so the UART interrupt reaches the child now.
    Atomics.add(this.hv.area, 0, 1);
    Atomics.notify(this.hv.area, 0);
  }

  private feedUart(): void {
    if (this.input.length === 0 || (this.holdInputUntilReceiving && !(this.uart.receiving && this.uart.fifoEnabled)))
      return;
    const n = this.uart.pushInput(Uint8Array.from(this.input.slice(0, 16)));
    this.input.splice(0, n);
  }

  async statsNow(): Promise<ParentStats> {
    return {
      intercepts: { ...this.stats.intercepts },
      badIntercepts: this.stats.badIntercepts,
      uart: { ...this.uart.counters } as unknown as Record<string, number>,
      devices: this.devices ? await this.devices.stats() : undefined,
    };
  }

  /** Fault injection and servicing (`vsp kill NAME`, `vsp restart NAME`). */
  async vsp(action: "kill" | "restart", name: string): Promise<{ ok: boolean; message: string }> {
    const targets = this.devices?.find(name) ?? [];
    if (targets.length === 0) {
      const known = (this.devices?.vsps ?? []).map((v) => v.name).join(", ") || "none";
      return { ok: false, message: `no VSP named ${name} (this VM has: ${known})` };
    }
    const r = await Promise.allSettled(targets.map((v) => (action === "kill" ? v.kill() : v.restart())));
    const failed = r.flatMap((x) => (x.status === "rejected" ? [String((x.reason as Error).message)] : []));
    if (failed.length > 0) return { ok: false, message: failed.join("; ") };
    return {
      ok: true,
      message: `${action === "kill" ? "killed" : "restarted"} ${targets.map((v) => v.name).join(", ")}`,
    };
  }

  /** The balloon's target (`pages`, if given) and state, through the control channel to the paravisor. */
  async balloon(id: number, pages?: number): Promise<void> {
    try {
      const status = await this.devices?.balloon(pages);
      if (status) this.send({ kind: "balloon", id, status });
      else
        this.send({
          kind: "balloon",
          id,
          error: "no balloon device (run with --balloon), or its driver is not up yet",
        });
    } catch (e) {
      this.send({ kind: "balloon", id, error: `the balloon did not answer: ${(e as Error).message}` });
    }
  }

  powerOff(status: number, reason: PowerOffReason, detail?: string): void {
    if (this.done) return;
    this.done = true;
    if (this.childId)
      this.stopping = this.hv.call("StopVp", { partitionId: this.childId, vpIndex: 0 }).catch(() => undefined);
    // the host reads the VP's counters once it has powered off: wait (bounded) for the VP thread
    // to end, so its last slice is counted and no instruction runs after
    void this.vpEnded()
      .then(() => this.devices?.close())
      .finally(() => this.send({ kind: "poweroff", status, reason, detail }));
  }

  private async vpEnded(): Promise<void> {
    await this.stopping;
    const until = performance.now() + VP_END_WAIT_MS;
    while (this.vp && !this.vp.stopped && performance.now() < until) await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * Runs the parent partition in this thread: `self.data` is `{ hv, data }` as
 * the microkernel's startRoot passes it. Answers "ready" (or "error") once the
 * guest is loaded, then serves until power-off.
 */
/** How long a power-off waits for the child's VP thread to end before reporting anyway. */
const VP_END_WAIT_MS = 2000;

export async function runParentThread(self: ThreadSelf, host: ParentHost): Promise<void> {
  const { hv, data } = self.data as { hv: HvThreadInit; data: ParentInit };
  const send = (m: ToHost) => self.postMessage(m);
  const parent = new Parent(hv, data, host, send);
  self.onMessage((message) => {
    const m = message as FromHost;
    if (m.kind === "input") parent.sendInput(m.bytes);
    else if (m.kind === "stop") parent.powerOff(0, "stopped");
    else if (m.kind === "stats") void parent.statsNow().then((stats) => send({ kind: "stats", id: m.id, stats }));
    else if (m.kind === "vsp") void parent.vsp(m.action, m.name).then((r) => send({ kind: "vsp", id: m.id, ...r }));
    else if (m.kind === "balloon") void parent.balloon(m.id, m.pages);
    else if (m.kind === "start")
      parent.start().catch((e) =>
        send({
          kind: "error",
          code: MicroVmErrorCode.HYPERCALL_FAILED,
          message: String(e?.message ?? e),
          context: {},
        }),
      );
  });
  try {
    await parent.prepare();
    send({ kind: "ready" });
  } catch (e) {
    const err = e as { code?: string; message?: string; context?: Record<string, unknown>; status?: number };
    const code =
      e instanceof MicroVmError
        ? e.code
        : err.status !== undefined
          ? MicroVmErrorCode.HYPERCALL_FAILED
          : MicroVmErrorCode.KERNEL_FORMAT;
    send({ kind: "error", code, message: String(err.message ?? e), context: err.context ?? {} });
  }
}
