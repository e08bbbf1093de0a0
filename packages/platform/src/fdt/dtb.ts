// A flattened device tree (DTB) writer: Devicetree Specification v0.4 ch. 5
// (FDT version 17, last compatible version 16). A tree of FdtNode values is
// serialized into the header, the memory reservation block, the structure
// block and a strings block holding each property name once.
import { PlatformError, PlatformErrorCode } from "../devices/errors.js";

export const FDT_MAGIC = 0xd00d_feed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;
const FDT_BEGIN_NODE = 0x1;
const FDT_END_NODE = 0x2;
const FDT_PROP = 0x3;
const FDT_END = 0x9;
const HEADER_SIZE = 40; // spec §5.2: ten 32-bit big-endian fields

// Spec §2.2.1 (node names: 1..31 characters from this set, then @unit-address)
// and §2.2.4 (property names).
const NODE_NAME = /^[A-Za-z0-9,._+-]{1,31}(@[A-Za-z0-9,._+-]+)?$/;
const PROP_NAME = /^[A-Za-z0-9,._+?#-]{1,31}$/;

/** One node: properties in insertion order, then children. */
export class FdtNode {
  readonly props: [name: string, value: Uint8Array][] = [];
  readonly children: FdtNode[] = [];

  /** `name` is "" for the root; children are made with `child()`. */
  constructor(readonly name = "") {
    if (name !== "" && !NODE_NAME.test(name)) {
      throw new PlatformError(PlatformErrorCode.FDT_INVALID, { node: name }, "bad node name");
    }
  }

  /** Adds and returns a child node; names must be unique among siblings. */
  child(name: string): FdtNode {
    if (name === "") throw new PlatformError(PlatformErrorCode.FDT_INVALID, { parent: this.name }, "empty node name");
    if (this.children.some((c) => c.name === name)) {
      throw new PlatformError(PlatformErrorCode.FDT_INVALID, { parent: this.name, node: name }, "duplicate node");
    }
    const c = new FdtNode(name);
    this.children.push(c);
    return c;
  }

  /** Sets a raw property value. */
  bytes(name: string, value: Uint8Array): this {
    if (!PROP_NAME.test(name))
      throw new PlatformError(PlatformErrorCode.FDT_INVALID, { node: this.name, prop: name }, "bad property name");
    if (this.props.some(([n]) => n === name)) {
      throw new PlatformError(PlatformErrorCode.FDT_INVALID, { node: this.name, prop: name }, "duplicate property");
    }
    this.props.push([name, value]);
    return this;
  }

  /** An empty (boolean) property. */
  empty(name: string): this {
    return this.bytes(name, new Uint8Array(0));
  }

  /** A NUL-terminated string (spec §2.2.4.1 <string>). */
  string(name: string, value: string): this {
    return this.strings(name, [value]);
  }

  /** A <stringlist>: each string NUL-terminated. */
  strings(name: string, values: readonly string[]): this {
    const parts = values.map((v) => {
      if (v.includes("\0"))
        throw new PlatformError(PlatformErrorCode.FDT_INVALID, { node: this.name, prop: name }, "NUL in string");
      return new TextEncoder().encode(`${v}\0`);
    });
    return this.bytes(name, concat(parts));
  }

  /** A <prop-encoded-array> of 32-bit big-endian cells. */
  cells(name: string, ...values: readonly number[]): this {
    const out = new Uint8Array(values.length * 4);
    const dv = new DataView(out.buffer);
    values.forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
        throw new PlatformError(
          PlatformErrorCode.FDT_INVALID,
          { node: this.name, prop: name, value: v },
          "cell out of range",
        );
      }
      dv.setUint32(i * 4, v);
    });
    return this.bytes(name, out);
  }

  /** 64-bit values, each as two cells (high, low). */
  u64(name: string, ...values: readonly (number | bigint)[]): this {
    const cells: number[] = [];
    for (const v of values) {
      const b = BigInt(v);
      if (b < 0n || b > 0xffff_ffff_ffff_ffffn) {
        throw new PlatformError(
          PlatformErrorCode.FDT_INVALID,
          { node: this.name, prop: name, value: b },
          "u64 out of range",
        );
      }
      cells.push(Number(b >> 32n), Number(b & 0xffff_ffffn));
    }
    return this.cells(name, ...cells);
  }
}

/** A memory reservation block entry (spec §5.3). */
export interface FdtReservation {
  readonly address: number | bigint;
  readonly size: number | bigint;
}

export interface DtbOptions {
  readonly reservations?: readonly FdtReservation[];
  /** boot_cpuid_phys (spec §5.2). */
  readonly bootCpuid?: number;
}

/** Serializes a tree into a DTB blob. */
export function writeDtb(root: FdtNode, options: DtbOptions = {}): Uint8Array {
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const nameOffset = (name: string): number => {
    let off = stringOffsets.get(name);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(name, off);
      for (const b of new TextEncoder().encode(name)) strings.push(b);
      strings.push(0);
    }
    return off;
  };

  const struct = new Writer();
  const emit = (node: FdtNode) => {
    struct.u32(FDT_BEGIN_NODE);
    struct.bytes(new TextEncoder().encode(`${node.name}\0`));
    struct.align4();
    for (const [name, value] of node.props) {
      struct.u32(FDT_PROP);
      struct.u32(value.length);
      struct.u32(nameOffset(name));
      struct.bytes(value);
      struct.align4();
    }
    for (const c of node.children) emit(c);
    struct.u32(FDT_END_NODE);
  };
  emit(root);
  struct.u32(FDT_END);

  const rsv = new Writer();
  for (const r of options.reservations ?? []) {
    const a = BigInt(r.address);
    const n = BigInt(r.size);
    if (a < 0n || n < 0n || a + n > 1n << 64n) {
      throw new PlatformError(PlatformErrorCode.FDT_INVALID, { address: a, size: n }, "bad memory reservation");
    }
    rsv.u64(BigInt(r.address));
    rsv.u64(BigInt(r.size));
  }
  rsv.u64(0n);
  rsv.u64(0n);

  // Layout: header, reservation block (8-byte aligned, §5.3), structure block, strings block.
  const offRsv = HEADER_SIZE;
  const offStruct = offRsv + rsv.length;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  const header = [
    FDT_MAGIC,
    total,
    offStruct,
    offStrings,
    offRsv,
    FDT_VERSION,
    FDT_LAST_COMP_VERSION,
    options.bootCpuid ?? 0,
    strings.length,
    struct.length,
  ];
  header.forEach((v, i) => {
    dv.setUint32(i * 4, v);
  });
  out.set(rsv.result(), offRsv);
  out.set(struct.result(), offStruct);
  out.set(strings, offStrings);
  return out;
}

class Writer {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.reserve(4);
    this.dv.setUint32(this.length, v >>> 0);
    this.length += 4;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.dv.setBigUint64(this.length, BigInt.asUintN(64, v));
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  align4(): void {
    const pad = (4 - (this.length & 3)) & 3;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
