// `ringzero compare --kernel --initrd` on the Linux guest kit: the boot and
// blk rows have mono's figures and, under micro, a figure or the reason why
// not. Runs under CI=true; locally RINGZERO_SKIP_LINUX=1 skips it.
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

  it("boot to shell, blk read/write and the Linux VM's RSS: mono measured, micro measured or explained", async () => {
    let table = "";
    const status = await main(
      [
        ...["compare", "--runs", "1", "--only", "boot,blk,mem", "--linux-timeout", "120"],
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
    for (const id of ["boot.shell", "blk.read", "blk.write", "mem.linux"]) {
      const mono = report.records.find((r) => r.measure === id && r.hypervisor === "monolithic");
      expect(mono?.value, `${id}: ${mono?.reason}`).toBeGreaterThan(0);
      const micro = report.records.find((r) => r.measure === id && r.hypervisor === "micro");
      expect(micro?.value !== null || (micro?.reason ?? "").length > 0).toBe(true);
    }
    for (const hv of HYPERVISORS) expect(report.records.filter((r) => r.hypervisor === hv)).toHaveLength(5);
    console.log(table);
  }, 900_000);
});
