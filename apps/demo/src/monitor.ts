// A line-oriented control socket for a running VM (`--monitor PATH`, a Unix
// socket), in the spirit of QEMU's human monitor: one command per line, one
// or more reply lines, then "ok" or "error: ...". Commands:
//   balloon SIZE     set the guest's memory target (QEMU's `balloon`): the
//                    balloon grows to RAM - SIZE
//   info balloon     target, actual, inflated/deflated pages, bytes released
//   info stats       instructions, MIPS, exits
//   quit             stop the VM
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import type { Vm, VmDevices } from "@ringzero/hypervisor-monolithic";
import { DemoError, DemoErrorCode } from "./errors.js";
import { nonZeroCounts } from "./format.js";
import { parseMemorySize } from "./size.js";

const PAGE = 4096;
const MAX_LINE = 1024;

/** Runs one monitor command; returns the reply lines (the last is "ok" or "error: ..."). */
export function monitorCommand(vm: Vm, devices: VmDevices, memory: number, line: string): string[] {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const [cmd, arg] = words;
  if (cmd === undefined) return [];
  if (cmd === "balloon" && arg !== undefined && words.length === 2) {
    if (!devices.balloon) return ["error: no balloon device (run with --balloon)"];
    let target: number;
    try {
      target = parseMemorySize(arg, { min: 0, max: memory });
    } catch (e) {
      return [`error: ${(e as Error).message}`];
    }
    devices.balloon.setTarget(Math.floor((memory - target) / PAGE));
    return ["ok"];
  }
  if (cmd === "info" && arg === "balloon" && words.length === 2) {
    const b = devices.balloon;
    if (!b) return ["error: no balloon device (run with --balloon)"];
    const s = b.stats;
    return [
      `target ${b.target} pages, actual ${b.actual} pages, guest memory ${(memory - b.actual * PAGE) / 2 ** 20} MiB`,
      `inflated ${s.inflatedPages} deflated ${s.deflatedPages} pages, released ${s.releasedBytes} bytes, bad pfns ${s.badPfns}`,
      "ok",
    ];
  }
  if (cmd === "info" && arg === "stats" && words.length === 2) {
    const s = vm.stats();
    const exits = nonZeroCounts(s.exits);
    return [
      `instructions ${s.instructions}, ${s.mips.toFixed(1)} MIPS, idle ${s.idleSeconds.toFixed(3)} s; exits: ${exits}`,
      "ok",
    ];
  }
  if (cmd === "quit" && words.length === 1) {
    vm.stop();
    return ["ok"];
  }
  return [`error: unknown command "${line.trim().slice(0, 80)}" (balloon SIZE, info balloon, info stats, quit)`];
}

/** Listens on a Unix socket at `path` until the returned server is closed. */
export function startMonitor(path: string, vm: Vm, devices: VmDevices, memory: number): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let pending = "";
    sock.setEncoding("utf8");
    sock.on("error", () => {});
    sock.on("data", (chunk: string) => {
      pending += chunk;
      if (pending.length > MAX_LINE && !pending.includes("\n")) {
        sock.end("error: line too long\n");
        return;
      }
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const reply = monitorCommand(vm, devices, memory, line);
        if (reply.length) sock.write(`${reply.join("\n")}\n`);
        nl = pending.indexOf("\n");
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new DemoError(DemoErrorCode.MONITOR, { path, errno: e.code }, `--monitor ${path}: ${e.message}`)),
    );
    server.listen(path, () => resolve(server));
  });
}
