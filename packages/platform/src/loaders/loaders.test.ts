import { Bus } from "@ringzero/cpu-core";
import { describe, expect, it } from "vitest";
import { PlatformError, PlatformErrorCode } from "../devices/errors.js";
import { buildVirtDeviceTree } from "../fdt/virt.js";
import { detectKernelFormat, parseLinuxImage } from "./linux-image.js";
import { KERNEL_ALIGN, loadLinuxBoot, loadRaw, MIB, planLinuxBoot } from "./placement.js";

/** An Image header as arch/riscv/kernel/head.S lays it out (version 0.2). */
function image(
  opts: {
    size?: number;
    textOffset?: bigint;
    imageSize?: bigint;
    flags?: bigint;
    magic?: boolean;
    magic2?: boolean;
    mz?: boolean;
  } = {},
) {
  const data = new Uint8Array(opts.size ?? 4096);
  const dv = new DataView(data.buffer);
  if (opts.mz) data.set([0x4d, 0x5a]);
  else dv.setUint32(0, 0x0040_006f, true); // j 0x40 (head.S: jump past the header)
  dv.setBigUint64(8, opts.textOffset ?? 0x20_0000n, true);
  dv.setBigUint64(16, opts.imageSize ?? 0x40_0000n, true);
  dv.setBigUint64(24, opts.flags ?? 0n, true);
  dv.setUint32(32, 0x2, true);
  if (opts.magic ?? true) data.set(new TextEncoder().encode("RISCV\0\0\0"), 48);
  if (opts.magic2 ?? true) data.set(new TextEncoder().encode("RSC\x05"), 56);
  for (let i = 64; i < data.length; i++) data[i] = i & 0xff;
  return data;
}

function expectCode(fn: () => unknown, code: string, message?: RegExp) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PlatformError);
    expect((e as PlatformError).code).toBe(code);
    if (message) expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error("expected a PlatformError");
}

describe("Linux Image header", () => {
  it("parses text_offset, image_size, flags and version", () => {
    const img = parseLinuxImage(image());
    expect(img).toMatchObject({
      textOffset: 0x20_0000,
      imageSize: 0x40_0000,
      loadSize: 0x40_0000,
      version: { major: 0, minor: 2 },
      efiStub: false,
    });
    expect(parseLinuxImage(image({ magic: false })).textOffset).toBe(0x20_0000); // magic2 alone
    expect(parseLinuxImage(image({ magic2: false })).textOffset).toBe(0x20_0000); // deprecated magic alone
    expect(parseLinuxImage(image({ mz: true })).efiStub).toBe(true);
    expect(parseLinuxImage(image({ size: 8192, imageSize: 100n })).loadSize).toBe(8192);
  });

  it("tells Images, ELF files and gzip files apart", () => {
    expect(detectKernelFormat(image())).toBe("linux-image");
    expect(detectKernelFormat(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46))).toBe("elf");
    expect(detectKernelFormat(Uint8Array.of(0x1f, 0x8b))).toBe("gzip");
    expect(detectKernelFormat(new Uint8Array(100))).toBe("unknown");
    expect(detectKernelFormat(new Uint8Array(0))).toBe("unknown");
  });

  it("refuses what is not a bootable Image with a reason", () => {
    expectCode(
      () => parseLinuxImage(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1)),
      PlatformErrorCode.KERNEL_INVALID,
      /ELF/,
    );
    expectCode(() => parseLinuxImage(Uint8Array.of(0x1f, 0x8b, 8, 0)), PlatformErrorCode.KERNEL_INVALID, /gzip/);
    expectCode(() => parseLinuxImage(new Uint8Array(63)), PlatformErrorCode.KERNEL_INVALID, /64-byte/);
    expectCode(
      () => parseLinuxImage(image({ magic: false, magic2: false })),
      PlatformErrorCode.KERNEL_INVALID,
      /magic/,
    );
    expectCode(() => parseLinuxImage(image({ imageSize: 0n })), PlatformErrorCode.KERNEL_INVALID, /image_size is 0/);
    expectCode(() => parseLinuxImage(image({ imageSize: 1n << 40n })), PlatformErrorCode.KERNEL_INVALID, /image_size/);
    expectCode(
      () => parseLinuxImage(image({ textOffset: 1n << 63n })),
      PlatformErrorCode.KERNEL_INVALID,
      /text_offset/,
    );
    expectCode(() => parseLinuxImage(image({ flags: 1n })), PlatformErrorCode.KERNEL_INVALID, /big-endian/);
  });

  it("never throws anything but KERNEL_INVALID on random or mutated input", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const base = image({ size: 128 });
    for (let n = 0; n < 2000; n++) {
      const data = n % 2 ? base.slice() : new Uint8Array(rnd() % 200);
      for (let k = 0; k < 1 + (rnd() % 6); k++) if (data.length) data[rnd() % data.length] = rnd() & 0xff;
      try {
        const img = parseLinuxImage(data);
        expect(img.loadSize).toBeGreaterThanOrEqual(data.length);
        expect(img.imageSize).toBeGreaterThan(0);
      } catch (e) {
        expect((e as PlatformError).code).toBe(PlatformErrorCode.KERNEL_INVALID);
      }
    }
  });
});

describe("boot placement", () => {
  it("places kernel, initrd and DTB where QEMU virt does for 256 MiB", () => {
    const l = planLinuxBoot({
      ramBase: 0x8000_0000,
      ramSize: 256 * MIB,
      kernel: { textOffset: 0x20_0000, loadSize: 0x60_0000 },
      initrdSize: 0xf_dda5,
    });
    expect(l.entry).toBe(0x8020_0000);
    expect(l.kernel).toEqual({ start: 0x8020_0000, end: 0x8080_0000 });
    expect(l.initrd).toEqual({ start: 0x8820_0000, end: 0x882f_dda5 }); // as in the reference tree's /chosen
    expect(l.dtb.start).toBe(0x8fe0_0000);
    expect(l.dtb.start % 8).toBe(0);
  });

  it("keeps the DTB below 3 GiB with large RAM, halves the initrd offset with small RAM", () => {
    const big = planLinuxBoot({
      ramBase: 0x8000_0000,
      ramSize: 4096 * MIB,
      kernel: { textOffset: 0x20_0000, loadSize: 0x40_0000 },
    });
    expect(big.dtb.start).toBe(0xbfe0_0000);
    const small = planLinuxBoot({
      ramBase: 0x8000_0000,
      ramSize: 64 * MIB,
      kernel: { textOffset: 0x20_0000, loadSize: 0x40_0000 },
      initrdSize: 4096,
    });
    expect(small.initrd?.start).toBe(0x8220_0000);
  });

  it("moves a large initrd down to the DTB, then refuses what cannot fit", () => {
    const k = { textOffset: 0x20_0000, loadSize: 0x40_0000 };
    const l = planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 64 * MIB, kernel: k, initrdSize: 50 * MIB });
    expect(l.initrd && l.initrd.end <= l.dtb.start).toBe(true);
    expect(l.initrd && l.initrd.start >= l.kernel.end).toBe(true);
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 64 * MIB, kernel: k, initrdSize: 62 * MIB }),
      PlatformErrorCode.LOAD_DOES_NOT_FIT,
      /initrd/,
    );
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 4 * MIB, kernel: k }),
      PlatformErrorCode.LOAD_DOES_NOT_FIT,
      /kernel/,
    );
    // Tight RAM: the DTB drops from its 2 MiB slot to a page below the top.
    const tight = planLinuxBoot({
      ramBase: 0x8000_0000,
      ramSize: 7 * MIB,
      kernel: { textOffset: 0x20_0000, loadSize: 0x40_1000 },
      dtbReserve: 0x1_0000,
    });
    expect(tight.dtb).toEqual({ start: 0x8000_0000 + 7 * MIB - 0x1_0000, end: 0x8000_0000 + 7 * MIB });
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8010_0000, ramSize: 64 * MIB, kernel: k }),
      PlatformErrorCode.LOAD_DOES_NOT_FIT,
      /2 MiB/,
    );
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 64 * MIB, kernel: { textOffset: 0x10_0000, loadSize: 1 } }),
      PlatformErrorCode.LOAD_DOES_NOT_FIT,
    );
    expectCode(() => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 0, kernel: k }), PlatformErrorCode.CONFIG_INVALID);
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 64 * MIB, kernel: k, dtbReserve: 3 * MIB }),
      PlatformErrorCode.CONFIG_INVALID,
    );
    expectCode(
      () => planLinuxBoot({ ramBase: 0x8000_0000, ramSize: 64 * MIB, kernel: k, initrdSize: -1 }),
      PlatformErrorCode.CONFIG_INVALID,
    );
  });

  it("loads kernel, initrd and a DTB built from the layout into cpu-core's RAM", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: 32 * MIB });
    const kernel = image({ size: 0x1_0000 });
    const initrd = Uint8Array.from({ length: 5000 }, (_, i) => i * 7);
    const r = loadLinuxBoot(bus, {
      kernel,
      initrd,
      dtb: (layout) =>
        buildVirtDeviceTree({
          memory: { size: 32 * MIB },
          isa: "rv64imafdc_zicsr_zifencei",
          chosen: { bootargs: "console=ttyS0", initrd: layout.initrd },
        }),
    });
    expect(r.layout.entry % KERNEL_ALIGN).toBe(0);
    expect(bus.read(r.layout.kernel.start, kernel.length)).toEqual(kernel);
    expect(r.layout.initrd?.start).toBe(0x8000_0000 + 0x20_0000 + 16 * MIB);
    expect(bus.read(r.layout.initrd?.start ?? 0, initrd.length)).toEqual(initrd);
    const magic = new DataView(bus.read(r.layout.dtb.start, 4).slice().buffer).getUint32(0);
    expect(magic).toBe(0xd00d_feed);
    expect(r.dtbSize).toBeGreaterThan(500);
    expectCode(
      () => loadLinuxBoot(bus, { kernel, dtb: () => new Uint8Array(64), dtbReserve: 16 }),
      PlatformErrorCode.LOAD_DOES_NOT_FIT,
      /larger than its slot/,
    );
    expectCode(
      () => loadLinuxBoot(bus, { kernel: new Uint8Array(10), dtb: () => new Uint8Array(64) }),
      PlatformErrorCode.KERNEL_INVALID,
    );
  });

  it("loads raw binaries inside RAM only", () => {
    const bus = new Bus({ ramBase: 0x8000_0000, ramSize: MIB });
    expect(loadRaw(bus, 0x8000_0000, Uint8Array.of(1, 2, 3))).toEqual({ start: 0x8000_0000, end: 0x8000_0003 });
    expect(bus.read(0x8000_0000, 3)).toEqual(Uint8Array.of(1, 2, 3));
    expectCode(() => loadRaw(bus, 0x8000_0000 + MIB - 2, Uint8Array.of(1, 2, 3)), PlatformErrorCode.LOAD_DOES_NOT_FIT);
    expectCode(() => loadRaw(bus, 0x7fff_ffff, Uint8Array.of(1)), PlatformErrorCode.LOAD_DOES_NOT_FIT);
    expectCode(() => loadRaw(bus, 0.5, Uint8Array.of(1)), PlatformErrorCode.LOAD_DOES_NOT_FIT);
  });
});
