// Hostile input: malformed, truncated, lying and random messages never make
// handle() reject, always produce a well-formed reply, and never touch
// anything outside the root.
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Errno } from "./errno.js";
import { DOTL, MAXWELEM, NOTAG, P9 } from "./protocol.js";
import { NinePServer } from "./server.js";
import { NinePTestClient, TBuilder } from "./testing.js";

let base: string;
let share: string;
let outside: string;

function outsideState(): string {
  const rows = [readdirSync(base).sort().join(",")];
  for (const n of readdirSync(outside).sort()) {
    const st = lstatSync(join(outside, n));
    rows.push(`${n} ${st.mode} ${st.size} ${st.mtimeMs} ${st.uid}:${st.gid} ${st.nlink}`);
    if (st.isFile()) rows.push(readFileSync(join(outside, n), "latin1"));
  }
  return rows.join("\n");
}

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "rz9p-fuzz-"));
  share = join(base, "share");
  outside = join(base, "outside");
  mkdirSync(share);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret"), "s3cret");
  mkdirSync(join(share, "d"));
  writeFileSync(join(share, "d", "f"), "file");
  symlinkSync(outside, join(share, "out"));
  symlinkSync("../outside/secret", join(share, "d", "sec"));
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Parse a reply header and check it is self-consistent. */
function checkReply(req: Uint8Array, reply: Uint8Array, msize: number): { type: number; errno?: number } {
  expect(reply).toBeInstanceOf(Uint8Array);
  expect(reply.length).toBeGreaterThanOrEqual(7);
  expect(reply.length).toBeLessThanOrEqual(msize);
  const dv = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  expect(dv.getUint32(0, true)).toBe(reply.length);
  const type = reply[4] as number;
  const tag = dv.getUint16(5, true);
  if (req.length >= 7) expect(tag).toBe(new DataView(req.buffer, req.byteOffset).getUint16(5, true));
  else expect(tag).toBe(NOTAG);
  if (type === P9.Rlerror) {
    expect(reply.length).toBe(11);
    return { type, errno: dv.getUint32(7, true) };
  }
  expect(type % 2).toBe(1);
  return { type };
}

async function newSession(opts: { maxMsize?: number } = {}) {
  const server = new NinePServer({ root: share, maxMsize: opts.maxMsize ?? 16384 });
  const c = new NinePTestClient((m) => server.handle(m));
  await c.version(opts.maxMsize ?? 16384);
  await c.attach(0);
  return { server, c };
}

const msg = (type: number, tag: number, f: (b: TBuilder) => void) => {
  const b = new TBuilder();
  f(b);
  return b.build(type, tag);
};

describe("9p hostile input", () => {
  it("short, lying and oversized frames get Rlerror and are counted", async () => {
    const { server } = await newSession({ maxMsize: 8192 });
    const send = async (bytes: Uint8Array) => checkReply(bytes, await server.handle(bytes), 8192);
    for (let n = 0; n < 7; n++)
      expect(await send(new Uint8Array(n))).toEqual({ type: P9.Rlerror, errno: Errno.EPROTO });
    const ok = msg(P9.Tgetattr, 5, (b) => b.u32(0).u64(0x7ff));
    expect((await send(ok)).type).toBe(P9.Rgetattr);
    // Size field larger than the bytes, smaller than a header, or beyond msize.
    for (const size of [ok.length + 1, 6, 0]) {
      const m = ok.slice();
      new DataView(m.buffer).setUint32(0, size, true);
      expect((await send(m)).errno).toBe(Errno.EPROTO);
    }
    const huge = ok.slice();
    new DataView(huge.buffer).setUint32(0, 0xffffffff, true);
    expect((await send(huge)).errno).toBe(Errno.EMSGSIZE);
    const big = new Uint8Array(9000);
    big.set(ok);
    new DataView(big.buffer).setUint32(0, 9000, true);
    expect((await send(big)).errno).toBe(Errno.EMSGSIZE);
    // Every truncation of a valid message (size field kept consistent) is EPROTO, never a throw.
    const walk = msg(P9.Twalk, 9, (b) => b.u32(0).u32(1).u16(2).str("d").str("f"));
    for (let n = 7; n < walk.length; n++) {
      const m = walk.slice(0, n);
      new DataView(m.buffer).setUint32(0, n, true);
      expect((await send(m)).errno).toBe(Errno.EPROTO);
    }
    // A string length running past the end.
    const lying = msg(P9.Tmkdir, 3, (b) => b.u32(0).u16(500).bytes(Buffer.from("x")).u32(0o755).u32(0));
    expect((await send(lying)).errno).toBe(Errno.EPROTO);
    // A Twrite whose count exceeds the data sent.
    const w = msg(P9.Twrite, 4, (b) => b.u32(0).u64(0).u32(0xffffffff).bytes(Buffer.from("abc")));
    expect((await send(w)).errno).toBe(Errno.EPROTO);
    expect(server.stats().malformed).toBeGreaterThanOrEqual(20);
    expect(server.stats().internal).toBe(0);
    await server.close();
  });

  it("unknown types, legacy messages, unknown fids, fid reuse, too many wnames, huge counts", async () => {
    const { server, c } = await newSession({ maxMsize: 8192 });
    const send = async (bytes: Uint8Array) => checkReply(bytes, await server.handle(bytes), 8192);
    for (const t of [0, 1, 99, P9.Rgetattr, 112, 114, 124, 126, P9.Tauth, 255]) {
      expect((await send(msg(t, 1, (b) => b.u32(0)))).errno).toBe(Errno.EOPNOTSUPP);
    }
    expect(server.stats().unsupported).toBe(10);
    const EBADF = { errno: Errno.EBADF };
    await expect(c.walk(77, 78, "d")).rejects.toMatchObject(EBADF);
    await expect(c.getattr(77)).rejects.toMatchObject(EBADF);
    await expect(c.read(77, 0, 10)).rejects.toMatchObject(EBADF);
    await expect(c.write(77, 0, "x")).rejects.toMatchObject(EBADF);
    await expect(c.lopen(77, 0)).rejects.toMatchObject(EBADF);
    await expect(c.statfs(77)).rejects.toMatchObject(EBADF);
    await expect(c.fsync(0)).rejects.toMatchObject(EBADF); // not open
    // fid reuse
    await c.walk(0, 1, "d");
    await expect(c.walk(0, 1, "d")).rejects.toMatchObject({ errno: Errno.EINVAL });
    await expect(c.attach(1)).rejects.toMatchObject({ errno: Errno.EINVAL });
    await expect(c.attach(0)).rejects.toMatchObject({ errno: Errno.EINVAL });
    // more than MAXWELEM names
    const names = Array.from({ length: MAXWELEM + 1 }, () => "d");
    await expect(c.walk(0, 2, ...names)).rejects.toMatchObject({ errno: Errno.EINVAL });
    expect(await c.walk(0, 2, ...Array.from({ length: MAXWELEM }, () => ".."))).toHaveLength(MAXWELEM);
    // A huge read count is clamped to msize; the reply stays within msize.
    writeFileSync(join(share, "big"), Buffer.alloc(20000, 7));
    await c.walk(0, 3, "big");
    await c.lopen(3, DOTL.RDONLY);
    const data = await c.read(3, 0, 0xffffffff);
    expect(data.length).toBe(8192 - 11);
    await expect(c.read(3, 0xffffffffffffffffn, 10)).rejects.toMatchObject({ errno: Errno.EFBIG });
    await c.walk(0, 4, "d");
    await c.lopen(4, DOTL.RDONLY);
    const ls = await c.readdir(4, 0, 0xffffffff);
    expect(ls.length).toBe(4);
    expect(await c.readdir(4, 0xffffffffffffffffn, 4096)).toEqual([]);
    await expect(c.lopen(1, 3)).rejects.toMatchObject({ errno: Errno.EINVAL }); // O_ACCMODE 3
    expect(server.stats().internal).toBe(0);
    await server.close();
  });

  it("property: random message sequences never reject, always reply well-formed, never escape the root", async () => {
    const before = outsideState();
    const fid = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(0xffffffff), fc.nat());
    const name = fc.oneof(
      fc.constantFrom("d", "f", "out", "sec", "..", ".", "", "a/b", "../outside", "/etc", "x\0y", "new", "n2"),
      fc.uint8Array({ maxLength: 300 }),
    );
    const u32 = fc.oneof(fc.integer({ min: 0, max: 0o200000 }), fc.nat({ max: 0xffffffff }));
    const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 4096n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
    type F = (b: TBuilder) => void;
    const field = fc.oneof(
      fid.map(
        (v): F =>
          (b) =>
            b.u32(v),
      ),
      name.map(
        (v): F =>
          (b) =>
            b.str(v),
      ),
      u32.map(
        (v): F =>
          (b) =>
            b.u32(v),
      ),
      u64.map(
        (v): F =>
          (b) =>
            b.u64(v),
      ),
      fc.integer({ min: 0, max: 20 }).map(
        (v): F =>
          (b) =>
            b.u16(v),
      ),
      fc.integer({ min: 0, max: 255 }).map(
        (v): F =>
          (b) =>
            b.u8(v),
      ),
    );
    const types = fc.oneof(
      fc.constantFrom(...Object.values(P9).filter((t) => t % 2 === 0 && t !== P9.Tversion)),
      fc.integer({ min: 0, max: 255 }),
    );
    const message = fc.record({
      type: types,
      tag: fc.integer({ min: 0, max: 0xffff }),
      fields: fc.array(field, { maxLength: 8 }),
      mutate: fc.option(
        fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.nat(), lie: fc.boolean() }),
        { freq: 3 },
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (msgs) => {
        const { server } = await newSession();
        try {
          for (const m of msgs) {
            let bytes = msg(m.type, m.tag, (b) => {
              for (const f of m.fields) f(b);
            });
            if (m.mutate) {
              bytes = bytes.slice(0, Math.max(0, bytes.length - (m.mutate.cut % 4)));
              if (bytes.length > 0) bytes[m.mutate.at % bytes.length] = m.mutate.value;
              if (m.mutate.lie && bytes.length >= 4) new DataView(bytes.buffer).setUint32(0, m.mutate.at, true);
            }
            const reply = await server.handle(bytes);
            checkReply(bytes, reply, 16384);
          }
          expect(server.stats().internal).toBe(0);
          await server.handle(msg(P9.Tversion, NOTAG, (b) => b.u32(16384).str("9P2000.L")));
          expect(server.stats()).toMatchObject({ fids: 0, openFiles: 0, pathNodes: 0, dirEntriesHeld: 0 });
        } finally {
          await server.close();
        }
        expect(outsideState()).toBe(before);
      }),
      { numRuns: 150 },
    );
  }, 60_000);

  it("property: valid-shaped sessions with hostile names keep every host path inside the root", async () => {
    const before = outsideState();
    const name = fc.constantFrom("d", "f", "out", "sec", "..", ".", "new", "n2", "lnk", "../outside", "a/b");
    const op = fc.oneof(
      fc.tuple(
        fc.constant("walk"),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(name, { maxLength: 4 }),
      ),
      fc.tuple(fc.constant("create"), fc.integer({ min: 0, max: 4 }), name),
      fc.tuple(fc.constant("mkdir"), fc.integer({ min: 0, max: 4 }), name),
      fc.tuple(
        fc.constant("symlink"),
        fc.integer({ min: 0, max: 4 }),
        name,
        fc.constantFrom(outside, "../outside", "/", "f"),
      ),
      fc.tuple(
        fc.constant("open"),
        fc.integer({ min: 0, max: 4 }),
        fc.constantFrom(DOTL.RDONLY, DOTL.RDWR | DOTL.TRUNC, DOTL.WRONLY),
      ),
      fc.tuple(fc.constant("write"), fc.integer({ min: 0, max: 4 })),
      fc.tuple(fc.constant("trunc"), fc.integer({ min: 0, max: 4 })),
      fc.tuple(fc.constant("chmod"), fc.integer({ min: 0, max: 4 })),
      fc.tuple(fc.constant("rename"), fc.integer({ min: 0, max: 4 }), name, fc.integer({ min: 0, max: 4 }), name),
      fc.tuple(fc.constant("unlink"), fc.integer({ min: 0, max: 4 }), name, fc.boolean()),
      fc.tuple(fc.constant("remove"), fc.integer({ min: 0, max: 4 })),
      fc.tuple(fc.constant("link"), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), name),
      fc.tuple(fc.constant("clunk"), fc.integer({ min: 1, max: 4 })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        const { server, c } = await newSession();
        try {
          for (const o of ops) {
            const ignore = (p: Promise<unknown>) => p.catch((e) => expect(e).toHaveProperty("errno"));
            switch (o[0]) {
              case "walk":
                await ignore(c.walk(o[1], o[2], ...o[3]));
                break;
              case "create":
                await ignore(c.lcreate(o[1], o[2], DOTL.RDWR | DOTL.CREATE | DOTL.TRUNC, 0o666));
                break;
              case "mkdir":
                await ignore(c.mkdir(o[1], o[2], 0o777));
                break;
              case "symlink":
                await ignore(c.symlink(o[1], o[2], o[3]));
                break;
              case "open":
                await ignore(c.lopen(o[1], o[2]));
                break;
              case "write":
                await ignore(c.write(o[1], 0, "PWNED"));
                break;
              case "trunc":
                await ignore(c.setattr(o[1], { valid: 0x8, size: 0 }));
                break;
              case "chmod":
                await ignore(c.setattr(o[1], { valid: 0x1, mode: 0o777 }));
                break;
              case "rename":
                await ignore(c.renameat(o[1], o[2], o[3], o[4]));
                break;
              case "unlink":
                await ignore(c.unlinkat(o[1], o[2], o[3] ? 0x200 : 0));
                break;
              case "remove":
                await ignore(c.remove(o[1]));
                break;
              case "link":
                await ignore(c.link(o[1], o[2], o[3]));
                break;
              case "clunk":
                await ignore(c.clunk(o[1]));
                break;
            }
          }
          expect(server.stats().internal).toBe(0);
          // A new session releases everything the old one held.
          await c.version(16384);
          expect(server.stats()).toMatchObject({ fids: 0, openFiles: 0, pathNodes: 0, dirEntriesHeld: 0 });
        } finally {
          await server.close();
          rmSync(share, { recursive: true, force: true });
          mkdirSync(share);
          mkdirSync(join(share, "d"));
          writeFileSync(join(share, "d", "f"), "file");
          symlinkSync(outside, join(share, "out"));
          symlinkSync("../outside/secret", join(share, "d", "sec"));
        }
        expect(outsideState()).toBe(before);
      }),
      { numRuns: 150 },
    );
  }, 60_000);
});
