import { describe, expect, it } from "vitest";
import { checkRiscv64Elf } from "./busybox.js";
import { debianMirror, findPackage, parseAptSources, parseRelease, sha256Hex, verifyHash } from "./debian.js";
import { GuestKitError } from "./errors.js";

// Host names here are placeholders of the example.org family, not mirrors.
describe("apt sources", () => {
  it("reads deb822 and one-line sources and picks the main archive", () => {
    const sources = parseAptSources([
      {
        name: "/etc/apt/sources.list.d/debian.sources",
        text: "Types: deb\n# comment\nURIs: http://mirror.example.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example.org/debian\nSuites: bookworm\n",
      },
      {
        name: "/etc/apt/sources.list",
        text: "# deb http://old.example.org/debian sid main\ndeb [arch=amd64 signed-by=/k.gpg] https://other.example.org/repo stable main\n",
      },
    ]);
    expect(sources).toEqual([
      { uri: "http://mirror.example.org/debian/", suites: ["bookworm", "bookworm-updates"] },
      { uri: "http://mirror.example.org/debian-security", suites: ["bookworm-security"] },
      { uri: "https://other.example.org/repo", suites: ["stable"] },
    ]);
    expect(debianMirror(sources)).toBe("http://mirror.example.org/debian");
    expect(debianMirror(sources.slice(1))).toBe("https://other.example.org/repo");
  });
  it("skips disabled stanzas and fails without a mirror", () => {
    const s = parseAptSources([
      { name: "x.sources", text: "Enabled: no\nTypes: deb\nURIs: http://a.example.org/debian\nSuites: trixie\n" },
    ]);
    expect(s).toEqual([]);
    expect(() => debianMirror(s)).toThrow(/APT_SOURCE_MISSING/);
  });
});

const H = "a".repeat(64);
describe("Release and Packages", () => {
  it("parses the SHA256 table", () => {
    const r = parseRelease(
      `Origin: Debian\nSuite: stable\nCodename: trixie\nMD5Sum:\n 0123 5 main/x\nSHA256:\n ${H} 12912086 main/binary-riscv64/Packages.gz\n bad line\n`,
    );
    expect([r.suite, r.codename]).toEqual(["stable", "trixie"]);
    expect(r.sha256.get("main/binary-riscv64/Packages.gz")).toEqual({ sha256: H, size: 12912086 });
    expect(r.sha256.size).toBe(1);
    expect(() => parseRelease("Suite: stable\n")).toThrow(/INDEX_MALFORMED/);
  });
  it("finds a package and validates its fields", () => {
    const idx = `Package: busybox\nVersion: 1\nArchitecture: riscv64\nFilename: pool/main/b/busybox/busybox_1_riscv64.deb\nSize: 10\nSHA256: ${H}\n\nPackage: busybox-static\nSource: busybox\nVersion: 1:1.37.0-6+b9\nArchitecture: riscv64\nDescription: x\n more\nFilename: pool/main/b/busybox/busybox-static_1.37.0-6+b9_riscv64.deb\nSize: 1005464\nSHA256: ${H}\n`;
    const p = findPackage(idx, "busybox-static");
    expect([p.Version, p.Size, p.Filename]).toEqual([
      "1:1.37.0-6+b9",
      1005464,
      "pool/main/b/busybox/busybox-static_1.37.0-6+b9_riscv64.deb",
    ]);
    expect(() => findPackage(idx, "nope")).toThrow(/not in index/);
    expect(() =>
      findPackage(idx.replace("pool/main/b/busybox/busybox-static", "pool/../../etc/x"), "busybox-static"),
    ).toThrow(GuestKitError);
    expect(() =>
      findPackage(
        idx.replace(`SHA256: ${H}\n`, "SHA256: zz\n").replace(/SHA256: a+\n$/, "SHA256: zz\n"),
        "busybox-static",
      ),
    ).toThrow(GuestKitError);
  });
  it("checks hash and size", () => {
    const data = Buffer.from("hello");
    expect(() => verifyHash(data, { sha256: sha256Hex(data), size: 5 }, "x")).not.toThrow();
    expect(() => verifyHash(data, { sha256: sha256Hex(data), size: 6 }, "x")).toThrow(/HASH_MISMATCH/);
    expect(() => verifyHash(data, { sha256: H, size: 5 }, "x")).toThrow(/HASH_MISMATCH/);
  });
  it("accepts only little-endian ELF64 RISC-V binaries", () => {
    const elf = Buffer.alloc(128);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    elf.writeUInt16LE(243, 18);
    expect(() => checkRiscv64Elf(elf, "e")).not.toThrow();
    elf.writeUInt16LE(62, 18); // x86-64
    expect(() => checkRiscv64Elf(elf, "e")).toThrow(GuestKitError);
    expect(() => checkRiscv64Elf(Buffer.from("#!/bin/sh\n"), "e")).toThrow(GuestKitError);
  });
});

describe("installed Debian packages", () => {
  it("reports unknown packages as missing and installed ones as present", async () => {
    const { missingDebianPackages } = await import("./run.js");
    expect(await missingDebianPackages(["dpkg", "ringzero-no-such-package"])).toEqual(["ringzero-no-such-package"]);
  });
});
