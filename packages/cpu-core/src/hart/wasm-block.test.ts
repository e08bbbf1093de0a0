// The WebAssembly back end's generator on its own: the byte writer's LEB128 against a BigInt
// reference, the bytes of three traces pinned (taken from the generator before its byte-writer
// rewrite, which had to keep them), and random code whose modules must validate.
import { describe, expect, it } from "vitest";
import { rng } from "../testing/rng.js";
import { ByteWriter, ulebSize } from "./byte-writer.js";
import { compressedTable } from "./compressed.js";
import { wasmApi } from "./wasm-api.js";
import { blockModule, type ChainInfo, dispatcherModule, generateWasm, type WasmLayout } from "./wasm-block.js";

if (wasmApi === undefined) throw new Error("no WebAssembly");
const api = wasmApi;

/** The bytes compile as a module (WebAssembly JS API §5.3: the constructor validates). */
function valid(bytes: Uint8Array): boolean {
  try {
    new api.Module(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Reference LEB128 (WebAssembly core 2.0 §5.2.2), on BigInts. */
function refUleb(v: bigint): number[] {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

function refSleb(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** FNV-1a (32-bit): pins a byte string without spelling it out. */
function fnv(b: ArrayLike<number>): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193) >>> 0;
  return h.toString(16);
}

describe("ByteWriter", () => {
  const unsigned = [0, 1, 63, 64, 127, 128, 255, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28, 2 ** 31 - 1];
  const more = [2 ** 31, 2 ** 31 + 8, 2 ** 32 - 1, 2 ** 32, 3 * 2 ** 31, 2 ** 35 - 1, 2 ** 35, 2 ** 52, 2 ** 53 - 1];

  it("writes unsigned LEB128 as the reference does, and ulebSize counts it", () => {
    for (const v of [...unsigned, ...more]) {
      const w = new ByteWriter(1);
      w.uleb(v);
      expect(Array.from(w.copy()), String(v)).toEqual(refUleb(BigInt(v)));
      expect(ulebSize(v), String(v)).toBe(w.pos);
    }
  });

  it("writes signed LEB128 as the reference does (int32, ±2^53, BigInt)", () => {
    const vals = [...unsigned, ...more].flatMap((v) => [v, -v, v - 1, -v - 1]);
    for (const v of vals) {
      const w = new ByteWriter(2);
      w.sleb(v);
      expect(Array.from(w.copy()), String(v)).toEqual(refSleb(BigInt(v)));
    }
    for (const v of [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 60n, -(2n ** 60n) - 1n, 0n, -1n]) {
      const w = new ByteWriter(1);
      w.slebBig(v);
      expect(Array.from(w.copy()), String(v)).toEqual(refSleb(v));
    }
  });

  it("grows past its capacity without losing bytes, and push writes 1..8 bytes in order", () => {
    const r = rng(7);
    const w = new ByteWriter(1);
    const want: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const n = 1 + Math.floor(r() * 8);
      const b = Array.from({ length: n }, () => Math.floor(r() * 256));
      w.push(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
      want.push(...b);
      if (i % 100 === 0) {
        const block = Uint8Array.from({ length: 300 }, (_, j) => (i + j) & 255);
        w.bytes(block);
        want.push(...block);
      }
    }
    expect(w.pos).toBe(want.length);
    expect(Array.from(w.copy())).toEqual(want);
    w.reset();
    w.byte(9);
    expect(Array.from(w.copy())).toEqual([9]);
  });
});

describe("generateWasm / blockModule", () => {
  // RAM 0..64 KiB, the hart's state above it (wasm-block.ts WasmLayout)
  const layout: WasmLayout = {
    memory: new api.Memory({ initial: 3 }),
    shared: false,
    pages: 3,
    xBase: 0x10000,
    ctlBase: 0x10100,
    cacheBase: 0x11000,
    fBase: 0x10200,
  };
  const ctab = compressedTable();

  function code(): Uint16Array {
    const u8 = new Uint8Array(4096);
    const dv = new DataView(u8.buffer);
    // 0x00 addi a0,a0,1; ld a1,8(a0); beqz a1,0x1c; div a2,a0,a1; divw a3,a0,a1; remu a4,a0,a1;
    // mulh a5,a0,a1; 0x1c sd a5,-16(sp); lui t0,0x12345; auipc t1,0; c.addi a0,3;
    // bne a0,a1,0x00 (back to the start); jalr t1
    const a = [0x00150513, 0x00853583, 0x00058a63, 0x02b54633, 0x02b546bb, 0x02b57733, 0x02b517b3];
    a.push(0xfef13823, 0x123452b7, 0x00000317);
    for (const [i, w] of a.entries()) dv.setUint32(4 * i, w, true);
    dv.setUint16(0x28, 0x050d, true);
    // 0x2a bne; jalr; 0x32 fld fa0,0(a0); fadd.d fa1,fa0,fa0; fmadd.d fa2,fa0,fa1,fa0;
    // fsgnjn.d fa3,fa2,fa1; fcvt.l.d a1,fa3,rtz; fmv.x.d a2,fa1; fle.d a3,fa0,fa1;
    // fsd fa2,8(a0); ecall
    const b = [0xfcb51be3, 0x000300e7, 0x00053507, 0x02a575d3, 0x52b57643, 0x22b616d3, 0xc22695d3];
    b.push(0xe2058653, 0xa2b506d3, 0x00c53427, 0x00000073);
    for (const [i, w] of b.entries()) dv.setUint32(0x2a + 4 * i, w, true);
    // 0x100 amoadd.w a0,a1,(a2); amomaxu.d a3,a4,(a5); amomin.w t0,t1,(t2); amoswap.d zero,a0,(sp); ecall
    const amo = [0x00b6252f, 0xe0e7b6af, 0x8063a2af, 0x08a1302f, 0x00000073];
    for (const [i, w] of amo.entries()) dv.setUint32(0x100 + 4 * i, w, true);
    return new Uint16Array(u8.buffer);
  }

  it("keeps the bytes of a looping integer trace, of a D trace and of an AMO trace", () => {
    const src = { u16: code(), ctab, magic: false };
    const a = generateWasm(0, src, layout);
    const b = generateWasm(0x32, src, layout);
    expect([a.len, a.fp, a.body?.length, fnv(a.body ?? [])]).toEqual([13, false, 623, "72d22442"]);
    expect([b.len, b.fp, b.body?.length, fnv(b.body ?? [])]).toEqual([8, false, 769, "23d06b8f"]);
    const amo = generateWasm(0x100, src, layout);
    expect([amo.len, amo.fp, amo.body?.length, fnv(amo.body ?? [])]).toEqual([4, false, 568, "6196330d"]);
    expect(valid(blockModule([amo.body ?? []], layout))).toBe(true);
    // the locals: 6 i32, 3 + 10 i64 (A, B, PC; ra, sp, t0, t1, a0..a5), 4 f64
    expect(a.body?.slice(0, 7)).toEqual([3, 6, 0x7f, 13, 0x7e, 4, 0x7c]);
    const m = blockModule([a.body ?? [], b.body ?? []], layout);
    expect([m.length, fnv(m), valid(m)]).toEqual([1601, "a5aca815", true]);
    const shared = blockModule([a.body ?? []], { ...layout, shared: true, pages: 200 });
    expect([shared.length, fnv(shared)]).toEqual([831, "491d4359"]);
    const d = dispatcherModule(layout, layout.cacheBase);
    expect([d.length, fnv(d), valid(d)]).toEqual([471, "1552d5c2", true]);
  });

  it("exports a batch's traces in a table of its own, in order, and nothing else", () => {
    const src = { u16: code(), ctab, magic: false };
    const bodies = [0, 0x32, 0x100].map((at) => generateWasm(at, src, layout).body ?? []);
    const inst = new api.Instance(new api.Module(blockModule(bodies, layout)), {
      e: { m: layout.memory, f: () => 0, c: () => 0 },
    });
    expect(Object.keys(inst.exports)).toEqual(["t"]);
    const t = inst.exports.t as { get(i: number): unknown; readonly length: number };
    expect(t.length).toBe(3);
    expect([0, 1, 2].map((i) => typeof t.get(i))).toEqual(["function", "function", "function"]);
    expect(() => t.get(3)).toThrow();
  });

  it("generates the same body again (no state left over from the last trace)", () => {
    const src = { u16: code(), ctab, magic: false };
    const first = generateWasm(0, src, layout).body;
    generateWasm(0x32, src, layout);
    generateWasm(0x1c, src, layout);
    expect(generateWasm(0, src, layout).body).toEqual(first);
  });

  it("random code: every module of the traces it finds validates", () => {
    const r = rng(2024);
    const u8 = new Uint8Array(1 << 16);
    const dv = new DataView(u8.buffer);
    // common major opcodes, with funct7 = 1 (M) or fmt D often enough, and compressed words
    const ops = [0x03, 0x07, 0x0f, 0x13, 0x17, 0x1b, 0x23, 0x27, 0x2f, 0x33, 0x37, 0x3b, 0x43, 0x53, 0x63, 0x67, 0x6f];
    for (let o = 0; o < u8.length; o += 4) {
      const w = Math.floor(r() * 2 ** 32);
      const k = r();
      if (k < 0.15) dv.setUint32(o, (w & ~3) | (k < 0.07 ? 1 : 2), true);
      else {
        let insn = (w & ~0x7f) | ops[Math.floor(r() * ops.length)];
        if (r() < 0.4) insn = (insn & ~(0x3f << 25)) | (1 << 25);
        if (r() < 0.3) insn &= 0x1fffffff;
        dv.setUint32(o, insn >>> 0, true);
      }
    }
    const src = { u16: new Uint16Array(u8.buffer), ctab, magic: false };
    const bodies: number[][] = [];
    const chains: ChainInfo[] = [];
    let traced = 0;
    // each trace followed by those at its exits' targets, so batches hold chained pairs
    const add = (off: number, follow: boolean): void => {
      const g = generateWasm(off, src, layout);
      if (g.body === undefined || bodies.length >= 256) return;
      traced += g.len;
      bodies.push(g.body);
      chains.push({ key: off, len: g.len, exits: g.exits });
      if (follow) for (const e of g.exits) add(off + e, false);
    };
    for (let off = 0; off < u8.length && bodies.length < 256; off += 6) add(off, true);
    expect(bodies.length).toBe(256);
    expect(traced).toBeGreaterThan(256);
    let linked = 0;
    for (let i = 0; i < bodies.length; i += 16) {
      const batch = chains.slice(i, i + 16);
      for (const ch of batch) for (const e of ch.exits) linked += batch.some((o) => o.key === ch.key + e) ? 1 : 0;
      expect(valid(blockModule(bodies.slice(i, i + 16), layout)), `batch ${i / 16}`).toBe(true);
      expect(valid(blockModule(bodies.slice(i, i + 16), layout, batch)), `batch ${i / 16}, chained`).toBe(true);
    }
    expect(linked).toBeGreaterThan(20); // 32: chained modules were validated
  });
});
