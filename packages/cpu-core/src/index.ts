export { type ElfImage, type ElfSegment, loadElf, parseElf } from "./elf.js";
export { CpuError, CpuErrorCode } from "./errors.js";
export {
  classifyF32,
  classifyF64,
  execFp,
  FFLAG,
  type FpContext,
  f32Add,
  f32Div,
  f32Fma,
  f32Mul,
  f32Sqrt,
  f32Sub,
  f64Add,
  f64Div,
  f64Fma,
  f64Mul,
  f64Sqrt,
  f64Sub,
  RM,
} from "./fpu/index.js";
export { Bus, type BusConfig, BusConfigSchema, type BusMemory, BusMemorySchema, HART_STATE_BYTES } from "./hart/bus.js";
export { expandCompressed } from "./hart/compressed.js";
export {
  Cause,
  Csr,
  HART_ISA,
  HART_MMU,
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
export { Hart, type HartExit, type HartOptions, warmUp } from "./hart/hart.js";
export { DEFAULT_ENGINE, ENGINES, type Engine, type TranslatorStats } from "./hart/translator.js";
export type { WasmMemory } from "./hart/wasm-api.js";
export { CSR_NAMES } from "./isa/csr-names.js";
export { decode, insnLength } from "./isa/decode.js";
export { createDisasmState, type DisasmOptions, type DisasmState, disassemble, operandValues } from "./isa/disasm.js";
export {
  getOperand,
  OPERANDS,
  type OperandDef,
  type OperandKind,
  type OperandName,
  putOperand,
} from "./isa/operands.js";
export { encode, randomInstruction } from "./isa/random.js";
export { type Constraint, type Ext, type Format, INSTRUCTIONS, type InsnSpec, operandsLegal } from "./isa/table.js";
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
