// Guest I/O figures for `pnpm bench`: the Linux kit measures, from inside,
// virtio-blk sequential throughput (busybox dd with O_DIRECT on /dev/vda) and
// virtio-net TCP throughput both ways plus ICMP round trips to the gateway,
// through the user-mode network to an HTTP server this process runs on
// 127.0.0.1. The same commands run on ringzero and on qemu-system-riscv64 with
// the same kit, image and sizes; the guest's clock (/proc/uptime, 10 ms)
// times each transfer.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MiB = 1024 * 1024;

export interface IoFigures {
  /** MB/s (10^6 bytes per second). */
  blkRead: number;
  blkWrite: number;
  netDown: number;
  netUp: number;
  /** ICMP echo to the gateway, mean of the run, milliseconds. */
  pingMs: number;
}

export interface IoSetup {
  image: string;
  httpPort: number;
  blobBytes: number;
  blkMiB: number;
  close(): void;
}

/** A scratch disk image with data and an HTTP server on 127.0.0.1 (GET /blob, POST /sink). */
export async function startIoSetup(blkMiB = 32, netMiB = 8): Promise<IoSetup> {
  const dir = mkdtempSync(join(tmpdir(), "rz-bench-io-"));
  const image = join(dir, "disk.img");
  const fd = openSync(image, "w");
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let i = 0; i < blkMiB * 2; i++) writeSync(fd, chunk);
  closeSync(fd);
  const blob = Buffer.alloc(netMiB * MiB, chunk);
  const server: Server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/blob") {
      res.writeHead(200, { "content-length": blob.length }).end(blob);
    } else if (req.method === "POST" && req.url === "/sink") {
      let n = 0;
      req.on("data", (d: Buffer) => {
        n += d.length;
      });
      req.on("end", () => res.end(`sink ${n}\n`));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    image,
    httpPort: (server.address() as { port: number }).port,
    blobBytes: blob.length,
    blkMiB,
    close() {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The guest's script: one line per figure, tagged so a parser finds it in the console stream. */
export function ioCommands(s: IoSetup): string[] {
  const t = "cut -d' ' -f1 /proc/uptime";
  const n = s.blkMiB;
  return [
    "ip link set lo up; udhcpc -i eth0 -n -q -t 5 >/dev/null 2>&1; ip -4 addr show eth0 | grep -c inet",
    // reads are fast on QEMU: four passes keep the 10 ms clock's error small
    `dd if=/dev/vda of=/dev/null bs=1M count=${n} iflag=direct 2>/dev/null; a=$(${t}); for p in 1 2 3 4; do dd if=/dev/vda of=/dev/null bs=1M count=${n} iflag=direct 2>/dev/null; done; b=$(${t}); echo "RZIO blkread ${4 * n * MiB} $a $b"`,
    `dd if=/dev/zero of=/tmp/z bs=1M count=${n} 2>/dev/null; a=$(${t}); dd if=/tmp/z of=/dev/vda bs=1M count=${n} oflag=direct conv=fsync 2>/dev/null; b=$(${t}); rm /tmp/z; echo "RZIO blkwrite ${n * MiB} $a $b"`,
    `a=$(${t}); wget -q -O /dev/null http://10.0.2.2:${s.httpPort}/blob; b=$(${t}); echo "RZIO netdown ${s.blobBytes} $a $b"`,
    // busybox wget posts its file only up to the first NUL (strlen): send bytes without one.
    `dd if=/dev/zero bs=1M count=${s.blobBytes / MiB} 2>/dev/null | tr '\\000' R > /tmp/up; a=$(${t}); wget -q -O /dev/null --post-file=/tmp/up http://10.0.2.2:${s.httpPort}/sink; b=$(${t}); rm /tmp/up; echo "RZIO netup ${s.blobBytes} $a $b"`,
    "ping -c 10 -i 0.2 10.0.2.2 | tail -1 | sed 's/^/RZIO ping /'",
    "poweroff -f",
  ];
}

/** Parses the RZIO lines of one session; undefined when one is missing or absurd. */
export function parseIo(out: string): IoFigures | undefined {
  const rate = (tag: string) => {
    const m = new RegExp(`RZIO ${tag} (\\d+) ([\\d.]+) ([\\d.]+)`).exec(out);
    if (!m) return undefined;
    const secs = Math.max(0.01, Number(m[3]) - Number(m[2]));
    return Number(m[1]) / secs / 1e6;
  };
  // busybox: "round-trip min/avg/max = 0.321/0.456/0.789 ms"
  const ping = /RZIO ping round-trip min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(out);
  const f = {
    blkRead: rate("blkread"),
    blkWrite: rate("blkwrite"),
    netDown: rate("netdown"),
    netUp: rate("netup"),
    pingMs: ping ? Number(ping[1]) : undefined,
  };
  return Object.values(f).every((v) => v !== undefined && Number.isFinite(v)) ? (f as IoFigures) : undefined;
}

export interface ScriptRun {
  out: string;
  stderr: string;
  status: number | null;
  /** Seconds from spawn to the first shell prompt (-1: none came). */
  promptSeconds: number;
}

/**
 * Boots a machine and types `commands` one per shell prompt (after the kit's
 * init marker); resolves when the process ends (killed after `timeoutMs`).
 */
export function runScript(
  cmd: string,
  args: string[],
  commands: string[],
  marker: string,
  prompt: string,
  timeoutMs = 600_000,
): Promise<ScriptRun> {
  return new Promise((done) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    let sent = 0;
    let promptSeconds = -1;
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("latin1");
      const at = out.indexOf(marker);
      const prompts = at < 0 ? 0 : out.slice(at).split(prompt).length - 1;
      if (prompts > 0 && promptSeconds < 0) promptSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (prompts > sent && sent < commands.length) child.stdin.write(`${commands[sent++]}\n`);
    });
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdin.on("error", () => {});
    child.on("close", (status) => {
      clearTimeout(timer);
      done({ out, stderr, status, promptSeconds });
    });
  });
}
