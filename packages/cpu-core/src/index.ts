export { type ElfImage, type ElfSegment, loadElf, parseElf } from "./elf.js";
export { CpuError, CpuErrorCode } from "./errors.js";
export { Bus, type BusConfig, BusConfigSchema } from "./hart/bus.js";
export { expandCompressed } from "./hart/compressed.js";
export {
  Cause,
  Csr,
  Irq,
  MIP_MEIP,
  MIP_MSIP,
  MIP_MTIP,
  MIP_SEIP,
  MIP_SSIP,
  MIP_STIP,
  PRV_M,
  PRV_S,
  PRV_U,
} from "./hart/constants.js";
export { Hart, type HartExit, type HartOptions } from "./hart/hart.js";
export {
  createRegisterFile,
  FREG_ABI,
  NUM_FREGS,
  NUM_XREGS,
  type RegisterFile,
  readX,
  writeX,
  XLEN,
  XREG_ABI,
} from "./regs.js";
