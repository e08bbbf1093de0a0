// Switch endpoints over stream sockets, as `-netdev socket,listen=` and
// `connect=` do in QEMU: a Unix socket path, or [127.0.0.1]:PORT (only the
// loopback address: the switch is never exposed beyond this host).
import { rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import type { VirtualSwitch } from "./switch.js";
import { StreamTransport } from "./transport.js";

/** A Unix socket path, or [127.0.0.1]:PORT. */
export function switchEndpoint(spec: string): { path: string } | { host: string; port: number } {
  const m = /^(?:127\.0\.0\.1)?:(\d+)$/.exec(spec);
  return m ? { host: "127.0.0.1", port: Number(m[1]) } : { path: spec };
}

/** Serves `sw` on `spec`: every connection becomes a switch port (unplugged when it closes). */
export function listenSwitch(spec: string, sw: VirtualSwitch): Promise<Server> {
  const ep = switchEndpoint(spec);
  if ("path" in ep) rmSync(ep.path, { force: true });
  const server = createServer((sock) => {
    const unplug = sw.connect(new StreamTransport(sock));
    sock.on("close", unplug);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(ep, () => resolve(server));
  });
}

/** Connects to a switch served by `listenSwitch` (in this or another process): a NetBackend for one NIC. */
export function connectSwitch(spec: string): Promise<StreamTransport> {
  return new Promise((resolve, reject) => {
    const sock = connect(switchEndpoint(spec));
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      resolve(new StreamTransport(sock));
    });
  });
}
