// The 9P VSC across a VSP restart: the successor's server knows no fids, the
// VSC rebuilds them (attach, walk, open) before it re-issues anything, so the
// guest's open files keep working. A real NinePServer over a temporary host
// directory serves both ends of a loopback VMBus.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NinePServer } from "@ringzero/virtio/node";
import { NinePTestClient, RlerrorReply } from "@ringzero/virtio/testing";
import { type ClientChannel, RequestChannel, type ServerChannel } from "@ringzero/vmbus";
import { DeviceInterface, decodeFramed, encodeDataHeader, NINEP_MAX_MESSAGE } from "@ringzero/vmbus/protocols";
import { allocateRingPages, createLoopback, type Loopback, testGuid } from "@ringzero/vmbus/testing";
import { afterEach, describe, expect, it } from "vitest";
import { NinePVsc } from "./ninep-vsc.js";

const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_DIRECTORY = 0o200000;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The parent's side: a 9P server on a channel (what NinePVsp does in its worker). */
function serve(host: ServerChannel, server: NinePServer): RequestChannel {
  const rc: RequestChannel = new RequestChannel(host, {
    onPacket: (p) => {
      const m = decodeFramed(p.payload, NINEP_MAX_MESSAGE);
      if (!m) return;
      void server.handle(m).then((r) => rc.complete(p.transactionId, [encodeDataHeader(r.length), r]));
    },
  });
  return rc;
}

interface Bus {
  lb: Loopback;
  root: string;
  vsc: NinePVsc;
  client: NinePTestClient;
  /** The VSP dies: its channel is rescinded; nothing serves until `restart`. */
  kill(): void;
  /** A successor with a fresh server (no fids) is offered; the VSC reopens on the same ring pages. */
  restart(): Promise<void>;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function bus(): Promise<Bus> {
  const root = mkdtempSync(join(tmpdir(), "rz-ninep-vsc-"));
  dirs.push(root);
  const lb = await createLoopback({ memoryBytes: 8 << 20 });
  const instanceId = testGuid();
  const rings = allocateRingPages(lb.memory, 256 * 1024);
  const offered = (): Promise<ClientChannel> =>
    new Promise((resolve, reject) => {
      let live = false; // offers known already are replayed at subscription: not the one awaited
      const off = lb.client.onOffer((o) => {
        if (!live || o.instanceId !== instanceId) return;
        queueMicrotask(() => off());
        lb.client.open(o, rings).then(resolve, reject);
      });
      live = true;
    });
  let host = lb.server.offer({ interfaceId: DeviceInterface.ninep, instanceId });
  const guest = await offered();
  serve(host, new NinePServer({ root }));
  const vsc = new NinePVsc(guest);
  lb.client.onRescind(() => vsc.detach());
  return {
    lb,
    root,
    vsc,
    client: new NinePTestClient((m) => vsc.handle(m)),
    kill: () => lb.server.revoke(host),
    async restart() {
      const next = offered();
      host = lb.server.offer({ interfaceId: DeviceInterface.ninep, instanceId });
      serve(host, new NinePServer({ root }));
      vsc.attach(await next);
      await new Promise((r) => setTimeout(r, 0));
    },
  };
}

describe("NinePVsc across a restart of its VSP", () => {
  it("rebuilds attached, walked and open fids on the successor: the guest's open file keeps working", async () => {
    const b = await bus();
    mkdirSync(join(b.root, "d"));
    const c = b.client;
    await c.version(65536);
    await c.attach(1);
    await c.walk(1, 2, "d");
    await c.lcreate(2, "f", O_RDWR | O_CREAT | O_TRUNC, 0o644); // fid 2 is now d/f, open
    expect(await c.write(2, 0, "hello")).toBe(5);
    await c.walk(1, 3, "d");
    await c.lopen(3, O_DIRECTORY);
    await c.walk(1, 4, "d", "..", "d"); // ".." resolved in the recipe
    await c.walk(1, 5);
    await c.clunk(5); // clunked fids are not rebuilt
    expect(b.vsc.liveFids).toBe(4);

    b.kill();
    // A request made while no VSP serves waits for the successor and is issued there.
    const late = c.write(2, 5, " world");
    await b.restart();
    expect(await late).toBe(6);
    expect(b.vsc.counters).toMatchObject({ fidsRebuilt: 4, fidsLost: 0, reconnects: 1 });
    // The open fid was reopened without O_TRUNC: the first write survived.
    expect(readFileSync(join(b.root, "d", "f"), "utf8")).toBe("hello world");
    expect(text(await c.read(2, 0, 64))).toBe("hello world");
    await c.walk(4, 6, "f");
    await c.lopen(6, 0);
    expect(text(await c.read(6, 0, 5))).toBe("hello");
  });

  it("follows renames: a fid below a renamed directory is rebuilt at the new path", async () => {
    const b = await bus();
    mkdirSync(join(b.root, "a"));
    writeFileSync(join(b.root, "a", "f"), "data");
    const c = b.client;
    await c.version(65536);
    await c.attach(1);
    await c.walk(1, 2, "a", "f");
    await c.lopen(2, 0);
    await c.renameat(1, "a", 1, "b");
    b.kill();
    await b.restart();
    expect(b.vsc.counters.fidsLost).toBe(0);
    expect(text(await c.read(2, 0, 16))).toBe("data");
  });

  it("a fid whose file went away is counted as lost; its use is an error, not a hang", async () => {
    const b = await bus();
    writeFileSync(join(b.root, "gone"), "x");
    const c = b.client;
    await c.version(65536);
    await c.attach(1);
    await c.walk(1, 2, "gone");
    await c.lopen(2, 0);
    rmSync(join(b.root, "gone")); // behind the guest's back
    b.kill();
    await b.restart();
    expect(b.vsc.counters).toMatchObject({ fidsRebuilt: 1, fidsLost: 1 });
    await expect(c.read(2, 0, 1)).rejects.toBeInstanceOf(RlerrorReply);
    expect((await c.walk(1, 3)).length).toBe(0); // the attach fid still works
  });

  it("a survivor of two restarts in a row, with a request issued between them", async () => {
    const b = await bus();
    const c = b.client;
    await c.version(65536);
    await c.attach(1);
    await c.walk(1, 2);
    await c.lcreate(2, "n", O_RDWR | O_CREAT, 0o600);
    b.kill();
    const w = c.write(2, 0, "abc");
    await b.restart();
    b.kill();
    await b.restart();
    expect(await w).toBe(3);
    expect(await c.write(2, 3, "def")).toBe(3);
    expect(readFileSync(join(b.root, "n"), "utf8")).toBe("abcdef");
  });
});
