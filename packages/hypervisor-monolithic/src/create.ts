// A Vm from a VmConfig (the schema both hypervisors share, in @ringzero/platform):
// reads the kernel and initrd files, recognises the kernel (RISC-V Linux
// Image, Image.gz, ELF) and loads it as QEMU virt's boot path would.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { type Engine, loadElf, parseElf } from "@ringzero/cpu-core";
import { detectKernelFormat, type VmConfigInput, VmConfigSchema } from "@ringzero/platform";
import { DEFAULT_APPEND, VIRTIO_CONSOLE_APPEND } from "./append.js";
import { attachDevices, type VmDevices } from "./devices.js";
import { VmError, VmErrorCode } from "./errors.js";
import { Vm } from "./vm.js";

export { DEFAULT_APPEND, VIRTIO_CONSOLE_APPEND, VmError, VmErrorCode };

export interface CreateVmOptions {
  /** Console output (UART transmit and SBI console). */
  readonly consoleOut: (bytes: Uint8Array) => void;
  /** Power off (reason "instruction-limit") after this many instructions. */
  readonly maxInstructions?: number;
  /**
   * What executes guest code: the binary translator or the interpreter; default the
   * RINGZERO_ENGINE environment variable when it names one, else the hart's default (the translator).
   */
  readonly engine?: Engine;
  /** Time from instructions (instret / 10), not the host: see BoardOptions.deterministic. */
  readonly deterministic?: boolean;
}

/** RINGZERO_ENGINE when it names an engine ("interpreter" or "translator"). */
function engineFromEnv(): Engine | undefined {
  const e = typeof process === "undefined" ? undefined : process.env.RINGZERO_ENGINE;
  return e === "interpreter" || e === "translator" ? e : undefined;
}

/**
 * What `createVm` takes: a VmConfig whose kernel and initrd may also be the
 * file's bytes (a browser has no files) and whose memory may be a size string
 * as `ringzero --memory` and `ringzero-img` read it ("256M", "1.5G", "262144K";
 * @ringzero/disk-formats' `parseSize`; a string without a suffix is bytes).
 */
export type CreateVmConfig = Omit<VmConfigInput, "kernel" | "initrd" | "memory"> & {
  kernel: string | Uint8Array;
  initrd?: string | Uint8Array;
  memory?: number | string;
};

/** Largest decompressed Image.gz accepted (a hostile file must not exhaust memory). */
const MAX_KERNEL = 256 * 1024 * 1024;

/**
 * Creates a VM from a VmConfig and loads its guest: a Linux `Image` (or
 * Image.gz) with the built-in SBI, initrd and command line; or an ELF, in
 * S-mode on the SBI or bare metal in M-mode (`bios: "none"`, with HTIF
 * `tohost` honoured when the ELF has the symbol). The config's virtio
 * devices (drives through @ringzero/disk-formats, user networking through
 * @ringzero/net-stack, 9p shares, console, rng, balloon) are opened and
 * placed in the virtio-mmio slots; their host resources close when the VM stops.
 */
export async function createVm(config: CreateVmConfig, options: CreateVmOptions): Promise<Vm & { devices: VmDevices }> {
  // Bytes stand in the schema as a name for messages; a size string becomes bytes.
  const kernelBytes = config.kernel instanceof Uint8Array ? config.kernel : undefined;
  const initrdBytes = config.initrd instanceof Uint8Array ? config.initrd : undefined;
  let memory = config.memory;
  if (typeof memory === "string") {
    const { parseSize } = await import("@ringzero/disk-formats");
    const bytes = parseSize(memory);
    if (bytes === null)
      throw new VmError(VmErrorCode.CONFIG_INVALID, { path: "memory" }, `memory: invalid size "${memory}" (try 256M)`);
    memory = bytes;
  }
  const parsed = VmConfigSchema.safeParse({
    ...config,
    memory,
    kernel: kernelBytes ? "(kernel bytes)" : config.kernel,
    initrd: initrdBytes ? "(initrd bytes)" : config.initrd,
  });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new VmError(VmErrorCode.CONFIG_INVALID, { path: i.path.join(".") }, `${i.path.join(".")}: ${i.message}`);
  }
  const c = parsed.data;
  let kernel = kernelBytes ?? readHostFile(c.kernel, VmErrorCode.KERNEL_UNREADABLE, "kernel");
  let format = detectKernelFormat(kernel);
  if (format === "gzip") {
    try {
      kernel = gunzipSync(kernel, { maxOutputLength: MAX_KERNEL });
    } catch (e) {
      throw new VmError(
        VmErrorCode.KERNEL_FORMAT,
        { path: c.kernel },
        `cannot decompress ${c.kernel}: ${(e as Error).message}`,
      );
    }
    format = detectKernelFormat(kernel);
  }
  if (format !== "linux-image" && format !== "elf") {
    throw new VmError(
      VmErrorCode.KERNEL_FORMAT,
      { path: c.kernel },
      `${c.kernel} is neither a RISC-V Linux Image nor an ELF file`,
    );
  }
  const linux = format === "linux-image";
  if (linux && c.bios === "none") {
    throw new VmError(
      VmErrorCode.BIOS_MISMATCH,
      { path: c.kernel },
      "a Linux Image needs an SBI: use bios sbi (the default), not none",
    );
  }
  if (!linux && (c.initrd !== undefined || c.append !== undefined)) {
    throw new VmError(
      VmErrorCode.KERNEL_FORMAT,
      { path: c.kernel },
      "an initrd and a command line need a Linux Image kernel",
    );
  }
  const initrd =
    initrdBytes ??
    (c.initrd === undefined ? undefined : readHostFile(c.initrd, VmErrorCode.INITRD_UNREADABLE, "initrd"));
  const tohost = linux ? undefined : parseElf(kernel).symbols.get("tohost");
  const vm = new Vm({
    memory: c.memory,
    sbi: c.bios === "sbi",
    consoleOut: options.consoleOut,
    tohost: tohost === undefined ? undefined : Number(tohost),
    maxInstructions: options.maxInstructions,
    engine: options.engine ?? engineFromEnv(),
    deterministic: options.deterministic,
  });
  // Devices first: loadLinux writes their slots into the device tree.
  const devices = await attachDevices(vm, c, { consoleOut: options.consoleOut });
  try {
    if (linux) {
      // hvc_riscv_sbi (CONFIG_HVC_RISCV_SBI, in the reference config) always takes hvc0, so the
      // virtio console is hvc1 (drivers/tty/hvc/hvc_console.c: hvc_alloc picks the next free index).
      vm.loadLinux({
        kernel,
        initrd,
        append: c.append ?? (c.console === "virtio" ? VIRTIO_CONSOLE_APPEND : DEFAULT_APPEND),
      });
    } else {
      vm.boot(Number(loadElf(vm.bus, kernel).entry), 0);
    }
  } catch (e) {
    await vm.release(); // the opened back ends (listening sockets, image files) must not outlive the failure
    throw e;
  }
  return Object.assign(vm, { devices });
}

function readHostFile(path: string, code: VmErrorCode, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new VmError(
      code,
      { path },
      `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}
