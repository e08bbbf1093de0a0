// The micro VM end to end: microkernel on this thread, the parent partition
// and the child's VP in worker threads (which run the built JavaScript: CI
// builds before it tests).
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createMicroVm, MicroVmError, MicroVmErrorCode } from "./node.js";

const HELLO = fileURLToPath(new URL("../../../apps/demo/guests/hello/hello.elf", import.meta.url));
const PARAVISOR = new URL("../../partition-child/dist/index.js", import.meta.url).href;
const built =
  existsSync(new URL("../dist/worker.js", import.meta.url)) &&
  existsSync(new URL("../../hypervisor-micro/dist/vp-worker.js", import.meta.url));

// CI builds before it tests: there a missing build is a failure, not a skip.
if (process.env.CI === "true" && !built) throw new Error("run `pnpm build` first: the VP and parent threads run dist/");

describe.runIf(built)("createMicroVm", () => {
  it("runs the demo guest with its exits split between microkernel, paravisor and parent", async () => {
    const out: Uint8Array[] = [];
    const vm = await createMicroVm(
      { kernel: HELLO, memory: 16 * 1024 * 1024 },
      { consoleOut: (b) => out.push(b), paravisor: PARAVISOR },
    );
    const r = await vm.start();
    const text = Buffer.concat(out).toString();
    expect(r).toEqual({ status: 0, reason: "shutdown" });
    expect(text).toContain("fib(40)            = 102334155");
    expect(text).toContain("bye");
    const s = await vm.stats();
    // UART bytes leave as intercepts; the RTC is the paravisor's; SBI TIME and SRST reach the microkernel.
    expect(s.vp.exitsIntercept).toBeGreaterThan(100);
    expect(s.vp.exitsParavisor).toBeGreaterThan(0);
    expect(s.vp.exitsMicrokernel).toBeGreaterThan(0);
    expect(s.vp.instructions).toBeGreaterThan(1000);
    expect(s.kernel.hypercalls.CreateVp).toBe(1);
    expect(s.kernel.hypercalls.RevokeGrant).toBe(1);
    expect(s.parent.intercepts.mmio).toBe(s.vp.exitsIntercept);
    expect(s.parent.badIntercepts).toBe(0);
  });

  it("takes the kernel as bytes and the memory as a size string, as createVm; a bad size is CONFIG_INVALID", async () => {
    const out: Uint8Array[] = [];
    const vm = await createMicroVm(
      { kernel: new Uint8Array(readFileSync(HELLO)), memory: "16M" },
      { consoleOut: (b) => out.push(b), paravisor: PARAVISOR },
    );
    expect(await vm.start()).toEqual({ status: 0, reason: "shutdown" });
    expect(Buffer.concat(out).toString()).toContain("bye");
    await expect(
      createMicroVm({ kernel: HELLO, memory: "lots" }, { consoleOut: () => {}, paravisor: PARAVISOR }),
    ).rejects.toMatchObject({ code: MicroVmErrorCode.CONFIG_INVALID });
    await expect(
      createMicroVm({ kernel: new Uint8Array(64) }, { consoleOut: () => {}, paravisor: PARAVISOR }),
    ).rejects.toMatchObject({ code: MicroVmErrorCode.KERNEL_FORMAT });
  });

  it("stop() ends a running guest", async () => {
    const vm = await createMicroVm({ kernel: HELLO }, { consoleOut: () => {}, paravisor: PARAVISOR });
    const run = vm.start();
    vm.stop();
    const r = await run;
    expect(["stopped", "shutdown"]).toContain(r.reason);
  });

  it("kill() ends a running guest without the parent's help", async () => {
    const vm = await createMicroVm({ kernel: HELLO }, { consoleOut: () => {}, paravisor: PARAVISOR });
    const run = vm.start();
    await vm.kill();
    expect(await run).toEqual({ status: 1, reason: "stopped", detail: "killed" });
    expect((await vm.stats()).kernel).toBeDefined();
  });

  it("reports unreadable and mismatched images as typed errors before the guest runs", async () => {
    const attempt = (config: Parameters<typeof createMicroVm>[0]) =>
      createMicroVm(config, { consoleOut: () => {}, paravisor: PARAVISOR }).then(
        () => undefined,
        (e: unknown) => e,
      );
    const missing = await attempt({ kernel: "/nonexistent/Image" });
    expect(missing).toBeInstanceOf(MicroVmError);
    expect((missing as MicroVmError).code).toBe(MicroVmErrorCode.KERNEL_UNREADABLE);
    const notElf = await attempt({ kernel: fileURLToPath(import.meta.url) });
    expect((notElf as MicroVmError).code).toBe(MicroVmErrorCode.KERNEL_FORMAT);
    const bad = await attempt({ kernel: HELLO, memory: 3 });
    expect((bad as MicroVmError).code).toBe(MicroVmErrorCode.CONFIG_INVALID);
    const withInitrd = await attempt({ kernel: HELLO, initrd: HELLO });
    expect((withInitrd as MicroVmError).code).toBe(MicroVmErrorCode.KERNEL_FORMAT);
  });

  it("a custom VSP whose module cannot be loaded, or lacks createVsp, is DEVICE_OPEN naming it, before the guest runs", async () => {
    const attempt = (module: string) =>
      createMicroVm(
        { kernel: HELLO },
        {
          consoleOut: () => {},
          paravisor: PARAVISOR,
          vsps: [
            {
              name: "counter",
              interfaceId: "c0a7e100-5eed-4c0d-9e00-000000000001",
              vsp: { module },
              vsc: { module },
            },
          ],
        },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
    const missing = (await attempt("/nonexistent/counter-vsp.mjs")) as MicroVmError;
    expect(missing).toBeInstanceOf(MicroVmError);
    expect(missing.code).toBe(MicroVmErrorCode.DEVICE_OPEN);
    expect(missing.context.device).toBe("counter");
    const empty = (await attempt("data:text/javascript,export const x = 1;")) as MicroVmError;
    expect(empty.code).toBe(MicroVmErrorCode.DEVICE_OPEN);
    expect(empty.message).toContain("exports no createVsp function");
  });

  it("a VSP of the user's own and its VSC talk over their channel before the guest runs", async () => {
    const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);
    const vsps = (vsc: URL | string) => [
      {
        name: "echo",
        interfaceId: "c0a7e100-5eed-4c0d-9e00-0000000000e1",
        vsp: { module: fixture("echo-vsp.mjs"), data: { tag: "echo", expectRam: "in guest ram" } },
        vsc: { module: vsc, data: { word: "hello", ramWord: "in guest ram" } },
        guestMemory: true,
      },
    ];
    const vm = await createMicroVm(
      { kernel: HELLO },
      { consoleOut: () => {}, paravisor: PARAVISOR, vsps: vsps(fixture("echo-vsc.mjs")) },
    );
    expect(await vm.start()).toEqual({ status: 0, reason: "shutdown" });
    const echo = (await vm.stats()).parent.devices?.echo as Record<string, unknown>;
    // The VSC got its words back upper-cased (one in-band, one read by the VSP from guest RAM
    // through the grant) and said so each time: both directions and the GPA-direct path worked.
    expect(echo).toMatchObject({
      requests: 4,
      confirmed: 2,
      ramReads: 1,
      ramMatched: 1,
      attaches: 1,
      started: 1,
      packetsIn: 4,
    });
    expect(echo.vsp).toMatchObject({ kills: 0, crashes: 0 });

    // A VSC module that cannot be loaded ends the child's VP: the run ends with an error, not a hang.
    const broken = await createMicroVm(
      { kernel: HELLO },
      { consoleOut: () => {}, paravisor: PARAVISOR, vsps: vsps("/nonexistent/echo-vsc.mjs") },
    );
    expect((await broken.start()).reason).toBe("error");
  });
});
