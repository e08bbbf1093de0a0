// A flat "guest physical memory" for channels between workers or in one
// thread: GPA = byte offset into one buffer (vmbus.md §5, "one SharedArrayBuffer
// per partition; GPA = byte offset"). The guest side allocates ring pages from
// it and describes them with a GPA range; the host side maps GPADLs back to views.
import { VmbusError, VmbusErrorCode } from "./errors.js";
import { type GpaRange, PAGE_SIZE } from "./gpa.js";

export class FlatGuestMemory {
  readonly bytes: Uint8Array;
  #next = 0;

  /** `bytes`: the whole guest memory (byteOffset a multiple of 8), or a size to allocate a SharedArrayBuffer. */
  constructor(bytes: Uint8Array | number) {
    this.bytes = typeof bytes === "number" ? new Uint8Array(new SharedArrayBuffer(bytes)) : bytes;
  }

  /** Allocates `size` bytes (rounded up to pages) and returns the view and its single GPA range. */
  allocate(size: number): { view: Uint8Array; range: GpaRange } {
    const bytes = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    if (this.#next + bytes > this.bytes.length) {
      throw new VmbusError(
        VmbusErrorCode.INVALID_STATE,
        { size, free: this.bytes.length - this.#next },
        "guest memory exhausted",
      );
    }
    const start = this.#next;
    this.#next += bytes;
    const view = this.bytes.subarray(start, start + bytes);
    view.fill(0);
    const pfns: number[] = [];
    for (let i = 0; i < bytes / PAGE_SIZE; i++) pfns.push(start / PAGE_SIZE + i);
    return { view, range: { byteCount: bytes, byteOffset: 0, pfns } };
  }

  /**
   * Maps GPA ranges to one contiguous view: accepted only when every PFN lies
   * inside this memory and the pages are consecutive (what one allocation
   * produces). Anything else: undefined (the GPADL is not granted).
   */
  map(ranges: readonly GpaRange[]): Uint8Array | undefined {
    if (ranges.length === 0) return undefined;
    let start = -1;
    let end = -1;
    for (const r of ranges) {
      if (r.pfns.length === 0) return undefined;
      const base = r.pfns[0];
      for (let i = 1; i < r.pfns.length; i++) if (r.pfns[i] !== base + i) return undefined;
      const s = base * PAGE_SIZE + r.byteOffset;
      if (start < 0) start = s;
      else if (s !== end) return undefined;
      end = s + r.byteCount;
    }
    if (end > this.bytes.length) return undefined;
    return this.bytes.subarray(start, end);
  }

  /** A `mapGpadl` function for VmbusServer. */
  get mapper(): (ranges: readonly GpaRange[]) => Uint8Array | undefined {
    return (ranges) => this.map(ranges);
  }
}
