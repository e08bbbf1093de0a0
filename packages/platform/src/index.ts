export {
  Clint,
  type ClintHartLines,
  type ClintState,
  ClintStateSchema,
  hostTickClock,
} from "./devices/clint.js";
export { PlatformError, PlatformErrorCode } from "./devices/errors.js";
export {
  GoldfishRtc,
  type GoldfishRtcOptions,
  type GoldfishRtcState,
  GoldfishRtcStateSchema,
  hostWallClockNs,
} from "./devices/goldfish-rtc.js";
export { serveMmioExit } from "./devices/mmio-exit.js";
export {
  Plic,
  type PlicConfig,
  PlicConfigSchema,
  type PlicState,
  PlicStateSchema,
} from "./devices/plic.js";
export {
  type FinisherEvent,
  SifiveTest,
  type SifiveTestCounters,
  type SifiveTestState,
  SifiveTestStateSchema,
} from "./devices/sifive-test.js";
export {
  type AccessCounters,
  type AccessSize,
  EmptyVirtioSlot,
  type IrqLine,
  type MmioDevice,
  MmioMap,
  type MmioRegion,
  NO_IRQ,
  VIRT,
} from "./devices/types.js";
export {
  Uart16550,
  type UartConfig,
  UartConfigSchema,
  type UartCounters,
  type UartOptions,
  type UartState,
  UartStateSchema,
} from "./devices/uart16550.js";
export {
  type DtbOptions,
  FDT_MAGIC,
  FdtNode,
  type FdtReservation,
  writeDtb,
} from "./fdt/dtb.js";
export {
  buildVirtDeviceTree,
  buildVirtFdt,
  parseIsaString,
  VIRT_PATHS,
  type VirtDeviceTreeOptions,
  VirtDeviceTreeOptionsSchema,
} from "./fdt/virt.js";
export { scheduleMacrotask, yieldToHost } from "./host-yield.js";
export {
  detectKernelFormat,
  type KernelFormat,
  LINUX_IMAGE_HEADER_SIZE,
  type LinuxImage,
  parseLinuxImage,
} from "./loaders/linux-image.js";
export {
  type BootLayout,
  type BootPlanInput,
  type GuestRam,
  KERNEL_ALIGN,
  type LinuxBootInput,
  type LoadedLinux,
  loadLinuxBoot,
  loadRaw,
  MAX_DTB_SIZE,
  planLinuxBoot,
  type Range,
} from "./loaders/placement.js";
export { enterKernel, type KernelEntry } from "./sbi/enter-kernel.js";
export {
  type ResetType,
  SBI_IMPL_ID,
  SbiError,
  SbiExtension,
  type SbiHost,
  SbiServer,
  type SbiStats,
} from "./sbi/sbi.js";
export {
  DRIVE_FORMATS,
  type DriveConfig,
  DriveConfigSchema,
  type NetConfig,
  NetConfigSchema,
  type ShareConfig,
  ShareConfigSchema,
  type VmConfig,
  type VmConfigInput,
  VmConfigSchema,
} from "./vm-config.js";
