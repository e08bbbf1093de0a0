// How a device reaches guest-physical memory. Management (allocation,
// mapping, grants) stays with the hypervisor; a device only asks for views.

/**
 * Guest-physical memory as a device sees it.
 * `view(pa, length)` returns a live view of [pa, pa+length) when that range is
 * entirely RAM, otherwise `undefined` (the device then fails the request or
 * sets DEVICE_NEEDS_RESET; it never throws). The view may be over a
 * SharedArrayBuffer. `length` 0 is valid and returns an empty view when `pa`
 * lies inside RAM or at its end.
 */
export interface GuestMemory {
  view(pa: number, length: number): Uint8Array | undefined;
  /**
   * Optional: told after a device wrote [pa, pa+length) (DMA into buffers,
   * used-ring updates, balloon releases), for a hypervisor that tracks dirty
   * pages or caches decoded guest code.
   */
  written?(pa: number, length: number): void;
}

/** One flat RAM region of `bytes.length` bytes at guest-physical `base`. */
export function arrayGuestMemory(base: number, bytes: Uint8Array): GuestMemory {
  const end = base + bytes.length;
  return {
    view(pa: number, length: number): Uint8Array | undefined {
      if (!Number.isSafeInteger(pa) || !Number.isSafeInteger(length) || length < 0) return undefined;
      if (pa < base || pa + length > end) return undefined;
      const off = pa - base;
      return bytes.subarray(off, off + length);
    },
  };
}
