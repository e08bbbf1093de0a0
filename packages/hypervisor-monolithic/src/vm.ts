// The monolithic (ESXi-style) hypervisor: one thread, one vCPU loop that
// handles every exit by direct calls into the board's devices and the SBI
// (ARCHITECTURE.md §4). Fast and simple; a fault in any device model is a
// fault of the whole hypervisor.
import {
  Bus,
  Csr,
  type Engine,
  HART_ISA,
  HART_MMU,
  Hart,
  type HartExit,
  MIP_MEIP,
  MIP_MSIP,
  MIP_MTIP,
  MIP_SEIP,
  MIP_SSIP,
  type TranslatorStats,
} from "@ringzero/cpu-core";
import {
  buildVirtDeviceTree,
  Clint,
  EmptyVirtioSlot,
  enterKernel,
  type FinisherEvent,
  GoldfishRtc,
  hostTickClock,
  type IrqLine,
  type LoadedLinux,
  loadLinuxBoot,
  type MmioDevice,
  MmioMap,
  Plic,
  type ResetType,
  SbiServer,
  SifiveTest,
  serveMmioExit,
  Uart16550,
  VIRT,
  yieldToHost,
} from "@ringzero/platform";

/** How the VM ended. */
export interface PowerOff {
  /** Process-style status: 0 for a clean shutdown or finisher pass, the code otherwise. */
  readonly status: number;
  readonly reason:
    | "shutdown"
    | "reboot"
    | "finisher-pass"
    | "finisher-fail"
    | "finisher-reset"
    | "htif"
    | "stopped"
    | "instruction-limit"
    | "wfi-forever";
  readonly detail?: string;
}

export interface VmStats {
  instructions: number;
  /** Seconds spent in the vCPU loop (not paused, not sleeping in WFI). */
  runSeconds: number;
  /** Seconds the vCPU slept in WFI waiting for an interrupt. */
  idleSeconds: number;
  exits: Record<HartExit["kind"], number>;
  sbiCalls: number;
  mips: number;
  /** The binary translator's counters (engine "translator"), or undefined. */
  translator?: TranslatorStats;
}

export type VmState = "created" | "running" | "paused" | "stopped";

export interface BoardOptions {
  readonly memory: number;
  /** Console output (UART transmit and SBI console). */
  readonly consoleOut: (bytes: Uint8Array) => void;
  /** ticks at 10 MHz; default host monotonic time. */
  readonly clock?: () => number;
  /** Host wall clock for the RTC in ns; default Date.now(). */
  readonly wallClockNs?: () => bigint;
  /** Start the guest in S-mode with the built-in SBI (true) or in M-mode bare metal (false). */
  readonly sbi: boolean;
  /** HTIF tohost physical address (the ELF symbol), for riscv-tests-style guests. */
  readonly tohost?: number;
  /** Power off (reason "instruction-limit") after this many instructions. */
  readonly maxInstructions?: number;
  /** What executes guest code: the binary translator (default, cpu-core's DEFAULT_ENGINE) or the interpreter. */
  readonly engine?: Engine;
  /**
   * Time from instructions, not the host: the hart's `time` CSR, the CLINT's
   * mtime and the RTC all read instret / 10 (ticks at 10 MHz; the RTC 100 ns
   * per tick), so a guest's run depends only on its instructions and input.
   * WFI does not sleep (a no-op: the guest spins, time moves on with its
   * instructions). Overrides `clock` and `wallClockNs`.
   */
  readonly deterministic?: boolean;
}

export interface LinuxInput {
  /** The kernel's `Image` file (arch/riscv/boot/Image). */
  readonly kernel: Uint8Array;
  readonly initrd?: Uint8Array;
  /** The kernel command line (/chosen bootargs). */
  readonly append?: string;
}

const SLICE_INSTRUCTIONS = 2_000_000;
const YIELD_MS = 20;

/**
 * One virtual machine on QEMU virt's board: RAM, one hart, PLIC, CLINT, UART,
 * goldfish RTC, test finisher, and (with `sbi`) the SBI answering the hart's
 * S-mode ecalls. Load images into `bus` and set the entry with `boot()`.
 */
export class Vm {
  readonly bus: Bus;
  readonly hart: Hart;
  readonly plic: Plic;
  readonly clint: Clint;
  readonly uart: Uart16550;
  readonly rtc: GoldfishRtc;
  readonly finisher: SifiveTest;
  readonly mmio = new MmioMap();
  readonly sbi: SbiServer | undefined;
  private readonly clock: () => number;
  private stateValue: VmState = "created";
  private result: PowerOff | undefined;
  private readonly input: number[] = [];
  /**
   * Hold host input until the guest's UART driver is receiving: for a Linux
   * guest, until a tty has opened the port — the received-data interrupt on
   * and the FIFO enabled, which Linux's 8250 driver does last in its startup
   * (its probe turns every interrupt on for a moment with the FIFO off, and
   * probe and startup read RBR and clear the FIFO: input fed earlier is
   * lost). ELF guests may poll the UART with interrupts off: input at once.
   */
  private holdInputUntilReceiving = false;
  private readonly virtioSlots: number[] = [];
  private consoleInput: ((bytes: Uint8Array) => void) | undefined;
  private readonly stopHooks: (() => void | Promise<void>)[] = [];
  private wake: (() => void) | undefined;
  private resumeWaiter: (() => void) | undefined;
  private readonly statsValue: VmStats = {
    instructions: 0,
    runSeconds: 0,
    idleSeconds: 0,
    exits: { mmio: 0, ecall: 0, wfi: 0, budget: 0, breakpoint: 0, magic: 0, halt: 0 },
    sbiCalls: 0,
    mips: 0,
  };

  constructor(private readonly options: BoardOptions) {
    // deterministic: the hart's own time (its default timeSource, instret / 10) for every clock
    this.clock = options.deterministic
      ? () => Number(this.hart.debugReadCsr(Csr.time) ?? 0n)
      : (options.clock ?? hostTickClock());
    this.bus = new Bus({ ramBase: VIRT.ram.base, ramSize: options.memory });
    const hart = new Hart(this.bus, {
      sbiEcallExit: options.sbi,
      timeSource: options.deterministic ? undefined : () => this.clock(),
      tohost: options.tohost,
      engine: options.engine,
      // traces compile at once (WebAssembly.Module): compiling them on V8's threads while the
      // interpreter goes on left them waiting for the next yield to the event loop, and the Linux
      // kit's boot took longer (64 % of it in traces against 75 %: cpu-core README, Engines)
    });
    this.hart = hart;
    // An interrupt raised from outside the vCPU loop (a device completing host
    // I/O while the hart sleeps in WFI) wakes the loop at once.
    const line = (mask: number) => ({
      set: (level: boolean) => {
        hart.setInterrupt(mask, level);
        if (level) this.wake?.();
      },
    });
    // PLIC contexts: 0 = hart 0 M-mode (MEIP), 1 = hart 0 S-mode (SEIP), as QEMU virt
    this.plic = new Plic([line(MIP_MEIP), line(MIP_SEIP)], { ndev: VIRT.plic.ndev });
    this.clint = new Clint([{ msip: line(MIP_MSIP), mtip: line(MIP_MTIP) }], this.clock);
    this.clint.reset(); // the hart exists: its lines take QEMU's reset levels (MTIP high)
    this.uart = new Uart16550({ irq: this.plic.irq(VIRT.uart.irq), onTransmit: options.consoleOut });
    this.rtc = new GoldfishRtc({
      irq: this.plic.irq(VIRT.rtc.irq),
      clock: options.deterministic
        ? () => BigInt(this.clock()) * 100n
        : (options.wallClockNs ?? (() => BigInt(Date.now()) * 1_000_000n)),
    });
    this.finisher = new SifiveTest((e) => this.onFinisher(e));
    this.mmio
      .add("test", VIRT.test.base, VIRT.test.size, this.finisher)
      .add("rtc", VIRT.rtc.base, VIRT.rtc.size, this.rtc)
      .add("clint", VIRT.clint.base, VIRT.clint.size, this.clint)
      .add("plic", VIRT.plic.base, VIRT.plic.size, this.plic)
      .add("uart", VIRT.uart.base, VIRT.uart.size, this.uart);
    // Eight virtio-mmio transports as on QEMU virt: empty ones say "no device" (DeviceID 0).
    for (let slot = 0; slot < VIRT.virtio.count; slot++) {
      this.mmio.add(
        `virtio${slot}`,
        VIRT.virtio.base + slot * VIRT.virtio.stride,
        VIRT.virtio.size,
        new EmptyVirtioSlot(),
      );
    }
    this.sbi = options.sbi
      ? new SbiServer({
          hartCount: 1,
          // SBI 2.0 §6.1 through Sstc, as OpenSBI does on harts that have it: STIP follows
          // time >= stimecmp, so programming the timer also clears a pending one.
          setTimer: (_h, t) => {
            hart.writeCsr(Csr.stimecmp, t);
          },
          consoleWrite: (b) => options.consoleOut(b),
          consoleRead: (max) => Uint8Array.from(this.input.splice(0, max)),
          sendIpi: () => hart.setInterrupt(MIP_SSIP, true),
          clearIpi: () => hart.setInterrupt(MIP_SSIP, false),
          // SBI RFENCE (v2.0 §8): fence.i also drops stale translations under the translator
          remoteFence: (_h, kind) => (kind === "fence.i" ? hart.fenceI() : hart.flushTlb()),
          reset: (type, reason) => this.onReset(type, reason),
          readGuest: (pa, len) =>
            this.bus.inRam(Number(pa), len) ? this.bus.read(Number(pa), len).slice() : undefined,
          writeGuest: (pa, data) => {
            if (!this.bus.inRam(Number(pa), data.length)) return false;
            this.bus.write(Number(pa), data);
            return true;
          },
        })
      : undefined;
  }

  get state(): VmState {
    return this.stateValue;
  }

  /**
   * Set the hart up as firmware leaves it for a kernel (SBI boot: S-mode,
   * a0 = hart id, a1 = device tree; RISC-V Linux boot protocol) or at a
   * bare-metal entry (M-mode).
   */
  boot(entry: number, dtb = 0): void {
    if (!this.options.sbi) {
      this.hart.pc = entry;
      return;
    }
    // What OpenSBI does before jumping to the kernel (platform's enterKernel).
    enterKernel(this.hart, { entry, dtb, hartId: 0 });
  }

  /**
   * Puts a device in virtio-mmio slot `slot` (0..7: 0x1000_1000 + slot·0x1000,
   * PLIC source 1 + slot, as QEMU virt) and returns its interrupt line. Slots
   * attached before `loadLinux()` get device-tree nodes.
   */
  attachVirtio(slot: number, device: MmioDevice): IrqLine {
    const v = VIRT.virtio;
    if (!Number.isInteger(slot) || slot < 0 || slot >= v.count || this.virtioSlots.includes(slot)) {
      throw new RangeError(`virtio-mmio slot ${slot} is not free (slots 0..${v.count - 1})`);
    }
    this.mmio.remove(`virtio${slot}`);
    this.mmio.add(`virtio${slot}`, v.base + slot * v.stride, v.size, device);
    this.virtioSlots.push(slot);
    return this.plic.irq(v.firstIrq + slot);
  }

  /**
   * Load a RISC-V Linux `Image` (and initramfs) the way QEMU virt's firmware
   * hands them over, with a device tree of this board (bootargs, initrd range,
   * stdout-path, rng-seed), and set the hart at the kernel entry
   * (Documentation/riscv/boot.rst: S-mode, a0 = hart id, a1 = DTB, MMU off).
   */
  loadLinux(input: LinuxInput): LoadedLinux {
    const rngSeed = new Uint8Array(64);
    crypto.getRandomValues(rngSeed);
    const loaded = loadLinuxBoot(this.bus, {
      kernel: input.kernel,
      initrd: input.initrd,
      dtb: (layout) =>
        buildVirtDeviceTree({
          memory: { base: this.bus.ramBase, size: this.bus.ramSize },
          isa: HART_ISA,
          devices: { virtio: [...this.virtioSlots] },
          mmuType: `riscv,${HART_MMU}`,
          chosen: {
            bootargs: input.append ?? "",
            initrd: layout.initrd ? { start: layout.initrd.start, end: layout.initrd.end } : undefined,
            rngSeed,
          },
        }),
    });
    this.boot(loaded.layout.entry, loaded.layout.dtb.start);
    this.holdInputUntilReceiving = true;
    return loaded;
  }

  /** Feed console input (bytes typed on the host) to the guest's UART and SBI console. */
  sendInput(bytes: Uint8Array): void {
    if (this.consoleInput) this.consoleInput(bytes);
    else for (const b of bytes) this.input.push(b);
    this.wake?.();
  }

  /** Route console input elsewhere (a virtio console) instead of the UART. */
  setConsoleInput(sink: ((bytes: Uint8Array) => void) | undefined): void {
    this.consoleInput = sink;
  }

  /** Runs `fn` when the VM stops (device back ends close their host resources). */
  onStop(fn: () => void | Promise<void>): void {
    this.stopHooks.push(fn);
  }

  pause(): void {
    if (this.stateValue === "running") this.stateValue = "paused";
  }

  resume(): void {
    if (this.stateValue === "paused") {
      this.stateValue = "running";
      this.resumeWaiter?.();
    }
  }

  /** Stop the VM from the host; start() resolves with reason "stopped". */
  stop(): void {
    this.powerOff({ status: 0, reason: "stopped" });
    this.resumeWaiter?.();
  }

  stats(): VmStats {
    const s = this.statsValue;
    s.instructions = this.hart.instret;
    s.sbiCalls = this.sbi?.stats.calls ?? 0;
    s.mips = s.runSeconds > 0 ? s.instructions / s.runSeconds / 1e6 : 0;
    const tr = this.hart.translatorStats();
    return { ...s, exits: { ...s.exits }, ...(tr === undefined ? {} : { translator: { ...tr } }) };
  }

  /** Run until the guest powers off or stop() is called. */
  async start(): Promise<PowerOff> {
    if (this.stateValue !== "created") throw new Error(`Vm.start() in state ${this.stateValue}`);
    this.stateValue = "running";
    const hart = this.hart;
    while (this.result === undefined) {
      if (this.state === "paused") {
        await new Promise<void>((r) => {
          this.resumeWaiter = r;
        });
        this.resumeWaiter = undefined;
        continue;
      }
      const t0 = performance.now();
      const until = t0 + YIELD_MS;
      let idle = false;
      const limit = this.options.maxInstructions ?? Number.POSITIVE_INFINITY;
      while (this.result === undefined && this.state === "running") {
        this.feedUart();
        if (hart.instret >= limit) {
          this.powerOff({ status: 124, reason: "instruction-limit" });
          break;
        }
        const exit = hart.run(Math.min(SLICE_INSTRUCTIONS, limit - hart.instret));
        this.statsValue.exits[exit.kind]++;
        if (exit.kind === "mmio") this.mmioExit(exit);
        else if (exit.kind === "ecall") {
          if (this.sbi) this.sbi.handle(0, hart.x);
        } else if (exit.kind === "halt") {
          this.powerOff({ status: exit.code, reason: "htif" });
          break;
        } else if (exit.kind === "wfi") {
          // deterministic: WFI is a no-op (priv 1.12 §3.3.3 allows it): time moves only with
          // instructions, so the guest spins on to its timer deadline instead of sleeping
          if (!this.options.deterministic || hart.mie === 0) {
            idle = true;
            break;
          }
        } else {
          this.clint.poll();
          this.rtc.poll();
        }
        // Every exit kind checks the clock: a guest polling a device register
        // (an MMIO exit per iteration) must still let host I/O completions in.
        if (performance.now() >= until) break;
      }
      this.statsValue.runSeconds += (performance.now() - t0) / 1000;
      if (this.result !== undefined) break;
      if (idle) await this.sleepUntilInterrupt();
      else await yieldToHost();
    }
    await this.release();
    return this.result as PowerOff;
  }

  /**
   * Runs the `onStop` hooks now (once): device back ends close their host
   * resources. `start()` does it when the guest ends; call it for a VM that
   * will never start.
   */
  async release(): Promise<void> {
    for (const hook of this.stopHooks.splice(0)) {
      try {
        await hook();
      } catch {
        // a back end failing to close must not hide how the VM ended
      }
    }
  }

  private mmioExit(exit: Extract<HartExit, { kind: "mmio" }>): void {
    serveMmioExit(this.hart, this.mmio, exit);
  }

  /** Move queued host input into the UART's receive FIFO as it has room. */
  private feedUart(): void {
    if (this.input.length === 0 || (this.holdInputUntilReceiving && !(this.uart.receiving && this.uart.fifoEnabled)))
      return;
    const n = this.uart.pushInput(Uint8Array.from(this.input.slice(0, 16)));
    this.input.splice(0, n);
  }

  /** WFI with nothing pending: sleep until the next timer deadline or host input, never spin. */
  private async sleepUntilInterrupt(): Promise<void> {
    const t0 = performance.now();
    for (;;) {
      this.clint.poll();
      this.rtc.poll();
      this.feedUart();
      const now = this.clock();
      if (this.hart.interruptPending() || this.result !== undefined || this.stateValue !== "running") break;
      if (this.hart.mie === 0) {
        // WFI with every interrupt disabled can never wake (QEMU would hang): end the VM instead.
        this.powerOff({ status: 1, reason: "wfi-forever", detail: "WFI with every interrupt disabled in mie" });
        break;
      }
      const deadline = Math.min(this.hart.nextTimerDeadline(), this.clint.nextDeadline());
      const rtcMs = this.rtc.nanosUntilAlarm() / 1e6;
      const ms = Math.min(1000, (deadline - now) / (VIRT.timebaseFrequency / 1000), rtcMs);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(0, ms));
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
    this.statsValue.idleSeconds += (performance.now() - t0) / 1000;
  }

  private onFinisher(e: FinisherEvent): void {
    if (e.kind === "pass") this.powerOff({ status: 0, reason: "finisher-pass" });
    else if (e.kind === "fail") this.powerOff({ status: e.code, reason: "finisher-fail" });
    else this.powerOff({ status: 0, reason: "finisher-reset" });
  }

  private onReset(type: ResetType, reason: number): void {
    if (type === "shutdown") this.powerOff({ status: reason === 0 ? 0 : 1, reason: "shutdown" });
    else this.powerOff({ status: 0, reason: "reboot", detail: type });
  }

  private powerOff(r: PowerOff): void {
    if (this.result !== undefined) return;
    this.result = r;
    this.stateValue = "stopped";
    this.wake?.();
  }
}
