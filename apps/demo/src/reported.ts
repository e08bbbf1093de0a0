// Which errors a command reports as one line, `ringzero: message`, with exit status 1 (usage
// errors, bad values and failures alike, as qemu and qemu-img): the typed errors of this app and
// of the packages it drives. Class identity holds within one module graph: `ringzero`'s bundle
// (dist/cli.js) checks its own copies, and `compare`, loaded from its own modules beside it,
// checks its own (compareCommand).
import { CpuError } from "@ringzero/cpu-core";
import { VmError } from "@ringzero/hypervisor-monolithic";
import { PlatformError } from "@ringzero/platform";
import { DemoError } from "./errors.js";

/** Whether `e` is one of the typed errors reported as `ringzero: message` (or of `also`). */
export function reported(e: unknown, also?: abstract new (...args: never[]) => Error): e is Error {
  return (
    e instanceof DemoError ||
    e instanceof CpuError ||
    e instanceof PlatformError ||
    e instanceof VmError ||
    (also !== undefined && e instanceof also)
  );
}
