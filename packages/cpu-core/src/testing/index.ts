// @ringzero/cpu-core/testing: helpers for tests of packages built on the hart —
// assemble RISC-V programs with Debian's cross toolchain, run them on a minimal
// bare-metal virt board or on QEMU for comparison, and a seeded PRNG.
export { archState, type LockstepResult, runLockstep } from "./lockstep.js";
export { type RunResult, runElf } from "./machine.js";
export { PRELUDE } from "./prelude.js";
export { QEMU, type QemuResult, runQemu } from "./qemu.js";
export { type RandomProgram, type RandomProgramStats, randomControlFlowProgram } from "./random-programs.js";
export { rng } from "./rng.js";
export { buildElf, GCC, haveTool, requireTool } from "./toolchain.js";
