// Test harness: the Linux kernel's own TCP/IP stack as the "guest". A TAP
// device made by socat is moved into a fresh network namespace; socat relays
// its raw frames (one per UDP datagram on 127.0.0.1) to the test, which hands
// them to a NetBackend. Needs root, iproute2, socat. Under CI=true a missing
// prerequisite fails the test instead of skipping it.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import type { NetBackend } from "../backend.js";

export const TOOLS = ["ip", "socat", "busybox", "curl"] as const;

function has(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Why namespaces cannot be used here, or null when they can. */
export function netnsUnavailable(): string | null {
  const missing = TOOLS.filter((t) => !has(t));
  if (missing.length) return `missing tools: ${missing.join(", ")} (scripts/setup.sh installs them)`;
  if (process.getuid?.() !== 0) return "needs root for ip netns";
  const probe = `rzprobe${process.pid}`;
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "pipe" });
    execFileSync("ip", ["netns", "del", probe], { stdio: "pipe" });
  } catch (e) {
    return `ip netns unavailable: ${(e as Error).message.split("\n")[0]}`;
  }
  return null;
}

/** `describe` or `describe.skip` — but with CI=true an unavailable environment throws. */
export function requireNetns(): boolean {
  const why = netnsUnavailable();
  if (why && process.env["CI"] === "true") throw new Error(`net-stack Linux tests cannot run under CI: ${why}`);
  if (why) console.warn(`net-stack: skipping Linux namespace tests: ${why}`);
  return why === null;
}

let counter = 0;

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Returns false to drop the frame; `toGuest` tells the direction. */
export type LinkFilter = (frame: Uint8Array, toGuest: boolean) => boolean;

export class NetnsGuest {
  readonly ns: string;
  readonly dev: string;
  private socat: ChildProcess | null = null;
  private relay: Socket | null = null;
  private socatPort = 0;
  filter: LinkFilter | null = null;
  readonly framesFromGuest: number[] = [];

  private constructor() {
    const id = `${process.pid % 100000}x${counter++}`;
    this.ns = `rz${id}`;
    this.dev = `rzt${id}`.slice(0, 15);
  }

  /** Creates the namespace and the TAP device and wires it to `backend`. */
  static async start(backend: NetBackend): Promise<NetnsGuest> {
    const g = new NetnsGuest();
    try {
      await g.setup(backend);
    } catch (e) {
      g.stop();
      throw e;
    }
    return g;
  }

  private async setup(backend: NetBackend): Promise<void> {
    execFileSync("ip", ["netns", "add", this.ns]);
    const relay = createSocket("udp4");
    this.relay = relay;
    await new Promise<void>((r) => relay.bind(0, "127.0.0.1", () => r()));
    const relayPort = relay.address().port;
    this.socatPort = await freeUdpPort();
    this.socat = spawn(
      "socat",
      [
        `TUN,tun-type=tap,tun-name=${this.dev},iff-no-pi,iff-up`,
        `UDP4-DATAGRAM:127.0.0.1:${relayPort},bind=127.0.0.1:${this.socatPort}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let socatErr = "";
    this.socat.stderr?.on("data", (d) => {
      socatErr += String(d);
    });
    const deadline = Date.now() + 5000;
    while (!linkExists(this.dev)) {
      if (Date.now() > deadline || this.socat.exitCode !== null)
        throw new Error(`socat did not create ${this.dev}: ${socatErr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    relay.on("message", (msg) => {
      const f = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
      if (this.filter && !this.filter(f, false)) return;
      backend.send(f);
    });
    backend.setReceiver((frame) => {
      if (this.filter && !this.filter(frame, true)) return;
      relay.send(frame, this.socatPort, "127.0.0.1");
    });
    execFileSync("ip", ["link", "set", this.dev, "netns", this.ns]);
    this.sh(`ip link set lo up && ip link set ${this.dev} up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1`);
  }

  /** Runs a shell command inside the namespace (bounded by `timeoutMs`). */
  exec(script: string, timeoutMs = 20_000): Promise<ExecResult> {
    return new Promise((resolve) => {
      const p = spawn("ip", ["netns", "exec", this.ns, "sh", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d) => {
        stdout += String(d);
      });
      p.stderr.on("data", (d) => {
        stderr += String(d);
      });
      const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
      p.on("close", (code) => {
        clearTimeout(t);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** Starts a long-running command in the namespace; returns the process (killed by stop()). */
  spawn(script: string): ChildProcess {
    const p = spawn("ip", ["netns", "exec", this.ns, "sh", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.push(p);
    return p;
  }

  private readonly children: ChildProcess[] = [];

  sh(script: string): string {
    return execFileSync("ip", ["netns", "exec", this.ns, "sh", "-c", script], { encoding: "utf8", timeout: 10_000 });
  }

  stop(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill("SIGKILL");
    if (this.socat && this.socat.exitCode === null) this.socat.kill("SIGKILL");
    this.socat = null;
    try {
      this.relay?.close();
    } catch {
      // already closed
    }
    this.relay = null;
    try {
      execFileSync("ip", ["netns", "del", this.ns], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
}

function linkExists(dev: string): boolean {
  try {
    execFileSync("ip", ["link", "show", dev], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** The udhcpc script: applies the lease with iproute2 (busybox ships none on Debian). */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    echo "lease $ip/$mask router=$router dns=$dns lease=$lease" ;;
esac
exit 0
`;
