export { type BoardOptions, type LinuxInput, type PowerOff, Vm, type VmState, type VmStats } from "./vm.js";
