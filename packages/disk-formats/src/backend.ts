// The one interface every image format implements: a virtual disk of `size`
// bytes. Offsets and lengths are numbers (safe integers, at most 2^53 - 1).

/** Format names this library can open or create. */
export const FormatName = {
  raw: "raw",
  qcow2: "qcow2",
  vdi: "vdi",
  vpc: "vpc",
  vmdk: "vmdk",
  parallels: "parallels",
  vhdx: "vhdx",
} as const;
export type FormatName = (typeof FormatName)[keyof typeof FormatName];

/**
 * One run of the allocation map, in the terms of `qemu-img map`:
 * - `data`: bytes stored in the image (or a backing file, see `depth`);
 * - `zero`: reads as zeros and is recorded as such (a v3 zero cluster, a hole);
 * - `unallocated`: not described by any layer of the chain; reads as zeros.
 */
export interface Extent {
  readonly start: number;
  readonly length: number;
  readonly kind: "data" | "zero" | "unallocated";
  /** 0 for the image itself, 1 for its backing file, and so on. */
  readonly depth: number;
  /** Byte offset in the file of the layer at `depth`, when the data lives there uncompressed. */
  readonly hostOffset?: number;
  /** The data is stored compressed. */
  readonly compressed?: boolean;
}

/** One range of a `readIntoMany`: the guest bytes at `offset` go into `buf`. */
export interface ReadPart {
  readonly offset: number;
  readonly buf: Uint8Array;
}

export interface BlockBackend {
  readonly format: FormatName;
  readonly readOnly: boolean;
  /** Virtual disk size in bytes. */
  size(): number;
  /** Reads `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Reads into `buf` at `offset` (no allocation). */
  readInto(offset: number, buf: Uint8Array): Promise<void>;
  /**
   * Optional: reads several ranges, each as `readInto` would (`parts` may be in any order, and
   * must not overlap in their buffers). A format may read the parts' bytes that follow each other in
   * its file in one vectored read (`ByteStore.readv`) whether or not they follow each other in the
   * guest: convert reads a window's data extents with it.
   */
  readIntoMany?(parts: readonly ReadPart[]): Promise<void>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes the range read as zeros; with `mayUnmap` the space may be released. */
  writeZeroes(offset: number, length: number, options?: { mayUnmap?: boolean }): Promise<void>;
  /** Hints that the range is unused; afterwards it reads as zeros or from the backing file. */
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  /**
   * The allocation status at `offset`: one extent starting there, as long as
   * the status stays the same (at most to `offset + length`). The chain is
   * followed: an extent unallocated at depth 0 is reported at the depth
   * where it is found.
   */
  blockStatus(offset: number, length: number): Promise<Extent>;
  close(): Promise<void>;
}

/** The whole allocation map of `range` (default: the disk), adjacent equal extents merged like qemu-img map. */
export async function allocationMap(disk: BlockBackend, start = 0, length = disk.size() - start): Promise<Extent[]> {
  const out: Extent[] = [];
  let pos = start;
  const end = start + length;
  while (pos < end) {
    const e = await disk.blockStatus(pos, end - pos);
    if (e.length <= 0) throw new Error(`blockStatus returned an empty extent at ${pos}`);
    const last = out[out.length - 1];
    if (last && mergeable(last, e)) {
      out[out.length - 1] = { ...last, length: last.length + e.length };
    } else out.push(e);
    pos += e.length;
  }
  return out;
}

function mergeable(a: Extent, b: Extent): boolean {
  if (a.kind !== b.kind || a.depth !== b.depth || !!a.compressed !== !!b.compressed) return false;
  if (a.hostOffset === undefined && b.hostOffset === undefined) return true;
  return a.hostOffset !== undefined && b.hostOffset !== undefined && a.hostOffset + a.length === b.hostOffset;
}
