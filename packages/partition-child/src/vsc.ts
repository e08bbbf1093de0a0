// Virtualization service clients: the back ends of the paravisor's virtio
// devices. Each turns a device request into packets on its VMBus channel to
// the parent's VSP. Storage names the guest's buffers as GPA-direct ranges
// (the VSP reads and writes guest memory itself); network and console carry
// their bytes in-band.
import type { BlockBackend, NetBackend } from "@ringzero/virtio";
import {
  type ClientChannel,
  encodeGpaDirectHeader,
  type GpaRange,
  type IncomingPacket,
  PacketType,
  RequestChannel,
  type RequestOptions,
  VmbusError,
  VmbusErrorCode,
} from "@ringzero/vmbus";
import {
  CONSOLE_MAX_CHUNK,
  decodeFramed,
  decodeStorageCompletion,
  encodeDataHeader,
  encodeStorageRequest,
  NETWORK_MAX_FRAME,
  StorageOp,
  StorageStatus,
} from "@ringzero/vmbus/protocols";
import { rangeOfView } from "./gpa.js";

/** Disk requests can wait on a slow host disk; give them longer than the 5 s control default. */
const STORAGE_TIMEOUT_MS = 60_000;
/** How long requests wait for a rescinded storage channel to be offered again before they fail. */
const RECONNECT_TIMEOUT_MS = 30_000;
/** Failures that mean "the channel went away", not "the request failed": re-issued on the next channel. */
const CHANNEL_GONE: ReadonlySet<string> = new Set([
  VmbusErrorCode.CHANNEL_REVOKED,
  VmbusErrorCode.CLOSED,
  VmbusErrorCode.INVALID_STATE,
]);

export class StorageError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

export interface StorageInfo {
  readonly size: number;
  readonly readOnly: boolean;
}

/**
 * Requests on a channel that can be rescinded and re-offered: when the parent
 * rescinds it (its VSP died or is being serviced), requests in flight and new
 * ones wait for the re-offered channel and are issued again there, so the
 * guest sees latency, not an error. `prepare` runs on each new channel before
 * anything is re-issued (state the VSP lost is rebuilt there).
 */
export abstract class Reissuing {
  abstract readonly counters: { errors: number; reissued: number; reconnects: number };
  private rc: RequestChannel | undefined;
  private waiters: { resolve: (rc: RequestChannel) => void; reject: (e: Error) => void }[] = [];
  private generation = 0;

  constructor(
    rc: RequestChannel,
    private readonly timeoutMs: number,
    private readonly gone: () => Error,
  ) {
    this.rc = rc;
  }

  /** The channel was rescinded: requests wait for `attach`. */
  detach(): void {
    this.generation++;
    this.rc?.dispose();
    this.rc = undefined;
  }

  /** The re-offered channel is open: rebuild what the VSP lost, then waiting and re-issued requests go there. */
  attach(channel: ClientChannel): void {
    this.detach();
    const generation = this.generation;
    const rc = new RequestChannel(channel, { timeoutMs: this.timeoutMs });
    this.counters.reconnects++;
    const publish = () => {
      if (generation !== this.generation) return; // rescinded again meanwhile: the next attach serves them
      this.rc = rc;
      for (const w of this.waiters.splice(0)) w.resolve(rc);
    };
    // A rebuild that fails on a channel still current is tried once more; after that the channel
    // serves anyway (what could not be rebuilt fails on use) rather than leaving every request waiting.
    this.prepare(rc)
      .catch(() => (generation === this.generation ? this.prepare(rc) : undefined))
      .then(publish, () => {
        this.counters.errors++;
        publish();
      });
  }

  /** Runs on a new channel before it serves requests. */
  protected prepare(_rc: RequestChannel): Promise<void> {
    return Promise.resolve();
  }

  get connected(): boolean {
    return this.rc !== undefined;
  }

  private channel(): Promise<RequestChannel> {
    if (this.rc) return Promise.resolve(this.rc);
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (rc: RequestChannel) => {
          clearTimeout(timer);
          resolve(rc);
        },
        reject,
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(this.gone());
      }, RECONNECT_TIMEOUT_MS);
      this.waiters.push(w);
    });
  }

  /** Sends a request, re-issuing it on the next channel as long as the channel, not the request, failed. */
  protected async issue(payload: Uint8Array | readonly Uint8Array[], o: RequestOptions = {}): Promise<IncomingPacket> {
    for (;;) {
      const rc = await this.channel();
      try {
        return await rc.request(payload, o);
      } catch (e) {
        const gone = rc.channel.state !== "open" || (e instanceof VmbusError && CHANNEL_GONE.has(e.code));
        if (!gone) {
          this.counters.errors++;
          throw e;
        }
        if (this.rc === rc) this.detach();
        this.counters.reissued++;
      }
    }
  }
}

/**
 * A virtio-blk BlockBackend whose every request is a storage-protocol packet
 * to the parent; re-issued on the re-offered channel after a rescind (reads
 * and writes of whole ranges are idempotent).
 */
export class StorageVsc extends Reissuing implements BlockBackend {
  readonly readOnly: boolean;
  private readonly sizeBytes: number;
  readonly counters = { requests: 0, bytes: 0, errors: 0, reissued: 0, reconnects: 0 };

  private constructor(
    rc: RequestChannel,
    private readonly ram: { gpa: number; buffer: SharedArrayBuffer },
    info: StorageInfo,
  ) {
    super(
      rc,
      STORAGE_TIMEOUT_MS,
      () => new StorageError(StorageStatus.IO_ERROR, "the storage VSP was not offered again in time"),
    );
    this.sizeBytes = info.size;
    this.readOnly = info.readOnly;
  }

  /** Opens the storage protocol on an open channel: asks the VSP for the disk's size and mode. */
  static async connect(channel: ClientChannel, ram: { gpa: number; buffer: SharedArrayBuffer }): Promise<StorageVsc> {
    const rc = new RequestChannel(channel, { timeoutMs: STORAGE_TIMEOUT_MS });
    const p = await rc.request(encodeStorageRequest({ op: StorageOp.INFO, flags: 0, offset: 0, length: 0 }));
    const c = decodeStorageCompletion(p.payload);
    if (!c || c.status !== StorageStatus.OK) throw new StorageError(c?.status ?? -1, "storage VSP refused INFO");
    return new StorageVsc(rc, ram, { size: c.size ?? 0, readOnly: c.readOnly === true });
  }

  size(): number {
    return this.sizeBytes;
  }

  private async call(op: StorageOp, offset: number, length: number, ranges?: GpaRange[], flags = 0): Promise<void> {
    this.counters.requests++;
    const header = ranges ? encodeGpaDirectHeader(ranges) : undefined;
    const p = await this.issue(encodeStorageRequest({ op, flags, offset, length }), {
      type: ranges ? PacketType.GPA_DIRECT : PacketType.IN_BAND,
      header,
    });
    const c = decodeStorageCompletion(p.payload);
    if (!c || c.status !== StorageStatus.OK) {
      this.counters.errors++;
      throw new StorageError(c?.status ?? -1, `storage request ${op} failed with status ${c?.status ?? "?"}`);
    }
    this.counters.bytes += length;
  }

  private ranges(buffers: readonly Uint8Array[]): GpaRange[] {
    const out: GpaRange[] = [];
    for (const b of buffers) {
      if (b.length === 0) continue;
      const r = rangeOfView(b, this.ram);
      if (!r) throw new StorageError(StorageStatus.BAD_REQUEST, "a buffer outside the guest's RAM");
      out.push(r);
    }
    return out;
  }

  readv(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    const length = buffers.reduce((n, b) => n + b.length, 0);
    return this.call(StorageOp.READ, offset, length, this.ranges(buffers));
  }

  writev(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    const length = buffers.reduce((n, b) => n + b.length, 0);
    return this.call(StorageOp.WRITE, offset, length, this.ranges(buffers));
  }

  /** Bounce-buffer path (callers outside virtio-blk's readv/writev): in-band data is not supported. */
  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    const r = rangeOfView(buf, this.ram);
    if (!r) throw new StorageError(StorageStatus.BAD_REQUEST, "readInto needs a view of guest RAM (use readv)");
    await this.call(StorageOp.READ, offset, buf.length, [r]);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const r = rangeOfView(data, this.ram);
    if (!r) throw new StorageError(StorageStatus.BAD_REQUEST, "write needs a view of guest RAM (use writev)");
    await this.call(StorageOp.WRITE, offset, data.length, [r]);
  }

  flush(): Promise<void> {
    return this.call(StorageOp.FLUSH, 0, 0);
  }

  discard(offset: number, length: number): Promise<void> {
    return this.call(StorageOp.DISCARD, offset, length);
  }

  writeZeroes(offset: number, length: number, options?: { mayUnmap?: boolean }): Promise<void> {
    return this.call(StorageOp.WRITE_ZEROES, offset, length, undefined, options?.mayUnmap ? 1 : 0);
  }
}

/**
 * A VSC on a channel that can be rescinded and re-offered: `detach` drops
 * the channel (network frames are then dropped, as a NIC without link;
 * console output waits, bounded), `attach` moves to the reopened one.
 */
abstract class Rebindable {
  abstract readonly counters: { reconnects: number };
  protected channel: ClientChannel | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(channel: ClientChannel) {
    this.bind(channel);
  }

  abstract pump(): void;

  private bind(channel: ClientChannel): void {
    this.unsubscribe?.();
    this.channel = channel;
    this.unsubscribe = channel.onSignal(() => this.pump());
  }

  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.channel = undefined;
  }

  attach(channel: ClientChannel): void {
    this.counters.reconnects++;
    this.bind(channel);
    this.pump();
  }
}

/** A virtio-net NetBackend: frames both ways as in-band packets; a full ring drops (counted), as a NIC would. */
export class NetworkVsc extends Rebindable implements NetBackend {
  private receiver: ((frame: Uint8Array) => void) | null = null;
  readonly counters = { sent: 0, received: 0, dropped: 0, malformed: 0, reconnects: 0 };

  send(frame: Uint8Array): void {
    if (frame.length > NETWORK_MAX_FRAME || !this.channel || this.channel.state !== "open") {
      this.counters.dropped++;
      return;
    }
    if (this.channel.send({ type: PacketType.IN_BAND, payload: [encodeDataHeader(frame.length), frame] }))
      this.counters.sent++;
    else this.counters.dropped++;
  }

  setReceiver(receiver: ((frame: Uint8Array) => void) | null): void {
    this.receiver = receiver;
    this.pump();
  }

  pump(): void {
    if (!this.channel || this.channel.state !== "open") return;
    this.channel.receive((p) => {
      const frame = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, NETWORK_MAX_FRAME) : undefined;
      if (!frame) {
        this.counters.malformed++;
        return;
      }
      this.counters.received++;
      this.receiver?.(frame);
    });
  }
}

/** The console's byte stream both ways (guest output to the parent, host input to the guest). */
export class ConsoleVsc extends Rebindable {
  private readonly pending: Uint8Array[] = [];
  readonly counters = { out: 0, in: 0, reconnects: 0 };

  constructor(
    channel: ClientChannel,
    private readonly input: (bytes: Uint8Array) => void,
  ) {
    super(channel);
  }

  write(bytes: Uint8Array): void {
    for (let o = 0; o < bytes.length; o += CONSOLE_MAX_CHUNK) this.pending.push(bytes.slice(o, o + CONSOLE_MAX_CHUNK));
    // Without a channel, keep the newest 64 KiB of output.
    while (!this.channel && this.pending.length > (64 * 1024) / CONSOLE_MAX_CHUNK) this.pending.shift();
    this.flush();
  }

  private flush(): void {
    const ch = this.channel;
    if (!ch || ch.state !== "open") return;
    while (this.pending.length > 0) {
      const chunk = this.pending[0] as Uint8Array;
      if (!ch.writer.write({ type: PacketType.IN_BAND, payload: [encodeDataHeader(chunk.length), chunk] })) break;
      this.counters.out += (this.pending.shift() as Uint8Array).length;
    }
    ch.flush();
  }

  pump(): void {
    if (!this.channel || this.channel.state !== "open") return;
    this.channel.receive((p) => {
      const chunk = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, CONSOLE_MAX_CHUNK) : undefined;
      if (!chunk) return;
      this.counters.in += chunk.length;
      this.input(chunk);
    });
    this.flush(); // the signal may mean ring space freed
  }
}
