import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GuestKitError } from "./errors.js";
import { checkKconfig, formatMismatches, mergeKconfig, parseKconfigFragment } from "./kconfig.js";
import { KCONFIG_FRAGMENT_PATH } from "./kernel.js";

describe("Kconfig fragments", () => {
  it("parses assignments and not-set lines, ignores comments", () => {
    expect(parseKconfigFragment('# hi\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_N=4\nCONFIG_S="x y"\n')).toEqual([
      { name: "CONFIG_A", value: "y", line: 2 },
      { name: "CONFIG_B", value: null, line: 4 },
      { name: "CONFIG_N", value: "4", line: 5 },
      { name: "CONFIG_S", value: '"x y"', line: 6 },
    ]);
  });
  it("rejects junk, empty values and duplicates with the line number", () => {
    expect(() => parseKconfigFragment("CONFIG_A=y\nFOO=bar\n")).toThrow(/"line":2/);
    expect(() => parseKconfigFragment("CONFIG_A=\n")).toThrow(GuestKitError);
    expect(() => parseKconfigFragment("CONFIG_A=y\n# CONFIG_A is not set\n")).toThrow(/duplicate of line 1/);
  });
  it("the project's fragment parses and keeps the board's essentials", () => {
    const opts = parseKconfigFragment(readFileSync(KCONFIG_FRAGMENT_PATH, "utf8"));
    const byName = new Map(opts.map((o) => [o.name, o.value]));
    for (const n of [
      "CONFIG_NONPORTABLE",
      "CONFIG_SERIAL_8250_CONSOLE",
      "CONFIG_BLK_DEV_INITRD",
      "CONFIG_RD_GZIP",
      "CONFIG_RISCV_SBI",
      "CONFIG_DEVTMPFS",
      "CONFIG_BINFMT_ELF",
    ]) {
      expect(byName.get(n), n).toBe("y");
    }
    expect(byName.get("CONFIG_EFI")).toBeNull();
    expect(byName.get("CONFIG_MODULES")).toBeNull();
  });
  it("merges by replacing the fragment's symbols", () => {
    const frag = parseKconfigFragment("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=5\n");
    const merged = mergeKconfig("CONFIG_A=n\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=y\n", frag);
    expect(merged).toBe("CONFIG_D=y\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=5\n");
  });
  it("reports options olddefconfig dropped or changed", () => {
    const frag = parseKconfigFragment(
      "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\nCONFIG_N=4\nCONFIG_E=y\n",
    );
    const bad = checkKconfig("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_N=8\nCONFIG_C=y\n", frag);
    expect(bad).toEqual([
      { name: "CONFIG_B", wanted: "y", got: null },
      { name: "CONFIG_C", wanted: null, got: "y" },
      { name: "CONFIG_N", wanted: "4", got: "8" },
      { name: "CONFIG_E", wanted: "y", got: undefined },
    ]);
    expect(formatMismatches(bad)).toContain("CONFIG_E: wanted y, got absent");
  });
});
