// A malicious child partition (issue 9's proof): its paravisor
// (fixtures/hostile-paravisor.mjs) makes hypercalls it has no right to make,
// sends garbage VMBus control messages, asks for a ring GPADL outside its
// grant, sends storage requests naming memory it never granted or lying
// about lengths and offsets, and corrupts its ring's write index. The
// microkernel refuses every call (typed statuses), the parent answers every
// bad request with BAD_REQUEST, drops the corrupt channel (rescinded,
// counted) and serves the re-offer from a fresh VSP; nothing crashes and the
// guest then runs to its normal end.
import { existsSync, mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createMicroVm } from "./node.js";

const HELLO = fileURLToPath(new URL("../../../apps/demo/guests/hello/hello.elf", import.meta.url));
const HOSTILE = new URL("./fixtures/hostile-paravisor.mjs", import.meta.url).href;
const built =
  existsSync(new URL("../dist/worker.js", import.meta.url)) &&
  existsSync(new URL("../../hypervisor-micro/dist/vp-worker.js", import.meta.url)) &&
  existsSync(new URL("../../vmbus/dist/index.js", import.meta.url));
if (process.env.CI === "true" && !built) throw new Error("run `pnpm build` first: the VP and parent threads run dist/");

describe.runIf(built)("a malicious child partition", () => {
  it("cannot crash the parent or the microkernel; its corrupt channel is rescinded and counted", async () => {
    const disk = join(mkdtempSync(join(tmpdir(), "rz-hostile-")), "disk.raw");
    writeFileSync(disk, "");
    truncateSync(disk, 1 << 20);
    const out: Uint8Array[] = [];
    const vm = await createMicroVm(
      { kernel: HELLO, memory: 16 << 20, drives: [{ path: disk, format: "raw" }] },
      { consoleOut: (b) => out.push(b), paravisor: HOSTILE },
    );
    const r = await vm.start();
    // The guest ran to its end after the attacks: the parent and the microkernel survived them.
    expect(r).toEqual({ status: 0, reason: "shutdown" });
    expect(Buffer.concat(out).toString()).toContain("bye");
    const s = await vm.stats();
    const devices = s.parent.devices as Record<string, Record<string, unknown>>;
    const server = devices.server as Record<string, number>;
    const storage = devices.storage0 as Record<string, number> & { vsp: Record<string, number> };
    // Eleven garbage control messages, and the refused GPADL's open.
    expect(server.violations).toBeGreaterThanOrEqual(8);
    // The corrupt ring: the VSP found it, the parent ended that VSP, rescinded and re-offered.
    expect(storage.vsp.violations).toBe(1);
    expect(storage.vsp.rescinds).toBe(1);
    expect(storage.vsp.restarts).toBe(1);
    // The microkernel refused (and counted) every call the fixture made without the right to.
    expect(s.kernel.hypercalls.DeletePartition).toBe(1);
  }, 60_000);
});
