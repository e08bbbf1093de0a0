// The SBI as a guest's hypercall interface (SBI 2.0): every extension's calls,
// error codes for bad arguments, and the register convention.
import { readX, writeX } from "@ringzero/cpu-core";
import { describe, expect, it } from "vitest";
import { SBI_IMPL_ID, SbiError, SbiExtension, type SbiHost, SbiServer } from "./sbi.js";

function setup(hartCount = 1) {
  const log: string[] = [];
  const ram = new Uint8Array(4096);
  const input = [...new TextEncoder().encode("hi")];
  const host: SbiHost = {
    hartCount,
    setTimer: (h, t) => log.push(`timer ${h} ${t}`),
    consoleWrite: (b) => log.push(`out ${new TextDecoder().decode(b)}`),
    consoleRead: (max) => Uint8Array.from(input.splice(0, max)),
    sendIpi: (h) => log.push(`ipi ${h}`),
    clearIpi: (h) => log.push(`clear ${h}`),
    remoteFence: (h, k) => log.push(`${k} ${h}`),
    reset: (t, r) => log.push(`reset ${t} ${r}`),
    readGuest: (pa, len) =>
      pa >= 0x1000n && pa + BigInt(len) <= 0x2000n
        ? ram.slice(Number(pa) - 0x1000, Number(pa) - 0x1000 + len)
        : undefined,
    writeGuest: (pa, data) => {
      if (pa < 0x1000n || pa + BigInt(data.length) > 0x2000n) return false;
      ram.set(data, Number(pa) - 0x1000);
      return true;
    },
  };
  const sbi = new SbiServer(host);
  const x = new Int32Array(64);
  const call = (eid: number, fid: number, ...args: bigint[]): [bigint, bigint] => {
    writeX(x, 17, BigInt(eid));
    writeX(x, 16, BigInt(fid));
    for (const [i, v] of args.entries()) writeX(x, 10 + i, v);
    sbi.handle(0, x);
    return [BigInt.asIntN(64, readX(x, 10)), readX(x, 11)];
  };
  return { sbi, call, log, ram };
}

describe("SBI 2.0", () => {
  it("BASE: spec version 2.0, implementation id, probe", () => {
    const { call } = setup();
    expect(call(SbiExtension.BASE, 0)).toEqual([0n, 2n << 24n]);
    expect(call(SbiExtension.BASE, 1)).toEqual([0n, BigInt(SBI_IMPL_ID)]);
    for (const eid of [
      SbiExtension.TIME,
      SbiExtension.IPI,
      SbiExtension.RFENCE,
      SbiExtension.HSM,
      SbiExtension.SRST,
      SbiExtension.DBCN,
    ]) {
      expect(call(SbiExtension.BASE, 3, BigInt(eid))).toEqual([0n, 1n]);
    }
    expect(call(SbiExtension.BASE, 3, 0x12345678n)).toEqual([0n, 0n]);
    expect(call(SbiExtension.BASE, 99)[0]).toBe(BigInt(SbiError.NOT_SUPPORTED));
  });

  it("TIME set_timer and the legacy calls", () => {
    const { call, log } = setup();
    expect(call(SbiExtension.TIME, 0, 12345n)).toEqual([0n, 0n]);
    call(SbiExtension.LEGACY_SET_TIMER, 0, 777n);
    call(SbiExtension.LEGACY_CONSOLE_PUTCHAR, 0, 0x41n);
    const [c] = call(SbiExtension.LEGACY_CONSOLE_GETCHAR, 0);
    expect(c).toBe(0x68n);
    call(SbiExtension.LEGACY_CONSOLE_GETCHAR, 0);
    expect(call(SbiExtension.LEGACY_CONSOLE_GETCHAR, 0)[0]).toBe(-1n); // no input
    call(SbiExtension.LEGACY_SHUTDOWN, 0);
    expect(log).toEqual(["timer 0 12345", "timer 0 777", "out A", "reset shutdown 0"]);
  });

  it("IPI and RFENCE select harts by mask and base; bad harts are INVALID_PARAM", () => {
    const { call, log } = setup(2);
    expect(call(SbiExtension.IPI, 0, 0b11n, 0n)[0]).toBe(0n);
    expect(call(SbiExtension.IPI, 0, 1n, 1n)[0]).toBe(0n);
    expect(call(SbiExtension.IPI, 0, 1n, 2n)[0]).toBe(BigInt(SbiError.INVALID_PARAM));
    expect(call(SbiExtension.RFENCE, 1, 0n, (1n << 64n) - 1n)[0]).toBe(0n); // base -1: all harts
    expect(call(SbiExtension.RFENCE, 3, 1n, 0n)[0]).toBe(BigInt(SbiError.NOT_SUPPORTED)); // hfence needs H
    expect(log).toEqual(["ipi 0", "ipi 1", "ipi 1", "sfence.vma 0", "sfence.vma 1"]);
  });

  it("HSM: status, start of a running hart, invalid hart, suspend", () => {
    const { call } = setup(1);
    expect(call(SbiExtension.HSM, 2, 0n)).toEqual([0n, 0n]); // STARTED
    expect(call(SbiExtension.HSM, 2, 5n)[0]).toBe(BigInt(SbiError.INVALID_PARAM));
    expect(call(SbiExtension.HSM, 0, 0n, 0x80200000n, 0n)[0]).toBe(BigInt(SbiError.ALREADY_AVAILABLE));
    expect(call(SbiExtension.HSM, 3, 0n)[0]).toBe(0n);
    expect(call(SbiExtension.HSM, 3, 7n)[0]).toBe(BigInt(SbiError.INVALID_PARAM));
  });

  it("SRST: shutdown and reboots; reserved types are INVALID_PARAM", () => {
    const { call, log } = setup();
    expect(call(SbiExtension.SRST, 0, 0n, 0n)[0]).toBe(0n);
    expect(call(SbiExtension.SRST, 0, 1n, 1n)[0]).toBe(0n);
    expect(call(SbiExtension.SRST, 0, 0xf0000000n, 0n)[0]).toBe(BigInt(SbiError.INVALID_PARAM));
    expect(log).toEqual(["reset shutdown 0", "reset cold-reboot 1"]);
  });

  it("DBCN: write from and read into guest memory; bad addresses are INVALID_PARAM", () => {
    const { call, log, ram } = setup();
    ram.set(new TextEncoder().encode("hello"), 0x10);
    expect(call(SbiExtension.DBCN, 0, 5n, 0x1010n, 0n)).toEqual([0n, 5n]);
    expect(call(SbiExtension.DBCN, 0, 5n, 0x9000n, 0n)[0]).toBe(BigInt(SbiError.INVALID_PARAM));
    expect(call(SbiExtension.DBCN, 1, 8n, 0x1100n, 0n)).toEqual([0n, 2n]);
    expect(new TextDecoder().decode(ram.subarray(0x100, 0x102))).toBe("hi");
    expect(call(SbiExtension.DBCN, 2, 0x21n)).toEqual([0n, 0n]);
    expect(log).toEqual(["out hello", "out !"]);
  });

  it("unknown extensions are NOT_SUPPORTED and counted", () => {
    const { call, sbi } = setup();
    expect(call(0x0a000000, 0)[0]).toBe(BigInt(SbiError.NOT_SUPPORTED));
    expect(sbi.stats.unsupported).toBe(1);
    expect(sbi.stats.calls).toBe(1);
  });
});
