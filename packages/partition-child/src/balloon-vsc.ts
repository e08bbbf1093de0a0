// The paravisor's end of the balloon control channel (the role of Hyper-V's
// dynamic memory VSC): the parent asks for a target and reads the state back;
// the guest sees an ordinary virtio-balloon whose config changes.
import type { VirtioBalloon } from "@ringzero/virtio";
import { type ClientChannel, type IncomingPacket, RequestChannel } from "@ringzero/vmbus";
import { BalloonOp, decodeBalloonRequest, encodeBalloonStatus } from "@ringzero/vmbus/protocols";

export class BalloonVsc {
  readonly counters = { requests: 0, targets: 0, malformed: 0 };
  private readonly rc: RequestChannel;

  constructor(
    channel: ClientChannel,
    private readonly balloon: VirtioBalloon,
  ) {
    this.rc = new RequestChannel(channel, { onPacket: (p) => this.onPacket(p) });
  }

  private onPacket(p: IncomingPacket): void {
    this.counters.requests++;
    const r = decodeBalloonRequest(p.payload);
    if (!r) this.counters.malformed++;
    else if (r.op === BalloonOp.SET_TARGET) {
      this.counters.targets++;
      this.balloon.setTarget(r.pages);
    }
    // Every request is answered with the state (a malformed one too: the parent's wait ends).
    const b = this.balloon;
    this.rc.complete(p.transactionId, encodeBalloonStatus({ target: b.target, actual: b.actual, ...b.stats }));
  }

  dispose(): void {
    this.rc.dispose();
  }
}
