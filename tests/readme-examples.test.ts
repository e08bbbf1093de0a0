// README examples run as written: every ```ts / ```js block of packages/*/README.md
// and apps/*/README.md is extracted, its types stripped (esbuild), and run with
// node against the BUILT packages (`pnpm build` first; scripts/test.sh does).
//
// Every block is also type-checked (one strict tsc pass against the packages' .d.ts),
// so a wrong signature fails even where it happens to run.
//
// Conventions, an HTML comment on the line right before the fence (parts joined by ";"):
//   <!-- example: not run (REASON) -->      not run (but type-checked); counted and printed
//   <!-- example: not checked (REASON) -->  neither run nor type-checked (outlines, fragments)
//   <!-- example: continues -->             the block continues the previous ts/js block of
//                                           the same README: both run as one program
//   <!-- example: needs Linux -->           boots the Linux guest kit (apps/guest-kit): runs only
//                                           when RINGZERO_9P_LINUX_KIT names the kit directory
//                                           (scripts/run-tests.mjs sets it under CI), else skipped;
//                                           its cwd also holds the kit's Image and
//                                           initramfs.cpio.gz, disk.qcow2 and shared/, and
//                                           "poweroff -f" is typed on its stdin at the shell prompt
// e.g. <!-- example: continues; not run (needs a Linux kernel) -->. Any other
// `<!-- example: ... -->` comment is an error (no silent skips).
//
// Each example runs in a fresh temp directory (its cwd) whose node_modules links
// every workspace package by name, holding these fixture files:
//   guest.elf          the embedded demo guest (apps/demo/guests/hello/hello.elf): an
//                      S-mode ELF that prints, sleeps in WFI and powers off through SBI reset
//   initramfs.cpio.gz  an empty gzip member (opaque to the loaders)
//   tohost.elf         a bare-metal M-mode program: one UART store (an MMIO exit), then
//                      HTIF tohost exit code 0 (built with the cross toolchain, scripts/setup.sh)
//   header-only.Image  a RISC-V Linux Image header and nothing else (for the loaders)
//   disk.raw           1 MiB of zeros
// Examples that forward a host port (`hostPort`) run one at a time.
// An example passes if node exits 0 within the timeout.
import { spawn } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const TIMEOUT_MS = 60_000;
const LINUX_TIMEOUT_MS = 120_000;
const CONCURRENCY = 2;
const LINUX_KIT = process.env.RINGZERO_9P_LINUX_KIT;
const RUNNABLE = new Set(["ts", "typescript", "js", "javascript", "mjs"]);

interface Example {
  readme: string; // repo-relative path
  line: number; // 1-based line of the opening fence
  lang: string;
  code: string; // the program to run (with continued blocks prepended)
  origin: number[]; // README line of each line of `code`
  skip?: string; // reason, from the marker
  unchecked?: boolean; // `not checked`: not type-checked either
  linux?: boolean; // `needs Linux`
  markerError?: string;
}

function extract(readmePath: string): Example[] {
  const rel = relative(root, readmePath);
  const lines = readFileSync(readmePath, "utf8").split("\n");
  const out: Example[] = [];
  let prev: Example | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    const body = lines.slice(i + 1, end).join("\n");
    const bodyOrigin = Array.from({ length: end - i - 1 }, (_, k) => i + 2 + k);
    const lang = open[1].toLowerCase();
    const fenceLine = i + 1;
    i = end;
    if (!RUNNABLE.has(lang)) continue;
    let j = fenceLine - 2;
    while (j >= 0 && lines[j].trim() === "") j--;
    const marker = j >= 0 ? /^<!--\s*example:\s*(.*?)\s*-->\s*$/.exec(lines[j].trim()) : null;
    const ex: Example = { readme: rel, line: fenceLine, lang, code: body, origin: bodyOrigin };
    for (const m of marker ? marker[1].split(";").map((x) => x.trim()) : []) {
      const notRun = /^not (run|checked) \((.+)\)$/.exec(m);
      if (notRun) {
        ex.skip = notRun[2];
        ex.unchecked = notRun[1] === "checked";
      } else if (m === "needs Linux") {
        ex.linux = true;
        if (!LINUX_KIT) ex.skip ??= "needs a Linux kernel: set RINGZERO_9P_LINUX_KIT to the guest kit (CI does)";
      } else if (m === "continues") {
        if (!prev) ex.markerError = "`continues` with no earlier ts/js block";
        else {
          ex.code = `${prev.code}\n${body}`;
          ex.origin = [...prev.origin, ...bodyOrigin];
        }
      } else ex.markerError = `unknown marker "${m}"`;
    }
    out.push(ex);
    prev = ex;
  }
  return out;
}

const readmes = ["packages", "apps"].flatMap((dir) =>
  readdirSync(join(root, dir))
    .map((name) => join(root, dir, name, "README.md"))
    .filter((p) => existsSync(p)),
);
const examples = readmes.flatMap(extract);

/** Workspace packages by name, for the temp node_modules. */
function workspacePackages(): Map<string, string> {
  const m = new Map<string, string>();
  for (const dir of ["packages", "apps"]) {
    for (const name of readdirSync(join(root, dir))) {
      const pj = join(root, dir, name, "package.json");
      if (existsSync(pj)) m.set(JSON.parse(readFileSync(pj, "utf8")).name, join(root, dir, name));
    }
  }
  return m;
}

interface Result {
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  output: string;
  ms: number;
}

let work = "";
let fixtures = "";
let kitPrompt = "";

const TOHOST_S = `
    .section .text.init, "ax"
    .globl _start
_start:
    li      t0, 0x10000000
    li      t1, 'h'
    sb      t1, 0(t0)
    la      t0, tohost
    li      t1, 1
    sd      t1, 0(t0)
1:  j       1b
    .section .tohost, "aw"
    .globl tohost
tohost: .dword 0
    .globl fromhost
fromhost: .dword 0
`;

async function makeFixtures(dir: string): Promise<void> {
  mkdirSync(dir);
  const guest = join(root, "apps/demo/guests/hello/hello.elf");
  copyFileSync(guest, join(dir, "guest.elf"));
  writeFileSync(join(dir, "initramfs.cpio.gz"), gzipSync(new Uint8Array(0)));
  writeFileSync(join(dir, "disk.raw"), new Uint8Array(1 << 20));
  // A RISC-V Linux Image that is only its header (arch/riscv/include/asm/image.h).
  const image = new Uint8Array(4096);
  const dv = new DataView(image.buffer);
  dv.setUint32(0, 0x0040_006f, true); // j 0x40
  dv.setBigUint64(8, 0x20_0000n, true); // text_offset
  dv.setBigUint64(16, 0x40_0000n, true); // image_size
  dv.setUint32(32, 0x2, true); // version
  image.set(new TextEncoder().encode("RISCV\0\0\0RSC\x05"), 48);
  writeFileSync(join(dir, "header-only.Image"), image);
  const testing = await import(pathToFileURL(join(root, "packages/cpu-core/dist/testing/index.js")).href);
  writeFileSync(join(dir, "tohost.elf"), testing.buildElf(TOHOST_S));
  if (LINUX_KIT) {
    kitPrompt = (await import(pathToFileURL(join(root, "apps/guest-kit/dist/index.js")).href)).LINUX_KIT_PROMPT;
    // Outside the common fixtures: only `needs Linux` examples get it.
    const disk = await import(pathToFileURL(join(root, "packages/disk-formats/dist/index.js")).href);
    const diskNode = await import(pathToFileURL(join(root, "packages/disk-formats/dist/node.js")).href);
    const img = await disk.createImage(new diskNode.NodeFileHost(), join(dir, "..", "disk.qcow2"), {
      format: "qcow2",
      size: 1 << 20,
    });
    await img.close();
  }
}

const results = new Map<Example, Result>();
const typeErrors = new Map<Example | undefined, string[]>();

function runOne(ex: Example, index: number): Promise<Result> {
  return (async () => {
    const cwd = join(work, `ex${index}`);
    mkdirSync(cwd);
    for (const f of readdirSync(fixtures)) cpSync(join(fixtures, f), join(cwd, f), { recursive: true });
    if (ex.linux && LINUX_KIT) {
      copyFileSync(join(LINUX_KIT, "Image"), join(cwd, "Image"));
      copyFileSync(join(LINUX_KIT, "initramfs.cpio.gz"), join(cwd, "initramfs.cpio.gz"));
      mkdirSync(join(cwd, "shared"));
      copyFileSync(join(fixtures, "..", "disk.qcow2"), join(cwd, "disk.qcow2"));
    }
    const js = await transform(ex.code, { loader: "ts", format: "esm", target: "node20", sourcefile: ex.readme });
    const file = join(cwd, "example.mjs");
    writeFileSync(file, js.code);
    const t0 = performance.now();
    const timeout = ex.linux ? LINUX_TIMEOUT_MS : TIMEOUT_MS;
    return await new Promise<Result>((done) => {
      const child = spawn(process.execPath, [file], { cwd, stdio: "pipe" });
      child.stdin.on("error", () => {}); // EPIPE if it exits before reading
      if (!ex.linux) child.stdin.end();
      let output = "";
      let typed = false;
      const keep = (d: Buffer) => {
        output = (output + d.toString("utf8")).slice(-20_000);
        // As a user would: type at the shell's prompt.
        if (ex.linux && !typed && output.includes(kitPrompt)) {
          typed = true;
          child.stdin.end("poweroff -f\n");
        }
      };
      child.stdout.on("data", keep);
      child.stderr.on("data", keep);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeout);
      child.on("close", (status, signal) => {
        if (process.env.RINGZERO_README_EXAMPLES_VERBOSE) console.log(`--- ${ex.readme}:${ex.line}\n${output}`);
        clearTimeout(timer);
        done({ status, signal, timedOut, output, ms: performance.now() - t0 });
      });
    });
  })().catch((e: unknown) => ({
    status: null,
    signal: null,
    timedOut: false,
    output: `could not prepare the example: ${e instanceof Error ? e.message : String(e)}`,
    ms: 0,
  }));
}

beforeAll(async () => {
  for (const [name, dir] of workspacePackages()) {
    if (!existsSync(join(dir, "dist"))) throw new Error(`${name} is not built: run \`pnpm build\` first`);
  }
  // Under the repository's tmp/ (git-ignored) so a stray import of a root devDependency resolves too.
  mkdirSync(join(root, "tmp"), { recursive: true });
  work = mkdtempSync(join(root, "tmp", "readme-examples-"));
  const nm = join(work, "node_modules");
  for (const [name, dir] of workspacePackages()) {
    mkdirSync(join(nm, name, ".."), { recursive: true });
    symlinkSync(dir, join(nm, name), "dir");
  }
  fixtures = join(work, "fixtures");
  await makeFixtures(fixtures);
  const queue = examples.map((ex, i) => ({ ex, i })).filter(({ ex }) => !ex.skip && !ex.markerError);
  let portLock: Promise<unknown> = Promise.resolve();
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { ex, i } = next;
      if (/hostPort/.test(ex.code)) {
        const run = portLock.then(() => runOne(ex, i));
        portLock = run;
        results.set(ex, await run);
      } else results.set(ex, await runOne(ex, i));
    }
  };
  await Promise.all([...Array.from({ length: CONCURRENCY - 1 }, worker), typecheck().then(worker)]);
}, 600_000);

/** Type-checks every example but the `not checked` ones in one tsc pass against the packages' .d.ts (wrong signatures that happen to run). */
async function typecheck(): Promise<void> {
  const dir = join(work, "typecheck");
  mkdirSync(dir);
  const files: string[] = [];
  examples.forEach((ex, i) => {
    if (ex.markerError || ex.unchecked) return;
    const file = `ex${i}.mts`;
    writeFileSync(join(dir, file), `${ex.code}\nexport {};\n`);
    files.push(file);
  });
  const compilerOptions = {
    target: "ES2022",
    lib: ["ES2022"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const output = await new Promise<string>((done) => {
    const child = spawn(process.execPath, [tsc, "-p", dir, "--pretty", "false"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    child.on("close", () => done(out));
  });
  for (const line of output.split("\n")) {
    const m = /^ex(\d+)\.mts\((\d+),\d+\): (error .*)$/.exec(line);
    if (!m) {
      if (line.trim()) typeErrors.set(undefined, [...(typeErrors.get(undefined) ?? []), line]);
      continue;
    }
    const ex = examples[Number(m[1])];
    const at = `${ex.readme}:${ex.origin[Number(m[2]) - 1] ?? ex.line}`;
    typeErrors.set(ex, [...(typeErrors.get(ex) ?? []), `${at}: ${m[3]}`]);
  }
}

afterAll(() => {
  const ran = examples.filter((ex) => results.has(ex));
  const skipped = examples.filter((ex) => ex.skip);
  const failed = ran.filter((ex) => results.get(ex)?.status !== 0);
  const lines = [`README examples: ${ran.length} ran (${failed.length} failed), ${skipped.length} skipped`];
  for (const ex of skipped) {
    lines.push(`  skipped ${ex.readme}:${ex.line}: ${ex.skip}${ex.unchecked ? " (not type-checked)" : ""}`);
  }
  for (const ex of ran) lines.push(`  ran ${ex.readme}:${ex.line} in ${Math.round(results.get(ex)?.ms ?? 0)} ms`);
  console.log(lines.join("\n"));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("README examples", () => {
  it("finds the examples", () => {
    expect(readmes.length).toBeGreaterThan(5);
    expect(examples.filter((ex) => !ex.skip).length).toBeGreaterThan(10);
  });

  it("type-checks every example but the `not checked` ones", () => {
    expect(typeErrors.get(undefined) ?? []).toEqual([]);
    // Examples not run are type-checked all the same (but for `not checked` ones).
    const skipped = examples.filter((ex) => ex.skip && !ex.unchecked);
    expect(skipped.flatMap((ex) => typeErrors.get(ex) ?? [])).toEqual([]);
  });

  for (const ex of examples) {
    const name = `${ex.readme}:${ex.line}`;
    if (ex.skip) {
      it.skip(`${name} (not run: ${ex.skip})`, () => {});
      continue;
    }
    it(`${name} runs`, () => {
      expect(ex.markerError, ex.markerError).toBeUndefined();
      const r = results.get(ex);
      if (!r) throw new Error("not run");
      const why = r.timedOut ? "timed out" : `exit status ${r.status} signal ${r.signal}`;
      expect(r.status, `${name}: ${why}\n${r.output}`).toBe(0);
      expect(typeErrors.get(ex) ?? [], `${name} does not type-check against the packages' declarations`).toEqual([]);
    });
  }
});
