// `ringzero` command-line entry: argument parsing (zod-validated) and dispatch.
import { rmSync } from "node:fs";
import type { Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { PowerOff, Vm } from "@ringzero/hypervisor-monolithic";
import { createVm } from "@ringzero/hypervisor-monolithic/node";
import type { BalloonStatus, MicroPowerOff } from "@ringzero/partition-parent/node";
import type { VmConfigInput } from "@ringzero/platform";
import { argsError, packageVersion, tryHelp } from "./args.js";
import { DemoError, DemoErrorCode } from "./errors.js";
import { nonZeroCounts } from "./format.js";
import { reported } from "./reported.js";
import * as z from "./zod.js";

const USAGE = `usage: ringzero run [--bios sbi|none] [--kernel FILE] [--initrd FILE] [--append CMDLINE] [--memory SIZE] [options]
       ringzero compare [--runs N] [--kernel Image --initrd FILE] [--json F] [--svg F] [--html F]  (see compare --help)
       ringzero --help | --version | COMMAND --help

  --bios sbi         (default) the hypervisor's built-in SBI; the kernel starts in S-mode
  --bios none        no firmware: the ELF starts in M-mode at its entry (bare metal)
  --kernel FILE      a RISC-V Linux Image (or Image.gz), or an ELF guest
                     (default: the embedded demo guest)
  --initrd FILE      an initramfs for a Linux Image
  --append CMDLINE   the Linux command line (default "console=ttyS0")
  --memory SIZE      guest RAM, e.g. 256M or 1G (default 256M)
  --drive FILE[,format=raw|qcow2|vmdk|vdi|vpc|vhdx|parallels][,readonly]
                     a virtio-blk disk (repeatable: vda, vdb, ...); QEMU's
                     file=FILE,format=FMT,if=virtio spelling works too
  --net user[,hostfwd=tcp:HOSTPORT-GUESTPORT][,restrict=on][,pcap=FILE]
           [,dns-upstream=IP[:PORT]][,listen=PATH|127.0.0.1:PORT][,mac=MAC]
           [,net=ADDR/PREFIX][,host=IP][,dns=IP][,dhcpstart=IP]
                     virtio-net on user-mode networking (10.0.2.0/24, gateway
                     10.0.2.2 = the host's loopback); listen= puts it on a
                     switch other ringzero processes join; --net none (default)
  --net socket,connect=PATH|127.0.0.1:PORT[,mac=MAC]
                     virtio-net on the switch of a ringzero run with listen=
  --share DIR[,tag=T][,readonly]
                     a host directory over virtio-9p (mount -t 9p -o trans=virtio T /mnt);
                     QEMU's -virtfs spelling local,path=DIR,mount_tag=T works too
  --console uart|virtio  the console on the 16550 UART (ttyS0, default) or
                     virtio-console (the default --append becomes console=hvc1:
                     Linux gives hvc0 to its SBI console driver)
  --rng              a virtio-rng device
  --balloon          a virtio-balloon device, driven through --monitor
  --monitor PATH     a control socket (Unix): balloon SIZE, info balloon, info stats, quit;
                     under micro: vsp kill|restart storage|9p|network|console, info vsp,
                     info stats, quit
  --max-instructions N  stop after N instructions (exit status 124)
  --stats[=json]     print instructions, exits and MIPS to stderr at the end
                     (=json: one JSON object on one line, for scripts)
  --deterministic    time from instructions (instret / 10), not the host; WFI
                     spins: without input the guest runs the same every time
  --engine interpreter|translator
                     what executes guest code (default translator, or RINGZERO_ENGINE)
  --hypervisor monolithic|micro
                     monolithic (default): one thread, every device inline (ESXi-style);
                     micro: a microkernel with the guest's vCPU in a child partition
                     thread and the legacy devices in a parent partition thread
                     (Hyper-V-style), virtio back ends in the parent over VMBus

The board has QEMU virt's map: RAM at 0x80000000, UART 16550A at 0x10000000
(the console on stdio), goldfish RTC, PLIC, CLINT, the SiFive test finisher
at 0x100000 (0x5555 → exit 0, (code<<16)|0x3333 → exit code); an ELF 'tohost'
symbol is honoured (HTIF). On a terminal the console is raw: Ctrl-A x quits.
`;

const RunOptions = z.object({
  hypervisor: z._default(z.enum(["monolithic", "micro"], { error: 'must be "monolithic" or "micro"' }), "monolithic"),
  bios: z._default(z.enum(["sbi", "none"], { error: 'must be "sbi" or "none"' }), "sbi"),
  kernel: z.optional(z.string().check(z.minLength(1))),
  initrd: z.optional(z.string().check(z.minLength(1))),
  append: z.optional(z.string().check(z.maxLength(4096, "longer than Linux's 4 KiB command line"))),
  memory: z.optional(z.string()),
  "max-instructions": z.optional(
    z.pipe(z.string().check(z.regex(/^\d+$/, "must be a whole number")), z.transform(Number)),
  ),
  stats: z._default(z.boolean(), false),
  deterministic: z._default(z.boolean(), false),
  console: z._default(z.enum(["uart", "virtio"], { error: 'must be "uart" or "virtio"' }), "uart"),
  rng: z._default(z.boolean(), false),
  balloon: z._default(z.boolean(), false),
  monitor: z.optional(z.string().check(z.minLength(1))),
  engine: z.optional(z.enum(["interpreter", "translator"], { error: 'must be "interpreter" or "translator"' })),
});

/** Guest RAM without --memory (USAGE: 256M). */
const DEFAULT_MEMORY = 256 * 1024 * 1024;

/** The embedded demo guest shipped with the package. */
export function embeddedGuestPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here, "..", "guests", "hello", "hello.elf");
}

export interface Io {
  stdout: (bytes: Uint8Array) => void;
  stderr: (text: string) => void;
  /** Console input; a TTY is put in raw mode with the Ctrl-A escape. */
  stdin?: NodeJS.ReadStream;
}

/**
 * The microkernel stack's error class, once `run --hypervisor micro` loaded it: `compare` and
 * the micro stack are imported when used, so `ringzero run` on the monolithic hypervisor starts
 * without loading them (about 70 ms of module loading).
 */
let microVmError: (abstract new (...args: never[]) => Error) | undefined;

/** Run the command; resolves to the process exit status. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    if (reported(e, microVmError)) {
      io.stderr(`ringzero: ${e.message}\n`);
      return 1; // usage errors, bad values and failures alike, as qemu and qemu-img
    }
    throw e;
  }
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === "--help" || verb === "-h" || verb === "help") {
    io.stdout(new TextEncoder().encode(USAGE));
    return 0;
  }
  if (verb === "--version" || verb === "-V") {
    io.stdout(new TextEncoder().encode(`ringzero version ${packageVersion()}\n`));
    return 0;
  }
  if (verb === undefined) {
    io.stderr(USAGE);
    return 1;
  }
  if (verb === "compare") return (await import("./compare/command.js")).compareCommand(rest, io);
  if (verb !== "run") throw new DemoError(DemoErrorCode.USAGE, { verb }, `unknown command "${verb}"\n${tryHelp()}`);
  // --stats=json / --stats=text (a boolean flag with an optional format, as QEMU's -d: its own parse)
  let statsFormat = "text" as "text" | "json";
  const args = rest.map((a) => {
    const m = /^--stats=(.*)$/.exec(a);
    if (!m) return a;
    if (m[1] !== "json" && m[1] !== "text")
      throw new DemoError(
        DemoErrorCode.USAGE,
        { option: "stats" },
        `--stats: "${m[1]}" is not json or text\n${tryHelp("run")}`,
      );
    statsFormat = m[1];
    return "--stats";
  });
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        bios: { type: "string" },
        kernel: { type: "string" },
        initrd: { type: "string" },
        append: { type: "string" },
        memory: { type: "string", short: "m" },
        "max-instructions": { type: "string" },
        stats: { type: "boolean" },
        deterministic: { type: "boolean" },
        drive: { type: "string", multiple: true },
        net: { type: "string" },
        share: { type: "string", multiple: true },
        console: { type: "string" },
        rng: { type: "boolean" },
        balloon: { type: "boolean" },
        monitor: { type: "string" },
        hypervisor: { type: "string" },
        engine: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw argsError(e, "run", rest);
  }
  if (values.help) {
    io.stdout(new TextEncoder().encode(USAGE));
    return 0;
  }
  const parsed = RunOptions.safeParse(values);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DemoError(DemoErrorCode.USAGE, { option: i.path.join(".") }, `--${i.path.join(".")}: ${i.message}`);
  }
  const opts = parsed.data;
  // the device specs' parsers (and net-stack's -netdev parser) load only when a device is asked for
  const specs =
    values.drive !== undefined || values.share !== undefined || values.net !== undefined
      ? await import("./specs.js")
      : undefined;
  const drives = specs ? ((values.drive as string[] | undefined) ?? []).map(specs.parseDrive) : [];
  const shares = specs ? ((values.share as string[] | undefined) ?? []).map(specs.parseShare) : [];
  const net = specs && values.net !== undefined ? specs.parseNet(values.net as string) : undefined;
  // --memory's parser is @ringzero/disk-formats' parseSize: loaded only when the option is given
  const memory = opts.memory === undefined ? DEFAULT_MEMORY : (await import("./size.js")).parseMemorySize(opts.memory);
  const config = {
    memory,
    bios: opts.bios,
    kernel: opts.kernel ?? embeddedGuestPath(),
    initrd: opts.initrd,
    append: opts.append,
    drives,
    shares,
    net,
    console: opts.console,
    rng: opts.rng,
    balloon: opts.balloon,
  };
  if (opts.hypervisor === "micro") {
    return runMicro(config, opts.stats ? statsFormat : undefined, io, opts.monitor, {
      memory,
      maxInstructions: opts["max-instructions"],
      engine: opts.engine,
      deterministic: opts.deterministic,
    });
  }
  const vm = await createVm(config, {
    consoleOut: io.stdout,
    maxInstructions: opts["max-instructions"],
    engine: opts.engine,
    deterministic: opts.deterministic,
  });
  const monitor = opts.monitor
    ? await (await import("./monitor.js")).startMonitor(opts.monitor, vm, vm.devices, memory)
    : undefined;
  const detach = attachConsole(vm, io);
  let r: PowerOff;
  try {
    r = await vm.start();
  } finally {
    detach();
    monitor?.close();
    if (opts.monitor) rmSync(opts.monitor, { force: true });
  }
  if (opts.stats && statsFormat === "json") {
    const b = vm.devices.balloon;
    const json = {
      hypervisor: "monolithic",
      ...vm.stats(),
      devices: Object.fromEntries(vm.devices.transports.map((t) => [t.name, { ...t.transport.counters }])),
      balloon: b ? { target: b.target, actual: b.actual, ...b.stats } : undefined,
    };
    io.stderr(`${JSON.stringify(json)}\n`);
  } else if (opts.stats) {
    const s = vm.stats();
    const exits = nonZeroCounts(s.exits);
    io.stderr(
      `ringzero: ${s.instructions} instructions in ${s.runSeconds.toFixed(3)} s (${s.mips.toFixed(1)} MIPS), idle ${s.idleSeconds.toFixed(3)} s; exits: ${exits}; SBI calls ${s.sbiCalls}\n`,
    );
    const tr = s.translator;
    if (tr) {
      const blocks = tr.blockInstructions + tr.interpreted || 1;
      io.stderr(
        `ringzero: translator: blocks ${tr.blocksTranslated} (${tr.wasmBlocks} WebAssembly), compile ${tr.compileMs.toFixed(0)} ms, ${((100 * tr.blockInstructions) / blocks).toFixed(1)} % of instructions in blocks, ${(tr.blockInstructions / (tr.blockCalls || 1)).toFixed(1)} per block call, page invalidations ${tr.pageInvalidations}, flushes ${tr.flushes}, fence.i ${tr.fences}, chained calls ${tr.chainedCalls}\n`,
      );
    }
    for (const t of vm.devices.transports) {
      const c = nonZeroCounts(t.transport.counters);
      if (c) io.stderr(`ringzero: ${t.name} guest errors: ${c}\n`);
    }
    const b = vm.devices.balloon;
    if (b) {
      const bs = b.stats;
      io.stderr(
        `ringzero: balloon ${b.actual} pages held, inflated ${bs.inflatedPages}, deflated ${bs.deflatedPages}, released ${bs.releasedBytes} bytes\n`,
      );
    }
  }
  switch (r.reason) {
    case "instruction-limit":
      io.stderr(`ringzero: stopped after ${vm.stats().instructions} instructions (--max-instructions)\n`);
      return 124;
    case "wfi-forever":
      io.stderr("ringzero: the guest waits (WFI) with every interrupt disabled and can never wake; stopping\n");
      return 1;
    default:
      return r.status;
  }
}

/** `run --hypervisor micro`: the microkernel here, the parent and the child partition in worker threads. */
async function runMicro(
  config: VmConfigInput,
  stats: "text" | "json" | undefined,
  io: Io,
  monitorPath: string | undefined,
  o: { memory: number; maxInstructions?: number; engine?: "interpreter" | "translator"; deterministic?: boolean },
): Promise<number> {
  const [{ createMicroVm, MicroVmError }, { paravisorModuleUrl }] = await Promise.all([
    import("@ringzero/partition-parent/node"),
    import("@ringzero/partition-child"),
  ]);
  microVmError = MicroVmError;
  const vm = await createMicroVm(config, {
    consoleOut: io.stdout,
    paravisor: paravisorModuleUrl(),
    maxInstructions: o.maxInstructions,
    engine: o.engine,
    deterministic: o.deterministic,
  });
  let monitor: Server | undefined;
  try {
    if (monitorPath) {
      const { microMonitorCommand, startCommandMonitor } = await import("./monitor.js");
      monitor = await startCommandMonitor(monitorPath, (l) => microMonitorCommand(vm, o.memory, l));
    }
  } catch (e) {
    vm.stop();
    throw e;
  }
  const detach = attachConsole(vm, io);
  let r: MicroPowerOff;
  try {
    r = await vm.start();
  } finally {
    detach();
    monitor?.close();
    if (monitorPath) rmSync(monitorPath, { force: true });
  }
  if (stats === "json") io.stderr(`${JSON.stringify({ hypervisor: "micro", ...(await vm.stats()) })}\n`);
  else if (stats) {
    const s = await vm.stats();
    const v = s.vp;
    const seconds = (v.runMicros ?? 0) / 1e6;
    io.stderr(
      `ringzero: ${v.instructions ?? 0} instructions in ${seconds.toFixed(3)} s (${seconds > 0 ? ((v.instructions ?? 0) / seconds / 1e6).toFixed(1) : "0.0"} MIPS), idle ${((v.idleMicros ?? 0) / 1e6).toFixed(3)} s; exits by path: microkernel ${v.exitsMicrokernel ?? 0}, paravisor ${v.exitsParavisor ?? 0}, intercept ${v.exitsIntercept ?? 0}, wfi ${v.exitsWfi ?? 0}; intercept wait ${((v.interceptWaitMicros ?? 0) / 1e6).toFixed(3)} s\n`,
    );
    if (v.translatorBlocks)
      io.stderr(`ringzero: translator: blocks ${v.translatorBlocks} (${v.translatorWasmBlocks ?? 0} WebAssembly)\n`);
    io.stderr(`ringzero: hypercalls: ${nonZeroCounts(s.kernel.hypercalls)}\n`);
    // Per device channel, as its VSP worker counted it (packets and signals, both directions).
    for (const [name, d] of Object.entries(s.parent.devices ?? {})) {
      const c = d as Record<string, unknown>;
      if (typeof c !== "object" || c === null || !("vsp" in c) || typeof c.packetsIn !== "number") continue;
      io.stderr(
        `ringzero: vmbus ${name}: packets in ${c.packetsIn} out ${c.packetsOut}, signals in ${c.signalsIn} out ${c.signalsOut}\n`,
      );
    }
    const b = s.parent.devices?.balloon as BalloonStatus | undefined;
    if (b) {
      // As under mono, from the balloon's last report over VMBus (monitor `info balloon` refreshes it).
      io.stderr(
        `ringzero: balloon ${b.actual} pages held, inflated ${b.inflatedPages}, deflated ${b.deflatedPages}, released ${b.releasedBytes} bytes\n`,
      );
    }
  }
  if (r.reason === "instruction-limit") {
    io.stderr(`ringzero: stopped after ${(await vm.stats()).vp.instructions ?? 0} instructions (--max-instructions)\n`);
    return 124;
  }
  if (r.reason === "wfi-forever") {
    io.stderr("ringzero: the guest waits (WFI) with every interrupt disabled and can never wake; stopping\n");
    return 1;
  }
  return r.status;
}

const CTRL_A = 0x01;

/** Console input: raw mode with QEMU's Ctrl-A escape on a terminal, plain bytes from a pipe. */
function attachConsole(vm: Pick<Vm, "sendInput" | "stop">, io: Io): () => void {
  const stdin = io.stdin;
  if (!stdin) return () => {};
  const tty = stdin.isTTY === true;
  let escaped = false;
  const onData = (chunk: Buffer) => {
    if (!tty) {
      vm.sendInput(chunk);
      return;
    }
    const out: number[] = [];
    for (const b of chunk) {
      if (escaped) {
        escaped = false;
        if (b === 0x78 /* x */) {
          io.stderr("\r\nringzero: terminated\r\n");
          vm.stop();
          return;
        }
        out.push(b); // Ctrl-A Ctrl-A sends one Ctrl-A; other keys pass through
      } else if (b === CTRL_A) {
        escaped = true;
      } else {
        out.push(b);
      }
    }
    if (out.length) vm.sendInput(Uint8Array.from(out));
  };
  if (tty) stdin.setRawMode(true);
  stdin.on("data", onData);
  stdin.resume();
  return () => {
    stdin.off("data", onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
  };
}
