// The blk rows' random I/O tool: guests/rzio/rzio.elf (a static riscv64
// Linux program, see rzio.c) reaches the guest as a second archive appended
// to the kit's initramfs — the kernel unpacks concatenated archives in turn
// (Linux Documentation/driver-api/early-userspace/buffer-format.rst), so the
// kit's own file is untouched and the tool lands at /bin/rzio.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** src/compare/ and dist/compare/ are both two levels below the package. */
export const RZIO_ELF = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "guests", "rzio", "rzio.elf");
export const RZIO_GUEST_PATH = "/bin/rzio";

/** One newc header (buffer-format.rst: "070701", 13 eight-digit hex fields) + name, padded to 4. */
function newcEntry(name: string, mode: number, size: number, ino: number): Buffer {
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, name.length + 1, 0];
  const head = `070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}${name}\0`;
  return Buffer.concat([Buffer.from(head, "latin1"), Buffer.alloc((4 - (head.length % 4)) % 4)]);
}

/** A newc archive with the one executable file `path` (relative, parent directory already in the kit). */
export function newcArchive(path: string, data: Uint8Array): Buffer {
  const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
  return Buffer.concat([
    newcEntry(path, 0o100755, data.length, 1),
    Buffer.from(data),
    pad,
    newcEntry("TRAILER!!!", 0, 0, 0),
  ]);
}

/** Writes `out`: the initrd's bytes, zero padding to 4 bytes, then a gzip'd archive with /bin/rzio. */
export function initrdWithRzio(initrd: string, out: string, elf = RZIO_ELF): string {
  const base = readFileSync(initrd);
  const extra = gzipSync(newcArchive(RZIO_GUEST_PATH.slice(1), readFileSync(elf)));
  writeFileSync(out, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), extra]));
  return out;
}

export interface RandomIo {
  readonly ops: number;
  readonly seconds: number;
  readonly errors: number;
}

/** The guest's "RZIOPS read|write OPS NS ERRORS" line; undefined when it is missing. */
export function parseRzio(out: string, kind: "read" | "write"): RandomIo | undefined {
  const m = new RegExp(`RZIOPS ${kind} (\\d+) (\\d+) (\\d+)`).exec(out);
  if (!m) return undefined;
  return { ops: Number(m[1]), seconds: Number(m[2]) / 1e9, errors: Number(m[3]) };
}

/** The guest command: `seconds` of random 4 KiB I/O on /dev/vda. */
export const rzioCommand = (kind: "read" | "write", seconds: number): string =>
  `${RZIO_GUEST_PATH} ${kind} /dev/vda ${seconds}`;

/** rzio's own failure line ("RZIOPS error open 2") or the shell's, for a reason text. */
export function rzioFailure(out: string): string | undefined {
  const m = /RZIOPS error (\w+) (\d+)|(\S*rzio: not found)/.exec(out);
  if (!m) return undefined;
  return m[3] ?? `rzio: ${m[1]} failed with errno ${m[2]}`;
}
