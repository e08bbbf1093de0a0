// Test doubles for other packages (virtio-blk tests...): an in-memory byte
// store and file system, and a ready in-memory raw disk.
import { RawImage } from "./formats/raw.js";
import { MemoryHost, MemoryStore } from "./io/memory.js";

export { MemoryHost, MemoryStore };

/** An in-memory raw disk of `size` bytes (sparse: only written chunks use memory). */
export async function memoryDisk(size: number, name = "memory.raw"): Promise<RawImage> {
  return RawImage.create(new MemoryStore(name), { size });
}
