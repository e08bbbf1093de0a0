import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LoopbackNetBackend } from "../backends/net.js";
import { PcapNetBackend } from "../backends/net-pcap.js";
import { VirtioInterrupt } from "../constants.js";
import { mockDriver } from "../testing/index.js";
import { VIRTIO_NET_HDR_SIZE, VIRTIO_NET_S_LINK_UP, VirtioNet } from "./net.js";

function frame(dst: number[], src: number[], payload: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental ethertype
  f.fill(payload, 14);
  return f;
}

const MAC_A = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function tx(drv: ReturnType<typeof mockDriver>, f: Uint8Array): void {
  drv.queue(1).addBuffers([new Uint8Array(VIRTIO_NET_HDR_SIZE), f], []);
  drv.queue(1).kick();
}

function postRx(drv: ReturnType<typeof mockDriver>, n: number, len = 1526): void {
  for (let i = 0; i < n; i++) drv.queue(0).addBuffers([], [len]);
  drv.queue(0).kick();
}

const tmp = mkdtempSync(join(tmpdir(), "rz-virtio-net-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("virtio-net", () => {
  it("exposes MAC and link status in the config space", () => {
    const dev = new VirtioNet({ backend: new LoopbackNetBackend(), mac: "52:54:00:12:34:56" });
    const drv = mockDriver(dev);
    expect([0, 1, 2, 3, 4, 5].map((i) => drv.config(i, 1))).toEqual(MAC_A);
    expect(drv.config(6, 2)).toBe(VIRTIO_NET_S_LINK_UP);
    dev.setLinkUp(false);
    expect(drv.config(6, 2)).toBe(0);
    expect(drv.ackInterrupt()).toBe(VirtioInterrupt.CONFIG_CHANGE);
    const random = new VirtioNet({ backend: new LoopbackNetBackend() });
    expect(Number.parseInt(random.mac.slice(0, 2), 16) & 3).toBe(2);
  });

  it("transmits frames without the virtio_net_hdr and receives with num_buffers = 1", () => {
    const dev = new VirtioNet({ backend: new LoopbackNetBackend(true) });
    const drv = mockDriver(dev);
    postRx(drv, 2);
    const f = frame(BCAST, MAC_A, 7);
    tx(drv, f);
    expect(drv.queue(1).collect()).toHaveLength(1);
    const [u] = drv.queue(0).collect();
    expect(u?.len).toBe(VIRTIO_NET_HDR_SIZE + 60);
    const buf = u?.written[0] as Uint8Array;
    expect(new DataView(buf.buffer, buf.byteOffset).getUint16(10, true)).toBe(1);
    expect(buf.subarray(0, 10).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(VIRTIO_NET_HDR_SIZE, VIRTIO_NET_HDR_SIZE + 60)).toEqual(f);
    expect(dev.stats).toMatchObject({ txFrames: 1, rxFrames: 1, txBytes: 60, rxBytes: 60 });
  });

  it("queues received frames while the guest has no buffers, bounded, dropping and counting beyond", () => {
    const [a, b] = LoopbackNetBackend.pair();
    const devA = new VirtioNet({ backend: a });
    const devB = new VirtioNet({ backend: b, rxQueueLimit: 2 });
    const drvA = mockDriver(devA);
    const drvB = mockDriver(devB);
    for (let i = 0; i < 4; i++) tx(drvA, frame(BCAST, MAC_A, i));
    expect(devB.rxQueued).toBe(2);
    expect(devB.stats.rxDropped).toBe(2);
    postRx(drvB, 4);
    const got = drvB.queue(0).collect();
    expect(got.map((u) => u.written[0]?.[VIRTIO_NET_HDR_SIZE + 14])).toEqual([0, 1]);
    expect(devB.rxQueued).toBe(0);
  });

  it("drops frames for receive buffers that are too small, returning the buffer", () => {
    const [a, b] = LoopbackNetBackend.pair();
    const dev = new VirtioNet({ backend: b });
    const drv = mockDriver(dev);
    postRx(drv, 1, 40);
    a.send(frame(BCAST, MAC_A, 1));
    expect(drv.queue(0).collect()[0]?.len).toBe(0);
    expect(dev.stats.rxBufferTooSmall).toBe(1);
  });

  it("drops transmit buffers shorter than the header and frames while the link is down", () => {
    const lb = new LoopbackNetBackend();
    const dev = new VirtioNet({ backend: lb });
    const drv = mockDriver(dev);
    drv.queue(1).addBuffers([new Uint8Array(4)], []);
    drv.queue(1).kick();
    expect(drv.transport.counters.malformedRequest).toBe(1);
    dev.setLinkUp(false);
    tx(drv, frame(BCAST, MAC_A, 1));
    lb.inject(frame(BCAST, MAC_A, 2));
    expect(lb.sent).toHaveLength(0);
    expect(dev.stats).toMatchObject({ txDropped: 2, rxDropped: 1 });
  });

  it("records both directions in a pcap file that tshark reads", async () => {
    const path = join(tmp, "net.pcap");
    const pcap = PcapNetBackend.create(new LoopbackNetBackend(true), path, () => 1_700_000_000_123.456);
    const dev = new VirtioNet({ backend: pcap });
    const drv = mockDriver(dev);
    postRx(drv, 1);
    tx(drv, frame(BCAST, MAC_A, 0x42));
    await pcap.close();
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(24 + 2 * (16 + 60));
    expect(bytes.readUInt32LE(0)).toBe(0xa1b2c3d4);
    let tshark = true;
    try {
      execFileSync("tshark", ["-v"], { stdio: "ignore" });
    } catch {
      tshark = false;
    }
    if (!tshark) {
      if (process.env.CI) throw new Error("tshark is required in CI (scripts/setup.sh installs it)");
      return;
    }
    const out = execFileSync("tshark", ["-r", path, "-T", "fields", "-e", "eth.src", "-e", "frame.len"], {
      encoding: "utf8",
    });
    expect(out.trim().split("\n")).toEqual(["52:54:00:12:34:56\t60", "52:54:00:12:34:56\t60"]);
  });

  it("counts a back end whose send() throws and keeps serving the queue", () => {
    const dev = new VirtioNet({
      backend: {
        send: () => {
          throw new Error("host network down");
        },
        setReceiver: () => {},
      },
    });
    const drv = mockDriver(dev);
    tx(drv, frame(BCAST, MAC_A, 1));
    tx(drv, frame(BCAST, MAC_A, 2));
    expect(drv.queue(1).collect()).toHaveLength(2);
    expect(dev.stats.txErrors).toBe(2);
  });
});
