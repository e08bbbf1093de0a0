// Fault injection by write index: a byte store that stops after its k-th
// write (a process killed between two system calls), and can then show what a
// disk would hold under three crash models:
//  - "prefix":    every write up to and including write k reached the disk;
//  - "unflushed": only the writes completed before the last flush survive
//                 (the page cache lost everything after it);
//  - "reordered": the writes before the last flush, plus write k alone (the
//                 disk reordered the unflushed writes and only the last landed).
import { MemoryStore } from "../io/memory.js";
import type { ByteStore } from "../io/store.js";

export type CrashModel = "prefix" | "unflushed" | "reordered";
export const CRASH_MODELS: readonly CrashModel[] = ["prefix", "unflushed", "reordered"];

/** Thrown by a FaultStore once its write budget is spent. */
export class Killed extends Error {
  constructor() {
    super("killed");
  }
}

interface Op {
  offset: number; // -1 for a truncate
  data: Uint8Array; // written bytes (a truncate: empty)
  size: number; // a truncate's new size
}

export class FaultStore implements ByteStore {
  /** Writes and truncates accepted so far. */
  writes = 0;
  flushes = 0;
  private readonly stable: MemoryStore;
  private unflushed: Op[] = [];
  private readonly live: MemoryStore;

  constructor(
    initial: Uint8Array,
    private readonly budget = Number.POSITIVE_INFINITY,
    readonly name = "fault",
  ) {
    this.live = new MemoryStore(name, false, initial);
    this.stable = new MemoryStore(name, false, initial);
  }
  get readOnly() {
    return false;
  }
  size() {
    return this.live.size();
  }
  read(o: number, b: Uint8Array) {
    return this.live.read(o, b);
  }
  async write(offset: number, data: Uint8Array) {
    if (this.writes >= this.budget) throw new Killed();
    this.writes++;
    this.unflushed.push({ offset, data: data.slice(), size: 0 });
    await this.live.write(offset, data);
  }
  async truncate(size: number) {
    if (this.writes >= this.budget) throw new Killed();
    this.writes++;
    this.unflushed.push({ offset: -1, data: new Uint8Array(0), size });
    await this.live.truncate(size);
  }
  // The process dies when it tries write k+1: a flush after write k still happens.
  async flush() {
    this.flushes++;
    for (const op of this.unflushed) await apply(this.stable, op);
    this.unflushed = [];
  }
  async close() {}

  /** The disk contents after a crash now, under `model`. */
  async persisted(model: CrashModel): Promise<Uint8Array> {
    if (model === "prefix") return this.live.bytes();
    const s = new MemoryStore("copy", false, this.stable.bytes());
    const last = this.unflushed.at(-1);
    if (model === "reordered" && last) await apply(s, last);
    return s.bytes();
  }
}

async function apply(s: MemoryStore, op: Op): Promise<void> {
  if (op.offset < 0) await s.truncate(op.size);
  else await s.write(op.offset, op.data);
}

/** Runs `op` against a FaultStore over `base` that dies after `k` writes; returns the store (whether or not it died). */
export async function runUntilKilled(
  base: Uint8Array,
  k: number,
  op: (store: FaultStore) => Promise<void>,
): Promise<{ store: FaultStore; killed: boolean }> {
  const store = new FaultStore(base, k);
  try {
    await op(store);
    return { store, killed: false };
  } catch (e) {
    if (e instanceof Killed) return { store, killed: true };
    throw e;
  }
}
