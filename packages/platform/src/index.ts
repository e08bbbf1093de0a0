export {
  type ResetType,
  SBI_IMPL_ID,
  SbiError,
  SbiExtension,
  type SbiHost,
  SbiServer,
  type SbiStats,
} from "./sbi/sbi.js";
export { type VmConfig, type VmConfigInput, VmConfigSchema } from "./vm-config.js";
