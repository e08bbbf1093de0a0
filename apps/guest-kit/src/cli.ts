#!/usr/bin/env node
// `pnpm guest:linux`: build (or find) the Linux guest kit and say where it is.
import { GuestKitError } from "./errors.js";
import { ensureLinuxKitManifest } from "./kit.js";

const USAGE = `usage: pnpm guest:linux [--print-path | --json]

Builds the Linux guest kit from Debian packages (linux-source-6.1 kernel,
busybox-static riscv64 from trixie, initramfs) into
$RINGZERO_CACHE/guest-linux/<key> (default ~/.cache/ringzero/guest-linux/<key>)
and prints where it is, then its JSON manifest. The first build takes minutes.

  --print-path  print only the kit directory (holds Image, initramfs.cpio.gz, manifest.json)
  --json        print only the JSON manifest
`;

async function main(argv: readonly string[]): Promise<number> {
  const unknown = argv.filter((a) => !["--print-path", "--json", "--help", "-h"].includes(a));
  if (argv.includes("--help") || argv.includes("-h") || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown argument: ${unknown.join(" ")}\n`);
    (unknown.length > 0 ? process.stderr : process.stdout).write(USAGE);
    return unknown.length > 0 ? 2 : 0;
  }
  const tty = process.stderr.isTTY === true;
  let transient = false;
  const progress = (msg: string) => {
    if (!tty) return; // quiet in pipes
    // "N objects built" lines overwrite each other; others stay.
    const again = /objects built$/.test(msg);
    process.stderr.write(`${transient ? "\r\x1b[K" : ""}${msg}${again ? "" : "\n"}`);
    transient = again;
  };
  const m = await ensureLinuxKitManifest({ progress });
  if (transient) process.stderr.write("\n");
  if (argv.includes("--print-path")) {
    process.stdout.write(`${m.dir}\n`);
  } else if (argv.includes("--json")) {
    process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
  } else {
    process.stdout.write(
      `Linux guest kit: ${m.dir}\n  kernel:    ${m.image}\n  initramfs: ${m.initrd}\n  append:    ${m.append}\n`,
    );
    process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`guest:linux: ${e instanceof GuestKitError || e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
