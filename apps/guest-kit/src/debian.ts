// Debian archive access: the mirror from the machine's own apt sources, a
// signed Release file (InRelease, checked with gpgv against the Debian
// archive keyring), the Packages index verified against Release, and a .deb
// verified against Packages. Nothing here names a host: the mirror is read at
// run time.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { GuestKitError, GuestKitErrorCode } from "./errors.js";

export const DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** Parses apt sources (one-line `.list` and deb822 `.sources`) into the `deb` mirror URIs, in order. */
export function parseAptSources(files: readonly { name: string; text: string }[]): { uri: string; suites: string[] }[] {
  const out: { uri: string; suites: string[] }[] = [];
  for (const f of files) {
    if (f.name.endsWith(".sources")) {
      for (const stanza of f.text.split(/\n\s*\n/)) {
        const fields = parseDeb822Stanza(stanza);
        if (fields.get("Enabled")?.toLowerCase() === "no") continue;
        if (!(fields.get("Types") ?? "").split(/\s+/).includes("deb")) continue;
        const suites = (fields.get("Suites") ?? "").split(/\s+/).filter(Boolean);
        for (const uri of (fields.get("URIs") ?? "").split(/\s+/).filter(Boolean)) out.push({ uri, suites });
      }
    } else {
      for (const raw of f.text.split("\n")) {
        const line = raw.replace(/#.*/, "").trim();
        // deb [opt=val ...] uri suite [component...]
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m) out.push({ uri: m[1], suites: [m[2]] });
      }
    }
  }
  return out;
}

/** Reads /etc/apt/sources.list and sources.list.d/*.{list,sources}. */
export function readAptSources(root = "/etc/apt"): { name: string; text: string }[] {
  const files: { name: string; text: string }[] = [];
  const main = join(root, "sources.list");
  if (existsSync(main)) files.push({ name: main, text: readFileSync(main, "utf8") });
  const d = join(root, "sources.list.d");
  if (existsSync(d)) {
    for (const n of readdirSync(d).sort()) {
      if (n.endsWith(".list") || n.endsWith(".sources"))
        files.push({ name: join(d, n), text: readFileSync(join(d, n), "utf8") });
    }
  }
  return files;
}

/**
 * The main Debian archive among the sources: an http(s) mirror whose suites
 * are a Debian release (not -security, -updates or -backports), as apt itself
 * uses it for the host's packages.
 */
export function debianMirror(sources: readonly { uri: string; suites: string[] }[]): string {
  const main = sources.find(
    (s) => /^https?:\/\//.test(s.uri) && s.suites.some((x) => /^[a-z]+$/.test(x)) && !/security/.test(s.uri),
  );
  if (!main) throw new GuestKitError(GuestKitErrorCode.APT_SOURCE_MISSING, { sources: sources.map((s) => s.uri) });
  return main.uri.replace(/\/+$/, "");
}

/** Parses one RFC 822-style stanza (continuation lines start with a space). */
export function parseDeb822Stanza(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    if (/^[ \t]/.test(line) && last !== undefined) {
      fields.set(last, `${fields.get(last)}\n${line.trim()}`);
      continue;
    }
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*):\s*(.*)$/.exec(line);
    if (m) {
      last = m[1];
      fields.set(m[1], m[2].trim());
    }
  }
  return fields;
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export interface ReleaseInfo {
  readonly suite: string;
  readonly codename: string;
  /** path -> { sha256, size } from the SHA256 field. */
  readonly sha256: ReadonlyMap<string, { sha256: string; size: number }>;
}

/** Parses a (verified) Release text. Debian Policy / apt's "Debian Repository Format". */
export function parseRelease(text: string): ReleaseInfo {
  const fields = parseDeb822Stanza(text);
  const codename = fields.get("Codename");
  const suite = fields.get("Suite");
  const sums = fields.get("SHA256");
  if (!codename || !suite || !sums) {
    throw new GuestKitError(GuestKitErrorCode.INDEX_MALFORMED, {
      what: "Release",
      missing: ["Codename", "Suite", "SHA256"].filter((k) => !fields.get(k)),
    });
  }
  const sha256 = new Map<string, { sha256: string; size: number }>();
  for (const line of sums.split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    const [h, size, path] = parts;
    if (!hex64.safeParse(h).success || !/^\d{1,15}$/.test(size)) continue;
    sha256.set(path, { sha256: h, size: Number(size) });
  }
  return { suite, codename, sha256 };
}

const packageEntry = z.object({
  Package: z.string().min(1),
  Version: z.string().min(1),
  Architecture: z.string().min(1),
  Filename: z
    .string()
    .regex(/^pool\/[A-Za-z0-9+_.~/-]+\.deb$/)
    .refine((s) => !s.split("/").includes(".."), "no .. in Filename"),
  Size: z
    .string()
    .regex(/^\d{1,12}$/)
    .transform(Number),
  SHA256: hex64,
});
export type PackageEntry = z.infer<typeof packageEntry>;

/** Finds one package's stanza in a Packages index (the highest-listed first match). */
export function findPackage(packagesText: string, name: string): PackageEntry {
  for (const stanza of packagesText.split(/\n\n+/)) {
    if (!stanza.startsWith(`Package: ${name}\n`)) continue;
    const parsed = packageEntry.safeParse(Object.fromEntries(parseDeb822Stanza(stanza)));
    if (!parsed.success) {
      throw new GuestKitError(
        GuestKitErrorCode.INDEX_MALFORMED,
        { what: "Packages", package: name },
        parsed.error.message,
      );
    }
    return parsed.data;
  }
  throw new GuestKitError(
    GuestKitErrorCode.INDEX_MALFORMED,
    { what: "Packages", package: name },
    "package not in index",
  );
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Checks size and SHA-256 against an index entry. */
export function verifyHash(data: Uint8Array, want: { sha256: string; size: number }, what: string): void {
  const got = sha256Hex(data);
  if (data.length !== want.size || got !== want.sha256) {
    throw new GuestKitError(GuestKitErrorCode.HASH_MISMATCH, {
      what,
      wantSize: want.size,
      gotSize: data.length,
      want: want.sha256,
      got,
    });
  }
}

/** Downloads a URL into memory, refusing more than `maxBytes`. */
export async function download(url: string, maxBytes: number): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  } catch (e) {
    throw new GuestKitError(GuestKitErrorCode.DOWNLOAD_FAILED, { url }, (e as Error).message);
  }
  if (!res.ok || !res.body) throw new GuestKitError(GuestKitErrorCode.DOWNLOAD_FAILED, { url, status: res.status });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > maxBytes) throw new GuestKitError(GuestKitErrorCode.DOWNLOAD_FAILED, { url, maxBytes }, "too large");
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
