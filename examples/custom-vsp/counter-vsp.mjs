// The parent's end (the VSP): a counter service, run by partition-parent in
// a worker thread of the parent partition. Each request asks for n bytes; the
// answer continues a counter that starts at `data.start` and moves by
// `data.step` (mod 256) — so a test can tell these bytes from any other
// source. A teaching service, not a source of randomness.
//
// partition-parent calls createVsp once the worker takes over (again in a
// successor after a kill or a restart), and attach(channel) each time the
// child opens the channel.
import { RequestChannel } from "@ringzero/vmbus";
import { decodeRequest, encodeReply } from "./protocol.mjs";

export function createVsp({ data }) {
  const step = data?.step ?? 1;
  let next = data?.start ?? 0;
  const counters = { requests: 0, bytes: 0, malformed: 0 };
  let rc;
  return {
    counters,
    attach(channel) {
      rc?.dispose();
      const requests = new RequestChannel(channel, {
        onPacket: (p) => {
          counters.requests++;
          const n = decodeRequest(p.payload);
          if (n === undefined) counters.malformed++;
          const bytes = new Uint8Array(n ?? 0);
          for (let i = 0; i < bytes.length; i++) {
            bytes[i] = next;
            next = (next + step) & 0xff;
          }
          counters.bytes += bytes.length;
          requests.complete(p.transactionId, encodeReply(bytes));
        },
      });
      rc = requests;
    },
    // Graceful stop: every request is answered at once, nothing to drain.
    quiesce() {
      rc?.dispose();
    },
  };
}
