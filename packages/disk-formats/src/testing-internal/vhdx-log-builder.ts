// Test helper: builds VHDX log entries ([MS-VHDX] 2.3.1) and places them in
// an image file, to test replay against crafted and corrupted logs.
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { crc32c } from "../formats/vhdx.js";
import { descriptorSectors } from "../formats/vhdx-log.js";

const SECTOR = 4096;

export type BuilderDescriptor =
  | { kind: "data"; fileOffset: number; sector: Uint8Array }
  | { kind: "zero"; fileOffset: number; length: number };

export interface EntrySpec {
  seq: bigint;
  tail: number;
  logGuid: Uint8Array;
  descriptors: BuilderDescriptor[];
  flushedFileOffset: number;
  lastFileOffset: number;
}

/** One log entry: descriptor sectors (header + descriptors), then one data sector per data descriptor, CRC-32C over all. */
export function buildEntry(spec: EntrySpec): Uint8Array {
  const dsec = descriptorSectors(spec.descriptors.length);
  const data = spec.descriptors.filter((d) => d.kind === "data");
  const length = (dsec + data.length) * SECTOR;
  const b = new Uint8Array(length);
  const dv = new DataView(b.buffer);
  b.set(new TextEncoder().encode("loge"), 0);
  dv.setUint32(8, length, true);
  dv.setUint32(12, spec.tail, true);
  dv.setBigUint64(16, spec.seq, true);
  dv.setUint32(24, spec.descriptors.length, true);
  b.set(spec.logGuid, 32);
  dv.setBigUint64(48, BigInt(spec.flushedFileOffset), true);
  dv.setBigUint64(56, BigInt(spec.lastFileOffset), true);
  let ds = dsec;
  spec.descriptors.forEach((d, i) => {
    const o = 64 + i * 32;
    dv.setBigUint64(o + 16, BigInt(d.fileOffset), true);
    dv.setBigUint64(o + 24, spec.seq, true);
    if (d.kind === "zero") {
      b.set(new TextEncoder().encode("zero"), o);
      dv.setBigUint64(o + 8, BigInt(d.length), true);
      return;
    }
    b.set(new TextEncoder().encode("desc"), o);
    b.set(d.sector.subarray(4092, 4096), o + 4); // TrailingBytes
    b.set(d.sector.subarray(0, 8), o + 8); // LeadingBytes
    const s = ds * SECTOR;
    b.set(new TextEncoder().encode("data"), s);
    dv.setUint32(s + 4, Number(spec.seq >> 32n), true);
    b.set(d.sector.subarray(8, 4092), s + 8);
    dv.setUint32(s + 4092, Number(spec.seq & 0xffffffffn), true);
    ds++;
  });
  dv.setUint32(4, crc32c(b, 4), true);
  return b;
}

export function patchFile(file: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(file, "r+");
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

export function readFileRange(file: string, offset: number, length: number): Uint8Array {
  const fd = openSync(file, "r");
  try {
    const b = new Uint8Array(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** Writes `entry` into the log region at `at`, wrapping at the log's end. */
export function placeEntry(file: string, logOffset: number, logLength: number, at: number, entry: Uint8Array): void {
  const first = Math.min(entry.length, logLength - at);
  patchFile(file, logOffset + at, entry.subarray(0, first));
  if (first < entry.length) patchFile(file, logOffset, entry.subarray(first));
}

/** Sets the LogGuid of both headers (64 and 128 KiB) and fixes their checksums. */
export function setLogGuid(file: string, guid: Uint8Array): void {
  for (const at of [64 * 1024, 128 * 1024]) {
    const h = readFileRange(file, at, SECTOR);
    h.set(guid, 48);
    new DataView(h.buffer).setUint32(4, crc32c(h, 4), true);
    patchFile(file, at, h);
  }
}
