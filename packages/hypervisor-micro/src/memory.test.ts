// Grants as they cross to another thread of the grantee partition: the copy
// checks the same bounds and sees the same revoke.
import { describe, expect, it } from "vitest";
import { GrantedMemory, type GrantTransfer } from "./memory.js";

function grant(): GrantTransfer {
  return {
    id: 7,
    owner: 2,
    gpa: 0x8000_0000,
    size: 2 * 4096,
    writable: true,
    buffer: new SharedArrayBuffer(4 * 4096),
    bufferOffset: 4096,
    revoked: new SharedArrayBuffer(4),
  };
}

describe("GrantedMemory.transfer", () => {
  it("rebuilds the same checked window, revoke included", () => {
    const t = grant();
    const a = new GrantedMemory(t);
    const b = new GrantedMemory(structuredClone(a.transfer()));
    expect(b.write(0x8000_1ffc, Uint8Array.of(1, 2, 3, 4))).toBe(true);
    expect(a.read(0x8000_1ffc, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(new Uint8Array(t.buffer)[4096 + 0x1ffc]).toBe(1); // the grant's pages, at its offset
    expect(b.view(0x8000_1ffd, 4)).toBeUndefined(); // one byte past the grant
    expect(b.view(0x7fff_ffff, 1)).toBeUndefined();
    Atomics.store(new Int32Array(t.revoked), 0, 1);
    expect(b.revoked).toBe(true);
    expect(b.read(0x8000_0000, 1)).toBeUndefined();
    expect(b.write(0x8000_0000, Uint8Array.of(9))).toBe(false);
  });
});
