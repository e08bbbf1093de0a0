// A static server for the page on 127.0.0.1, cross-origin isolated (COOP
// same-origin + COEP require-corp, so the page may use SharedArrayBuffer:
// HTML "cross-origin isolation"), with the Linux guest kit under /kit/.
import { createReadStream, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".elf": "application/octet-stream",
  ".gz": "application/octet-stream",
  ".qcow2": "application/octet-stream",
};

/** What the page needs from the server, for every response. */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
} as const;

export interface ServeOptions {
  /** The built page (dist/www). */
  readonly www: string;
  /** The Linux guest kit's directory (Image, initramfs.cpio.gz), served under /kit/. */
  readonly kitDir?: string;
  /** 0 (default) takes any free port. */
  readonly port?: number;
}

export interface Served {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** The file for a request path, or undefined (outside the roots, or no such file). */
export function resolveRequest(pathname: string, o: ServeOptions): string | undefined {
  let p: string;
  try {
    p = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (p.includes("\0")) return undefined;
  const kit = p.startsWith("/kit/") && o.kitDir !== undefined;
  const root = kit ? (o.kitDir as string) : o.www;
  const rel = normalize(kit ? p.slice("/kit".length) : p === "/" ? "/index.html" : p);
  const file = join(root, rel);
  if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
  try {
    return statSync(file).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One byte range of a `Range: bytes=...` header (RFC 9110 §14.1.2: first-last,
 * first-, or -suffix) against a file of `size` bytes: the inclusive range,
 * "unsatisfiable" (416), or undefined to answer with the whole file
 * (a header that is absent, not bytes, or several ranges; §14.2 lets a
 * server ignore Range).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

export function servePage(o: ServeOptions): Promise<Served> {
  const server = createServer((req, res) => {
    for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
    res.setHeader("Cache-Control", "no-store");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    const file = resolveRequest(new URL(req.url ?? "/", "http://127.0.0.1").pathname, o);
    if (file === undefined) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      return;
    }
    // Range requests, so a disk image can be read lazily from a URL (disk-formats' HttpRangeStore).
    const size = statSync(file).size;
    const type = TYPES[extname(file)] ?? "application/octet-stream";
    res.setHeader("Accept-Ranges", "bytes");
    const range = parseRange(req.headers.range, size);
    if (range === "unsatisfiable") {
      res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      return;
    }
    if (range) {
      res.writeHead(206, {
        "Content-Type": type,
        "Content-Length": range.end - range.start + 1,
        "Content-Range": `bytes ${range.start}-${range.end}/${size}`,
      });
    } else res.writeHead(200, { "Content-Type": type, "Content-Length": size });
    if (req.method === "HEAD") res.end();
    else createReadStream(file, range ?? {}).pipe(res);
  });
  return new Promise((done, fail) => {
    server.once("error", fail);
    server.listen(o.port ?? 0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      done({
        url: `http://127.0.0.1:${port}/`,
        server,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
