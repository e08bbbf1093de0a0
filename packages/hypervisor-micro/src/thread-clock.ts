// The CPU time a VP thread has used, for the credit scheduler (sched.ts).
// Reads /proc through node:fs, so it is not part of the browser-safe entry
// (cpu-clock.ts has the portable fallback a browser's VP uses).
import { closeSync, openSync, readSync } from "node:fs";
import type { CpuClock } from "./cpu-clock.js";

/**
 * CPU time of the calling thread in µs: /proc/thread-self/schedstat (Linux:
 * nanoseconds on CPU, then nanoseconds runnable but waiting for a CPU, the
 * host's steal; one pread per sample) or, elsewhere, wall time minus the
 * time the caller reports as blocked (and no steal figure).
 */
export class ThreadCpuClock implements CpuClock {
  private fd: number | undefined;
  private readonly buf = Buffer.alloc(96);
  private readonly t0 = performance.now();
  private blockedMs = 0;

  constructor() {
    try {
      this.fd = openSync("/proc/thread-self/schedstat", "r");
      if (!Number.isFinite(this.read())) this.close();
    } catch {
      this.fd = undefined;
    }
  }

  /** True when the figure is the thread's real CPU time. */
  get exact(): boolean {
    return this.fd !== undefined;
  }

  /** Blocked time (WFI, park) for the fallback clock. */
  blocked(ms: number): void {
    this.blockedMs += ms;
  }

  /** Microseconds this thread spent runnable but off the CPU (host contention), as of the last micros(). */
  stealMicros = 0;

  micros(): number {
    if (this.fd !== undefined) {
      const v = this.read();
      if (Number.isFinite(v)) return v;
      this.close();
    }
    return Math.max(0, (performance.now() - this.t0 - this.blockedMs) * 1000);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** "run_ns wait_ns slices\n": returns run µs, keeps wait µs in stealMicros. */
  private read(): number {
    const n = readSync(this.fd as number, this.buf, 0, this.buf.length, 0);
    const fields = [0, 0];
    let f = 0;
    let digits = 0;
    for (let i = 0; i < n && f < 2; i++) {
      const c = this.buf[i] - 48;
      if (c >= 0 && c <= 9) {
        fields[f] = fields[f] * 10 + c;
        digits++;
      } else if (digits > 0) {
        f++;
        digits = 0;
      } else return Number.NaN;
    }
    if (f < 2) return Number.NaN;
    this.stealMicros = fields[1] / 1000;
    return fields[0] / 1000;
  }
}
