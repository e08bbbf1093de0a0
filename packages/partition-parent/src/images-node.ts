// The guest images' host I/O under Node: files through node:fs, Image.gz
// through node:zlib (images.ts takes them as GuestImageIo).
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import type { GuestImageIo } from "./images.js";

export const nodeImageIo: GuestImageIo = {
  readFile: (path) => readFileSync(path),
  gunzip: (data, maxOutputLength) => gunzipSync(data, { maxOutputLength }),
};
