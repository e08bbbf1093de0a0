// @ringzero/partition-child: what runs in a child partition's VP thread above
// the guest — an OpenHCL-style paravisor that emulates the board devices the
// microkernel does not own and the parent did not intercept.
export { createParavisor, type ParavisorData, ParavisorDataSchema } from "./paravisor.js";
