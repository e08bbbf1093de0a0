// The child's paravisor as a module of its own, as CreateVp names it (the VP
// Worker imports it): partition-child's createParavisor.
export { createParavisor } from "@ringzero/partition-child";
