import { describe, expect, it } from "vitest";
import { countLines, countTcb, findWorkspacePackages, HARDWARE_PACKAGE, runtimeImports, TCB_ROOT } from "./tcb.js";

describe("TCB counting", () => {
  it("counts lines that are neither blank nor only comment", () => {
    const src = [
      "// header",
      "import { a } from './a.js';",
      "",
      "/* one-line block */",
      "/**",
      " * doc",
      " */",
      "const x = 1; // trailing comment counts",
      "/* lead */ const y = 2;",
    ].join("\n");
    expect(countLines(src)).toBe(3);
  });

  it("keeps runtime imports and drops type-only ones", () => {
    const src = [
      'import type { T } from "@ringzero/platform";',
      'import { type U, Plic, Clint as C } from "@ringzero/platform";',
      'import * as fs from "node:fs";',
      "export const A = 1;",
      'export { b } from "./b.js";',
      'export type { Q } from "./q.js";',
      'import {\n  x,\n  type Y,\n} from "./x.js";',
      'import "./side.js";',
    ].join("\n");
    expect(runtimeImports(src)).toEqual([
      { from: "@ringzero/platform", names: ["Plic", "Clint"] },
      { from: "node:fs", names: ["*"] },
      { from: "./b.js", names: ["b"] },
      { from: "./x.js", names: ["x"] },
      { from: "./side.js", names: ["*"] },
    ]);
  });

  const packages = findWorkspacePackages(import.meta.dirname);
  it.skipIf(!packages)(
    "this repository: micro's TCB is hypervisor-micro plus what it runs of platform, below mono's",
    () => {
      const p = packages as Map<string, string>;
      const mono = countTcb(p, TCB_ROOT.monolithic);
      const micro = countTcb(p, TCB_ROOT.micro);
      expect(Object.keys(micro.packages).sort()).toEqual(["@ringzero/hypervisor-micro", "@ringzero/platform"]);
      expect(micro.packages[HARDWARE_PACKAGE]).toBeUndefined();
      expect(mono.packages[HARDWARE_PACKAGE]).toBeUndefined();
      for (const name of ["@ringzero/virtio", "@ringzero/disk-formats", "@ringzero/net-stack"])
        expect(mono.packages[name]).toBeGreaterThan(0);
      expect(micro.lines).toBeLessThan(mono.lines);
      console.log("TCB", JSON.stringify({ mono, micro }));
    },
  );
});
