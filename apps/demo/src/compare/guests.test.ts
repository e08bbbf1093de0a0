import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { parseElf } from "@ringzero/cpu-core";
import { requireTool } from "@ringzero/cpu-core/testing";
import { createVm } from "@ringzero/hypervisor-monolithic/node";
import { afterAll, describe, expect, it } from "vitest";
import { elfImage, loopGuestCode, startGuestCode, writeGuests } from "./guests.js";

const guests = writeGuests(1000);
afterAll(() => rmSync(guests.dir, { recursive: true, force: true }));

describe("generated compare guests", () => {
  it("are ELF64 RISC-V executables with one PT_LOAD at RAM base", () => {
    const e = parseElf(elfImage(startGuestCode()));
    expect(e.entry).toBe(0x8000_0000n);
    expect(e.segments).toHaveLength(1);
    expect(e.segments[0].paddr).toBe(0x8000_0000);
  });

  it.skipIf(!requireTool("riscv64-linux-gnu-objdump"))("disassemble as intended (binutils)", () => {
    const dis = (code: number[]) => {
      const p = `${guests.dir}/code.bin`;
      const b = new Uint8Array(code.length * 4);
      const dv = new DataView(b.buffer);
      code.forEach((w, i) => {
        dv.setUint32(i * 4, w >>> 0, true);
      });
      writeFileSync(p, b);
      return spawnSync("riscv64-linux-gnu-objdump", ["-D", "-b", "binary", "-m", "riscv:rv64", p], {
        encoding: "utf8",
      }).stdout;
    };
    const loop = dis(loopGuestCode(0x12345));
    expect(loop).toMatch(/lui\s+t0,0x12/);
    expect(loop).toMatch(/addi?\s+t0,t0,837/);
    expect(loop).toMatch(/xor\s+t2,t2,t1/);
    expect(loop).toMatch(/bnez\s+t0,0x8/);
    expect(loop).toMatch(/ecall/);
    const start = dis(startGuestCode());
    expect(start).toMatch(/lui\s+t0,0x10000/);
    expect(start).toMatch(/sb\s+t1,0\(t0\)/);
    expect(start).toMatch(/lui\s+a7,0x53525/);
  });

  it("run on hypervisor-monolithic: the start guest prints R and shuts down; the loop retires its count", async () => {
    let out = "";
    const vm = await createVm(
      { memory: 16 * 1024 * 1024, kernel: guests.start },
      {
        consoleOut: (b) => {
          out += Buffer.from(b).toString();
        },
      },
    );
    expect(await vm.start()).toMatchObject({ status: 0, reason: "shutdown" });
    expect(out).toBe("R\n");
    const loop = await createVm({ memory: 16 * 1024 * 1024, kernel: guests.loop }, { consoleOut: () => {} });
    expect(await loop.start()).toMatchObject({ status: 0, reason: "shutdown" });
    expect(loop.stats().instructions).toBe(guests.loopInstructions);
  });
});
