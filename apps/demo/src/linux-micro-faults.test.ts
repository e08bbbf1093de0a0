// Fault isolation under `ringzero run --hypervisor micro`: while the Linux
// guest writes and re-reads random data on a virtio-blk disk (a qcow2 image)
// in a loop, the storage VSP's worker is killed 100 times at random moments
// through the monitor (`vsp kill storage`). Each kill rescinds the channel;
// the parent starts a new VSP and re-offers it; the child's VSC reconnects
// and re-issues what was in flight. The guest must see no I/O error, every
// read-back must match, the host must find the last pattern in the image,
// and `qemu-img check` must find no corruption (leaks are reported).
// Opt-in (RINGZERO_FAULT_TESTS=1): about 1 run in 3 hangs with the guest's
// I/O stuck after a kill (cause not found yet), so it is not in CI until it
// is fixed; it is the reproducer.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "@ringzero/guest-kit";
import { beforeAll, describe, expect, it } from "vitest";
import { prepareLinux, skipLinux } from "./test-linux.js";

const cli = resolve(import.meta.dirname, "../dist/cli.js");
const KILLS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The guest's loop: 256 KiB of random data at a moving offset, written, flushed out of the cache, read back. */
const LOOP = [
  "trap 'stop=1' INT; stop=; i=0; bad=0; last=0; echo fault-loop started;",
  'while [ -z "$stop" ]; do',
  " o=$(( (i % 24) * 4 ));",
  " head -c 262144 /dev/urandom > /tmp/n;",
  " r=ok; dd if=/tmp/n of=/dev/vda bs=65536 seek=$o conv=fsync 2>/tmp/err || r=write;",
  " blockdev --flushbufs /dev/vda;",
  " dd if=/dev/vda bs=65536 skip=$o count=4 2>>/tmp/err | cmp -s - /tmp/n || r=read;",
  // Ctrl-C (the host's signal to stop) may have cut this iteration short: it does not count.
  ' [ -n "$stop" ] && break;',
  ' [ $r = ok ] || { bad=$((bad+1)); echo "iteration $i: $r"; cat /tmp/err; };',
  " mv /tmp/n /tmp/p; last=$o; i=$((i+1));",
  "done; trap - INT;",
  "echo fault-loop done iterations=$i bad=$bad last=$last",
].join("");

const faultTests = process.env.RINGZERO_FAULT_TESTS === "1";

describe.skipIf(skipLinux || !faultTests)("a killed storage VSP under hypervisor-micro", () => {
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    kit = await prepareLinux();
  }, 90 * 60_000);

  it(`the guest sees no I/O error across ${KILLS} kills of the storage VSP mid-I/O`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rz-micro-faults-"));
    const vda = join(dir, "vda.qcow2");
    const sock = join(dir, "monitor.sock");
    expect(spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", vda, "16M"]).status).toBe(0);
    const child = spawn(
      process.execPath,
      [cli, "run", "--hypervisor", "micro", "--kernel", kit.image, "--initrd", kit.initrd, "--memory", "256M"].concat([
        "--drive",
        `${vda},format=qcow2`,
        "--monitor",
        sock,
        "--stats",
      ]),
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    const trace = (m: string) => process.env.RZ_FAULTS_TRACE && appendFileSync(process.env.RZ_FAULTS_TRACE, `${m}\n`);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("latin1");
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.stdin.on("error", () => {});
    const exited = new Promise<number | null>((r) => child.on("close", r));
    const waitFor = async (re: RegExp, ms: number): Promise<RegExpMatchArray> => {
      const t0 = performance.now();
      for (;;) {
        const at = out.indexOf(LINUX_KIT_MARKER);
        const m = at < 0 ? null : out.slice(at).match(re);
        if (m) return m;
        if (performance.now() - t0 > ms || child.exitCode !== null) {
          trace(`timeout ${re}: ${out.slice(-500)} ${err}`);
          throw new Error(`waiting for ${re}: console tail:\n${out.slice(-3000)}\nstderr:\n${err}`);
        }
        await sleep(20);
      }
    };
    try {
      await waitFor(new RegExp(LINUX_KIT_PROMPT.replace(/[$#]/g, "\\$&")), 240_000);
      trace("prompt");
      child.stdin.write(`${LOOP}\n`);
      await waitFor(/fault-loop started\r?\n/, 30_000);
      trace("loop started");
      // The monitor: one command per line, replies end with "ok" or "error: ...".
      const mon = connect(sock);
      mon.setEncoding("utf8");
      let replies = "";
      mon.on("data", (d: string) => {
        replies += d;
      });
      await new Promise<void>((r, j) => mon.once("connect", r).once("error", j));
      const command = async (line: string): Promise<string> => {
        const from = replies.length;
        mon.write(`${line}\n`);
        for (let t = 0; t < 3000; t++) {
          const r = replies.slice(from);
          if (/(^|\n)(ok|error: .*)\n/.test(r)) return r;
          await sleep(10);
        }
        throw new Error(`no monitor reply to ${line}: ${replies.slice(from)}`);
      };
      for (let k = 0; k < KILLS; k++) {
        await sleep(Math.random() * 60);
        expect(await command("vsp kill storage")).toMatch(/killed storage0\nok\n/);
        trace(`kill ${k}`);
      }
      await sleep(300);
      const info = await command("info vsp");
      child.stdin.write("\x03");
      const done = await waitFor(/fault-loop done iterations=(\d+) bad=(\d+) last=(\d+)/, 120_000);
      child.stdin.write("dmesg | grep -ciE 'i/o error|blk_update_request|critical medium'; sha256sum /tmp/p\n");
      const tail = await waitFor(/\n(\d+)\r?\n([0-9a-f]{64}) {2}\/tmp\/p/, 60_000);
      mon.destroy();
      child.stdin.write("poweroff -f\n");
      expect(await exited).toBe(0);

      const iterations = Number(done[1]);
      console.log(
        `ringzero: ${KILLS} storage VSP kills during ${iterations} write/read-back iterations of 256 KiB; ${info.replace(/\nok\n$/, "")}`,
      );
      expect(Number(done[2])).toBe(0); // no write failed, no read-back differed
      expect(iterations).toBeGreaterThan(5);
      expect(Number(tail[1])).toBe(0); // no I/O error in the kernel log
      expect(info).toMatch(new RegExp(`storage0: .*kills ${KILLS}`));
      // The host reads the last pattern from the image (through qemu-img, not ringzero).
      const raw = join(dir, "vda.raw");
      expect(spawnSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", vda, raw]).status).toBe(0);
      const o = Number(done[3]) * 65536;
      expect(sha(readFileSync(raw).subarray(o, o + 262144))).toBe(tail[2]);
      // The image: no corruption (a kill during a cluster allocation may leak, never corrupt).
      const check = spawnSync("qemu-img", ["check", "-f", "qcow2", vda], { encoding: "utf8" });
      console.log(`ringzero: qemu-img check after ${KILLS} kills: ${check.stdout.trim().split("\n").join("; ")}`);
      expect(check.stdout + check.stderr).not.toMatch(/ERROR|corruption/i);
      expect([0, 3]).toContain(check.status);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 600_000);
});
