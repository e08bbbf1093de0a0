// A line-oriented control socket for a running VM (`--monitor PATH`, a Unix
// socket), in the spirit of QEMU's human monitor: one command per line, one
// or more reply lines, then "ok" or "error: ...". Commands:
//   balloon SIZE     set the guest's memory target (QEMU's `balloon`): the
//                    balloon grows to RAM - SIZE
//   info balloon     target, actual, inflated/deflated pages, bytes released
//   info stats       instructions, MIPS, exits (`info stats json`: one JSON line)
//   vsp kill NAME    fault injection: the back end dies, and with it the
//                    monolithic VM's process (it ran inside it)
//   quit             stop the VM
// Under --hypervisor micro (microMonitorCommand):
//   vsp kill NAME    terminate a device back end's worker mid-request
//                    (storage, storage0.., 9p, 9p0.., network, console): the parent
//                    rescinds its channel, starts a new one and re-offers it
//   vsp restart NAME the same, gracefully (requests in flight answered first)
//   info vsp         per back end: restarts, kills, crashes, rescinds
//   balloon SIZE, info balloon, info stats, quit as above (the balloon lives in
//                    the child's paravisor; the parent sets it over VMBus)
import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Vm, VmDevices } from "@ringzero/hypervisor-monolithic";
import type { BalloonStatus, MicroVm } from "@ringzero/partition-parent";
import { DemoError, DemoErrorCode } from "./errors.js";
import { nonZeroCounts } from "./format.js";
import { parseMemorySize } from "./size.js";

const PAGE = 4096;
const MAX_LINE = 1024;

/** `balloon SIZE`: the balloon's size in pages that leaves the guest SIZE of RAM, or an error line. */
function balloonPages(arg: string, memory: number): number | string {
  try {
    return Math.floor((memory - parseMemorySize(arg, { min: 0, max: memory })) / PAGE);
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
}

/** `info balloon`, the same lines under both hypervisors. */
function balloonInfo(b: BalloonStatus, memory: number): string[] {
  return [
    `target ${b.target} pages, actual ${b.actual} pages, guest memory ${(memory - b.actual * PAGE) / 2 ** 20} MiB`,
    `inflated ${b.inflatedPages} deflated ${b.deflatedPages} pages, released ${b.releasedBytes} bytes, bad pfns ${b.badPfns}`,
    "ok",
  ];
}

/** Runs one monitor command; returns the reply lines (the last is "ok" or "error: ..."). */
export function monitorCommand(vm: Vm, devices: VmDevices, memory: number, line: string): string[] {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const [cmd, arg] = words;
  if (cmd === undefined) return [];
  if (cmd === "balloon" && arg !== undefined && words.length === 2) {
    if (!devices.balloon) return ["error: no balloon device (run with --balloon)"];
    const pages = balloonPages(arg, memory);
    if (typeof pages === "string") return [pages];
    devices.balloon.setTarget(pages);
    return ["ok"];
  }
  if (cmd === "info" && arg === "balloon" && words.length === 2) {
    const b = devices.balloon;
    if (!b) return ["error: no balloon device (run with --balloon)"];
    return balloonInfo({ target: b.target, actual: b.actual, ...b.stats }, memory);
  }
  if (cmd === "info" && arg === "stats" && words.length === 3 && words[2] === "json") {
    return [JSON.stringify({ hypervisor: "monolithic", ...vm.stats() }), "ok"];
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
  if (cmd === "vsp" && arg === "kill" && words.length === 3) {
    // Fault injection, for the same command under both hypervisors: here every back end runs in
    // the hypervisor's own process, so a back end that dies takes the VM with it (as a crashing
    // device model takes down QEMU). The process ends with an uncaught error once this reply is out.
    setTimeout(() => {
      throw new Error(`${words[2]} back end killed (fault injection): it ran inside the monolithic hypervisor`);
    }, 50);
    return [`killing ${words[2]}: under the monolithic hypervisor it runs in this process, which ends with it`, "ok"];
  }
  return [
    `error: unknown command "${line.trim().slice(0, 80)}" (balloon SIZE, info balloon, info stats [json], vsp kill NAME, quit)`,
  ];
}

const MICRO_COMMANDS = "balloon SIZE, info balloon, vsp kill NAME, vsp restart NAME, info vsp, info stats [json], quit";

/** One monitor command for a micro VM; resolves with the reply lines. */
export async function microMonitorCommand(vm: MicroVm, memory: number, line: string): Promise<string[]> {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const [cmd, arg, name] = words;
  if (cmd === undefined) return [];
  if (cmd === "balloon" && arg !== undefined && words.length === 2) {
    // Host -> parent partition -> VMBus -> the paravisor's virtio-balloon (Hyper-V's dynamic memory path).
    const pages = balloonPages(arg, memory);
    if (typeof pages === "string") return [pages];
    const r = await vm.balloon(pages);
    return r.error ? [`error: ${r.error}`] : ["ok"];
  }
  if (cmd === "info" && arg === "balloon" && words.length === 2) {
    const r = await vm.balloon();
    return r.status ? balloonInfo(r.status, memory) : [`error: ${r.error ?? "no answer"}`];
  }
  if (cmd === "vsp" && (arg === "kill" || arg === "restart") && name !== undefined && words.length === 3) {
    const r = await vm.vsp(arg, name);
    return r.ok ? [r.message, "ok"] : [`error: ${r.message}`];
  }
  if (cmd === "info" && arg === "vsp" && words.length === 2) {
    const devices = (await vm.stats()).parent.devices ?? {};
    const lines = Object.entries(devices)
      .filter(([, v]) => typeof v === "object" && v !== null && "vsp" in v)
      .map(([k, v]) => `${k}: ${nonZeroCounts((v as { vsp: Record<string, number> }).vsp) || "no events"}`);
    return [...lines, "ok"];
  }
  if (cmd === "info" && arg === "stats" && words.length === 3 && words[2] === "json") {
    return [JSON.stringify({ hypervisor: "micro", ...(await vm.stats()) }), "ok"];
  }
  if (cmd === "info" && arg === "stats" && words.length === 2) {
    const s = await vm.stats();
    const v = s.vp;
    return [
      `instructions ${v.instructions ?? 0}; exits by path: microkernel ${v.exitsMicrokernel ?? 0}, paravisor ${v.exitsParavisor ?? 0}, intercept ${v.exitsIntercept ?? 0}`,
      "ok",
    ];
  }
  if (cmd === "quit" && words.length === 1) {
    vm.stop();
    return ["ok"];
  }
  return [`error: unknown command "${line.trim().slice(0, 80)}" (${MICRO_COMMANDS})`];
}

/** Listens on a Unix socket at `path` until the returned server is closed. */
export function startMonitor(path: string, vm: Vm, devices: VmDevices, memory: number): Promise<Server> {
  return startCommandMonitor(path, (line) => monitorCommand(vm, devices, memory, line));
}

/** The monitor socket for any command handler; replies go out in command order. */
export function startCommandMonitor(
  path: string,
  handler: (line: string) => string[] | Promise<string[]>,
): Promise<Server> {
  rmSync(path, { force: true });
  const clients = new Set<Socket>();
  const server = createServer((sock) => {
    clients.add(sock);
    sock.once("close", () => clients.delete(sock));
    let pending = "";
    let replies: Promise<void> = Promise.resolve();
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
        replies = replies.then(async () => {
          const reply = await Promise.resolve(handler(line)).catch((e: Error) => [`error: ${e.message}`]);
          if (reply.length && !sock.destroyed) sock.write(`${reply.join("\n")}\n`);
        });
        nl = pending.indexOf("\n");
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new DemoError(DemoErrorCode.MONITOR, { path, errno: e.code }, `--monitor ${path}: ${e.message}`)),
    );
    // Closing the monitor also drops its connections: a client left connected must not keep the process alive.
    const close = server.close.bind(server);
    server.close = (cb?: (err?: Error) => void) => {
      for (const c of clients) c.destroy();
      return close(cb);
    };
    server.listen(path, () => resolve(server));
  });
}
