// qcow2 internal snapshot table (qcow2.txt "Snapshots"): read-only listing.
import { DiskError, DiskErrorCode } from "../../errors.js";

export interface Qcow2Snapshot {
  readonly id: string;
  readonly name: string;
  readonly l1TableOffset: number;
  readonly l1Size: number;
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmClockNsec: number;
  readonly vmStateSize: number;
  /** Virtual disk size when the snapshot was taken (v3 extra data), if recorded. */
  readonly diskSize: number | null;
  /** Instruction count (extra data), -1 when not recorded. */
  readonly icount: number;
}

/** QEMU caps the snapshot table at 64 MiB and an entry's extra data at 1 KiB. */
export const MAX_SNAPSHOT_TABLE = 64 * 1024 * 1024;
const MAX_EXTRA = 1024;

/**
 * Parses `count` entries from `buf` (the table, read from `tableOffset`).
 * Returns the entries and the number of bytes the table occupies.
 */
export function parseSnapshots(
  buf: Uint8Array,
  tableOffset: number,
  count: number,
): { snapshots: Qcow2Snapshot[]; bytes: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dec = new TextDecoder();
  const out: Qcow2Snapshot[] = [];
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length)
      throw new DiskError(
        DiskErrorCode.TRUNCATED,
        { format: "qcow2", offset: tableOffset + pos },
        "snapshot table truncated",
      );
  };
  const u64 = (off: number) => {
    const v = dv.getBigUint64(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new DiskError(
        DiskErrorCode.TOO_LARGE,
        { format: "qcow2", offset: tableOffset + off },
        "snapshot field exceeds 2^53",
      );
    return Number(v);
  };
  for (let i = 0; i < count; i++) {
    need(40);
    const l1TableOffset = u64(pos);
    const l1Size = dv.getUint32(pos + 8);
    const idSize = dv.getUint16(pos + 12);
    const nameSize = dv.getUint16(pos + 14);
    const dateSec = dv.getUint32(pos + 16);
    const dateNsec = dv.getUint32(pos + 20);
    const vmClockNsec = u64(pos + 24);
    let vmStateSize = dv.getUint32(pos + 32);
    const extra = dv.getUint32(pos + 36);
    if (extra > MAX_EXTRA)
      throw new DiskError(
        DiskErrorCode.INVALID_HEADER,
        { format: "qcow2", offset: tableOffset + pos + 36 },
        "snapshot extra data too large",
      );
    need(40 + extra + idSize + nameSize);
    let diskSize: number | null = null;
    let icount = -1;
    const e = pos + 40;
    if (extra >= 8) vmStateSize = Math.max(vmStateSize, u64(e));
    if (extra >= 16) diskSize = u64(e + 8);
    if (extra >= 24) icount = Number(dv.getBigInt64(e + 16));
    const idStart = e + extra;
    const id = dec.decode(buf.subarray(idStart, idStart + idSize));
    const name = dec.decode(buf.subarray(idStart + idSize, idStart + idSize + nameSize));
    out.push({ id, name, l1TableOffset, l1Size, dateSec, dateNsec, vmClockNsec, vmStateSize, diskSize, icount });
    pos = Math.ceil((idStart + idSize + nameSize) / 8) * 8;
  }
  return { snapshots: out, bytes: pos };
}

/** Serializes snapshot table entries (with 24 bytes of extra data: VM state size, disk size, icount). */
export function serializeSnapshots(list: readonly Qcow2Snapshot[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const sn of list) {
    const id = enc.encode(sn.id);
    const name = enc.encode(sn.name);
    const len = Math.ceil((40 + 24 + id.length + name.length) / 8) * 8;
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, BigInt(sn.l1TableOffset));
    dv.setUint32(8, sn.l1Size);
    dv.setUint16(12, id.length);
    dv.setUint16(14, name.length);
    dv.setUint32(16, sn.dateSec);
    dv.setUint32(20, sn.dateNsec);
    dv.setBigUint64(24, BigInt(sn.vmClockNsec));
    dv.setUint32(32, Math.min(sn.vmStateSize, 0xffffffff));
    dv.setUint32(36, 24);
    dv.setBigUint64(40, BigInt(sn.vmStateSize));
    dv.setBigUint64(48, BigInt(sn.diskSize ?? 0));
    dv.setBigInt64(56, BigInt(sn.icount));
    b.set(id, 64);
    b.set(name, 64 + id.length);
    parts.push(b);
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
