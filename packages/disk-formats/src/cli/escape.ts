// Printing text read from images (backing file names, snapshot names and ids,
// VMDK extent names): an image is hostile input, and its bytes must not reach
// a terminal as control sequences or fake extra lines.

/** Characters escaped in human output: C0 controls, DEL, C1 controls, bidi and line/paragraph separators, and the backslash itself. */
const UNSAFE = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * One printable line for a name read from an image: `\\`, `\n`, `\r`, `\t`,
 * `\xHH` for other C0 controls and DEL, `\u{HHHH}` for C1 controls and
 * bidirectional/line-separator characters; everything else (é, 日本) unchanged.
 * qemu-img prints such names raw in its human output; this does not.
 */
export function escapeName(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const short = SHORT[c];
    if (short !== undefined) return short;
    const cp = c.codePointAt(0)!;
    const hex = cp.toString(16).toUpperCase().padStart(2, "0");
    return cp <= 0x7f ? `\\x${hex}` : `\\u{${hex.padStart(4, "0")}}`;
  });
}

/**
 * JSON as QEMU's json-writer writes it (qobject/json-writer.c `quoted_str`):
 * every character outside printable ASCII as `\uXXXX` with upper-case hex
 * (non-BMP characters as surrogate pairs), so `--output json` is plain ASCII
 * and byte-identical to qemu-img's for any name.
 */
export function qemuJson(value: unknown, indent = 4): string {
  return JSON.stringify(value, null, indent).replace(
    /\\\\|\\u([0-9a-f]{4})|[^\u0000-\u007e]/g,
    (m: string, hex: string | undefined) => {
      if (m === "\\\\") return m;
      if (hex !== undefined) return `\\u${hex.toUpperCase()}`;
      return `\\u${m.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    },
  );
}
