// Virtualization service providers: the parent's ends of the VMBus channels.
// Each owns a host resource (a disk image, the user-mode network, the
// console) and serves the child's VSC. Everything the child sends is
// checked: ranges must lie inside the RAM grant the child gave, lengths must
// agree; a violation is answered with BAD_REQUEST and counted, never thrown.

import type { GrantedMemory } from "@ringzero/hypervisor-micro";
import type { NetBackend } from "@ringzero/net-stack";
import type { BlockBackend, NinePHandler } from "@ringzero/virtio";
import {
  type Channel,
  decodeGpaDirectHeader,
  type IncomingPacket,
  PacketType,
  RequestChannel,
  VmbusError,
} from "@ringzero/vmbus";
import {
  CONSOLE_MAX_CHUNK,
  decodeFramed,
  decodeStorageRequest,
  encodeDataHeader,
  encodeStorageCompletion,
  NETWORK_MAX_FRAME,
  NINEP_MAX_MESSAGE,
  StorageOp,
  StorageStatus,
} from "@ringzero/vmbus/protocols";

export interface StorageVspCounters {
  requests: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests refused: malformed, outside the disk, buffers outside the grant. */
  badRequests: number;
  ioErrors: number;
}

const PAGE = 4096;

/** Views of guest memory for GPA ranges, page by page where pages are not contiguous; undefined if any byte is not granted. */
export function viewsOfRanges(
  ram: GrantedMemory,
  header: Uint8Array,
): { views: Uint8Array[]; bytes: number } | undefined {
  const ranges = decodeGpaDirectHeader(header);
  if (ranges instanceof VmbusError) return undefined;
  const views: Uint8Array[] = [];
  let bytes = 0;
  for (const r of ranges) {
    let left = r.byteCount;
    let offset = r.byteOffset;
    for (let i = 0; i < r.pfns.length && left > 0; i++) {
      // Merge runs of consecutive page numbers into one view.
      let run = 1;
      while (i + run < r.pfns.length && r.pfns[i + run] === (r.pfns[i] as number) + run) run++;
      const n = Math.min(run * PAGE - offset, left);
      const v = ram.view((r.pfns[i] as number) * PAGE + offset, n);
      if (!v) return undefined;
      views.push(v);
      bytes += n;
      left -= n;
      offset = 0;
      i += run - 1;
    }
    if (left !== 0) return undefined;
  }
  return { views, bytes };
}

/** Requests a VSP is still working on; a graceful stop waits for the count to reach zero. */
class InFlight {
  private n = 0;
  private idle: (() => void) | undefined;

  /** Counts `work` until it settles. */
  track<T>(work: Promise<T>): Promise<T> {
    this.n++;
    return work.finally(() => {
      if (--this.n === 0) this.idle?.();
    });
  }

  drained(): Promise<void> {
    return this.n === 0
      ? Promise.resolve()
      : new Promise((r) => {
          this.idle = r;
        });
  }
}

/** Serves one disk image on one channel (storvsp's role). */
export class StorageVsp {
  readonly counters: StorageVspCounters = {
    requests: 0,
    reads: 0,
    writes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    badRequests: 0,
    ioErrors: 0,
  };
  private rc: RequestChannel | undefined;
  private readonly inFlight = new InFlight();

  constructor(
    private readonly image: BlockBackend & { close?(): Promise<void> | void },
    private readonly ram: () => GrantedMemory | undefined,
  ) {}

  /** Starts serving an opened channel (again after a re-offer). */
  attach(channel: Channel): void {
    this.rc?.dispose();
    this.rc = new RequestChannel(channel, { onPacket: (p) => this.onPacket(p) });
  }

  private onPacket(p: IncomingPacket): void {
    const rc = this.rc;
    if (!rc) return;
    this.counters.requests++;
    const done = (status: number, extra: { size?: number; readOnly?: boolean } = {}) =>
      rc.complete(p.transactionId, encodeStorageCompletion({ status: status as never, ...extra }));
    const bad = () => {
      this.counters.badRequests++;
      done(StorageStatus.BAD_REQUEST);
    };
    const r = decodeStorageRequest(p.payload);
    if (!r) {
      bad();
      return;
    }
    const img = this.image;
    const inDisk = r.offset + r.length <= img.size();
    const writing = r.op === StorageOp.WRITE || r.op === StorageOp.DISCARD || r.op === StorageOp.WRITE_ZEROES;
    if (writing && img.readOnly) {
      done(StorageStatus.READ_ONLY);
      return;
    }
    let work: Promise<void>;
    switch (r.op) {
      case StorageOp.INFO: {
        done(StorageStatus.OK, { size: img.size(), readOnly: img.readOnly });
        return;
      }
      case StorageOp.READ:
      case StorageOp.WRITE: {
        const ram = this.ram();
        const v = p.type === PacketType.GPA_DIRECT && ram ? viewsOfRanges(ram, p.header) : undefined;
        if (!v || v.bytes !== r.length || !inDisk) {
          bad();
          return;
        }
        work = r.op === StorageOp.READ ? this.readViews(r.offset, v.views) : this.writeViews(r.offset, v.views);
        break;
      }
      case StorageOp.FLUSH:
        work = img.flush();
        break;
      case StorageOp.DISCARD:
        if (!inDisk) {
          bad();
          return;
        }
        work = img.discard(r.offset, r.length);
        break;
      case StorageOp.WRITE_ZEROES:
        if (!inDisk) {
          bad();
          return;
        }
        work = img.writeZeroes(r.offset, r.length, { mayUnmap: (r.flags & 1) === 1 });
        break;
      default: {
        done(StorageStatus.UNSUPPORTED);
        return;
      }
    }
    void this.inFlight.track(
      work.then(
        () => done(StorageStatus.OK),
        () => {
          this.counters.ioErrors++;
          done(StorageStatus.IO_ERROR);
        },
      ),
    );
  }

  /** Graceful stop: stop taking requests, answer those in flight, flush and close the image. */
  async quiesce(): Promise<void> {
    this.rc?.dispose();
    await this.inFlight.drained();
    await this.image.flush().catch(() => {});
    await Promise.resolve(this.image.close?.()).catch(() => {});
  }

  // One image call per request, not one per guest buffer: Linux hands virtio-blk one descriptor per
  // page, and each image call is an await (and a host read or write) of its own.
  private async readViews(offset: number, views: Uint8Array[]): Promise<void> {
    this.counters.reads++;
    const total = views.reduce((n, v) => n + v.length, 0);
    if (views.length === 1) await this.image.readInto(offset, views[0] as Uint8Array);
    else {
      const buf = new Uint8Array(total);
      await this.image.readInto(offset, buf);
      let o = 0;
      for (const v of views) {
        v.set(buf.subarray(o, o + v.length));
        o += v.length;
      }
    }
    this.counters.bytesRead += total;
  }

  private async writeViews(offset: number, views: Uint8Array[]): Promise<void> {
    this.counters.writes++;
    // A copy: the guest may change its buffers while the image layer still holds the data.
    const total = views.reduce((n, v) => n + v.length, 0);
    const buf = new Uint8Array(total);
    let o = 0;
    for (const v of views) {
      buf.set(v, o);
      o += v.length;
    }
    await this.image.write(offset, buf);
    this.counters.bytesWritten += total;
  }
}

/** Bridges a channel and a net-stack back end (netvsp's role): one in-band packet per frame. */
export class NetworkVsp {
  readonly counters = { toGuest: 0, fromGuest: 0, dropped: 0, malformed: 0 };
  private channel: Channel | undefined;

  constructor(private readonly backend: NetBackend) {
    backend.setReceiver((frame) => this.toGuest(frame));
  }

  attach(channel: Channel): void {
    this.channel = channel;
    channel.onSignal(() => this.pump());
    this.pump();
  }

  private toGuest(frame: Uint8Array): void {
    const ch = this.channel;
    if (!ch || ch.state !== "open" || frame.length > NETWORK_MAX_FRAME) {
      this.counters.dropped++;
      return;
    }
    if (ch.send({ type: PacketType.IN_BAND, payload: [encodeDataHeader(frame.length), frame] }))
      this.counters.toGuest++;
    else this.counters.dropped++;
  }

  private pump(): void {
    const ch = this.channel;
    if (!ch || ch.state !== "open") return;
    ch.receive((p) => {
      const frame = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, NETWORK_MAX_FRAME) : undefined;
      if (!frame || frame.length < 14) {
        this.counters.malformed++;
        return;
      }
      this.counters.fromGuest++;
      this.backend.send(frame);
    });
  }
}

/** The virtio console's far end: guest output to the host, host input to the guest. */
export class ConsoleVsp {
  readonly counters = { out: 0, in: 0 };
  private channel: Channel | undefined;
  private readonly pending: Uint8Array[] = [];

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  attach(channel: Channel): void {
    this.channel = channel;
    channel.onSignal(() => this.pump());
    this.pump();
  }

  input(bytes: Uint8Array): void {
    for (let o = 0; o < bytes.length; o += CONSOLE_MAX_CHUNK) this.pending.push(bytes.slice(o, o + CONSOLE_MAX_CHUNK));
    this.flush();
  }

  private flush(): void {
    const ch = this.channel;
    if (!ch || ch.state !== "open") return;
    while (
      this.pending.length > 0 &&
      ch.writer.write({
        type: PacketType.IN_BAND,
        payload: [encodeDataHeader((this.pending[0] as Uint8Array).length), this.pending[0] as Uint8Array],
      })
    )
      this.counters.in += (this.pending.shift() as Uint8Array).length;
    ch.flush();
  }

  private pump(): void {
    const ch = this.channel;
    if (!ch || ch.state !== "open") return;
    ch.receive((p) => {
      const chunk = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, CONSOLE_MAX_CHUNK) : undefined;
      if (!chunk) return;
      this.counters.out += chunk.length;
      this.output(chunk);
    });
    this.flush();
  }
}

/**
 * Serves a 9P2000.L file server on one channel: each request packet carries
 * one T-message, its completion the R-message. The server's fids live here;
 * the child's VSC rebuilds them on a successor after a restart.
 */
export class NinePVsp {
  readonly counters = { requests: 0, badRequests: 0 };
  private rc: RequestChannel | undefined;
  private readonly inFlight = new InFlight();

  constructor(private readonly server: NinePHandler) {}

  attach(channel: Channel): void {
    this.rc?.dispose();
    this.rc = new RequestChannel(channel, { onPacket: (p) => this.onPacket(p) });
  }

  private onPacket(p: IncomingPacket): void {
    const rc = this.rc;
    if (!rc) return;
    this.counters.requests++;
    const msg = p.type === PacketType.IN_BAND ? decodeFramed(p.payload, NINEP_MAX_MESSAGE) : undefined;
    if (!msg || msg.length < 7) {
      // Not a 9P message: an empty completion (the VSC fails that request with EIO).
      this.counters.badRequests++;
      rc.complete(p.transactionId, encodeDataHeader(0));
      return;
    }
    // The server copies the message and never rejects (a bad message is answered with Rlerror).
    void this.inFlight.track(
      this.server.handle(msg).then((reply) => {
        if (reply.length <= NINEP_MAX_MESSAGE) rc.complete(p.transactionId, [encodeDataHeader(reply.length), reply]);
        else rc.complete(p.transactionId, encodeDataHeader(0));
      }),
    );
  }

  /** Graceful stop: answer what is in flight, take nothing new. */
  async quiesce(): Promise<void> {
    await this.inFlight.drained();
    this.rc?.dispose();
  }
}
