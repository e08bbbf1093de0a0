import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Vm, VmDevices } from "@ringzero/hypervisor-monolithic";
import type { MicroVm } from "@ringzero/partition-parent";
import { describe, expect, it } from "vitest";
import { DemoError } from "./errors.js";
import { microMonitorCommand, monitorCommand, startMonitor } from "./monitor.js";

const MiB = 2 ** 20;
/** The part of VirtioBalloon the monitor uses. */
class FakeBalloon {
  target = 0;
  actual = 0;
  stats = { inflatedPages: 0, deflatedPages: 0, releasedBytes: 0, badPfns: 0 };
  setTarget(pages: number) {
    this.target = pages;
  }
}
const withBalloon = (b = new FakeBalloon()) => ({ transports: [], balloon: b }) as unknown as VmDevices;
let stopped = 0;
const vm = {
  stats: () => ({ instructions: 5, mips: 1.5, idleSeconds: 0.25, exits: { mmio: 2, wfi: 0 } }),
  stop: () => {
    stopped++;
  },
} as unknown as Vm;

describe("the --monitor commands", () => {
  it("sets the balloon target from a guest memory size and reports it", () => {
    const balloon = new FakeBalloon();
    const devices = withBalloon(balloon);
    expect(monitorCommand(vm, devices, 256 * MiB, "balloon 192M")).toEqual(["ok"]);
    expect(balloon.target).toBe((64 * MiB) / 4096);
    const info = monitorCommand(vm, devices, 256 * MiB, "  info   balloon ");
    expect(info[0]).toBe("target 16384 pages, actual 0 pages, guest memory 256 MiB");
    expect(info.at(-1)).toBe("ok");
    expect(monitorCommand(vm, devices, 256 * MiB, "info stats")[0]).toBe(
      "instructions 5, 1.5 MIPS, idle 0.250 s; exits: mmio 2",
    );
    const json = monitorCommand(vm, devices, 256 * MiB, "info stats json");
    expect(JSON.parse(json[0])).toMatchObject({ hypervisor: "monolithic", instructions: 5, exits: { mmio: 2 } });
    expect(json[1]).toBe("ok");
    expect(monitorCommand(vm, devices, 256 * MiB, "info stats yaml")[0]).toMatch(/^error: unknown command/);
  });

  it("answers bad commands and sizes with an error line, never a throw", () => {
    const devices = { transports: [] } as VmDevices;
    expect(monitorCommand(vm, devices, 256 * MiB, "balloon 1G")[0]).toMatch(/^error: no balloon device/);
    expect(monitorCommand(vm, withBalloon(), 256 * MiB, "balloon 1G")[0]).toMatch(/^error: /);
    expect(monitorCommand(vm, withBalloon(), 256 * MiB, "balloon lots")[0]).toMatch(/^error: /);
    expect(monitorCommand(vm, withBalloon(), 256 * MiB, "balloon")[0]).toMatch(/^error: unknown command/);
    expect(monitorCommand(vm, withBalloon(), 256 * MiB, "x".repeat(500))[0].length).toBeLessThan(200);
    expect(monitorCommand(vm, withBalloon(), 256 * MiB, "")).toEqual([]);
  });

  it("serves the commands on a Unix socket, one reply per line; quit stops the VM", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "rz-mon-")), "mon.sock");
    const server = await startMonitor(path, vm, { transports: [] }, 256 * MiB);
    try {
      const replies = await new Promise<string>((resolve, reject) => {
        const s = connect(path);
        let got = "";
        s.setEncoding("utf8");
        s.on("data", (d: string) => {
          got += d;
          if (got.split("\n").filter((l) => l === "ok").length === 2) {
            s.end();
            resolve(got);
          }
        });
        s.on("error", reject);
        s.write("info st");
        s.write("ats\nbogus\nquit\n");
      });
      expect(replies).toMatch(/^instructions 5.*\nok\nerror: unknown command "bogus".*\nok\n$/);
      expect(stopped).toBe(1);
    } finally {
      server.close();
    }
    // a path that cannot be bound is a typed error
    await expect(startMonitor(join(path, "x", "y.sock"), vm, { transports: [] }, MiB)).rejects.toBeInstanceOf(
      DemoError,
    );
  });

  it("closing the monitor drops a client still connected (it must not keep the process alive)", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "rz-mon-")), "mon.sock");
    const server = await startMonitor(path, vm, { transports: [] }, 256 * MiB);
    const s = connect(path);
    s.on("error", () => {});
    await new Promise((r) => s.once("connect", r));
    const closed = new Promise((r) => s.once("close", r));
    const serverClosed = new Promise((r) => server.close(r));
    await closed;
    await serverClosed;
    expect(s.destroyed).toBe(true);
  });

  it("answers the micro commands and refuses unknown ones with the list", async () => {
    const calls: string[] = [];
    const micro = {
      vsp: async (action: string, name: string) => {
        calls.push(`${action} ${name}`);
        return name === "storage"
          ? { ok: true, message: "killed storage0" }
          : { ok: false, message: `no VSP named ${name}` };
      },
      stats: async () => ({
        vp: { instructions: 7, exitsMicrokernel: 1, exitsParavisor: 2, exitsIntercept: 3 },
        parent: { devices: { storage0: { requests: 4, vsp: { kills: 2, restarts: 2 } }, vmbus: { signalsIn: 1 } } },
      }),
      stop: () => {
        calls.push("stop");
      },
      balloon: async (pages?: number) => {
        calls.push(`balloon ${pages}`);
        return {
          status: {
            target: 16384,
            actual: 16000,
            balloonPages: 16000,
            inflatedPages: 16000,
            deflatedPages: 0,
            releasedBytes: 65536000,
            badPfns: 0,
          },
        };
      },
    } as unknown as MicroVm;
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "vsp kill storage")).toEqual(["killed storage0", "ok"]);
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "vsp restart nope")).toEqual(["error: no VSP named nope"]);
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "info vsp")).toEqual([
      "storage0: kills 2, restarts 2",
      "ok",
    ]);
    expect(JSON.parse((await microMonitorCommand(micro, 256 * 2 ** 20, "info stats json"))[0])).toMatchObject({
      hypervisor: "micro",
      vp: { instructions: 7 },
    });
    expect((await microMonitorCommand(micro, 256 * 2 ** 20, "info stats"))[0]).toMatch(
      /^instructions 7; .*paravisor 2, intercept 3/,
    );
    expect((await microMonitorCommand(micro, 256 * 2 ** 20, "vsp kill"))[0]).toMatch(
      /^error: unknown command .*vsp kill NAME/,
    );
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "balloon 192M")).toEqual(["ok"]);
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "balloon 300M")).toEqual([
      expect.stringMatching(/^error: /),
    ]);
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "info balloon")).toEqual([
      "target 16384 pages, actual 16000 pages, guest memory 193.5 MiB",
      "inflated 16000 deflated 0 pages, released 65536000 bytes, bad pfns 0",
      "ok",
    ]);
    expect(await microMonitorCommand(micro, 256 * 2 ** 20, "quit")).toEqual(["ok"]);
    expect(calls).toEqual(["kill storage", "restart nope", "balloon 16384", "balloon undefined", "stop"]);
  });
});
