// Guest buffers as GPA ranges (vmbus.md §2.4): the paravisor names the
// guest's own memory to the parent by page numbers, never by pointers.
import type { GpaRange } from "@ringzero/vmbus";

const PAGE = 4096;

/** The GPA range of a view of the guest's RAM buffer (undefined if the view is not of that buffer). */
export function rangeOfView(view: Uint8Array, ram: { gpa: number; buffer: SharedArrayBuffer }): GpaRange | undefined {
  if (view.buffer !== ram.buffer || view.length === 0) return undefined;
  const gpa = ram.gpa + view.byteOffset;
  const first = Math.floor(gpa / PAGE);
  const last = Math.floor((gpa + view.length - 1) / PAGE);
  const pfns: number[] = [];
  for (let p = first; p <= last; p++) pfns.push(p);
  return { byteOffset: gpa % PAGE, byteCount: view.length, pfns };
}

/** A page-aligned bump allocator over the paravisor's private memory (ring pages). */
export class PageAllocator {
  private next = 0;
  constructor(private readonly region: { gpa: number; size: number; buffer: SharedArrayBuffer }) {}

  /** `bytes` (rounded up to pages) as a view and its one GPA range; undefined when the region is full. */
  allocate(bytes: number): { view: Uint8Array; range: GpaRange } | undefined {
    const size = Math.ceil(bytes / PAGE) * PAGE;
    if (this.next + size > this.region.size) return undefined;
    const off = this.next;
    this.next += size;
    const view = new Uint8Array(this.region.buffer, off, size);
    view.fill(0);
    const first = (this.region.gpa + off) / PAGE;
    return {
      view,
      range: { byteOffset: 0, byteCount: size, pfns: Array.from({ length: size / PAGE }, (_, i) => first + i) },
    };
  }
}
