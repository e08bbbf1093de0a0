// Intercept messages: what a child VP sends its parent for an exit the
// microkernel does not own (TLFS: intercepts arrive as SynIC messages on SINT
// 0 with hypervisor-reserved types, high bit set; OpenVMM hvdef values).

export const INTERCEPT_SINT = 0;

export const InterceptType = {
  /** HvMessageTypeGpaIntercept: an MMIO access to an installed range. */
  MMIO: 0x8000_0001,
  /** HvMessageTypeHypercallIntercept: an SBI call the microkernel routes (console). */
  SBI: 0x8000_0050,
  /** The guest asked for a system reset or shutdown (SBI SRST). */
  RESET: 0x8000_0051,
  /** A VP stopped (guest halt, WFI with interrupts off, its instruction limit, fatal error). */
  VP_HALTED: 0x8000_0052,
} as const;

export interface MmioIntercept {
  readonly kind: "mmio";
  readonly vp: number;
  readonly seq: number;
  readonly write: boolean;
  /** Posted writes expect no completion (the VP went on). */
  readonly posted: boolean;
  readonly size: 1 | 2 | 4 | 8;
  readonly address: number;
  readonly value: bigint;
}

export interface SbiIntercept {
  readonly kind: "sbi";
  readonly vp: number;
  readonly seq: number;
  readonly posted: boolean;
  /** "write": console bytes; "read": up to `max` bytes of console input wanted. */
  readonly op: "write" | "read";
  readonly bytes: Uint8Array;
  readonly max: number;
}

export interface ResetIntercept {
  readonly kind: "reset";
  readonly vp: number;
  readonly type: "shutdown" | "cold-reboot" | "warm-reboot";
  readonly reason: number;
}

export interface HaltIntercept {
  readonly kind: "halt";
  readonly vp: number;
  readonly code: number;
  readonly reason: (typeof HALT_REASONS)[number];
}

export type Intercept = MmioIntercept | SbiIntercept | ResetIntercept | HaltIntercept;

const RESET_TYPES = ["shutdown", "cold-reboot", "warm-reboot"] as const;
// Appended only: the index is the wire value.
const HALT_REASONS = ["htif", "wfi-forever", "error", "instruction-limit"] as const;

export function encodeIntercept(i: Intercept): { type: number; payload: Uint8Array } {
  const b = new Uint8Array(i.kind === "sbi" ? 16 + i.bytes.length : 24);
  const v = new DataView(b.buffer);
  v.setUint32(0, i.vp, true);
  switch (i.kind) {
    case "mmio":
      v.setUint32(4, i.seq, true);
      v.setUint8(8, i.write ? 1 : 0);
      v.setUint8(9, i.size);
      v.setUint8(10, i.posted ? 1 : 0);
      v.setUint32(12, i.address, true);
      v.setBigUint64(16, BigInt.asUintN(64, i.value), true);
      return { type: InterceptType.MMIO, payload: b };
    case "sbi":
      v.setUint32(4, i.seq, true);
      v.setUint8(8, i.op === "write" ? 1 : 0);
      v.setUint8(9, i.posted ? 1 : 0);
      v.setUint16(10, i.max, true);
      v.setUint32(12, i.bytes.length, true);
      b.set(i.bytes, 16);
      return { type: InterceptType.SBI, payload: b };
    case "reset":
      v.setUint32(4, RESET_TYPES.indexOf(i.type), true);
      v.setUint32(8, i.reason, true);
      return { type: InterceptType.RESET, payload: b };
    case "halt":
      v.setUint32(4, HALT_REASONS.indexOf(i.reason), true);
      v.setInt32(8, i.code, true);
      return { type: InterceptType.VP_HALTED, payload: b };
  }
}

/** Decodes an intercept message; undefined for an unknown type or a malformed payload. */
export function decodeIntercept(type: number, p: Uint8Array): Intercept | undefined {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  if (p.length < 16) return undefined;
  const vp = v.getUint32(0, true);
  switch (type) {
    case InterceptType.MMIO: {
      if (p.length < 24) return undefined;
      const size = v.getUint8(9);
      if (size !== 1 && size !== 2 && size !== 4 && size !== 8) return undefined;
      return {
        kind: "mmio",
        vp,
        seq: v.getUint32(4, true),
        write: v.getUint8(8) === 1,
        size,
        posted: v.getUint8(10) === 1,
        address: v.getUint32(12, true),
        value: v.getBigUint64(16, true),
      };
    }
    case InterceptType.SBI: {
      const n = v.getUint32(12, true);
      if (16 + n > p.length) return undefined;
      return {
        kind: "sbi",
        vp,
        seq: v.getUint32(4, true),
        op: v.getUint8(8) === 1 ? "write" : "read",
        posted: v.getUint8(9) === 1,
        max: v.getUint16(10, true),
        bytes: p.slice(16, 16 + n),
      };
    }
    case InterceptType.RESET: {
      const t = RESET_TYPES[v.getUint32(4, true)];
      return t ? { kind: "reset", vp, type: t, reason: v.getUint32(8, true) } : undefined;
    }
    case InterceptType.VP_HALTED: {
      const r = HALT_REASONS[v.getUint32(4, true)];
      return r ? { kind: "halt", vp, reason: r, code: v.getInt32(8, true) } : undefined;
    }
  }
  return undefined;
}
