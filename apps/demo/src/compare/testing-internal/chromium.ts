// Test helper (not built into the package): screenshots a file with Debian's
// chromium headless and decodes the PNG with node:zlib, so a test can count
// what was drawn.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";

export const CHROMIUM = "/usr/bin/chromium";

/** Screenshots `file` (an SVG or HTML page) at width × height; returns the PNG bytes. */
export function screenshot(file: string, width: number, height: number): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "rz-chromium-"));
  try {
    const png = join(dir, "shot.png");
    const r = spawnSync(
      CHROMIUM,
      [
        ...["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
        ...["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"],
        `--user-data-dir=${join(dir, "profile")}`,
        `--window-size=${width},${height}`,
        `--screenshot=${png}`,
        `file://${file}`,
      ],
      { encoding: "utf8", timeout: 90_000 },
    );
    if (!existsSync(png)) throw new Error(`chromium wrote no screenshot (status ${r.status}):\n${r.stderr}`);
    return readFileSync(png);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Image {
  readonly width: number;
  readonly height: number;
  /** RGBA, 4 bytes per pixel, rows top to bottom. */
  readonly rgba: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (PNG spec §11.2.2 IHDR, §9 filters); throws on anything else. */
export function decodePng(b: Buffer): Image {
  if (b.length < 33 || !b.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG");
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let o = 8; o + 12 <= b.length; ) {
    const len = b.readUInt32BE(o);
    const type = b.subarray(o + 4, o + 8).toString("latin1");
    const data = b.subarray(o + 8, o + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = data.subarray(8, 13);
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0)
        throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${interlace}`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    o += 12 + len;
  }
  if (channels === 0) throw new Error("PNG without IHDR");
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) throw new Error("PNG data size does not match IHDR");
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[row + i - channels] : 0;
      const up = y > 0 ? out[row - stride + i] : 0;
      const c = y > 0 && i >= channels ? out[row - stride + i - channels] : 0;
      let p: number;
      if (filter === 0) p = 0;
      else if (filter === 1) p = a;
      else if (filter === 2) p = up;
      else if (filter === 3) p = (a + up) >> 1;
      else if (filter === 4) {
        const e = a + up - c;
        const [pa, pb, pc] = [Math.abs(e - a), Math.abs(e - up), Math.abs(e - c)];
        p = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      } else throw new Error(`bad PNG filter ${filter} on row ${y}`);
      out[row + i] = (src[i] + p) & 0xff;
    }
  }
  if (channels === 4) return { width, height, rgba: out };
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < out.length; i += 3, j += 4) {
    rgba[j] = out[i];
    rgba[j + 1] = out[i + 1];
    rgba[j + 2] = out[i + 2];
    rgba[j + 3] = 255;
  }
  return { width, height, rgba };
}

/** Pixels within `tolerance` (per channel) of the colour `hex` ("#rrggbb"), in the rectangle given (default: all). */
export function countColour(
  img: Image,
  hex: string,
  tolerance = 24,
  box = { x: 0, y: 0, w: img.width, h: img.height },
): number {
  const want = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let y = box.y; y < box.y + box.h; y++) {
    for (let x = box.x; x < box.x + box.w; x++) {
      const o = (y * img.width + x) * 4;
      if (want.every((v, k) => Math.abs(img.rgba[o + k] - v) <= tolerance)) n++;
    }
  }
  return n;
}

/** Pixels that differ from the background colour (the top-left pixel). */
export function countNonBackground(img: Image): number {
  const bg = [img.rgba[0], img.rgba[1], img.rgba[2]];
  let n = 0;
  for (let o = 0; o < img.rgba.length; o += 4) {
    if (Math.abs(img.rgba[o] - bg[0]) + Math.abs(img.rgba[o + 1] - bg[1]) + Math.abs(img.rgba[o + 2] - bg[2]) > 24) n++;
  }
  return n;
}
