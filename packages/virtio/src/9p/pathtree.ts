// The server's view of the names its fids refer to: a tree of path nodes
// shared by all fids (like the kernel's dentries). A rename moves one node,
// so every fid below it follows the file as Linux expects; unlink and a
// rename over an existing name detach the victim's node so its fids no
// longer resolve to whatever takes the name next.
import { fail } from "./errno.js";
import type { Loc } from "./host.js";

const keyOf = (name: Uint8Array): string =>
  Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("latin1");

export class PathNode {
  readonly children = new Map<string, PathNode>();
  /** Fids referencing this node. */
  refs = 0;
  detached = false;
  constructor(
    public name: Buffer,
    public parent: PathNode | null,
    public depth: number,
  ) {}

  /** Names from the root to this node; ENOENT when the node (or an ancestor) was unlinked. */
  loc(): Loc {
    const names: Buffer[] = [];
    for (let n: PathNode | null = this; n?.parent; n = n.parent) {
      if (n.detached) fail("ENOENT", "file was removed or replaced");
      names.push(n.name);
    }
    return names.reverse();
  }

  isRoot(): boolean {
    return this.parent === null;
  }
}

export class PathTree {
  readonly root = new PathNode(Buffer.alloc(0), null, 0);
  /** Nodes besides the root (bounded by the server: a guest could otherwise pin memory). */
  size = 0;

  /** The child node `name` of `parent`, created on demand (not referenced yet). */
  child(parent: PathNode, name: Uint8Array): PathNode {
    const key = keyOf(name);
    let c = parent.children.get(key);
    if (c === undefined) {
      c = new PathNode(Buffer.from(name), parent, parent.depth + 1);
      parent.children.set(key, c);
      this.size++;
    }
    return c;
  }

  acquire(n: PathNode): PathNode {
    n.refs++;
    return n;
  }

  /** Drop one fid reference and prune nodes nothing refers to any more. */
  release(n: PathNode): void {
    n.refs--;
    this.prune(n);
  }

  /** Remove unreferenced leaf nodes upwards (nodes made by child() but never acquired too). */
  prune(start: PathNode): void {
    let n: PathNode | null = start;
    while (n?.parent && n.refs <= 0 && n.children.size === 0) {
      const p: PathNode = n.parent;
      if (p.children.get(keyOf(n.name)) === n) {
        p.children.delete(keyOf(n.name));
        this.size--;
      }
      n = p;
    }
  }

  /** The name `name` in `dir` no longer denotes the file its node's fids refer to. */
  detach(dir: PathNode, name: Uint8Array): void {
    const key = keyOf(name);
    const c = dir.children.get(key);
    if (c === undefined) return;
    dir.children.delete(key);
    c.detached = true;
    this.size--;
  }

  /** Host rename succeeded: move the node (and all fids below it); detach what was at the target. */
  move(srcDir: PathNode, srcName: Uint8Array, dstDir: PathNode, dstName: Uint8Array): void {
    const sk = keyOf(srcName);
    const dk = keyOf(dstName);
    if (srcDir === dstDir && sk === dk) return;
    const node = srcDir.children.get(sk);
    this.detach(dstDir, dstName);
    if (node === undefined) return;
    srcDir.children.delete(sk);
    node.name = Buffer.from(dstName);
    node.parent = dstDir;
    dstDir.children.set(dk, node);
    const redepth = (n: PathNode): void => {
      for (const c of n.children.values()) {
        c.depth = n.depth + 1;
        redepth(c);
      }
    };
    node.depth = dstDir.depth + 1;
    redepth(node);
    this.prune(srcDir);
  }
}
