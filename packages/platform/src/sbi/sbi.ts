// The SBI (RISC-V Supervisor Binary Interface v2.0) implemented in TypeScript
// as the hypervisor's answer to an S-mode `ecall`, as KVM does for RISC-V
// guests: the paravirtual hypercall interface of the guest. Calling
// convention (SBI 2.0 §3): a7 = extension ID, a6 = function ID, a0..a5 =
// arguments; the result is a0 = error, a1 = value (legacy calls: a0 only).
import { readX, writeX } from "@ringzero/cpu-core";

/** Extension IDs (SBI 2.0 §4–§12, §5 legacy). */
export const SbiExtension = {
  LEGACY_SET_TIMER: 0x00,
  LEGACY_CONSOLE_PUTCHAR: 0x01,
  LEGACY_CONSOLE_GETCHAR: 0x02,
  LEGACY_CLEAR_IPI: 0x03,
  LEGACY_SEND_IPI: 0x04,
  LEGACY_REMOTE_FENCE_I: 0x05,
  LEGACY_REMOTE_SFENCE_VMA: 0x06,
  LEGACY_REMOTE_SFENCE_VMA_ASID: 0x07,
  LEGACY_SHUTDOWN: 0x08,
  BASE: 0x10,
  TIME: 0x54494d45,
  IPI: 0x735049,
  RFENCE: 0x52464e43,
  HSM: 0x48534d,
  SRST: 0x53525354,
  DBCN: 0x4442434e,
} as const;

/** Standard SBI error codes (SBI 2.0 §3, Table 1). */
export const SbiError = {
  SUCCESS: 0,
  FAILED: -1,
  NOT_SUPPORTED: -2,
  INVALID_PARAM: -3,
  DENIED: -4,
  INVALID_ADDRESS: -5,
  ALREADY_AVAILABLE: -6,
  ALREADY_STARTED: -7,
  ALREADY_STOPPED: -8,
} as const;

/** SBI implementation ID reported by BASE get_impl_id: an unassigned value, "RZ". */
export const SBI_IMPL_ID = 0x525a;
const SPEC_VERSION = 2 << 24; // 2.0
const IMPL_VERSION = 1;

/** HSM hart states (SBI 2.0 §9). */
const HSM_STARTED = 0;
const HSM_STOPPED = 1;

/** SRST reset types (SBI 2.0 §10.1). */
export type ResetType = "shutdown" | "cold-reboot" | "warm-reboot";

/** What the hypervisor provides to the SBI implementation. */
export interface SbiHost {
  /** Number of harts of the guest (hart IDs 0..n-1). */
  readonly hartCount: number;
  /** Program the S-mode timer of a hart (absolute time in timebase ticks) and clear its pending STIP. */
  setTimer(hart: number, time: bigint): void;
  /** Bytes the guest writes to the SBI console. */
  consoleWrite(bytes: Uint8Array): void;
  /** Up to `max` bytes of console input, or an empty array (never blocks). */
  consoleRead(max: number): Uint8Array;
  /** Raise the supervisor software interrupt (SSIP) on a hart. */
  sendIpi(hart: number): void;
  /** Clear SSIP on the calling hart (legacy clear_ipi). */
  clearIpi(hart: number): void;
  /** Flush a hart's translations (remote sfence.vma) or instruction cache (remote fence.i). */
  remoteFence(hart: number, kind: "fence.i" | "sfence.vma"): void;
  /** System reset or shutdown (SRST / legacy shutdown). */
  reset(type: ResetType, reason: number): void;
  /** Read guest-physical memory for DBCN; undefined when [pa, pa+len) is not RAM. */
  readGuest(pa: bigint, len: number): Uint8Array | undefined;
  /** Write guest-physical memory for DBCN; false when not RAM. */
  writeGuest(pa: bigint, data: Uint8Array): boolean;
}

/** Per-call counters, for statistics. */
export interface SbiStats {
  calls: number;
  byExtension: Record<string, number>;
  unsupported: number;
}

const EXT_NAMES = new Map<number, string>(Object.entries(SbiExtension).map(([k, v]) => [v, k]));
const MASK64 = (1n << 64n) - 1n;

/** A dispatcher for the S-mode ecalls of one VM's harts. */
export class SbiServer {
  readonly stats: SbiStats = { calls: 0, byExtension: {}, unsupported: 0 };
  private readonly hartState: number[];

  constructor(private readonly host: SbiHost) {
    this.hartState = Array.from({ length: host.hartCount }, (_, i) => (i === 0 ? HSM_STARTED : HSM_STOPPED));
  }

  /**
   * Handle the ecall whose arguments are in `x` (the hart's register file,
   * cpu-core layout) for hart `hartId`; writes a0/a1 back.
   */
  handle(hartId: number, x: Int32Array): void {
    const eid = Number(readX(x, 17) & 0xffffffffn); // a7
    const fid = Number(readX(x, 16) & 0xffffffffn); // a6
    const a = [readX(x, 10), readX(x, 11), readX(x, 12), readX(x, 13), readX(x, 14), readX(x, 15)];
    this.stats.calls++;
    const name = EXT_NAMES.get(eid) ?? `0x${eid.toString(16)}`;
    this.stats.byExtension[name] = (this.stats.byExtension[name] ?? 0) + 1;
    if (eid <= SbiExtension.LEGACY_SHUTDOWN) {
      const v = this.legacy(hartId, eid, a);
      writeX(x, 10, BigInt(v));
      return;
    }
    const [err, value] = this.call(hartId, eid, fid, a);
    if (err === SbiError.NOT_SUPPORTED) this.stats.unsupported++;
    writeX(x, 10, BigInt(err));
    writeX(x, 11, value);
  }

  private legacy(hartId: number, eid: number, a: bigint[]): number {
    switch (eid) {
      case SbiExtension.LEGACY_SET_TIMER:
        this.host.setTimer(hartId, a[0]);
        return 0;
      case SbiExtension.LEGACY_CONSOLE_PUTCHAR:
        this.host.consoleWrite(Uint8Array.of(Number(a[0] & 0xffn)));
        return 0;
      case SbiExtension.LEGACY_CONSOLE_GETCHAR: {
        const b = this.host.consoleRead(1);
        return b.length ? b[0] : -1;
      }
      case SbiExtension.LEGACY_CLEAR_IPI:
        this.host.clearIpi(hartId);
        return 0;
      case SbiExtension.LEGACY_SEND_IPI:
      case SbiExtension.LEGACY_REMOTE_FENCE_I:
      case SbiExtension.LEGACY_REMOTE_SFENCE_VMA:
      case SbiExtension.LEGACY_REMOTE_SFENCE_VMA_ASID: {
        // SBI 0.1 passes the hart mask by *virtual* address; this host applies legacy IPIs and
        // fences to every hart (a superset, harmless for fences; Linux uses the IPI/RFENCE extensions).
        for (let h = 0; h < this.host.hartCount; h++) {
          if (eid === SbiExtension.LEGACY_SEND_IPI) this.host.sendIpi(h);
          else this.host.remoteFence(h, eid === SbiExtension.LEGACY_REMOTE_FENCE_I ? "fence.i" : "sfence.vma");
        }
        return 0;
      }
      default: // LEGACY_SHUTDOWN
        this.host.reset("shutdown", 0);
        return 0;
    }
  }

  private call(hartId: number, eid: number, fid: number, a: bigint[]): [number, bigint] {
    const ok = (v: bigint | number = 0n): [number, bigint] => [SbiError.SUCCESS, BigInt.asUintN(64, BigInt(v))];
    const fail = (e: number): [number, bigint] => [e, 0n];
    switch (eid) {
      case SbiExtension.BASE:
        switch (fid) {
          case 0:
            return ok(SPEC_VERSION);
          case 1:
            return ok(SBI_IMPL_ID);
          case 2:
            return ok(IMPL_VERSION);
          case 3:
            return ok(this.probe(Number(a[0] & 0xffffffffn)) ? 1 : 0);
          case 4: // mvendorid, marchid, mimpid of the hart: ringzero reports 0
          case 5:
          case 6:
            return ok(0);
          default:
            return fail(SbiError.NOT_SUPPORTED);
        }
      case SbiExtension.TIME:
        if (fid !== 0) return fail(SbiError.NOT_SUPPORTED);
        this.host.setTimer(hartId, a[0]);
        return ok();
      case SbiExtension.IPI: {
        if (fid !== 0) return fail(SbiError.NOT_SUPPORTED);
        const harts = this.harts(a[0], a[1]);
        if (harts === undefined) return fail(SbiError.INVALID_PARAM);
        for (const h of harts) this.host.sendIpi(h);
        return ok();
      }
      case SbiExtension.RFENCE: {
        // fids 0..2: fence.i, sfence.vma, sfence.vma.asid; 3..6 are hypervisor fences (no H extension)
        if (fid > 2) return fail(SbiError.NOT_SUPPORTED);
        const harts = this.harts(a[0], a[1]);
        if (harts === undefined) return fail(SbiError.INVALID_PARAM);
        for (const h of harts) this.host.remoteFence(h, fid === 0 ? "fence.i" : "sfence.vma");
        return ok();
      }
      case SbiExtension.HSM:
        return this.hsm(hartId, fid, a);
      case SbiExtension.SRST: {
        if (fid !== 0) return fail(SbiError.NOT_SUPPORTED);
        const type = Number(a[0] & 0xffffffffn);
        const reason = Number(a[1] & 0xffffffffn);
        if (type > 2 || reason > 1) return fail(SbiError.INVALID_PARAM); // §10.1: vendor/reserved values
        this.host.reset(type === 0 ? "shutdown" : type === 1 ? "cold-reboot" : "warm-reboot", reason);
        return ok();
      }
      case SbiExtension.DBCN:
        return this.dbcn(fid, a);
      default:
        return fail(SbiError.NOT_SUPPORTED);
    }
  }

  private probe(eid: number): boolean {
    return EXT_NAMES.has(eid); // every listed extension, the legacy ones included, is implemented
  }

  private hsm(hartId: number, fid: number, a: bigint[]): [number, bigint] {
    const n = this.host.hartCount;
    switch (fid) {
      case 0: {
        // hart_start(hartid, start_addr, opaque): secondary harts are not started by this host yet
        const target = a[0];
        if (target >= BigInt(n)) return [SbiError.INVALID_PARAM, 0n];
        if (this.hartState[Number(target)] === HSM_STARTED) return [SbiError.ALREADY_AVAILABLE, 0n];
        return [SbiError.NOT_SUPPORTED, 0n];
      }
      case 1: // hart_stop: the only running hart may not stop
        return [SbiError.DENIED, 0n];
      case 2: {
        const target = a[0];
        if (target >= BigInt(n)) return [SbiError.INVALID_PARAM, 0n];
        return [SbiError.SUCCESS, BigInt(this.hartState[Number(target)])];
      }
      case 3: {
        // hart_suspend: default retentive suspend (type 0) behaves as WFI and returns success (§9.4)
        const type = a[0] & 0xffffffffn;
        if (type === 0n) return [SbiError.SUCCESS, 0n];
        if (type === 0x80000000n) return [SbiError.NOT_SUPPORTED, 0n];
        return [SbiError.INVALID_PARAM, 0n];
      }
      default:
        void hartId;
        return [SbiError.NOT_SUPPORTED, 0n];
    }
  }

  private dbcn(fid: number, a: bigint[]): [number, bigint] {
    // a1/a2 are the low/high halves of a physical address (SBI 2.0 §12)
    const pa = (a[1] & 0xffffffffffffffffn) | ((a[2] & MASK64) << 64n);
    switch (fid) {
      case 0: {
        // console_write(num_bytes, base_lo, base_hi)
        const len = Number(a[0] > 1n << 20n ? 1n << 20n : a[0]);
        const data = this.host.readGuest(pa, len);
        if (!data) return [SbiError.INVALID_PARAM, 0n];
        this.host.consoleWrite(data);
        return [SbiError.SUCCESS, BigInt(len)];
      }
      case 1: {
        // console_read(num_bytes, base_lo, base_hi)
        const max = Number(a[0] > 1n << 20n ? 1n << 20n : a[0]);
        if (this.host.readGuest(pa, max) === undefined) return [SbiError.INVALID_PARAM, 0n];
        const got = this.host.consoleRead(max);
        if (got.length && !this.host.writeGuest(pa, got)) return [SbiError.INVALID_PARAM, 0n];
        return [SbiError.SUCCESS, BigInt(got.length)];
      }
      case 2:
        this.host.consoleWrite(Uint8Array.of(Number(a[0] & 0xffn)));
        return [SbiError.SUCCESS, 0n];
      default:
        return [SbiError.NOT_SUPPORTED, 0n];
    }
  }

  /** Hart IDs selected by (hart_mask, hart_mask_base), SBI 2.0 §3; base = -1 means all harts. */
  private harts(mask: bigint, base: bigint): number[] | undefined {
    const n = this.host.hartCount;
    if (base === MASK64) return Array.from({ length: n }, (_, i) => i);
    const out: number[] = [];
    for (let i = 0n; i < 64n; i++) {
      if (!((mask >> i) & 1n)) continue;
      const h = base + i;
      if (h >= BigInt(n)) return undefined;
      out.push(Number(h));
    }
    return out;
  }
}
