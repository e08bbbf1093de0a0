// Guest-physical memory of partitions and grants between them. The
// microkernel allocates every partition's memory (one SharedArrayBuffer per
// mapped region) and never hands a partition a raw buffer it was not given:
// another partition reaches pages only through a grant (the GPADL mechanism,
// vmbus.md §2.4 and §5 item 11), as a checked view that refuses addresses
// outside the grant and stops answering once the grant is revoked.
//
// Limit of JavaScript: a Uint8Array taken from `view()` before a revoke stays
// usable by its holder; callers take views per request and drop them (the
// VSPs do), and the revoked flag is checked on every new view.

export const PAGE_SIZE = 4096;

export type MemoryKind = "ram" | "private";

/** A mapped region of a partition's guest-physical address space. */
export interface RegionInfo {
  readonly gpa: number;
  readonly size: number;
  /** "ram": the guest's RAM (the vCPUs' bus); "private": paravisor memory the guest cannot address. */
  readonly kind: MemoryKind;
}

/** What crosses threads when a grant is accepted (structured-cloneable; SABs are shared, not copied). */
export interface GrantTransfer {
  readonly id: number;
  readonly owner: number;
  readonly gpa: number;
  readonly size: number;
  readonly writable: boolean;
  readonly buffer: SharedArrayBuffer;
  /** Byte offset of `gpa` inside `buffer`. */
  readonly bufferOffset: number;
  /** One Int32 word: non-zero once revoked. */
  readonly revoked: SharedArrayBuffer;
}

/** A checked window onto granted guest-physical pages. */
export class GrantedMemory {
  readonly id: number;
  readonly owner: number;
  readonly gpa: number;
  readonly size: number;
  readonly writable: boolean;
  private readonly bytes: Uint8Array;
  private readonly flag: Int32Array;
  private readonly source: GrantTransfer;

  constructor(t: GrantTransfer) {
    this.source = t;
    this.id = t.id;
    this.owner = t.owner;
    this.gpa = t.gpa;
    this.size = t.size;
    this.writable = t.writable;
    this.bytes = new Uint8Array(t.buffer, t.bufferOffset, t.size);
    this.flag = new Int32Array(t.revoked);
  }

  /**
   * The grant as it crosses to another thread of the same partition (a VSP
   * worker): the same pages and the same revoked flag, checked the same way.
   */
  transfer(): GrantTransfer {
    return this.source;
  }

  get revoked(): boolean {
    return Atomics.load(this.flag, 0) !== 0;
  }

  /** True when [gpa, gpa+length) lies inside the grant and the grant still stands. */
  contains(gpa: number, length: number): boolean {
    return (
      Number.isSafeInteger(gpa) &&
      Number.isSafeInteger(length) &&
      length >= 0 &&
      gpa >= this.gpa &&
      gpa + length <= this.gpa + this.size &&
      !this.revoked
    );
  }

  /** A live view for DMA (read-write grants only); undefined outside the grant or once revoked. */
  view(gpa: number, length: number): Uint8Array | undefined {
    if (!this.writable || !this.contains(gpa, length)) return undefined;
    const off = gpa - this.gpa;
    return this.bytes.subarray(off, off + length);
  }

  /** A copy of [gpa, gpa+length); undefined outside the grant or once revoked. */
  read(gpa: number, length: number): Uint8Array | undefined {
    if (!this.contains(gpa, length)) return undefined;
    const off = gpa - this.gpa;
    return this.bytes.slice(off, off + length);
  }

  /** Copies `data` to `gpa`; false outside the grant, on a read-only grant or once revoked. */
  write(gpa: number, data: Uint8Array): boolean {
    if (!this.writable || !this.contains(gpa, data.length)) return false;
    this.bytes.set(data, gpa - this.gpa);
    return true;
  }
}
