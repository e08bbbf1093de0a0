// `ringzero run --deterministic`: time from instructions, not the host, so the
// embedded demo guest (which reads the RTC and sleeps 10 ms in WFI on its
// timer) runs the same every time — same console, same instruction count.
import { describe, expect, it } from "vitest";
import { main } from "./main.js";

async function run(args: string[]): Promise<{ status: number; out: string; err: string; instructions: number }> {
  let out = "";
  let err = "";
  const status = await main(args, {
    stdout: (b) => {
      out += Buffer.from(b).toString("latin1");
    },
    stderr: (t) => {
      err += t;
    },
  });
  const m = /ringzero: (\d+) instructions/.exec(err);
  return { status, out, err, instructions: m ? Number(m[1]) : -1 };
}

describe("ringzero run --deterministic", () => {
  it("monolithic: two runs print the same bytes and retire the same instructions; the RTC starts at 0", async () => {
    const a = await run(["run", "--deterministic", "--stats"]);
    const b = await run(["run", "--deterministic", "--stats"]);
    expect(a.status).toBe(0);
    expect(a.out).toContain("slept in WFI (ms)  = 10"); // the timer still fires: WFI spins on to it
    expect(a.out).toContain("rtc seconds        = 0");
    expect(b.out).toBe(a.out);
    expect(a.instructions).toBeGreaterThan(1_000_000);
    expect(b.instructions).toBe(a.instructions);
  }, 60_000);

  it("micro: the same (the paravisor's goldfish RTC reads the VP's instruction-derived time)", async () => {
    const a = await run(["run", "--hypervisor", "micro", "--deterministic", "--stats"]);
    const b = await run(["run", "--hypervisor", "micro", "--deterministic", "--stats"]);
    expect(a.status).toBe(0);
    expect(a.out).toContain("slept in WFI (ms)  = 10");
    expect(a.out).toContain("rtc seconds        = 0");
    expect(b.out).toBe(a.out);
    expect(a.instructions).toBeGreaterThan(1_000_000);
    expect(b.instructions).toBe(a.instructions);
  }, 60_000);

  it("rejects a value (a flag, not an option)", async () => {
    const r = await run(["run", "--deterministic=yes"]);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/deterministic/);
  });
});
