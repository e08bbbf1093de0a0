// Interop with the real Linux v9fs client: boots the project's RISC-V Linux
// guest kit on qemu-system-riscv64 and mounts this server over 9P/TCP
// (trans=tcp speaks the same messages as trans=virtio; the virtio framing is
// covered by device.test.ts). It needs QEMU and the built kit; CI's
// scripts/run-tests.mjs sets the variable, elsewhere:
//   RINGZERO_9P_LINUX_KIT=$(pnpm -s guest:linux --print-path) \
//     pnpm exec vitest run --project virtio src/9p/linux
import { spawn } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NinePServer } from "./server.js";

const KIT = process.env.RINGZERO_9P_LINUX_KIT;
const PROMPT = "rz# ";
const MARKER = "ringzero-guest: init done";

/** 9P over a byte stream: size[4]-framed messages, answered in order. */
function serveTcp(root: string): Promise<{ tcp: Server; port: number; servers: NinePServer[] }> {
  const servers: NinePServer[] = [];
  const tcp = createServer((sock) => {
    // One server per connection: a NinePServer is one 9P session (one mount).
    const server = new NinePServer({ root });
    servers.push(server);
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= buf.readUInt32LE(0)) {
        const size = buf.readUInt32LE(0);
        if (size < 7) {
          sock.destroy();
          return;
        }
        const msg = buf.subarray(0, size);
        buf = buf.subarray(size);
        const reply = server.handle(msg);
        chain = chain.then(async () => {
          sock.write(await reply);
        });
      }
    });
    sock.on("error", () => {});
  });
  return new Promise((resolve) =>
    tcp.listen(0, "127.0.0.1", () => resolve({ tcp, port: (tcp.address() as { port: number }).port, servers })),
  );
}

function bootAndRun(kit: string, commands: string[], timeoutMs = 240_000): Promise<string> {
  const args = [
    ...["-M", "virt", "-m", "256M", "-bios", "default", "-nographic"],
    ...["-kernel", join(kit, "Image"), "-initrd", join(kit, "initramfs.cpio.gz"), "-append", "console=ttyS0"],
    ...["-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0"],
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("qemu-system-riscv64", args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let sent = 0;
    let markerAt = -1;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timeout; console tail:\n${out.slice(-4000)}`));
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("latin1");
      if (markerAt < 0) markerAt = out.indexOf(MARKER);
      const prompts = markerAt < 0 ? 0 : out.slice(markerAt).split(PROMPT).length - 1;
      if (prompts > sent && sent < commands.length) child.stdin.write(`${commands[sent++]}\n`);
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString("latin1");
    });
    child.stdin.on("error", () => {});
    child.on("error", (e) => reject(e));
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe.runIf(KIT)("9p with the Linux v9fs client (QEMU, trans=tcp)", () => {
  let base: string;
  let share: string;
  let servers: NinePServer[] = [];
  let tcp: Server;
  let out = "";

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), "rz9p-linux-"));
    share = join(base, "share");
    mkdirSync(share);
    mkdirSync(join(base, "outside"));
    writeFileSync(join(base, "outside", "secret"), "HOST-SECRET-4711");
    writeFileSync(join(share, "hello.txt"), "hello from the host\n");
    symlinkSync(join(base, "outside"), join(share, "escape"));
    mkdirSync(join(share, "many"));
    for (let i = 0; i < 500; i++) writeFileSync(join(share, "many", `entry-with-a-long-name-${i}`), "");
    const s = await serveTcp(share);
    tcp = s.tcp;
    servers = s.servers;
    const m = "/mnt";
    out = await bootAndRun(KIT as string, [
      "ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && echo NET-OK",
      `mkdir -p ${m} && mount -t 9p -o trans=tcp,port=${s.port},version=9p2000.L,msize=65536 10.0.2.2 ${m} && echo MOUNT-OK`,
      `echo "R1[$(cat ${m}/hello.txt)]"`,
      `echo guest-wrote > ${m}/fromguest.txt && echo "R2[$(cat ${m}/fromguest.txt)]"`,
      `mkdir ${m}/gdir && touch ${m}/gdir/a ${m}/gdir/b && mv ${m}/gdir/a ${m}/gdir/c && echo "R3[$(ls ${m}/gdir | tr '\\n' ,)]"`,
      `ln -s hello.txt ${m}/glink && echo "R4[$(readlink ${m}/glink)|$(cat ${m}/glink)]"`,
      `ln ${m}/hello.txt ${m}/hard && echo "R5[$(stat -c %h ${m}/hello.txt)]"`,
      `chmod 600 ${m}/fromguest.txt && truncate -s 3 ${m}/fromguest.txt && echo "R6[$(stat -c '%a %s' ${m}/fromguest.txt)]"`,
      `dd if=/dev/zero of=${m}/big bs=4096 count=256 2>/dev/null && echo "R7[$(stat -c %s ${m}/big)|$(md5sum < ${m}/big)]"`,
      `echo "R8[$(ls ${m}/many | wc -l)]"`,
      `echo "R9[$(cat ${m}/escape/secret 2>&1)|$(readlink ${m}/escape)]"`,
      `echo "R10[$(ls ${m}/.. | grep -c mnt)]"`,
      `rm -r ${m}/gdir ${m}/glink && echo "R11[$(ls ${m} | tr '\\n' ,)]"`,
      `echo "R12[$(df ${m} | tail -1 | wc -w)]"`,
      `touch -d '2001-02-03 04:05:06' ${m}/hello.txt && echo "R13[$(stat -c %Y ${m}/hello.txt)]"`,
      `cd ${m} && mv hello.txt renamed.txt && echo "R14[$(cat renamed.txt)]" && cd /`,
      `cp -a /bin ${m}/bincopy && echo "R15[$(ls ${m}/bincopy | wc -l)|$(ls /bin | wc -l)|$(readlink ${m}/bincopy/sh)]"`,
      `echo "R16[$(find ${m} | wc -l)]" && rm -rf ${m}/bincopy && echo "R17[$(ls ${m} | wc -l)]"`,
      `mkdir -p /mnt2 && mount -t 9p -o trans=tcp,port=${s.port},version=9p2000.L,cache=loose 10.0.2.2 /mnt2 && echo "R18[$(cat /mnt2/renamed.txt)|$(ls /mnt/many | wc -l)]" && umount /mnt2`,
      `umount ${m} && echo UMOUNT-OK`,
      "poweroff -f",
    ]);
  }, 300_000);

  afterAll(async () => {
    for (const s of servers) await s.close();
    tcp?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  const result = (n: number) => {
    const m = out.match(new RegExp(`R${n}\\[([^\\]]*)\\]`, "g"));
    // The command line echoes too; the last match is the output.
    return m?.[m.length - 1]?.slice(`R${n}[`.length, -1);
  };

  it("mounts, reads, writes, lists, renames, links, truncates, unmounts", () => {
    expect(out, `console:\n${out.slice(-6000)}`).toContain("MOUNT-OK");
    expect(result(1)).toBe("hello from the host");
    expect(result(2)).toBe("guest-wrote");
    expect(result(3)).toBe("b,c,");
    expect(result(4)).toBe("hello.txt|hello from the host");
    expect(result(5)).toBe("2");
    expect(result(6)).toBe("600 3");
    expect(result(7)).toBe("1048576|b6d81b360a5672d80c27430f39153e2c  -");
    expect(result(8)).toBe("500");
    expect(result(10)).toBe("1");
    expect(result(11)).toBe("big,escape,fromguest.txt,hard,hello.txt,many,");
    expect(result(12)).toBe("6");
    expect(result(13)).toBe(String(Date.UTC(2001, 1, 3, 4, 5, 6) / 1000));
    expect(result(14)).toBe("hello from the host");
    const [copied, inBin, shTarget] = (result(15) ?? "").split("|");
    expect(copied).toBe(inBin);
    expect(Number(copied)).toBeGreaterThan(50);
    expect(shTarget).toMatch(/busybox/);
    expect(Number(result(16))).toBeGreaterThan(550);
    expect(result(17)).toBe("6"); // big escape fromguest.txt hard many renamed.txt
    expect(result(18)).toBe("hello from the host|500"); // a second mount (new session) beside the first
    expect(out).toContain("UMOUNT-OK");
  });

  it("the host sees what the guest did", () => {
    expect(readFileSync(join(share, "fromguest.txt"), "utf8")).toBe("gue");
    expect(statSync(join(share, "fromguest.txt")).mode & 0o777).toBe(0o600);
    expect(statSync(join(share, "big")).size).toBe(1 << 20);
    expect(statSync(join(share, "hard")).nlink).toBe(2);
    expect(() => lstatSync(join(share, "gdir"))).toThrow();
    expect(readFileSync(join(share, "renamed.txt"), "utf8")).toBe("hello from the host\n");
  });

  it("a symlink to a host directory outside the share does not expose it", () => {
    expect(result(9)).not.toContain("HOST-SECRET");
    expect(result(9)?.endsWith(`|${readlinkSync(join(share, "escape"))}`)).toBe(true);
    expect(readFileSync(join(base, "outside", "secret"), "utf8")).toBe("HOST-SECRET-4711");
  });
});
