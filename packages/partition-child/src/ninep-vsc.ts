// The 9P client end of a ninep channel: virtio-9p's handler in the
// paravisor. Each T-message goes to the parent's 9P VSP as one request; the
// R-message comes back in its completion. The VSP's server holds the fids,
// so when the VSP is restarted (killed, crashed, serviced) its successor
// knows none of them: this VSC keeps, for every live fid, how it was made
// (the attach, the names walked, the open flags) and rebuilds them on the new
// channel before re-issuing what was in flight (9P2000.L: Linux
// net/9p/client.c is the peer; the messages are those of
// Documentation/filesystems/9p.rst and diod's protocol.md).
import type { NinePHandler } from "@ringzero/virtio";
import { type ClientChannel, RequestChannel } from "@ringzero/vmbus";
import { decodeFramed, encodeDataHeader, NINEP_MAX_MESSAGE } from "@ringzero/vmbus/protocols";
import { Reissuing } from "./vsc.js";

/** 9P2000.L message types this VSC follows (the rest pass through untouched). */
const T = {
  lerror: 7,
  lopen: 12,
  lcreate: 14,
  rename: 20,
  renameat: 74,
  version: 100,
  attach: 104,
  walk: 110,
  clunk: 120,
  remove: 122,
} as const;
const MAXWELEM = 16;
/** Linux open flags a rebuilt open must not repeat (the file exists now and holds data). */
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
/** The tag of the VSC's own rebuild messages (no guest request is in flight on a new channel). */
const REBUILD_TAG = 0xfffe;
/** How long the 9P server may take over one request before it counts as lost. */
const NINEP_TIMEOUT_MS = 60_000;

interface Fid {
  /** The whole Tattach that made the fid's tree root (its fid field is rewritten on rebuild). */
  readonly attach: Uint8Array;
  /** Names walked from the root, "." and ".." resolved. */
  names: string[];
  /** Tlopen/Tlcreate flags once opened. */
  open?: number;
}

export interface NinePVscCounters {
  requests: number;
  errors: number;
  reissued: number;
  reconnects: number;
  /** Fids rebuilt on a successor VSP, and those that could not be (the file went away). */
  fidsRebuilt: number;
  fidsLost: number;
}

const utf8 = new TextDecoder();
const enc = new TextEncoder();

/** A little-endian cursor over one 9P message; every read is bounds-checked (undefined past the end). */
class Cursor {
  private readonly v: DataView;
  constructor(
    private readonly b: Uint8Array,
    public at = 7,
  ) {
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  u16(): number | undefined {
    if (this.at + 2 > this.b.length) return undefined;
    this.at += 2;
    return this.v.getUint16(this.at - 2, true);
  }
  u32(): number | undefined {
    if (this.at + 4 > this.b.length) return undefined;
    this.at += 4;
    return this.v.getUint32(this.at - 4, true);
  }
  str(): string | undefined {
    const n = this.u16();
    if (n === undefined || this.at + n > this.b.length) return undefined;
    this.at += n;
    return utf8.decode(this.b.subarray(this.at - n, this.at));
  }
}

function message(type: number, body: (number | string | Uint8Array)[], widths: (2 | 4)[] = []): Uint8Array {
  const parts: Uint8Array[] = [];
  let wi = 0;
  for (const f of body) {
    if (typeof f === "number") {
      const w = widths[wi++] ?? 4;
      const b = new Uint8Array(w);
      const v = new DataView(b.buffer);
      if (w === 2) v.setUint16(0, f, true);
      else v.setUint32(0, f, true);
      parts.push(b);
    } else if (typeof f === "string") {
      const s = enc.encode(f);
      const b = new Uint8Array(2 + s.length);
      new DataView(b.buffer).setUint16(0, s.length, true);
      b.set(s, 2);
      parts.push(b);
    } else parts.push(f);
  }
  const size = 7 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, size, true);
  out[4] = type;
  v.setUint16(5, REBUILD_TAG, true);
  let o = 7;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `names` walked further by `more` ("." stays, ".." goes up but never above the root). */
function walked(names: readonly string[], more: readonly string[]): string[] {
  const out = names.slice();
  for (const n of more) {
    if (n === "..") out.pop();
    else if (n !== ".") out.push(n);
  }
  return out;
}

const samePrefix = (a: readonly string[], prefix: readonly string[]) =>
  a.length >= prefix.length && prefix.every((n, i) => a[i] === n);

export class NinePVsc extends Reissuing implements NinePHandler {
  readonly counters: NinePVscCounters = {
    requests: 0,
    errors: 0,
    reissued: 0,
    reconnects: 0,
    fidsRebuilt: 0,
    fidsLost: 0,
  };
  private version: Uint8Array | undefined;
  private readonly fids = new Map<number, Fid>();

  constructor(channel: ClientChannel) {
    super(
      new RequestChannel(channel, { timeoutMs: NINEP_TIMEOUT_MS }),
      NINEP_TIMEOUT_MS,
      () => new Error("the 9P VSP was not offered again in time"),
    );
  }

  /** Live fids the VSC would rebuild (for tests and counters). */
  get liveFids(): number {
    return this.fids.size;
  }

  async handle(request: Uint8Array): Promise<Uint8Array> {
    this.counters.requests++;
    const tag = request.length >= 7 ? (request[5] as number) | ((request[6] as number) << 8) : 0xffff;
    if (request.length > NINEP_MAX_MESSAGE) return lerror(tag, 90); // EMSGSIZE
    // A copy: virtio-9p's buffer stays the guest's; a re-issue must send the same bytes.
    const req = request.slice();
    let reply: Uint8Array | undefined;
    try {
      const p = await this.issue([encodeDataHeader(req.length), req]);
      reply = decodeFramed(p.payload, NINEP_MAX_MESSAGE);
    } catch {
      reply = undefined;
    }
    if (!reply || reply.length < 7) {
      this.counters.errors++;
      return lerror(tag, 5); // EIO
    }
    this.observe(req, reply);
    return reply.slice();
  }

  /** Follows the fid table from a request and its successful reply. */
  private observe(req: Uint8Array, reply: Uint8Array): void {
    const type = req[4] as number;
    const ok = reply[4] === type + 1;
    const c = new Cursor(req);
    switch (type) {
      case T.version:
        if (ok) {
          this.version = req.slice();
          this.fids.clear(); // Tversion aborts every fid (9P: version(5))
        }
        return;
      case T.attach: {
        const fid = c.u32();
        if (ok && fid !== undefined) this.fids.set(fid, { attach: req.slice(), names: [] });
        return;
      }
      case T.walk: {
        const fid = c.u32();
        const newfid = c.u32();
        const n = c.u16();
        if (!ok || fid === undefined || newfid === undefined || n === undefined) return;
        const names: string[] = [];
        for (let i = 0; i < n; i++) {
          const s = c.str();
          if (s === undefined) return;
          names.push(s);
        }
        // A partial walk (fewer qids than names) does not create newfid.
        const nwqid = reply.length >= 9 ? (reply[7] as number) | ((reply[8] as number) << 8) : -1;
        const base = this.fids.get(fid);
        if (nwqid !== n) return;
        if (!base) {
          this.fids.delete(newfid);
          return;
        }
        this.fids.set(newfid, { attach: base.attach, names: walked(base.names, names) });
        return;
      }
      case T.lopen: {
        const fid = c.u32();
        const flags = c.u32();
        const f = fid === undefined ? undefined : this.fids.get(fid);
        if (ok && f && flags !== undefined) f.open = flags;
        return;
      }
      case T.lcreate: {
        const fid = c.u32();
        const name = c.str();
        const flags = c.u32();
        const f = fid === undefined ? undefined : this.fids.get(fid);
        if (ok && f && name !== undefined && flags !== undefined) {
          f.names = walked(f.names, [name]);
          f.open = flags;
        }
        return;
      }
      case T.clunk:
      case T.remove: {
        // Both free the fid whatever the answer (9P: clunk(5), remove(5)).
        const fid = c.u32();
        if (fid !== undefined) this.fids.delete(fid);
        return;
      }
      case T.rename: {
        const fid = c.u32();
        const dfid = c.u32();
        const name = c.str();
        const f = fid === undefined ? undefined : this.fids.get(fid);
        const d = dfid === undefined ? undefined : this.fids.get(dfid);
        if (ok && f && d && name !== undefined) this.moved(f.attach, f.names, walked(d.names, [name]));
        return;
      }
      case T.renameat: {
        const olddir = c.u32();
        const oldname = c.str();
        const newdir = c.u32();
        const newname = c.str();
        const o = olddir === undefined ? undefined : this.fids.get(olddir);
        const n = newdir === undefined ? undefined : this.fids.get(newdir);
        if (ok && o && n && oldname !== undefined && newname !== undefined)
          this.moved(o.attach, walked(o.names, [oldname]), walked(n.names, [newname]));
        return;
      }
    }
  }

  /** A rename: every fid at or below `from` (in the same attach) now lives below `to`. */
  private moved(attach: Uint8Array, from: string[], to: string[]): void {
    for (const f of this.fids.values())
      if (f.attach === attach || bytesEqual(f.attach, attach))
        if (samePrefix(f.names, from)) f.names = [...to, ...f.names.slice(from.length)];
  }

  /** A successor VSP knows no fids: negotiate the same version, then attach, walk and open each again. */
  protected override async prepare(rc: RequestChannel): Promise<void> {
    if (!this.version) return;
    const send = async (m: Uint8Array): Promise<Uint8Array | undefined> => {
      const p = await rc.request([encodeDataHeader(m.length), m]);
      const r = decodeFramed(p.payload, NINEP_MAX_MESSAGE);
      return r && r.length >= 7 && r[4] === (m[4] as number) + 1 ? r : undefined;
    };
    const v = this.version.slice();
    new DataView(v.buffer).setUint16(5, 0xffff, true); // Tversion goes on NOTAG
    if (!(await send(v))) throw new Error("the successor refused Tversion");
    for (const [fid, f] of [...this.fids]) {
      const attach = f.attach.slice();
      const dv = new DataView(attach.buffer);
      dv.setUint16(5, REBUILD_TAG, true);
      dv.setUint32(7, fid, true);
      let ok = (await send(attach)) !== undefined;
      for (let i = 0; ok && i < f.names.length; i += MAXWELEM) {
        const part = f.names.slice(i, i + MAXWELEM);
        const r = await send(message(T.walk, [fid, fid, part.length, ...part], [4, 4, 2]));
        ok = r !== undefined && ((r[7] as number) | ((r[8] as number) << 8)) === part.length;
      }
      if (ok && f.open !== undefined)
        ok = (await send(message(T.lopen, [fid, f.open & ~(O_CREAT | O_EXCL | O_TRUNC)]))) !== undefined;
      if (ok) this.counters.fidsRebuilt++;
      else {
        // The file is gone (removed, or renamed by someone else): the guest's next use gets an error.
        this.counters.fidsLost++;
        this.fids.delete(fid);
        await send(message(T.clunk, [fid])).catch(() => undefined);
      }
    }
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Rlerror(tag, errno): what the guest gets when the request could not be served. */
function lerror(tag: number, errno: number): Uint8Array {
  const b = new Uint8Array(11);
  const v = new DataView(b.buffer);
  v.setUint32(0, 11, true);
  b[4] = T.lerror;
  v.setUint16(5, tag, true);
  v.setUint32(7, errno, true);
  return b;
}
