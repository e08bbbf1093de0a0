// The CPU time a VP thread has used, for the credit scheduler (sched.ts),
// portably: wall time minus the time the VP reports as blocked (WFI, park,
// intercept waits). A browser has no per-thread CPU clock, so this cannot see
// host contention (steal stays 0); Node's VP threads read /proc instead
// (ThreadCpuClock in thread-clock.ts, at the "./node" entry).

/** What the VP's scheduler check reads. */
export interface CpuClock {
  /** True when micros() is the thread's real CPU time. */
  readonly exact: boolean;
  /** Blocked time (WFI, park) for clocks that derive CPU time from wall time. */
  blocked(ms: number): void;
  /** CPU time of this thread in µs. */
  micros(): number;
  /** µs this thread was runnable but off the CPU (host contention), as of the last micros(). */
  readonly stealMicros: number;
  close(): void;
}

/** Wall time minus blocked time; no steal figure. */
export class WallCpuClock implements CpuClock {
  readonly exact = false;
  readonly stealMicros = 0;
  private readonly t0 = performance.now();
  private blockedMs = 0;

  blocked(ms: number): void {
    this.blockedMs += ms;
  }

  micros(): number {
    return Math.max(0, (performance.now() - this.t0 - this.blockedMs) * 1000);
  }

  close(): void {}
}
