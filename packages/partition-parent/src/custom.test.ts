import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { customInstanceId, numericCounters, parseCustomVsps } from "./custom.js";
import { MicroVmError, MicroVmErrorCode } from "./errors.js";

/** What the Node entry's host resolves module paths with. */
const fromPath = (p: string) => pathToFileURL(p).href;

const ok = {
  name: "counter",
  interfaceId: "C0A7E100-5EED-4C0D-9E00-000000000001",
  vsp: { module: "./counter-vsp.mjs", data: { start: 5 } },
  vsc: { module: new URL("file:///srv/counter-vsc.mjs") },
};

function code(f: () => unknown): { code: string; path: unknown; message: string } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MicroVmError);
    const m = e as MicroVmError;
    return { code: m.code, path: m.context.path, message: m.message };
  }
  throw new Error("did not throw");
}

describe("custom VSP definitions", () => {
  it("resolves paths to file URLs, lower-cases the GUIDs, derives an instance ID and clones data", () => {
    const data = { start: 5 };
    const [d] = parseCustomVsps([{ ...ok, vsp: { ...ok.vsp, data } }], fromPath);
    expect(d?.name).toBe("counter");
    expect(d?.interfaceId).toBe("c0a7e100-5eed-4c0d-9e00-000000000001");
    expect(d?.instanceId).toBe(customInstanceId(0));
    expect(d?.vsp.module).toMatch(/^file:\/\/\/.*\/counter-vsp\.mjs$/);
    expect(d?.vsc.module).toBe("file:///srv/counter-vsc.mjs");
    expect(d?.vsp.data).toEqual(data);
    expect(d?.vsp.data).not.toBe(data);
    expect(d?.ringBytes).toBe(16384);
    expect(d?.killGraceMs).toBe(0);
    expect(d?.guestMemory).toBe(false);
    expect(parseCustomVsps([{ ...ok, killGraceMs: 250 }], fromPath)[0]?.killGraceMs).toBe(250);
    expect(parseCustomVsps(undefined)).toEqual([]);
    expect(parseCustomVsps([{ ...ok, vsp: { module: "data:text/javascript,export{}" } }])[0]?.vsp.module).toBe(
      "data:text/javascript,export{}",
    );
  });

  it("refuses a module path on a host that resolves none (a browser): URLs only there", () => {
    const e = code(() => parseCustomVsps([ok]));
    expect(e.code).toBe(MicroVmErrorCode.CONFIG_INVALID);
    expect(e.path).toBe("vsps.0");
    expect(e.message).toContain("./counter-vsp.mjs");
    const url = { ...ok, vsp: { module: "https://example.test/counter-vsp.js" } };
    expect(parseCustomVsps([url])[0]?.vsp.module).toBe("https://example.test/counter-vsp.js");
  });

  it("refuses bad definitions with CONFIG_INVALID naming the field", () => {
    const bad: [unknown, string][] = [
      [{ ...ok, name: "Counter" }, "vsps.0.name"],
      [{ ...ok, name: "storage1" }, "vsps.0.name"], // a built-in's monitor name
      [{ ...ok, interfaceId: "not-a-guid" }, "vsps.0.interfaceId"],
      [{ ...ok, instanceId: "x" }, "vsps.0.instanceId"],
      [{ ...ok, vsp: {} }, "vsps.0.vsp.module"],
      [{ ...ok, vsc: { module: 42 } }, "vsps.0.vsc.module"],
      [{ ...ok, ringBytes: 5000 }, "vsps.0.ringBytes"],
      [{ ...ok, killGraceMs: -1 }, "vsps.0.killGraceMs"],
      [{ ...ok, extra: 1 }, "vsps.0"],
      [{ ...ok, vsp: { ...ok.vsp, data: { f: () => 1 } } }, "vsps.0"], // not structured-cloneable
      [null, "vsps.0"],
    ];
    for (const [v, path] of bad) {
      const e = code(() => parseCustomVsps([v], fromPath));
      expect(e.code, path).toBe(MicroVmErrorCode.CONFIG_INVALID);
      expect(e.path, JSON.stringify(v)).toBe(path);
      expect(e.message.split("\n")).toHaveLength(1);
    }
    expect(code(() => parseCustomVsps([ok, ok], fromPath)).message).toContain('"counter" twice');
  });

  it("keeps only numeric counters (what crosses the worker's port)", () => {
    expect(numericCounters({ a: 1, b: "x", c: () => 2, d: 3.5 })).toEqual({ a: 1, d: 3.5 });
    expect(numericCounters(undefined)).toEqual({});
  });
});
