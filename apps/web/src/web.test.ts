// The page in a real browser: playwright-core drives Debian's chromium
// (scripts/setup.sh installs it; Playwright's own browser download is not
// reachable here). The page is served cross-origin isolated from 127.0.0.1,
// boots the demo guest and then the Linux guest kit in its Worker, and the
// test reads the xterm.js console and types into it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FatFs, MemoryStore, Qcow2Image } from "@ringzero/disk-formats";
import { ensureLinuxKit, LINUX_KIT_MARKER, LINUX_KIT_PROMPT } from "@ringzero/guest-kit";
import { build } from "esbuild";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Results } from "./browser/compare.js";
import type { PanelStats } from "./browser/protocol.js";
import { buildPage } from "./build.js";
import { parseRange, resolveRequest, type Served, servePage } from "./serve.js";

const CHROMIUM = "/usr/bin/chromium";
const DISK_TEXT = "read from a qcow2 the page was given";
const URL_TEXT = "read from a qcow2 by Range requests";

/** A qcow2 image holding a FAT16 file system with /hello.txt (`text` in it), as a file. */
async function qcow2WithFile(path: string, text = DISK_TEXT): Promise<void> {
  const store = new MemoryStore();
  const image = await Qcow2Image.create(store, { size: 8 << 20 });
  const fat = await FatFs.format(image, { label: "RZWEB" });
  await fat.writeFile("/hello.txt", new TextEncoder().encode(`${text}\n`));
  await image.close();
  writeFileSync(path, store.bytes());
}

const skipLinux = process.env.RINGZERO_SKIP_LINUX === "1" && process.env.CI !== "true";

describe("serve: the request path to a file", () => {
  const www = mkdtempSync(join(tmpdir(), "rz-web-"));
  afterAll(() => rmSync(www, { recursive: true, force: true }));
  it("stays inside its roots", () => {
    expect(resolveRequest("/../../etc/passwd", { www })).toBeUndefined();
    expect(resolveRequest("/%2e%2e/%2e%2e/etc/passwd", { www })).toBeUndefined();
    expect(resolveRequest("/kit/../../etc/passwd", { www, kitDir: www })).toBeUndefined();
    expect(resolveRequest("/%E0%A4%A", { www })).toBeUndefined(); // bad percent-encoding
    expect(resolveRequest("/a\0b", { www })).toBeUndefined();
    expect(resolveRequest("/missing.js", { www })).toBeUndefined();
  });
});

describe("serve: Range requests (RFC 9110 §14)", () => {
  it("answers one range, a suffix or an open end; out of the file is unsatisfiable", () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange("bytes=0-0", 100)).toEqual({ start: 0, end: 0 });
    expect(parseRange("bytes=10-", 100)).toEqual({ start: 10, end: 99 });
    expect(parseRange("bytes=90-200", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=100-", 100)).toBe("unsatisfiable");
    expect(parseRange("bytes=5-4", 100)).toBe("unsatisfiable");
    expect(parseRange("bytes=0-0", 0)).toBe("unsatisfiable");
    // Not understood: the whole file (a server may ignore Range).
    expect(parseRange("bytes=0-1,5-6", 100)).toBeUndefined();
    expect(parseRange("items=0-1", 100)).toBeUndefined();
    expect(parseRange("bytes=-", 100)).toBeUndefined();
  });
});

describe("the page in chromium", () => {
  let served: Served;
  let browser: BrowserContext;
  let profile: string;
  let kitDir: string | undefined;
  let www: string;

  beforeAll(async () => {
    if (!skipLinux) kitDir = dirname((await ensureLinuxKit()).image);
    const page = await buildPage(mkdtempSync(join(tmpdir(), "rz-web-www-")));
    www = page.dir;
    served = await servePage({ www, kitDir });
    profile = mkdtempSync(join(tmpdir(), "rz-web-chromium-"));
    // A fresh profile each run (launchPersistentContext passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1100, height: 800 },
    });
  }, 90 * 60_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const screen = (p: Page) =>
    p.evaluate(() => (globalThis as unknown as { ringzeroWeb: { text(): string } }).ringzeroWeb.text());
  const status = (p: Page) =>
    p.evaluate(() => (globalThis as unknown as { ringzeroWeb: { status(): string } }).ringzeroWeb.status());

  const stats = (p: Page) =>
    p.evaluate(() =>
      (globalThis as unknown as { ringzeroWeb: { stats(): PanelStats | undefined } }).ringzeroWeb.stats(),
    );
  const results = (p: Page) =>
    p.evaluate(() => (globalThis as unknown as { ringzeroWeb: { results(): Results } }).ringzeroWeb.results());

  async function waitFor(p: Page, what: (text: string) => boolean, ms: number): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const text = await screen(p);
      if (what(text)) return text;
      const st = await status(p);
      if (/^(worker )?error/.test(st)) throw new Error(`${st}; console:\n${text.slice(-2000)}`);
      if (Date.now() > end) throw new Error(`timed out; status: ${await status(p)}; console:\n${text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it("is served cross-origin isolated", async () => {
    const r = await fetch(served.url);
    expect(r.headers.get("cross-origin-opener-policy")).toBe("same-origin");
    expect(r.headers.get("cross-origin-embedder-policy")).toBe("require-corp");
    expect((await fetch(new URL("nope.js", served.url))).status).toBe(404);
    expect((await fetch(served.url, { method: "POST" })).status).toBe(405);
    const part = await fetch(new URL("guests/hello.elf", served.url), { headers: { Range: "bytes=0-3" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toMatch(/^bytes 0-3\/\d+$/);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46)); // ELF magic
    const past = await fetch(new URL("guests/hello.elf", served.url), { headers: { Range: "bytes=999999-" } });
    expect(past.status).toBe(416);
  });

  it("boots the demo guest in a Worker: its console reaches the terminal, down to bye", async () => {
    const p = await browser.newPage();
    const errors: string[] = [];
    p.on("pageerror", (e) => errors.push(e.message));
    await p.goto(`${served.url}?guest=hello`);
    expect(await p.evaluate(() => crossOriginIsolated)).toBe(true);
    const text = await waitFor(p, (t) => /^bye$/m.test(t), 60_000);
    expect(text).toMatch(/^bye$/m);
    await expect.poll(() => status(p), { timeout: 10_000 }).toMatch(/^powered off: shutdown \(status 0\)/);
    // The final stats: the guest ran, wrote its UART (MMIO exits) and called the SBI (timer, reset).
    const st = await stats(p);
    expect(st?.instructions).toBeGreaterThan(1000);
    expect(st?.exits.mmio).toBeGreaterThan(0);
    expect(st?.more["SBI calls"]).toBeGreaterThan(0);
    expect(st?.hypervisor).toBe("mono");
    expect(await p.textContent("#stats")).toMatch(/^MIPS\s+\d/);
    await p.screenshot({ path: join(tmpdir(), "ringzero-web-hello.png") });
    expect(errors).toEqual([]);
    await p.close();
  });

  it.skipIf(skipLinux)(
    "boots the Linux guest kit with a picked qcow2 to the shell prompt; typed commands read the disk's file and uname -a answers riscv64",
    async () => {
      const disk = join(profile, "picked.qcow2");
      await qcow2WithFile(disk);
      const p = await browser.newPage();
      const errors: string[] = [];
      p.on("pageerror", (e) => errors.push(e.message));
      const t0 = performance.now();
      await p.goto(served.url);
      await p.selectOption("#guest", "linux");
      await p.setInputFiles("#disk", disk);
      await p.click("#boot");
      const promptAt = (t: string) => t.indexOf(LINUX_KIT_PROMPT, t.indexOf(LINUX_KIT_MARKER));
      await waitFor(p, (t) => t.includes(LINUX_KIT_MARKER) && promptAt(t) >= 0, 240_000);
      const promptMs = performance.now() - t0;
      await p.click("#terminal"); // keyboard focus in xterm.js
      await p.keyboard.type("mkdir -p /d && mount -t vfat /dev/vda /d && cat /d/hello.txt");
      await p.keyboard.press("Enter");
      await waitFor(p, (t) => t.includes(`\n${DISK_TEXT}\n`), 60_000);
      await p.keyboard.type("uname -a");
      await p.keyboard.press("Enter");
      const text = await waitFor(p, (t) => /Linux ringzero \S+ .* riscv64 GNU\/Linux/.test(t), 60_000);
      expect(text).toMatch(/rz# uname -a\s*\nLinux ringzero 6\.1\.\d+ .* riscv64 GNU\/Linux/);
      // The stats panel follows the running VM: about once a second.
      await expect.poll(async () => (await stats(p))?.mips ?? 0, { timeout: 5_000 }).toBeGreaterThan(0);
      await p.screenshot({ path: join(tmpdir(), "ringzero-web-linux.png") });
      expect(errors).toEqual([]);
      console.log(`web: Linux kit to the shell prompt in chromium in ${promptMs.toFixed(0)} ms`);
      await p.close();
    },
    300_000,
  );
  it("hypervisor-micro's webThreads: start data, messages, Atomics across Workers, exit codes, errors, terminate", async () => {
    // Bundled apart from the page (test modules): src/browser/testing/thread-{host,echo}.ts.
    await build({
      entryPoints: {
        "thread-host": join(import.meta.dirname, "browser", "testing", "thread-host.ts"),
        "thread-echo": join(import.meta.dirname, "browser", "testing", "thread-echo.ts"),
      },
      outdir: join(www, "test"),
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "es2022",
      conditions: ["@ringzero/source"],
      logLevel: "warning",
    });
    const p = await browser.newPage();
    await p.goto(served.url);
    // A string, not a function: vitest rewrites import() in this file's functions for Node.
    const r = (await p.evaluate(
      `import(new URL("test/thread-host.js", location.href).href).then((m) => m.run())`,
    )) as Record<string, unknown>;
    expect(r).toEqual({
      echo: "hello world",
      beforeNotify: 0, // the Worker is blocked in Atomics.wait
      afterNotify: 42,
      exitCode: 7,
      aliveAfterExit: false,
      lateExitCode: 7,
      throwExit: 1,
      throwErrors: [expect.stringMatching(/thrown on request/)],
      rejectExit: 1,
      rejectErrors: [expect.stringMatching(/rejected on request/)],
      terminateExit: 1,
    });
    await p.close();
  });

  it("boots the demo guest under the microkernel: kernel, parent, VP and VSPs each in a Worker", async () => {
    const p = await browser.newPage();
    const errors: string[] = [];
    p.on("pageerror", (e) => errors.push(e.message));
    await p.goto(`${served.url}?guest=hello&hypervisor=micro`);
    const text = await waitFor(p, (t) => /^bye$/m.test(t), 60_000);
    expect(text).toMatch(/^fib\(40\) += 102334155$/m);
    await expect.poll(() => status(p), { timeout: 10_000 }).toMatch(/^powered off: shutdown \(status 0\)/);
    const st = await stats(p);
    expect(st?.hypervisor).toBe("micro");
    // The UART's bytes crossed to the parent partition's Worker as intercepts; the CLINT/SBI stayed in the kernel's VP.
    expect(st?.exits.intercept).toBeGreaterThan(0);
    expect(st?.exits.microkernel).toBeGreaterThan(0);
    expect(st?.more.partitions).toBe(2);
    expect(errors).toEqual([]);
    await p.close();
  });

  it.skipIf(skipLinux)(
    "measures the Linux kit under mono, then under micro (disk by URL), draws the compare chart; under micro the disk's file and uname -a read back",
    async () => {
      mkdirSync(join(www, "disks"), { recursive: true });
      const MICRO_TEXT = "read by the storage VSP in its own Worker";
      await qcow2WithFile(join(www, "disks", "compare.qcow2"), MICRO_TEXT);
      const p = await browser.newPage();
      const errors: string[] = [];
      p.on("pageerror", (e) => errors.push(e.message));
      await p.goto(`${served.url}?guest=linux&hypervisor=mono&measure=1&disk=disks/compare.qcow2`);
      await expect.poll(async () => (await results(p)).mono, { timeout: 300_000, interval: 1000 }).toBeDefined();
      expect(await p.locator("#compare svg").count()).toBe(0); // one hypervisor measured: no chart yet
      await p.selectOption("#hypervisor", "micro");
      await p.click("#boot");
      await expect.poll(async () => (await results(p)).micro, { timeout: 300_000, interval: 1000 }).toBeDefined();
      const r = await results(p);
      for (const hv of ["mono", "micro"] as const) {
        const m = r[hv];
        expect(m?.bootMs).toBeGreaterThan(0);
        expect(m?.mips).toBeGreaterThan(0);
        expect(m?.exits).toBeGreaterThan(1000);
        expect(m?.diskMBps).toBeGreaterThan(0);
      }
      console.log(`web compare: ${JSON.stringify(r)}`);
      // The chart: a bar per hypervisor for each of the four figures.
      expect(await p.locator("#compare svg rect.bar").count()).toBe(8);
      expect(await status(p)).toMatch(/running linux \(micro\)/);
      await p.click("#terminal");
      await p.keyboard.type("mkdir -p /d && mount -t vfat -o ro /dev/vda /d && cat /d/hello.txt");
      await p.keyboard.press("Enter");
      await waitFor(p, (t) => t.includes(`\n${MICRO_TEXT}\n`), 60_000);
      await p.keyboard.type("uname -a");
      await p.keyboard.press("Enter");
      const text = await waitFor(p, (t) => /Linux ringzero \S+ .* riscv64 GNU\/Linux/.test(t), 60_000);
      expect(text).toMatch(/rz# uname -a\s*\nLinux ringzero 6\.1\.\d+ .* riscv64 GNU\/Linux/);
      const st = await stats(p);
      expect(st?.hypervisor).toBe("micro");
      expect(st?.exits.paravisor).toBeGreaterThan(0); // virtio-blk's MMIO, handled in the child's paravisor
      await p.screenshot({ path: join(tmpdir(), "ringzero-web-compare.png") });
      expect(errors).toEqual([]);
      await p.close();
    },
    700_000,
  );
  it.skipIf(skipLinux)(
    "boots Linux with a disk from a URL (?disk=, read by Range requests) and reads its file",
    async () => {
      mkdirSync(join(www, "disks"), { recursive: true });
      await qcow2WithFile(join(www, "disks", "url.qcow2"), URL_TEXT);
      const p = await browser.newPage();
      const errors: string[] = [];
      p.on("pageerror", (e) => errors.push(e.message));
      await p.goto(`${served.url}?guest=linux&disk=disks/url.qcow2`);
      await waitFor(
        p,
        (t) => t.includes(LINUX_KIT_MARKER) && t.indexOf(LINUX_KIT_PROMPT, t.indexOf(LINUX_KIT_MARKER)) >= 0,
        240_000,
      );
      await p.click("#terminal");
      await p.keyboard.type("mkdir -p /d && mount -t vfat -o ro /dev/vda /d && cat /d/hello.txt");
      await p.keyboard.press("Enter");
      await waitFor(p, (t) => t.includes(`\n${URL_TEXT}\n`), 60_000);
      expect(errors).toEqual([]);
      await p.close();
    },
    300_000,
  );
});
