export { type BoardOptions, type PowerOff, Vm, type VmState, type VmStats } from "./vm.js";
