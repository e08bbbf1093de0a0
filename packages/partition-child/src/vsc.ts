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

/** A virtio-blk BlockBackend whose every request is a storage-protocol packet to the parent. */
export class StorageVsc implements BlockBackend {
  readonly readOnly: boolean;
  private readonly sizeBytes: number;
  readonly counters = { requests: 0, bytes: 0, errors: 0 };

  private constructor(
    private readonly rc: RequestChannel,
    private readonly ram: { gpa: number; buffer: SharedArrayBuffer },
    info: StorageInfo,
  ) {
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
    const p: IncomingPacket = await this.rc.request(encodeStorageRequest({ op, flags, offset, length }), {
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

/** A virtio-net NetBackend: frames both ways as in-band packets; a full ring drops (counted), as a NIC would. */
export class NetworkVsc implements NetBackend {
  private receiver: ((frame: Uint8Array) => void) | null = null;
  readonly counters = { sent: 0, received: 0, dropped: 0, malformed: 0 };

  constructor(private readonly channel: ClientChannel) {
    channel.onSignal(() => this.pump());
  }

  send(frame: Uint8Array): void {
    if (frame.length > NETWORK_MAX_FRAME || this.channel.state !== "open") {
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
    if (this.channel.state !== "open") return;
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
export class ConsoleVsc {
  private readonly pending: Uint8Array[] = [];
  readonly counters = { out: 0, in: 0 };

  constructor(
    private readonly channel: ClientChannel,
    private readonly input: (bytes: Uint8Array) => void,
  ) {
    channel.onSignal(() => this.pump());
  }

  write(bytes: Uint8Array): void {
    for (let o = 0; o < bytes.length; o += CONSOLE_MAX_CHUNK) this.pending.push(bytes.slice(o, o + CONSOLE_MAX_CHUNK));
    this.flush();
  }

  private flush(): void {
    while (this.pending.length > 0 && this.channel.state === "open") {
      const chunk = this.pending[0] as Uint8Array;
      if (!this.channel.writer.write({ type: PacketType.IN_BAND, payload: [encodeDataHeader(chunk.length), chunk] }))
        break;
      this.counters.out += (this.pending.shift() as Uint8Array).length;
    }
    if (this.channel.state === "open") this.channel.flush();
  }

  pump(): void {
    if (this.channel.state !== "open") return;
    this.channel.receive((p) => {
      const chunk = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, CONSOLE_MAX_CHUNK) : undefined;
      if (!chunk) return;
      this.counters.in += chunk.length;
      this.input(chunk);
    });
    this.flush(); // the signal may mean ring space freed
  }
}
