// QEMU-style device specs on the command line: "FILE,key=value,flag". A
// comma inside a value is written ",," (as QEMU's option syntax). Parsed
// into @ringzero/platform's VmConfig pieces, validated by its zod schemas.
import {
  type DriveConfig,
  DriveConfigSchema,
  type NetConfig,
  NetConfigSchema,
  type ShareConfig,
  ShareConfigSchema,
} from "@ringzero/platform";
import type { z } from "zod";
import { DemoError, DemoErrorCode } from "./errors.js";

/** Splits "a,,b,c=d" into ["a,b", "c=d"]. */
export function splitSpec(spec: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i];
    if (ch === "," && spec[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (ch === ",") {
      parts.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts;
}

function usage(option: string, spec: string, why: string): never {
  throw new DemoError(DemoErrorCode.USAGE, { option, spec }, `--${option} ${spec}: ${why}`);
}

/** key=value and bare flags after the first field; on/off/yes/no/true/false for booleans. */
function options(option: string, spec: string, parts: string[], known: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of parts) {
    const eq = p.indexOf("=");
    const key = eq < 0 ? p : p.slice(0, eq);
    const value = eq < 0 ? "on" : p.slice(eq + 1);
    if (!known.includes(key)) usage(option, spec, `unknown key "${key}" (known: ${known.join(", ")})`);
    if (m.has(key) && key !== "hostfwd") usage(option, spec, `"${key}" given twice`);
    m.set(key, m.has(key) ? `${m.get(key)}\n${value}` : value);
  }
  return m;
}

function flag(option: string, spec: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (["on", "yes", "true"].includes(value)) return true;
  if (["off", "no", "false"].includes(value)) return false;
  return usage(option, spec, `"${value}" is not on or off`);
}

function check<T>(schema: z.ZodType<T>, option: string, spec: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    usage(option, spec, `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`);
  }
  return r.data as T;
}

/** `--drive FILE[,format=raw|qcow2|…][,readonly[=on|off]]` */
export function parseDrive(spec: string): DriveConfig {
  const [path, ...rest] = splitSpec(spec);
  if (!path) usage("drive", spec, "no file");
  const o = options("drive", spec, rest, ["format", "readonly", "if", "file"]);
  if (o.has("if") && o.get("if") !== "virtio") usage("drive", spec, "only if=virtio (virtio-blk) is available");
  return check(DriveConfigSchema, "drive", spec, {
    path,
    format: o.get("format") ?? "auto",
    readOnly: flag("drive", spec, o.get("readonly")),
  });
}

/** `--share DIR[,tag=T][,readonly]` */
export function parseShare(spec: string): ShareConfig {
  const [path, ...rest] = splitSpec(spec);
  if (!path) usage("share", spec, "no directory");
  const o = options("share", spec, rest, ["tag", "readonly"]);
  return check(ShareConfigSchema, "share", spec, {
    path,
    tag: o.get("tag"),
    readOnly: flag("share", spec, o.get("readonly")),
  });
}

/**
 * `--net none` or `--net user[,hostfwd=tcp:HOSTPORT-GUESTPORT]...[,restrict=on][,pcap=FILE][,mac=M]`.
 * hostfwd also takes QEMU's form `tcp:[127.0.0.1]:HOSTPORT-[GUESTADDR]:GUESTPORT` (only 127.0.0.1 on the host side).
 */
export function parseNet(spec: string): NetConfig {
  const [mode, ...rest] = splitSpec(spec);
  if (mode !== "user" && mode !== "none" && mode !== "socket")
    usage("net", spec, 'the mode is "user", "socket" or "none"');
  const o = options("net", spec, rest, ["hostfwd", "restrict", "pcap", "mac", "dns-upstream", "listen", "connect"]);
  if (mode === "none" && o.size > 0) usage("net", spec, "none takes no options");
  const hostfwd = (o.get("hostfwd")?.split("\n") ?? []).map((f) => {
    const m = /^(tcp|udp):(?:(127\.0\.0\.1)?:)?(\d+)-(?:(?:10\.0\.2\.15)?:)?(\d+)$/.exec(f);
    if (!m)
      return usage("net", spec, `hostfwd=${f}: expected tcp:HOSTPORT-GUESTPORT (or QEMU's tcp::HOSTPORT-:GUESTPORT)`);
    return { protocol: m[1], hostPort: Number(m[3]), guestPort: Number(m[4]) };
  });
  const up = o.get("dns-upstream");
  let dnsUpstream: { host: string; port: number } | undefined;
  if (up !== undefined) {
    const m = /^([0-9.]+)(?::(\d+))?$/.exec(up);
    if (!m) return usage("net", spec, `dns-upstream=${up}: expected IPV4[:PORT]`);
    dnsUpstream = { host: m[1] as string, port: m[2] === undefined ? 53 : Number(m[2]) };
  }
  return check(NetConfigSchema, "net", spec, {
    mode,
    hostfwd,
    restrict: flag("net", spec, o.get("restrict")),
    pcap: o.get("pcap"),
    mac: o.get("mac"),
    dnsUpstream,
    listen: o.get("listen"),
    connect: o.get("connect"),
  });
}
