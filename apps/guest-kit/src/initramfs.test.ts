import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { readCpio, S_IFCHR, S_IFMT } from "./cpio.js";
import { buildInitramfs, INIT_SCRIPT, LINUX_KIT_MARKER, LINUX_KIT_PROMPT, parseAppletList } from "./initramfs.js";

describe("initramfs", () => {
  const applets = parseAppletList(
    "bin/sh\nbin/ls\nsbin/ifconfig\nusr/bin/[\nusr/bin/[[\n../etc/evil\nbin/../x\nlib/x\n\n",
  );
  it("keeps only applet paths in the bin directories", () => {
    expect(applets).toEqual(["bin/sh", "bin/ls", "sbin/ifconfig", "usr/bin/[", "usr/bin/[["]);
  });
  it("holds busybox, its links, /dev/console, /init and the udhcpc script", () => {
    const busybox = Buffer.from("\x7fELF fake busybox");
    const recs = readCpio(gunzipSync(buildInitramfs(busybox, applets)));
    const by = new Map(recs.map((r) => [r.name, r]));
    expect(Buffer.from(by.get("bin/busybox")?.data ?? []).equals(busybox)).toBe(true);
    expect((by.get("bin/busybox")?.mode ?? 0) & 0o777).toBe(0o755);
    expect(Buffer.from(by.get("usr/bin/[")?.data ?? []).toString()).toBe("/bin/busybox");
    const con = by.get("dev/console");
    expect(con && [con.mode & S_IFMT, con.rdevMajor, con.rdevMinor]).toEqual([S_IFCHR, 5, 1]);
    const init = Buffer.from(by.get("init")?.data ?? []).toString();
    expect(init).toBe(INIT_SCRIPT);
    expect(init.startsWith("#!/bin/sh\n")).toBe(true);
    for (const fs of ["proc", "sysfs", "devtmpfs"]) expect(init).toContain(`mount -t ${fs}`);
    expect(init).toContain(`echo "${LINUX_KIT_MARKER}"`);
    expect(init).toContain(`PS1='${LINUX_KIT_PROMPT}'`);
    expect((by.get("usr/share/udhcpc/default.script")?.mode ?? 0) & 0o111).toBe(0o111);
    // where Debian's busybox looks for it
    expect(Buffer.from(by.get("etc/udhcpc/default.script")?.data ?? []).toString()).toBe(
      "/usr/share/udhcpc/default.script",
    );
    expect(Buffer.from(by.get("etc/passwd")?.data ?? []).toString()).toMatch(/^root:x:0:0:/);
  });
});
