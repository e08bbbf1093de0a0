import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PlatformError } from "../devices/errors.js";
import { decompile, parseDts, requireDtc } from "./dtc.js";
import { buildVirtDeviceTree, parseIsaString, VIRT_PATHS, type VirtDeviceTreeOptions } from "./virt.js";

requireDtc();

// Copies of ../shared/reference (QEMU 7.2 `-M virt -smp 1 -m 256M`, decompiled; and as OpenSBI hands it to Linux).
const REF = new URL("./fixtures/", import.meta.url);
const refTree = (name: string) => parseDts(readFileSync(new URL(name, REF), "utf8"));

const REF_ISA = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc";
const full: VirtDeviceTreeOptions = {
  memory: { size: 0x1000_0000 },
  isa: REF_ISA,
  devices: { virtio: [0, 1, 2, 3, 4, 5, 6, 7] },
  chosen: {
    bootargs: "console=ttyS0 earlycon=sbi rz.nonet",
    initrd: { start: 0x8820_0000, end: 0x882f_dda5 },
  },
  reservedMemory: [{ name: "mmode_resv", base: 0x8000_0000, size: 0x8_0000 }],
};

// dtc warns about the one thing QEMU's own tree also lacks (a cpu interrupt
// controller without #address-cells, which Linux does not read); anything
// else is a real warning.
const QEMU_SHAPE_WARNING =
  /^<stdout>: Warning \(interrupt_provider\): \/cpus\/cpu@[0-9a-f]+\/interrupt-controller: Missing #address-cells in interrupt provider$/;

function tree(options: VirtDeviceTreeOptions) {
  const { dts, warnings: all } = decompile(buildVirtDeviceTree(options));
  const warnings = all
    .split("\n")
    .filter((l) => l !== "" && !QEMU_SHAPE_WARNING.test(l))
    .join("\n");
  return { t: parseDts(dts), warnings, dts };
}

describe("virt device tree", () => {
  it("matches the tree Linux sees on QEMU virt, node for node and property for property", () => {
    const { t, warnings } = tree(full);
    expect(warnings).toBe("");
    const ref = refTree("qemu-virt-as-linux-sees-it.dts");
    // What QEMU has and ringzero's board does not.
    const absent = ["/pmu", "/fw-cfg@10100000", "/flash@20000000", "/platform-bus@4000000", "/soc/pci@30000000"];
    expect([...ref.keys()].filter((p) => !t.has(p)).sort()).toEqual(absent.sort());
    expect([...t.keys()].filter((p) => !ref.has(p))).toEqual([]);
    for (const [path, props] of t) {
      expect(Object.fromEntries(props), path).toEqual(Object.fromEntries(ref.get(path) ?? []));
    }
  });

  it("gives the PLIC its M-mode contexts and carries rng-seed as QEMU's own tree does", () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
    const { t } = tree({ ...full, plicMModeContexts: true, chosen: { ...full.chosen, rngSeed: seed } });
    const ref = refTree("qemu-virt.dts");
    expect(t.get(VIRT_PATHS.plic)?.get("interrupts-extended")).toBe(
      ref.get(VIRT_PATHS.plic)?.get("interrupts-extended"),
    );
    expect(t.get("/chosen")?.get("rng-seed")).toBe(
      "<0x10203 0x4050607 0x8090a0b 0xc0d0e0f 0x10111213 0x14151617 0x18191a1b 0x1c1d1e1f>",
    );
  });

  it("emits nodes only for configured devices", () => {
    const { t, warnings } = tree({
      memory: { size: 64 << 20 },
      isa: "rv64imafdc_zicsr_zifencei",
      mmuType: "riscv,sv39",
      devices: { uart: true, rtc: false, testFinisher: false, virtio: [2] },
    });
    expect(warnings).toBe("");
    expect([...t.keys()].sort()).toEqual(
      [
        "/",
        "/chosen",
        "/memory@80000000",
        "/cpus",
        "/cpus/cpu@0",
        "/cpus/cpu@0/interrupt-controller",
        "/cpus/cpu-map",
        "/cpus/cpu-map/cluster0",
        "/cpus/cpu-map/cluster0/core0",
        "/soc",
        VIRT_PATHS.uart,
        "/soc/virtio_mmio@10003000",
        VIRT_PATHS.plic,
        VIRT_PATHS.clint,
      ].sort(),
    );
    expect(t.get("/cpus/cpu@0")?.get("mmu-type")).toBe('"riscv,sv39"');
    expect(t.get("/cpus/cpu@0")?.get("riscv,isa")).toBe('"rv64imafdc_zicsr_zifencei"');
    expect(t.get("/soc/virtio_mmio@10003000")?.get("interrupts")).toBe("<0x03>");
    expect(t.get("/memory@80000000")?.get("reg")).toBe("<0x00 0x80000000 0x00 0x4000000>");
    expect(t.get("/chosen")?.get("stdout-path")).toBe(`"${VIRT_PATHS.uart}"`);
    expect(t.get("/chosen")?.has("bootargs")).toBe(false);
    // No UART, no finisher: no stdout-path, no poweroff node.
    const bare = tree({
      memory: { size: 1 << 20 },
      isa: "rv64ima",
      devices: { uart: false, rtc: false, testFinisher: false },
    }).t;
    expect(bare.get("/chosen")?.size).toBe(0);
    expect(bare.has("/poweroff")).toBe(false);
  });

  it("describes several harts with their own contexts, and 64-bit initrd addresses in two cells", () => {
    const { t, warnings } = tree({
      memory: { base: 0x8000_0000, size: 0x2_0000_0000 },
      harts: 2,
      isa: "rv64gc_sstc",
      isaExtensions: true,
      chosen: { initrd: { start: 0x1_8000_0000, end: 0x1_8010_0000 } },
    });
    expect(warnings).toBe("");
    expect(t.get("/cpus/cpu@1/interrupt-controller")?.get("phandle")).toBe("<0x04>");
    expect(t.get(VIRT_PATHS.plic)?.get("phandle")).toBe("<0x05>");
    expect(t.get(VIRT_PATHS.plic)?.get("interrupts-extended")).toBe(
      "<0x02 0xffffffff 0x02 0x09 0x04 0xffffffff 0x04 0x09>",
    );
    expect(t.get(VIRT_PATHS.clint)?.get("interrupts-extended")).toBe("<0x02 0x03 0x02 0x07 0x04 0x03 0x04 0x07>");
    expect(t.get("/cpus/cpu-map/cluster0/core1")?.get("cpu")).toBe("<0x03>");
    expect(t.get("/chosen")?.get("linux,initrd-start")).toBe("<0x01 0x80000000>");
    expect(t.get("/memory@80000000")?.get("reg")).toBe("<0x00 0x80000000 0x02 0x00>");
    expect(t.get("/cpus/cpu@1")?.get("riscv,isa-base")).toBe('"rv64i"');
    expect(t.get("/cpus/cpu@1")?.get("riscv,isa-extensions")).toBe('"i\\0m\\0a\\0f\\0d\\0zicsr\\0zifencei\\0c\\0sstc"');
  });

  it("splits ISA strings", () => {
    expect(parseIsaString("rv64imafdc_zicsr_zifencei_sstc")).toEqual({
      base: "rv64i",
      extensions: ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "sstc"],
    });
    expect(() => parseIsaString("x86_64")).toThrow(PlatformError);
  });

  it("refuses bad options with typed errors", () => {
    const bad: unknown[] = [
      { ...full, isa: "RV64 GC" },
      { ...full, isa: "rv64" },
      { ...full, memory: { size: 0 } },
      { ...full, mmuType: "riscv,sv57" },
      { ...full, devices: { plic: false } },
      { ...full, devices: { virtio: [8] } },
      { ...full, devices: { virtio: [1, 1] } },
      { ...full, chosen: { initrd: { start: 10, end: 5 } } },
      { ...full, chosen: { rngSeed: new Uint8Array(1024) } },
      { ...full, harts: 0 },
    ];
    for (const o of bad)
      expect(() => buildVirtDeviceTree(o as VirtDeviceTreeOptions), JSON.stringify(o)).toThrow(PlatformError);
  });
});
