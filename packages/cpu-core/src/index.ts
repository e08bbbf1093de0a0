export { CpuError, CpuErrorCode } from "./errors.js";
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
