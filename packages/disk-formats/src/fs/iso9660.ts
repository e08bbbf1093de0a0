// ISO 9660 (ECMA-119) images with Joliet and Rock Ridge names: build one from
// a list of files, and read one back (Rock Ridge names first, then Joliet,
// then the plain ISO names). 2048-byte logical blocks.
import type { BlockBackend } from "../backend.js";
import { DiskError, DiskErrorCode } from "../errors.js";

const F = "iso9660";
const BLOCK = 2048;
const MAX_DEPTH = 64;
const MAX_ENTRIES = 1_000_000;

export interface IsoFile {
  /** Path inside the image, "/" separated ("docs/readme.txt"). */
  readonly path: string;
  readonly data: Uint8Array;
}

export interface IsoEntry {
  readonly name: string;
  readonly size: number;
  readonly directory: boolean;
  readonly extent: number;
}

function fail(
  code: DiskErrorCode,
  offset: number | undefined,
  detail: string,
  extra: Record<string, unknown> = {},
): DiskError {
  return new DiskError(code, { format: F, ...(offset !== undefined ? { offset } : {}), ...extra }, detail);
}

// ------------------------------------------------------------------ build

interface Node {
  name: string;
  dir: boolean;
  data?: Uint8Array;
  children: Node[];
  parent: Node | null;
  isoName: string;
  extent: number;
  size: number; // directory extent size (iso tree), file size
  jSize: number; // directory extent size (Joliet tree)
  number: number; // path table number
}

const both16 = (b: Uint8Array, o: number, v: number) => {
  const dv = new DataView(b.buffer, b.byteOffset);
  dv.setUint16(o, v, true);
  dv.setUint16(o + 2, v, false);
};
const both32 = (b: Uint8Array, o: number, v: number) => {
  const dv = new DataView(b.buffer, b.byteOffset);
  dv.setUint32(o, v, true);
  dv.setUint32(o + 4, v, false);
};
const ascii = (s: string) => new TextEncoder().encode(s);
function ucs2(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < s.length; i++) dv.setUint16(i * 2, s.charCodeAt(i), false);
  return out;
}

/** Rock Ridge system use for a record: PX (POSIX attributes) and NM (the real name). */
function rockRidge(name: string | null, dir: boolean, root: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  if (root) {
    // SUSP "SP" (check bytes BE EF) and the "ER" extension reference, in the root's "." record.
    parts.push(new Uint8Array([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]));
    const id = ascii("RRIP_1991A");
    const des = ascii("ROCK RIDGE");
    const src = ascii("RINGZERO");
    const er = new Uint8Array(8 + id.length + des.length + src.length);
    er.set([0x45, 0x52, er.length, 1, id.length, des.length, src.length, 1]);
    er.set(id, 8);
    er.set(des, 8 + id.length);
    er.set(src, 8 + id.length + des.length);
    parts.push(er);
  }
  const px = new Uint8Array(36);
  px.set([0x50, 0x58, 36, 1]);
  both32(px, 4, dir ? 0o40755 : 0o100644);
  both32(px, 12, dir ? 2 : 1);
  parts.push(px);
  if (name !== null) {
    const n = ascii(name);
    const nm = new Uint8Array(5 + n.length);
    nm.set([0x4e, 0x4d, nm.length, 1, 0]);
    nm.set(n, 5);
    parts.push(nm);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function record(id: Uint8Array, extent: number, size: number, dir: boolean, su: Uint8Array): Uint8Array {
  const len0 = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const len = len0 + su.length + ((len0 + su.length) % 2);
  if (len > 255) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "directory record too long (name)", { len });
  const r = new Uint8Array(len);
  r[0] = len;
  both32(r, 2, extent);
  both32(r, 10, size);
  const d = new Date();
  r.set(
    [
      d.getUTCFullYear() - 1900,
      d.getUTCMonth() + 1,
      d.getUTCDate(),
      d.getUTCHours(),
      d.getUTCMinutes(),
      d.getUTCSeconds(),
      0,
    ],
    18,
  );
  r[25] = dir ? 2 : 0;
  both16(r, 28, 1);
  r[32] = id.length;
  r.set(id, 33);
  r.set(su, len0);
  return r;
}

/** Packs records into 2048-byte blocks (a record never crosses a block boundary). */
function packRecords(recs: Uint8Array[]): Uint8Array {
  const blocks: number[][] = [];
  let cur: number[] = [];
  for (const r of recs) {
    if (cur.length + r.length > BLOCK) {
      blocks.push(cur);
      cur = [];
    }
    cur.push(...r);
  }
  blocks.push(cur);
  const out = new Uint8Array(blocks.length * BLOCK);
  for (const [i, b] of blocks.entries()) out.set(b, i * BLOCK);
  return out;
}

function isoNames(children: Node[]): void {
  const taken = new Set<string>();
  for (const c of children) {
    const up = c.name.toUpperCase().replace(/[^A-Z0-9_.]/g, "_");
    const dot = c.dir ? -1 : up.lastIndexOf(".");
    let base = (dot > 0 ? up.slice(0, dot) : up).replace(/\./g, "_").slice(0, 8) || "_";
    const ext =
      dot > 0
        ? up
            .slice(dot + 1)
            .replace(/\./g, "_")
            .slice(0, 3)
        : "";
    let cand = base + (c.dir ? "" : `.${ext}`);
    for (let n = 1; taken.has(cand); n++) {
      const tail = `${n}`;
      base = base.slice(0, 8 - tail.length) + tail;
      cand = base + (c.dir ? "" : `.${ext}`);
    }
    taken.add(cand);
    c.isoName = cand;
  }
}

/**
 * Builds an ISO 9660 image (level 1 names, Rock Ridge and Joliet) holding
 * `files` (directories are created from the paths). Returns the bytes.
 */
export function buildIso(files: readonly IsoFile[], options: { volumeId?: string } = {}): Uint8Array {
  const root: Node = {
    name: "",
    dir: true,
    children: [],
    parent: null,
    isoName: "",
    extent: 0,
    size: 0,
    jSize: 0,
    number: 1,
  };
  for (const f of files) {
    const parts = f.path.split("/").filter((p) => p !== "");
    if (parts.length === 0 || parts.length > 8)
      throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "path depth must be 1..8", { path: f.path });
    let d = root;
    for (const [i, p] of parts.entries()) {
      if (p.length > 64)
        throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "name longer than 64 characters (Joliet)", {
          path: f.path,
        });
      const last = i === parts.length - 1;
      let c = d.children.find((x) => x.name === p);
      if (!c) {
        c = { name: p, dir: !last, children: [], parent: d, isoName: "", extent: 0, size: 0, jSize: 0, number: 0 };
        if (last) {
          c.data = f.data;
          c.size = f.data.length;
        }
        d.children.push(c);
      } else if (last || !c.dir)
        throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "duplicate path", { path: f.path });
      d = c;
    }
  }
  // Breadth-first directory order (path table order: by parent, then name).
  const dirs: Node[] = [root];
  for (let i = 0; i < dirs.length; i++) {
    const d = dirs[i]!;
    d.children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    isoNames(d.children);
    d.children.sort((a, b) => (a.isoName < b.isoName ? -1 : 1));
    for (const c of d.children) if (c.dir) dirs.push(c);
  }
  dirs.forEach((d, i) => {
    d.number = i + 1;
  });
  // Directory record bytes depend on extents: sizes first (records have fixed lengths given the names).
  const isoDir = (d: Node) =>
    packRecords([
      record(new Uint8Array([0]), d.extent, d.size, true, rockRidge(null, true, d === root)),
      record(new Uint8Array([1]), (d.parent ?? d).extent, (d.parent ?? d).size, true, rockRidge(null, true, false)),
      ...d.children.map((c) =>
        record(ascii(c.dir ? c.isoName : `${c.isoName};1`), c.extent, c.size, c.dir, rockRidge(c.name, c.dir, false)),
      ),
    ]);
  const jDir = (d: Node) =>
    packRecords([
      record(new Uint8Array([0]), d.extent + jOffset(d), d.jSize, true, new Uint8Array(0)),
      record(
        new Uint8Array([1]),
        (d.parent ?? d).extent + jOffset(d.parent ?? d),
        (d.parent ?? d).jSize,
        true,
        new Uint8Array(0),
      ),
      ...d.children.map((c) =>
        record(
          ucs2(c.dir ? c.name : `${c.name};1`),
          c.dir ? c.extent + jOffset(c) : c.extent,
          c.dir ? c.jSize : c.size,
          c.dir,
          new Uint8Array(0),
        ),
      ),
    ]);
  const jExtent = new Map<Node, number>();
  const jOffset = (d: Node) => (jExtent.get(d) ?? d.extent) - d.extent;
  for (const d of dirs) {
    d.size = isoDir(d).length;
    d.jSize = jDir(d).length;
  }
  const pathTable = (joliet: boolean, big: boolean) => {
    const parts: number[] = [];
    for (const d of dirs) {
      const id = d === root ? new Uint8Array([0]) : joliet ? ucs2(d.name) : ascii(d.isoName);
      const e = new Uint8Array(8 + id.length + (id.length % 2));
      const dv = new DataView(e.buffer);
      e[0] = id.length;
      dv.setUint32(2, joliet ? (jExtent.get(d) ?? 0) : d.extent, !big);
      dv.setUint16(6, d.parent ? d.parent.number : 1, !big);
      e.set(id, 8);
      parts.push(...e);
    }
    return new Uint8Array(parts);
  };
  const ptSize = pathTable(false, false).length;
  const jptSize = pathTable(true, false).length;
  const ptBlocks = Math.ceil(ptSize / BLOCK);
  const jptBlocks = Math.ceil(jptSize / BLOCK);
  // Layout: 16 system blocks, PVD, SVD, terminator, 4 path tables, ISO dirs, Joliet dirs, files.
  let next = 19;
  const lpt = next;
  next += ptBlocks;
  const mpt = next;
  next += ptBlocks;
  const jlpt = next;
  next += jptBlocks;
  const jmpt = next;
  next += jptBlocks;
  for (const d of dirs) {
    d.extent = next;
    next += d.size / BLOCK;
  }
  for (const d of dirs) {
    jExtent.set(d, next);
    next += d.jSize / BLOCK;
  }
  const fileNodes: Node[] = [];
  for (const d of dirs) for (const c of d.children) if (!c.dir) fileNodes.push(c);
  for (const f of fileNodes) {
    f.extent = f.size === 0 ? 0 : next;
    next += Math.ceil(f.size / BLOCK);
  }
  const total = next;
  const img = new Uint8Array(total * BLOCK);
  const vd = (type: number, joliet: boolean) => {
    const b = new Uint8Array(BLOCK);
    b[0] = type;
    b.set(ascii("CD001"), 1);
    b[6] = 1;
    const pad = (o: number, n: number, s: string) =>
      b.set(joliet ? ucs2(s.padEnd(n / 2).slice(0, n / 2)) : ascii(s.padEnd(n).slice(0, n)), o);
    pad(8, 32, "");
    pad(40, 32, (options.volumeId ?? "RINGZERO").toUpperCase().slice(0, joliet ? 16 : 32));
    both32(b, 80, total);
    if (joliet) b.set([0x25, 0x2f, 0x45], 88); // "%/E": UCS-2 level 3
    both16(b, 120, 1);
    both16(b, 124, 1);
    both16(b, 128, BLOCK);
    both32(b, 132, joliet ? jptSize : ptSize);
    const dv = new DataView(b.buffer);
    dv.setUint32(140, joliet ? jlpt : lpt, true);
    dv.setUint32(148, joliet ? jmpt : mpt, false);
    const rootRec = record(
      new Uint8Array([0]),
      joliet ? jExtent.get(root)! : root.extent,
      joliet ? root.jSize : root.size,
      true,
      new Uint8Array(0),
    );
    b.set(rootRec.subarray(0, 34), 156);
    for (const o of [190, 318, 446, 574]) pad(o, 128, "");
    for (const o of [702, 739, 776]) pad(o, 37, "");
    for (const o of [813, 830, 847, 864]) b.set(ascii("0000000000000000"), o);
    b[881] = 1;
    return b;
  };
  img.set(vd(1, false), 16 * BLOCK);
  img.set(vd(2, true), 17 * BLOCK);
  const term = new Uint8Array(BLOCK);
  term[0] = 255;
  term.set(ascii("CD001"), 1);
  term[6] = 1;
  img.set(term, 18 * BLOCK);
  img.set(pathTable(false, false), lpt * BLOCK);
  img.set(pathTable(false, true), mpt * BLOCK);
  img.set(pathTable(true, false), jlpt * BLOCK);
  img.set(pathTable(true, true), jmpt * BLOCK);
  for (const d of dirs) {
    img.set(isoDir(d), d.extent * BLOCK);
    img.set(jDir(d), jExtent.get(d)! * BLOCK);
  }
  for (const f of fileNodes) if (f.size > 0) img.set(f.data!, f.extent * BLOCK);
  return img;
}

// ------------------------------------------------------------------- read

interface Rec {
  name: string;
  extent: number;
  size: number;
  dir: boolean;
}

export class IsoFs {
  private constructor(
    private readonly disk: BlockBackend,
    private readonly rootExtent: number,
    private readonly rootSize: number,
    readonly names: "rockridge" | "joliet" | "iso",
  ) {}

  static async open(disk: BlockBackend): Promise<IsoFs> {
    let primary: Uint8Array | null = null;
    let joliet: Uint8Array | null = null;
    for (let s = 16; s < 16 + 64; s++) {
      if ((s + 1) * BLOCK > disk.size())
        throw fail(DiskErrorCode.TRUNCATED, s * BLOCK, "no volume descriptor terminator");
      const b = await disk.read(s * BLOCK, BLOCK);
      if (new TextDecoder("latin1").decode(b.subarray(1, 6)) !== "CD001")
        throw fail(DiskErrorCode.BAD_MAGIC, s * BLOCK + 1, "not an ISO 9660 volume descriptor");
      if (b[0] === 255) break;
      if (b[0] === 1 && !primary) primary = b;
      if (b[0] === 2 && b[88] === 0x25 && b[89] === 0x2f && [0x40, 0x43, 0x45].includes(b[90]!)) joliet = b;
    }
    if (!primary) throw fail(DiskErrorCode.INVALID_HEADER, 16 * BLOCK, "no primary volume descriptor");
    const pdv = new DataView(primary.buffer);
    if (pdv.getUint16(128, true) !== BLOCK)
      throw fail(DiskErrorCode.UNSUPPORTED, 16 * BLOCK + 128, "logical block size other than 2048");
    const rootOf = (vd: Uint8Array) => {
      const dv = new DataView(vd.buffer);
      return { extent: dv.getUint32(156 + 2, true), size: dv.getUint32(156 + 10, true) };
    };
    const pr = rootOf(primary);
    const fs0 = new IsoFs(disk, pr.extent, pr.size, "iso");
    // Rock Ridge: a SUSP "SP" entry at the start of the root's "." system use field.
    const dot = await disk.read(
      checkExtent(disk, pr.extent, Math.min(pr.size, BLOCK), 16 * BLOCK + 158) * BLOCK,
      BLOCK,
    );
    const len0 = 33 + dot[32]! + (dot[32]! % 2 === 0 ? 1 : 0);
    if (dot[len0] === 0x53 && dot[len0 + 1] === 0x50 && dot[len0 + 4] === 0xbe && dot[len0 + 5] === 0xef)
      return new IsoFs(disk, pr.extent, pr.size, "rockridge");
    if (joliet) {
      const jr = rootOf(joliet);
      return new IsoFs(disk, jr.extent, jr.size, "joliet");
    }
    return fs0;
  }

  private async readDir(extent: number, size: number): Promise<Rec[]> {
    if (size > 64 * 1024 * 1024) throw fail(DiskErrorCode.TOO_LARGE, extent * BLOCK, "directory larger than 64 MiB");
    const at = checkExtent(this.disk, extent, size, undefined);
    const b = await this.disk.read(at * BLOCK, Math.ceil(size / BLOCK) * BLOCK);
    const dv = new DataView(b.buffer);
    const out: Rec[] = [];
    let p = 0;
    while (p < size) {
      const len = b[p]!;
      if (len === 0) {
        p = (Math.floor(p / BLOCK) + 1) * BLOCK; // rest of the block is padding
        continue;
      }
      if (len < 34 || p + len > b.length)
        throw fail(DiskErrorCode.BAD_ENTRY, at * BLOCK + p, "directory record length");
      const idLen = b[p + 32]!;
      if (33 + idLen > len) throw fail(DiskErrorCode.BAD_ENTRY, at * BLOCK + p + 32, "name longer than its record");
      const id = b.subarray(p + 33, p + 33 + idLen);
      const rec: Rec = {
        name: "",
        extent: dv.getUint32(p + 2, true),
        size: dv.getUint32(p + 10, true),
        dir: (b[p + 25]! & 2) !== 0,
      };
      if (!(idLen === 1 && (id[0] === 0 || id[0] === 1))) {
        if (this.names === "joliet") rec.name = new TextDecoder("utf-16be").decode(id);
        else rec.name = new TextDecoder("latin1").decode(id);
        if (this.names === "rockridge") {
          // NM entries in the system use area (SUSP): the POSIX name.
          let q = p + 33 + idLen + (idLen % 2 === 0 ? 1 : 0);
          let nm = "";
          while (q + 4 <= p + len) {
            const sig = String.fromCharCode(b[q]!, b[q + 1]!);
            const l = b[q + 2]!;
            if (l < 4 || q + l > p + len) break;
            if (sig === "NM") nm += new TextDecoder().decode(b.subarray(q + 5, q + l));
            q += l;
          }
          if (nm) rec.name = nm;
          else rec.name = rec.name.replace(/;\d+$/, "").replace(/\.$/, "");
        } else rec.name = rec.name.replace(/;\d+$/, "").replace(/\.$/, "");
        out.push(rec);
        if (out.length > MAX_ENTRIES) throw fail(DiskErrorCode.TOO_LARGE, at * BLOCK, "too many directory entries");
      }
      p += len;
    }
    return out;
  }

  private async find(path: string): Promise<Rec> {
    const parts = path.split("/").filter((p) => p !== "");
    if (parts.length > MAX_DEPTH) throw fail(DiskErrorCode.TOO_LARGE, undefined, "path too deep");
    let cur: Rec = { name: "", extent: this.rootExtent, size: this.rootSize, dir: true };
    for (const p of parts) {
      if (!cur.dir) throw fail(DiskErrorCode.NOT_FOUND, undefined, "not a directory", { path });
      const next = (await this.readDir(cur.extent, cur.size)).find(
        (r) => r.name === p || r.name.toUpperCase() === p.toUpperCase(),
      );
      if (!next) throw fail(DiskErrorCode.NOT_FOUND, undefined, "no such file", { path });
      cur = next;
    }
    return cur;
  }

  async list(path = "/"): Promise<IsoEntry[]> {
    const d = await this.find(path);
    if (!d.dir) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "not a directory", { path });
    return (await this.readDir(d.extent, d.size)).map((r) => ({
      name: r.name,
      size: r.size,
      directory: r.dir,
      extent: r.extent,
    }));
  }

  async readFile(path: string): Promise<Uint8Array> {
    const f = await this.find(path);
    if (f.dir) throw fail(DiskErrorCode.INVALID_REQUEST, undefined, "is a directory", { path });
    if (f.size === 0) return new Uint8Array(0);
    checkExtent(this.disk, f.extent, f.size, undefined);
    return this.disk.read(f.extent * BLOCK, f.size);
  }
}

function checkExtent(disk: BlockBackend, extent: number, size: number, where: number | undefined): number {
  if (extent * BLOCK + size > disk.size())
    throw fail(DiskErrorCode.OUT_OF_BOUNDS, where ?? extent * BLOCK, "extent beyond end of image", { extent, size });
  return extent;
}
