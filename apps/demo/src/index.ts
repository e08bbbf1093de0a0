export { type CompareReport, CompareReportSchema } from "./compare/schema.js";
export { DemoError, DemoErrorCode } from "./errors.js";
export { embeddedGuestPath, type Io, main } from "./main.js";
export { parseMemorySize } from "./size.js";
