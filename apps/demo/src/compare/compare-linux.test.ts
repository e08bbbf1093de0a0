// `ringzero compare --kernel --initrd` on the Linux guest kit: the boot and
// blk rows (sequential MB/s and rzio's 4 KiB random IOPS) have figures under
// both hypervisors; the fault row shows mono dying with its killed storage
// back end and micro surviving it. Runs under CI=true; locally
// RINGZERO_SKIP_LINUX=1 skips it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../main.js";
import { prepareLinux, skipLinux } from "../test-linux.js";
import { HYPERVISORS } from "./measures.js";
import { CompareReportSchema } from "./schema.js";

describe.skipIf(skipLinux)("ringzero compare on the Linux guest kit", () => {
  const dir = mkdtempSync(join(tmpdir(), "rz-compare-linux-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let kit: { image: string; initrd: string };
  beforeAll(async () => {
    kit = await prepareLinux();
  }, 90 * 60_000);

  it("boot to shell, blk sequential and random read/write, the Linux VM's RSS and fault isolation under both hypervisors", async () => {
    let table = "";
    const status = await main(
      [
        ...["compare", "--runs", "1", "--only", "boot,blk,mem,fault", "--linux-timeout", "120"],
        ...["--kernel", kit.image, "--initrd", kit.initrd, "--json", join(dir, "l.json")],
      ],
      {
        stdout: (b) => {
          table += Buffer.from(b).toString();
        },
        stderr: () => {},
      },
    );
    expect(status).toBe(0);
    const report = CompareReportSchema.parse(JSON.parse(readFileSync(join(dir, "l.json"), "utf8")));
    for (const id of ["boot.shell", "blk.read", "blk.write", "blk.randread", "blk.randwrite", "mem.linux"]) {
      const mono = report.records.find((r) => r.measure === id && r.hypervisor === "monolithic");
      expect(mono?.value, `${id}: ${mono?.reason}`).toBeGreaterThan(0);
      const micro = report.records.find((r) => r.measure === id && r.hypervisor === "micro");
      expect(micro?.value, `${id}: ${micro?.reason}`).toBeGreaterThan(0);
    }
    const at = (id: string, hv: string) => report.records.find((r) => r.measure === id && r.hypervisor === hv);
    expect(at("fault.survives", "monolithic")?.value).toBe(0);
    expect(at("fault.survives", "micro")?.value).toBe(1);
    expect(at("fault.restart", "micro")?.value).toBeGreaterThan(0);
    expect(at("fault.restart", "monolithic")?.reason).toMatch(/died/);
    const signals = at("blk.signals", "micro")?.value ?? 0;
    expect(signals).toBeGreaterThan(0); // interrupt suppression: well below one signal per packet
    expect(signals).toBeLessThan(4);
    for (const hv of HYPERVISORS) expect(report.records.filter((r) => r.hypervisor === hv)).toHaveLength(10);
    console.log(table);
  }, 900_000);
});
