// ringzero-img killed at every write index: each command runs in a child
// process (testing-internal/kill-child.ts) that SIGKILLs itself just before
// its k-th write, for every k from 1 to the command's write count, on images
// made by qemu-img; each result is checked with `qemu-img check` (corruptions
// never, leaks allowed) and, where the command keeps the guest's view, read
// back through qemu-img: the disk is as before or as after the command.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuIo, tempDir } from "../testing-internal/qemu.js";

// Each case starts ringzero-img once per write index (a rebase: ~50 s alone on 2 cores): past the
// project's 60 s default when CI runs other test files beside it.
describe.skipIf(!HAVE_QEMU)("ringzero-img killed at every write index", { timeout: 300_000 }, () => {
  let t: ReturnType<typeof tempDir>;
  let child = "";
  beforeAll(async () => {
    t = tempDir("rz-kill-");
    child = join(t.dir, "kill-child.mjs");
    await build({
      entryPoints: [join(import.meta.dirname, "../testing-internal/kill-child.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: child,
      logLevel: "warning",
    });
  });
  afterAll(() => t.cleanup());

  /** Runs the CLI in the child in `dir`, killed before write `killAt` (0: never). */
  function run(dir: string, killAt: number, argv: string[]): { writes: number; killed: boolean; out: string } {
    const r = spawnSync(process.execPath, [child, String(killAt), ...argv], { cwd: dir, encoding: "utf8" });
    if (r.signal === "SIGKILL") return { writes: -1, killed: true, out: r.stderr };
    const m = /writes=(\d+) code=(\d+)/.exec(r.stdout);
    if (!m || m[2] !== "0") throw new Error(`child failed (${r.status} ${r.signal}): ${r.stdout}${r.stderr}`);
    return { writes: Number(m[1]), killed: false, out: r.stderr };
  }

  /** A fresh directory holding copies of `files` (from t.dir). */
  function stage(name: string, files: string[]): string {
    const d = t.path(name);
    mkdirSync(d, { recursive: true });
    for (const f of files) copyFileSync(t.path(f), join(d, f));
    return d;
  }

  /** Guest view of `file` (backing chain included) as raw bytes, through qemu-img. */
  function view(file: string): string {
    const out = `${file}.view.raw`;
    qemuImg(["convert", "-O", "raw", file, out]);
    const h = createHash("sha1").update(readFileSync(out)).digest("hex");
    rmSync(out);
    return h;
  }

  const snapshots = (file: string): string =>
    (JSON.parse(qemuImg(["info", "--output", "json", file]).stdout).snapshots ?? [])
      .map((s: { name: string }) => s.name)
      .join(",");

  interface Case {
    name: string;
    files: string[];
    argv: string[];
    /** Images to check with qemu-img after each kill, with their format. */
    checks: Array<[string, string]>;
    /** The file whose guest view (and snapshot list) must be as before or as after. */
    viewOf?: string;
    /** Writes before which the target is not yet an image (convert creating it): not checked. */
    creating?: number;
  }

  async function killEverywhere(c: Case): Promise<{ writes: number; leaky: number }> {
    const full = stage(`${c.name}-full`, c.files);
    const state = (d: string) => (c.viewOf ? `${view(join(d, c.viewOf))}|${snapshots(join(d, c.viewOf))}` : "");
    const before = c.viewOf ? state(stage(`${c.name}-before`, c.files)) : "";
    const { writes } = run(full, 0, c.argv);
    const after = c.viewOf ? state(full) : "";
    expect(writes).toBeGreaterThan(0);
    const bad: string[] = [];
    let leaky = 0;
    for (let k = 1; k <= writes; k++) {
      // the loop is synchronous child processes: let vitest's worker talk to its parent between them
      await new Promise((r) => setImmediate(r));
      const d = stage(`${c.name}-${k}`, c.files);
      const r = run(d, k, c.argv);
      if (!r.killed) bad.push(`k=${k}: not killed`);
      if (k <= (c.creating ?? 0)) continue;
      for (const [f, fmt] of c.checks) {
        const chk = qemuCheck(join(d, f), fmt);
        if (chk.status === 3) leaky++;
        if (Number(chk.json.corruptions ?? 0) > 0 || ![0, 3].includes(chk.status))
          bad.push(`k=${k} ${f}: exit ${chk.status} ${JSON.stringify(chk.json)}`);
      }
      if (c.viewOf) {
        const s = state(d);
        if (s !== before && s !== after) bad.push(`k=${k}: ${c.viewOf} neither as before nor as after`);
      }
      if (bad.length === 0) rmSync(d, { recursive: true });
    }
    console.log(`${c.name}: ${writes} writes, killed at each; ${leaky} results with leaks, ${bad.length} bad`);
    expect(bad).toEqual([]);
    return { writes, leaky };
  }

  beforeAll(() => {
    // qcow2 images made by qemu-img / qemu-io: data, a compressed cluster, zeroes, snapshot s0 with copy-on-write after it
    for (const [f, cs] of [
      ["s4k.qcow2", "4k"],
      ["s512.qcow2", "512"],
    ] as const) {
      const p = t.path(f);
      qemuImg(["create", "-q", "-f", "qcow2", "-o", `cluster_size=${cs}`, p, "16M"]);
      qemuIo(p, ["write -P 1 0 300k", "write -c -P 7 12M 64k", "write -P 2 8M 100k"]);
      qemuImg(["snapshot", "-c", "s0", p]);
      qemuIo(p, ["write -P 3 4k 20k", "write -z 256k 32k", "write -P 4 15M 50k"]);
    }
    // backing chains: base <- top; base2 differs from base
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", t.path("base.qcow2"), "16M"]);
    qemuIo(t.path("base.qcow2"), ["write -P 5 0 64k", "write -P 6 10M 32k"]);
    qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", t.path("base2.qcow2"), "16M"]);
    qemuIo(t.path("base2.qcow2"), ["write -P 8 32k 64k"]);
    qemuImg([
      "create",
      ...["-q", "-f", "qcow2", "-o", "cluster_size=4k", "-F", "qcow2", "-b", "base.qcow2"],
      t.path("top.qcow2"),
    ]);
    qemuIo(t.path("top.qcow2"), ["write -P 9 48k 8k", "write -z 10M 8k", "write -P 10 14M 40k"]);
  });

  for (const img of ["s4k.qcow2", "s512.qcow2"]) {
    const ck: Array<[string, string]> = [[img, "qcow2"]];
    it(`snapshot -c (${img})`, async () => {
      await killEverywhere({
        name: `c-${img}`,
        files: [img],
        argv: ["snapshot", "-c", "s1", img],
        checks: ck,
        viewOf: img,
      });
    });
    it(`snapshot -d (${img})`, async () => {
      await killEverywhere({
        name: `d-${img}`,
        files: [img],
        argv: ["snapshot", "-d", "s0", img],
        checks: ck,
        viewOf: img,
      });
    });
    it(`snapshot -a (${img})`, async () => {
      await killEverywhere({
        name: `a-${img}`,
        files: [img],
        argv: ["snapshot", "-a", "s0", img],
        checks: ck,
        viewOf: img,
      });
    });
  }

  it("resize (grows the L1 table)", async () => {
    // 512-byte clusters: an L1 cluster maps 64 L2 tables of 32 KiB each, so 16M -> 64M needs a larger L1 table
    await killEverywhere({
      name: "resize",
      files: ["s512.qcow2"],
      argv: ["resize", "s512.qcow2", "64M"],
      checks: [["s512.qcow2", "qcow2"]],
    });
  });

  for (const img of ["s4k.qcow2", "s512.qcow2"])
    it(`resize --shrink to 8 MiB + 40 KiB (${img}: whole L2 tables and a straddling one, shared with a snapshot)`, async () => {
      await killEverywhere({
        name: `shrink-${img}`,
        files: [img],
        argv: ["resize", "--shrink", img, "8232k"],
        checks: [[img, "qcow2"]],
      });
    });

  it("commit: the top image reads the same at every kill point", async () => {
    await killEverywhere({
      name: "commit",
      files: ["base.qcow2", "top.qcow2"],
      argv: ["commit", "top.qcow2"],
      checks: [
        ["top.qcow2", "qcow2"],
        ["base.qcow2", "qcow2"],
      ],
      viewOf: "top.qcow2",
    });
  });

  it("rebase (safe mode): the top image reads the same at every kill point", async () => {
    await killEverywhere({
      name: "rebase",
      files: ["base.qcow2", "base2.qcow2", "top.qcow2"],
      argv: ["rebase", "-b", "base2.qcow2", "-F", "qcow2", "top.qcow2"],
      checks: [["top.qcow2", "qcow2"]],
      viewOf: "top.qcow2",
    });
  });

  it("convert -O qcow2", async () => {
    const creating = run(stage("create-count", []), 0, ["create", "-f", "qcow2", "-o", "cluster_size=4k", "x", "16M"]);
    await killEverywhere({
      name: "convert",
      files: ["s4k.qcow2"],
      argv: ["convert", "-O", "qcow2", "-o", "cluster_size=4k", "s4k.qcow2", "out.qcow2"],
      checks: [["out.qcow2", "qcow2"]],
      creating: creating.writes,
    });
  });

  // The other targets with allocation maps: data first, the map (VDI: its count and entries in one
  // write) once at the end, so every stop after the create leaves an image qemu-img checks clean.
  for (const [fmt, opts] of [
    ["vdi", []],
    ["vmdk", []],
    ["vmdk", ["-o", "subformat=streamOptimized"]],
    ["vhdx", []],
  ] as const)
    it(`convert -O ${fmt} ${opts.join(" ")}`, async () => {
      const name = `convert-${fmt}${opts.length ? "-stream" : ""}`;
      const out = `out.${fmt}`;
      const creating = run(stage(`${name}-create-count`, []), 0, ["create", "-f", fmt, ...opts, "x", "16M"]);
      const { writes } = await killEverywhere({
        name,
        files: ["s4k.qcow2"],
        argv: ["convert", "-O", fmt, ...opts, "s4k.qcow2", out],
        checks: [[out, fmt]],
        creating: creating.writes,
      });
      expect(writes).toBeGreaterThan(creating.writes);
      // the finished conversion holds the source's content
      const cmp = qemuImg(["compare", "-F", fmt, t.path("s4k.qcow2"), join(t.path(`${name}-full`), out)], {
        allowFail: true,
      });
      expect(cmp.stdout).toContain("Images are identical");
    });
});
