import { describe, expect, it } from "vitest";
import { VirtioInterrupt } from "../constants.js";
import { MockDriver, mockDriver } from "../testing/index.js";
import { VirtioConsole, VirtioConsoleFeature } from "./console.js";

function setup(options: ConstructorParameters<typeof VirtioConsole>[0] = {}) {
  const out: string[] = [];
  const dev = new VirtioConsole({ output: (d) => out.push(new TextDecoder().decode(d)), ...options });
  return { dev, out };
}

describe("virtio-console (port 0)", () => {
  it("passes guest output from transmitq0 to the host", () => {
    const { dev, out } = setup();
    const drv = mockDriver(dev);
    const tx = drv.queue(1);
    tx.addBuffers([new TextEncoder().encode("hello "), new TextEncoder().encode("hvc0\n")], []);
    tx.kick();
    expect(out.join("")).toBe("hello hvc0\n");
    expect(tx.collect()[0]?.len).toBe(0);
    expect(dev.stats.bytesOut).toBe(11);
  });

  it("delivers host input into receive buffers, keeping input typed before buffers exist", () => {
    const { dev } = setup();
    dev.input("early");
    const drv = mockDriver(dev);
    const rx = drv.queue(0);
    rx.addBuffers([], [3]);
    rx.addBuffers([], [16]);
    rx.kick();
    const used = rx.collect();
    expect(used.map((u) => new TextDecoder().decode(u.written[0]?.subarray(0, u.len)))).toEqual(["ear", "ly"]);
    dev.input("ls\n");
    expect(dev.pendingInput).toBe(3);
    rx.addBuffers([], [16]);
    rx.kick();
    expect(new TextDecoder().decode(rx.collect()[0]?.written[0]?.subarray(0, 3))).toBe("ls\n");
    expect(drv.ackInterrupt() & VirtioInterrupt.USED_BUFFER).toBe(1);
  });

  it("bounds pending input and counts what it drops", () => {
    const { dev } = setup({ inputLimit: 4 });
    dev.input("abcdef");
    dev.input("g");
    expect(dev.pendingInput).toBe(4);
    expect(dev.stats.inputDropped).toBe(3);
  });

  it("offers SIZE and EMERG_WRITE, and writes emergency characters", () => {
    const { dev, out } = setup({ size: { cols: 80, rows: 25 } });
    const drv = mockDriver(dev);
    expect((drv.features >> BigInt(VirtioConsoleFeature.SIZE)) & 1n).toBe(1n);
    expect(drv.config(0, 2)).toBe(80);
    expect(drv.config(2, 2)).toBe(25);
    drv.setConfig(8, 4, 0x21);
    expect(out.join("")).toBe("!");
    dev.resize(132, 43);
    expect(drv.config(0, 2)).toBe(132);
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.CONFIG_CHANGE);
    // cols is read-only for the driver.
    drv.setConfig(0, 2, 1);
    expect(drv.transport.counters.badRegisterAccess).toBe(1);
  });

  it("counts device-writable buffers on transmitq as wrong direction", () => {
    const { dev } = setup();
    const drv = new MockDriver(dev).init();
    drv.queue(1).addBuffers([Uint8Array.of(65)], [4]);
    drv.queue(1).kick();
    expect(drv.transport.counters.wrongDirection).toBe(1);
  });

  it("counts an output callback that throws", () => {
    const dev = new VirtioConsole({
      output: () => {
        throw new Error("closed");
      },
    });
    const drv = mockDriver(dev);
    drv.queue(1).addBuffers([Uint8Array.of(65)], []);
    drv.queue(1).kick();
    expect(drv.queue(1).collect()).toHaveLength(1);
    expect(dev.stats.outputErrors).toBe(1);
  });
});
