// One NAT'ed TCP connection: a full TCP endpoint toward the guest (RFC 9293)
// whose other side is a host net.Socket. Send side: MSS segmentation, window
// scaling (RFC 7323), RTO with backoff (RFC 6298), fast retransmit and a
// NewReno-style congestion window (RFC 5681), zero-window probes. Receive
// side: in-order delivery (out-of-order segments are dropped and re-ACKed so
// the guest retransmits), a window that shrinks with host socket backpressure.
import type { Socket } from "node:net";
import { ByteQueue } from "./byte-queue.js";
import { DropReason, type NetStats } from "./stats.js";
import type { Ipv4 } from "./wire/addr.js";
import {
  seqAdd,
  seqDiff,
  seqLe,
  seqLt,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
  type TcpSegmentSpec,
} from "./wire/tcp.js";

/** Bytes buffered by the flows of one guest, shared between them. */
export class BufferBudget {
  used = 0;
  constructor(readonly max: number) {}
  get remaining(): number {
    return Math.max(0, this.max - this.used);
  }
}

export interface TcpFlowTimeouts {
  readonly tcpConnectMs: number;
  readonly tcpTimeWaitMs: number;
  readonly tcpRtoMinMs: number;
  readonly tcpRtoMaxMs: number;
  readonly tcpMaxRetransmits: number;
}

export interface TcpFlowHost {
  /** Sends a segment to the guest (the host fills addresses from the flow). */
  output(flow: TcpFlow, seg: TcpSegmentSpec): void;
  /** The flow is finished; forget it. Called exactly once. */
  removed(flow: TcpFlow): void;
  readonly stats: NetStats;
  readonly timeouts: TcpFlowTimeouts;
  readonly flowBufferBytes: number;
  /** Largest segment payload the link carries (MTU - 40). */
  readonly linkMss: number;
}

type State = "CONNECTING" | "SYN_SENT" | "SYN_RCVD" | "ESTABLISHED" | "TIME_WAIT" | "CLOSED";

const OUR_WS = 7; // window-scale shift we offer: up to 8 MiB windows
const INITIAL_RTO_MS = 1000; // RFC 6298 §2.1
const MAX_OOO_SEGMENTS = 256;

export class TcpFlow {
  state: State;
  private socket: Socket | null = null;
  private readonly iss = (Math.random() * 0x100000000) >>> 0;
  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private rcvNxt = 0;
  private guestWs = 0;
  private ourWs = 0;
  private mss = 536; // RFC 9293 §3.7.1 default until the guest says otherwise
  private cwnd = 0;
  private ssthresh = 0x7fffffff;
  private dupAcks = 0;
  private readonly sendQ = new ByteQueue();
  private hostEof = false;
  private guestFin = false;
  private finAcked = false;
  private hostPaused = false;
  private unflushed = 0; // guest bytes written to the socket, not yet flushed
  private lastAdvertised = 0;
  private srtt = -1;
  private rttvar = 0;
  private rto = INITIAL_RTO_MS;
  private retries = 0;
  private rttSeq = -1;
  private rttStart = 0;
  private timer: NodeJS.Timeout | null = null;
  private ackTimer: NodeJS.Immediate | null = null;
  private probe = false;
  private readonly ooo: { seq: number; data: Uint8Array; fin: boolean }[] = [];
  private oooBytes = 0;
  private lastOooSeq = 0;
  /** Ranges above sndUna the guest reported holding (RFC 2018 SACK), merged and sorted. */
  private sacked: [number, number][] = [];
  private recoverNxt = 0;
  private sackOk = false;

  private constructor(
    private readonly host: TcpFlowHost,
    readonly key: string,
    readonly guestIp: Ipv4,
    readonly guestPort: number,
    readonly remoteIp: Ipv4,
    readonly remotePort: number,
    private readonly budget: BufferBudget,
    state: State,
  ) {
    this.state = state;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
  }

  /** The guest sent a SYN: connect the host socket, answer SYN-ACK once connected (as slirp does). */
  static fromGuestSyn(
    host: TcpFlowHost,
    key: string,
    guestIp: Ipv4,
    remoteIp: Ipv4,
    seg: TcpSegment,
    budget: BufferBudget,
    connect: () => Socket,
  ): TcpFlow {
    const f = new TcpFlow(host, key, guestIp, seg.srcPort, remoteIp, seg.dstPort, budget, "CONNECTING");
    f.rcvNxt = seqAdd(seg.seq, 1);
    f.takeSynOptions(seg);
    f.sndWnd = seg.window; // RFC 7323 §2.2: the window in a SYN is never scaled
    f.sndWl1 = seg.seq;
    const s = connect();
    f.attach(s);
    s.once("connect", () => {
      if (f.state !== "CONNECTING") return;
      f.state = "SYN_RCVD";
      f.sendSynAck();
    });
    f.armTimer(host.timeouts.tcpConnectMs);
    return f;
  }

  /** A host connection arrived on a forwarded port: open toward the guest with a SYN. */
  static toGuest(
    host: TcpFlowHost,
    key: string,
    guestIp: Ipv4,
    guestPort: number,
    remoteIp: Ipv4,
    remotePort: number,
    budget: BufferBudget,
    socket: Socket,
  ): TcpFlow {
    const f = new TcpFlow(host, key, guestIp, guestPort, remoteIp, remotePort, budget, "SYN_SENT");
    f.attach(socket);
    f.sendSyn();
    return f;
  }

  get bufferedBytes(): number {
    return this.sendQ.length + this.unflushed;
  }

  private takeSynOptions(seg: TcpSegment): void {
    this.mss = Math.max(64, Math.min(seg.mss ?? 536, this.host.linkMss));
    this.sackOk = seg.sackPermitted === true;
    if (seg.windowScale !== undefined) {
      this.guestWs = seg.windowScale;
      this.ourWs = OUR_WS;
    } else {
      this.guestWs = 0;
      this.ourWs = 0;
    }
    this.cwnd = 10 * this.mss; // RFC 6928 initial window
  }

  private attach(s: Socket): void {
    this.socket = s;
    s.pause();
    this.hostPaused = true;
    s.on("data", (d: Buffer) => this.onHostData(d));
    s.on("end", () => {
      this.hostEof = true;
      this.trySend();
    });
    s.on("drain", () => this.maybeWindowUpdate());
    s.on("error", () => this.abort(true));
    s.on("close", () => {
      if (this.state !== "CLOSED" && this.state !== "TIME_WAIT" && !(this.hostEof && this.guestFin)) this.abort(true);
    });
  }

  // ---- host side --------------------------------------------------------

  private onHostData(d: Buffer): void {
    if (this.state === "CLOSED") return;
    this.sendQ.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
    this.budget.used += d.length;
    this.host.stats.count("tcpHostToGuestBytes", d.length);
    this.updateHostPause();
    this.trySend();
  }

  private updateHostPause(): void {
    const s = this.socket;
    if (!s || this.state !== "ESTABLISHED") return;
    const full = this.sendQ.length >= this.host.flowBufferBytes || this.budget.remaining === 0;
    if (full && !this.hostPaused) {
      s.pause();
      this.hostPaused = true;
    } else if (!full && this.hostPaused) {
      this.hostPaused = false;
      s.resume();
    }
  }

  /** Our receive window: what the host socket and the guest's budget can still take. */
  private receiveWindow(): number {
    const w = Math.min(this.host.flowBufferBytes - this.unflushed, this.budget.remaining);
    return Math.max(0, Math.min(w, 65535 << this.ourWs));
  }

  private maybeWindowUpdate(): void {
    if (this.state !== "ESTABLISHED") return;
    if (this.lastAdvertised < 2 * this.mss && this.receiveWindow() >= 2 * this.mss) this.sendAck();
  }

  // ---- guest side -------------------------------------------------------

  /** Processes one segment from the guest (RFC 9293 §3.10.7). */
  input(seg: TcpSegment): void {
    switch (this.state) {
      case "CLOSED":
        return;
      case "CONNECTING":
        // A retransmitted SYN while the host connects: nothing to say yet. A RST abandons the attempt.
        if (seg.flags & TCP_RST) this.abort(false);
        return;
      case "SYN_SENT":
        this.inputSynSent(seg);
        return;
      case "TIME_WAIT":
        if (seg.flags & TCP_RST) {
          this.finish();
          return;
        }
        if (seg.flags & TCP_FIN) this.sendAck();
        return;
      default:
        this.inputSynchronized(seg);
        return;
    }
  }

  private inputSynSent(seg: TcpSegment): void {
    const ackOk = (seg.flags & TCP_ACK) !== 0 && seg.ack === seqAdd(this.iss, 1);
    if (seg.flags & TCP_RST) {
      if (ackOk) this.abort(false);
      return;
    }
    if (!(seg.flags & TCP_SYN) || !ackOk) {
      if (seg.flags & TCP_ACK && !ackOk) this.emit({ seq: seg.ack, ack: 0, flags: TCP_RST });
      return;
    }
    this.takeSynOptions(seg);
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.sndUna = seg.ack;
    this.sndNxt = seg.ack;
    this.sndMax = seg.ack;
    this.sndWnd = seg.window; // unscaled in SYN
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.establish();
    this.sendAck();
    this.trySend();
  }

  private establish(): void {
    this.state = "ESTABLISHED";
    this.retries = 0;
    this.rto = this.srtt < 0 ? INITIAL_RTO_MS : this.rto;
    this.clearTimer();
    this.host.stats.count("tcpEstablished");
    this.updateHostPause();
  }

  private inputSynchronized(seg: TcpSegment): void {
    const payloadLen = seg.payload.length;
    const segLen = payloadLen + (seg.flags & TCP_FIN ? 1 : 0) + (seg.flags & TCP_SYN ? 1 : 0);
    const wnd = this.lastAdvertised;
    const off = seqDiff(seg.seq, this.rcvNxt);
    // §3.10.7.4 first: sequence acceptability.
    let acceptable: boolean;
    if (segLen === 0) acceptable = wnd === 0 ? off === 0 : off >= 0 && off < Math.max(wnd, 1);
    else acceptable = wnd > 0 && ((off >= 0 && off < wnd) || (off < 0 && off + segLen > 0));
    if (seg.flags & TCP_RST) {
      // RFC 5961 §3.2: reset only on an exact match, challenge ACK if merely in window.
      if (off === 0) this.abort(false);
      else if (acceptable) this.sendAck();
      return;
    }
    if (this.state === "SYN_RCVD" && seg.flags & TCP_SYN && !(seg.flags & TCP_ACK) && off === -1) {
      this.sendSynAck(); // the guest did not see our SYN-ACK
      return;
    }
    if (!acceptable) {
      this.host.stats.drop(DropReason.TCP_OUT_OF_WINDOW);
      this.sendAck();
      return;
    }
    if (seg.flags & TCP_SYN) {
      this.sendAck(); // RFC 5961 §4.2 challenge ACK
      return;
    }
    if (!(seg.flags & TCP_ACK)) return;
    if (this.state === "SYN_RCVD") {
      if (seg.ack !== seqAdd(this.iss, 1)) {
        this.emit({ seq: seg.ack, ack: 0, flags: TCP_RST });
        return;
      }
      this.sndUna = seg.ack;
      this.sndNxt = seg.ack;
      this.sndMax = seg.ack;
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.sndWnd = seg.window << this.guestWs;
      this.establish();
    }
    this.processAck(seg, payloadLen);
    if (this.state === "CLOSED") return;

    if (off > 0) {
      // Ahead of a gap: keep it (bounded) and send a duplicate ACK so the guest fast-retransmits.
      this.stashOutOfOrder(seg);
      this.sendAck();
      return;
    }
    let data = seg.payload;
    if (off < 0) data = data.subarray(Math.min(-off, data.length));
    let advanced = false;
    let fin = false;
    if (!this.guestFin) {
      const room = this.receiveWindow();
      const take = Math.min(data.length, room);
      if (take > 0) {
        this.writeToHost(data.subarray(0, take));
        this.rcvNxt = seqAdd(this.rcvNxt, take);
        advanced = true;
      }
      fin = (seg.flags & TCP_FIN) !== 0 && take === data.length;
      if (!fin && this.ooo.length) {
        const before = this.rcvNxt;
        fin = this.drainOutOfOrder();
        if (this.rcvNxt !== before) advanced = true;
      }
    }
    if (fin) {
      this.guestFin = true;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.releaseOutOfOrder();
      this.socket?.end();
      this.sendAck();
      this.checkDone();
      return;
    }
    if (advanced && this.ooo.length === 0) this.scheduleAck();
    else if (advanced || payloadLen > 0 || seg.flags & TCP_FIN) this.sendAck();
  }

  /** Keeps a segment that arrived after a gap, within our window and the out-of-order limits. */
  private stashOutOfOrder(seg: TcpSegment): void {
    this.host.stats.count("tcpOutOfOrder");
    const off = seqDiff(seg.seq, this.rcvNxt);
    const len = seg.payload.length;
    const fin = (seg.flags & TCP_FIN) !== 0;
    if ((len === 0 && !fin) || off + len > this.lastAdvertised) {
      this.host.stats.drop(DropReason.TCP_OUT_OF_ORDER);
      return;
    }
    if (this.ooo.length >= MAX_OOO_SEGMENTS || this.oooBytes + len > this.host.flowBufferBytes) {
      this.host.stats.drop(DropReason.TCP_OUT_OF_ORDER);
      return;
    }
    let i = this.ooo.length;
    while (i > 0 && seqLt(seg.seq, this.ooo[i - 1]!.seq)) i--;
    const prev = this.ooo[i - 1];
    if (prev && prev.seq === seg.seq && prev.data.length >= len) return; // duplicate
    this.ooo.splice(i, 0, { seq: seg.seq, data: seg.payload.slice(), fin });
    this.lastOooSeq = seg.seq;
    this.oooBytes += len;
    this.budget.used += len;
  }

  /** Delivers stashed segments that the advanced rcvNxt made contiguous; returns true when a FIN became due. */
  private drainOutOfOrder(): boolean {
    while (this.ooo.length) {
      const e = this.ooo[0]!;
      const skip = seqDiff(this.rcvNxt, e.seq);
      if (skip < 0) return false; // still a gap
      this.ooo.shift();
      this.oooBytes -= e.data.length;
      this.budget.used -= e.data.length;
      if (skip < e.data.length) {
        const rest = e.data.subarray(skip);
        const take = Math.min(rest.length, this.receiveWindow());
        if (take > 0) {
          this.writeToHost(rest.subarray(0, take));
          this.rcvNxt = seqAdd(this.rcvNxt, take);
        }
        if (take < rest.length) {
          this.releaseOutOfOrder();
          return false;
        }
      }
      if (e.fin && seqAdd(e.seq, e.data.length) === this.rcvNxt) return true;
    }
    return false;
  }

  private releaseOutOfOrder(): void {
    this.budget.used -= this.oooBytes;
    this.oooBytes = 0;
    this.ooo.length = 0;
  }

  private writeToHost(data: Uint8Array): void {
    const s = this.socket;
    if (!s) return;
    const n = data.length;
    this.unflushed += n;
    this.budget.used += n;
    this.host.stats.count("tcpGuestToHostBytes", n);
    s.write(Buffer.from(data), () => {
      this.unflushed -= n;
      this.budget.used -= n;
      this.maybeWindowUpdate();
    });
  }

  private processAck(seg: TcpSegment, payloadLen: number): void {
    const ack = seg.ack;
    if (seqLt(this.sndMax, ack)) {
      this.sendAck(); // acks something never sent
      return;
    }
    let windowChanged = false;
    let windowGrew = false;
    // Window update (§3.10.7.4 fifth, SND.WL1/SND.WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const newWnd = seg.window << this.guestWs;
      windowChanged = newWnd !== this.sndWnd;
      if (newWnd > this.sndWnd) windowGrew = true;
      this.sndWnd = newWnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (windowGrew) this.probe = false;
    }
    if (this.sackOk && seg.sack) this.recordSack(seg.sack);
    const acked = seqDiff(ack, this.sndUna);
    if (acked > 0) {
      const dataAcked = Math.min(acked, this.sendQ.length);
      this.sendQ.drop(dataAcked);
      this.budget.used -= dataAcked;
      if (acked > dataAcked && this.hostEof) this.finAcked = true;
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (this.sacked.length) this.sacked = this.sacked.filter(([, r]) => seqLt(ack, r));
      const inRecovery = this.dupAcks >= 3;
      this.dupAcks = 0;
      if (inRecovery && this.sacked.length) {
        // A partial ACK while SACK still reports data beyond a hole: send the next hole now.
        this.dupAcks = 3;
        this.retransmitNextHole();
      } else if (!inRecovery && this.sackedBytes() >= 3 * this.mss) {
        this.enterRecovery(); // RFC 6675 §4 IsLost: DupThresh segments SACKed above the hole
      }
      this.retries = 0;
      if (this.rttSeq !== -1 && seqLe(this.rttSeq, ack)) {
        this.rttSample(Date.now() - this.rttStart);
        this.rttSeq = -1;
      }
      // RFC 5681 §3.1: slow start, then congestion avoidance.
      if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.mss);
      else this.cwnd += Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
      this.cwnd = Math.min(this.cwnd, 64 * 1024 * 1024);
      this.clearTimer();
      if (this.sndUna !== this.sndMax) this.armTimer(this.rto);
      this.updateHostPause();
      this.checkDone();
      if (this.state !== "CLOSED") this.trySend();
    } else if (
      acked === 0 &&
      payloadLen === 0 &&
      (!windowChanged || seg.sack !== undefined) &&
      this.sndUna !== this.sndMax &&
      !(seg.flags & TCP_FIN)
    ) {
      // RFC 5681 §2: a duplicate ACK carries no data and no window change (a receiver that autotunes
      // its window still sends SACK blocks, which RFC 6675 counts instead); the third starts recovery.
      this.dupAcks++;
      const flight = seqDiff(this.sndMax, this.sndUna);
      if (this.dupAcks < 3 && this.sackedBytes() >= 3 * this.mss) this.dupAcks = 3;
      // RFC 5827 early retransmit: with fewer than four segments out, fewer duplicates can come.
      if (this.dupAcks < 3 && this.sacked.length && flight < 4 * this.mss && this.sendQ.length <= flight) {
        this.dupAcks = 3;
      }
      if (this.dupAcks < 3) {
        // RFC 3042 limited transmit: each of the first two duplicates lets one new segment out.
        const saved = this.cwnd;
        this.cwnd = seqDiff(this.sndNxt, this.sndUna) + this.mss;
        this.trySend();
        this.cwnd = saved;
      } else if (this.dupAcks === 3) {
        this.dupAcks = 2;
        this.enterRecovery();
      } else if (this.dupAcks > 3 && this.sacked.length) {
        this.retransmitNextHole(); // RFC 6675-style: each further duplicate ACK clocks out one hole
      }
    } else if (windowGrew) {
      this.trySend(); // a window update may open the window
    }
  }

  private recordSack(blocks: readonly (readonly [number, number])[]): void {
    for (const [l, r] of blocks) {
      // Only blocks inside the unacknowledged, sent range count (RFC 2018 §8 leaves the rest undefined).
      if (!seqLt(this.sndUna, r) || !seqLt(l, r) || seqLt(this.sndMax, r) || seqLt(l, this.sndUna)) continue;
      this.sacked.push([l, r]);
    }
    this.sacked.sort((a, b) => seqDiff(a[0], b[0]));
    const merged: [number, number][] = [];
    for (const b of this.sacked) {
      const last = merged[merged.length - 1];
      if (last && seqLe(b[0], last[1])) {
        if (seqLt(last[1], b[1])) last[1] = b[1];
      } else merged.push([b[0], b[1]]);
    }
    this.sacked = merged.slice(0, 64);
  }

  /** End of the SACKed range holding `seq`, or -1. */
  private sackedEnd(seq: number): number {
    for (const [l, r] of this.sacked) if (seqLe(l, seq) && seqLt(seq, r)) return r;
    return -1;
  }

  private rttSample(r: number): void {
    // RFC 6298 §2.2-2.3.
    if (this.srtt < 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    const t = this.host.timeouts;
    this.rto = Math.min(t.tcpRtoMaxMs, Math.max(t.tcpRtoMinMs, this.srtt + Math.max(1, 4 * this.rttvar)));
  }

  // ---- output -----------------------------------------------------------

  private trySend(): void {
    if (this.state !== "ESTABLISHED") return;
    for (let guard = 0; guard < 4096; guard++) {
      const inFlight = seqDiff(this.sndNxt, this.sndUna);
      if (inFlight > this.sendQ.length) break; // FIN already sent
      const unsent = this.sendQ.length - inFlight;
      if (unsent > 0) {
        let room = Math.min(this.sndWnd, this.cwnd) - inFlight;
        if (room <= 0 && this.probe && inFlight === 0) room = 1; // zero-window probe (§3.8.6.1)
        if (room <= 0) {
          if (this.sndWnd === 0 && inFlight === 0 && !this.timer) {
            this.armTimer(this.rto, () => {
              this.probe = true;
              this.trySend();
            });
          }
          break;
        }
        if (seqLt(this.sndNxt, this.sndMax) && this.sacked.length) {
          // Retransmitting: skip what the guest already holds.
          const end = this.sackedEnd(this.sndNxt);
          if (end !== -1) {
            this.sndNxt = end;
            continue;
          }
        }
        let n = Math.min(unsent, room, this.mss);
        if (this.sacked.length && seqLt(this.sndNxt, this.sndMax)) {
          for (const [l] of this.sacked) {
            const gap = seqDiff(l, this.sndNxt);
            if (gap > 0 && gap < n) n = gap; // stop at the next SACKed block
          }
        }
        const payload = this.sendQ.peek(inFlight, n);
        this.emit({
          seq: this.sndNxt,
          ack: this.rcvNxt,
          flags: TCP_ACK | (n === unsent ? TCP_PSH : 0),
          payload,
        });
        this.cancelDelayedAck();
        this.sndNxt = seqAdd(this.sndNxt, n);
        if (seqLt(this.sndMax, this.sndNxt)) {
          if (this.rttSeq === -1) {
            this.rttSeq = this.sndNxt;
            this.rttStart = Date.now();
          }
          this.sndMax = this.sndNxt;
        }
        if (!this.timer) this.armTimer(this.rto);
        continue;
      }
      if (this.hostEof && !this.finAcked) {
        this.emit({ seq: this.sndNxt, ack: this.rcvNxt, flags: TCP_FIN | TCP_ACK });
        this.cancelDelayedAck();
        this.sndNxt = seqAdd(this.sndNxt, 1);
        if (seqLt(this.sndMax, this.sndNxt)) this.sndMax = this.sndNxt;
        if (!this.timer) this.armTimer(this.rto);
      }
      break;
    }
  }

  private sackedBytes(): number {
    let n = 0;
    for (const [l, r] of this.sacked) n += seqDiff(r, l);
    return n;
  }

  /** Fast retransmit / fast recovery entry (RFC 5681 §3.2, RFC 6675 §5). */
  private enterRecovery(): void {
    this.dupAcks = 3;
    this.ssthresh = Math.max(seqDiff(this.sndMax, this.sndUna) >> 1, 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.host.stats.count("tcpFastRetransmits");
    this.recoverNxt = this.sndUna;
    if (this.sacked.length) this.retransmitNextHole();
    else this.retransmitFirst();
  }

  /** Retransmits one segment at the first hole (below the highest SACKed byte) not yet retransmitted. */
  private retransmitNextHole(): void {
    if (this.sacked.length === 0) return;
    let seq = seqLt(this.recoverNxt, this.sndUna) ? this.sndUna : this.recoverNxt;
    const highest = this.sacked[this.sacked.length - 1]![1];
    for (let guard = 0; guard < 128 && seqLt(seq, highest); guard++) {
      const end = this.sackedEnd(seq);
      if (end === -1) break;
      seq = end;
    }
    if (!seqLt(seq, highest)) return;
    const off = seqDiff(seq, this.sndUna);
    let n = Math.min(this.mss, this.sendQ.length - off);
    for (const [l] of this.sacked) {
      const gap = seqDiff(l, seq);
      if (gap > 0 && gap < n) n = gap;
    }
    if (n <= 0) return;
    this.emit({ seq, ack: this.rcvNxt, flags: TCP_ACK, payload: this.sendQ.peek(off, n) });
    this.cancelDelayedAck();
    this.host.stats.count("tcpSackRetransmits");
    this.rttSeq = -1;
    this.recoverNxt = seqAdd(seq, n);
    if (!this.timer) this.armTimer(this.rto);
  }

  private retransmitFirst(): void {
    const saved = this.sndNxt;
    this.sndNxt = this.sndUna;
    const cw = this.cwnd;
    this.cwnd = this.mss;
    this.rttSeq = -1; // Karn: no samples from retransmitted data
    this.trySend();
    this.cwnd = cw;
    if (seqLt(this.sndNxt, saved)) this.sndNxt = saved;
  }

  private onTimeout(): void {
    this.timer = null;
    if (this.state === "CONNECTING") {
      this.host.stats.count("tcpConnectTimeouts");
      this.abort(true);
      return;
    }
    if (++this.retries > this.host.timeouts.tcpMaxRetransmits) {
      this.host.stats.count("tcpRetransmitGiveUps");
      this.abort(true);
      return;
    }
    this.host.stats.count("tcpRetransmits");
    this.rto = Math.min(this.rto * 2, this.host.timeouts.tcpRtoMaxMs); // RFC 6298 §5.5
    if (this.state === "SYN_SENT") {
      this.sendSyn();
      return;
    }
    if (this.state === "SYN_RCVD") {
      this.sendSynAck();
      return;
    }
    if (this.state !== "ESTABLISHED") return;
    // RFC 5681 §3.1 (4): on timeout, go back to one segment.
    this.ssthresh = Math.max(seqDiff(this.sndMax, this.sndUna) >> 1, 2 * this.mss);
    this.cwnd = this.mss;
    this.sndNxt = this.sndUna;
    this.rttSeq = -1;
    // RFC 2018 §8 lets a receiver renege on SACKed data; like Linux, keep the scoreboard across the
    // first timeout (go-back-N then skips what the guest holds) but drop it on a second one in a row.
    if (this.retries >= 2) this.sacked = [];
    this.dupAcks = 0;
    if (this.sndWnd === 0) this.probe = true;
    this.trySend();
  }

  private sendSyn(): void {
    const window = Math.min(this.host.flowBufferBytes, 65535);
    this.lastAdvertised = window;
    this.host.output(this, {
      srcPort: 0,
      dstPort: 0,
      seq: this.iss,
      ack: 0,
      flags: TCP_SYN,
      window,
      mss: this.host.linkMss,
      windowScale: OUR_WS,
      sackPermitted: true,
    });
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.armTimer(this.rto);
  }

  private sendSynAck(): void {
    const spec: { -readonly [K in keyof TcpSegmentSpec]: TcpSegmentSpec[K] } = {
      srcPort: 0,
      dstPort: 0,
      seq: this.iss,
      ack: this.rcvNxt,
      flags: TCP_SYN | TCP_ACK,
      window: Math.min(this.receiveWindow(), 65535),
      mss: this.host.linkMss,
    };
    if (this.ourWs) spec.windowScale = this.ourWs;
    if (this.sackOk) spec.sackPermitted = true;
    this.lastAdvertised = spec.window;
    this.host.output(this, spec);
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.armTimer(this.rto);
  }

  private scheduleAck(): void {
    if (this.ackTimer) return;
    // Coalesce the ACKs of one burst of segments delivered in the same turn.
    this.ackTimer = setImmediate(() => {
      this.ackTimer = null;
      if (this.state === "ESTABLISHED") this.sendAck();
    });
  }

  private cancelDelayedAck(): void {
    if (this.ackTimer) {
      clearImmediate(this.ackTimer);
      this.ackTimer = null;
    }
  }

  private sendAck(): void {
    this.cancelDelayedAck();
    this.emit({ seq: this.sndNxt, ack: this.rcvNxt, flags: TCP_ACK });
  }

  private emit(s: { seq: number; ack: number; flags: number; payload?: Uint8Array }): void {
    let window = 0;
    if (!(s.flags & TCP_RST)) {
      const w = this.receiveWindow();
      window = Math.min(65535, w >>> this.ourWs);
      this.lastAdvertised = window << this.ourWs;
    }
    const spec: { -readonly [K in keyof TcpSegmentSpec]: TcpSegmentSpec[K] } = {
      srcPort: 0,
      dstPort: 0,
      seq: s.seq,
      ack: s.ack,
      flags: s.flags,
      window,
    };
    if (s.payload) spec.payload = s.payload;
    if (this.sackOk && this.ooo.length && !(s.flags & TCP_RST)) spec.sack = this.sackBlocks();
    this.host.output(this, spec);
  }

  /** RFC 2018 §4: the block holding the latest out-of-order segment first, then the others. */
  private sackBlocks(): [number, number][] {
    const blocks: [number, number][] = [];
    for (const e of this.ooo) {
      const end = seqAdd(e.seq, e.data.length);
      const last = blocks[blocks.length - 1];
      if (last && seqLe(e.seq, last[1])) {
        if (seqLt(last[1], end)) last[1] = end;
      } else blocks.push([e.seq, end]);
    }
    const first = blocks.findIndex(([l, r]) => seqLe(l, this.lastOooSeq) && seqLt(this.lastOooSeq, r));
    if (first > 0) blocks.unshift(...blocks.splice(first, 1));
    return blocks.slice(0, 4);
  }

  // ---- timers and teardown ----------------------------------------------

  private armTimer(ms: number, fn: () => void = () => this.onTimeout()): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private checkDone(): void {
    if (this.guestFin && this.hostEof && this.finAcked && this.state === "ESTABLISHED") {
      this.state = "TIME_WAIT";
      this.clearTimer();
      this.cancelDelayedAck();
      this.socket?.destroySoon(); // flushes what the guest sent, then closes
      this.releaseBudget();
      this.host.stats.count("tcpClosed");
      this.armTimer(this.host.timeouts.tcpTimeWaitMs, () => this.finish());
    }
  }

  /** Ends the flow abruptly; `toGuest` sends the guest a RST, otherwise the host peer is reset. */
  abort(toGuest: boolean): void {
    if (this.state === "CLOSED") return;
    if (toGuest) {
      if (this.state === "CONNECTING") this.emit({ seq: 0, ack: this.rcvNxt, flags: TCP_RST | TCP_ACK });
      else if (this.state !== "TIME_WAIT") this.emit({ seq: this.sndNxt, ack: this.rcvNxt, flags: TCP_RST | TCP_ACK });
      this.host.stats.count("tcpResetsToGuest");
      this.socket?.destroy();
    } else {
      this.host.stats.count("tcpResetsFromGuest");
      this.socket?.resetAndDestroy();
    }
    this.finish();
  }

  private releaseBudget(): void {
    this.releaseOutOfOrder();
    this.budget.used -= this.sendQ.length;
    this.sendQ.clear();
  }

  private finish(): void {
    if (this.state === "CLOSED") return;
    this.state = "CLOSED";
    this.clearTimer();
    this.cancelDelayedAck();
    this.releaseBudget();
    if (this.socket && !this.socket.destroyed) this.socket.destroySoon();
    this.host.removed(this);
  }

  /** Leaves TIME-WAIT early (a new connection reuses the 4-tuple). */
  endTimeWait(): void {
    if (this.state === "TIME_WAIT") this.finish();
  }

  /** Closes without telling anyone (stack shutdown). */
  dispose(): void {
    if (this.state === "CLOSED") return;
    this.state = "CLOSED";
    this.clearTimer();
    this.cancelDelayedAck();
    this.releaseBudget();
    this.socket?.destroy();
  }
}
