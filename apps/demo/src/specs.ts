// QEMU-style device specs on the command line: "FILE,key=value,flag", or
// QEMU's own spellings ("file=FILE,format=…" for -drive, "local,path=DIR,
// mount_tag=T" for -virtfs). A comma inside a value is written ",," (split
// by @ringzero/net-stack's splitQemuOpts, the parser behind its -netdev user
// syntax too). Parsed into @ringzero/platform's VmConfig pieces, validated
// by its zod schemas.
import { NetError, parseNetdevUser, splitQemuOpts } from "@ringzero/net-stack";
import {
  type DriveConfig,
  DriveConfigSchema,
  type NetConfig,
  NetConfigSchema,
  type ShareConfig,
  ShareConfigSchema,
} from "@ringzero/platform";
import type * as z from "zod/mini";
import { DemoError, DemoErrorCode } from "./errors.js";

/** Splits "a,,b,c=d" into ["a,b", "c=d"] (QEMU's option syntax). */
export const splitSpec = splitQemuOpts;

/**
 * The leading value of a spec and its key=value options: "FILE,k=v" → FILE;
 * in QEMU's form the value is a key ("file=FILE,k=v"), so a first field that
 * is `KEY=…` with KEY one of `valueKeys` is an option like the others.
 */
function leading(parts: string[], valueKeys: readonly string[]): { value: string | undefined; rest: string[] } {
  const [first = "", ...rest] = parts;
  const eq = first.indexOf("=");
  if (eq > 0 && valueKeys.includes(first.slice(0, eq))) return { value: undefined, rest: parts };
  return { value: first, rest };
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

function check<T>(schema: z.ZodMiniType<T>, option: string, spec: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    usage(option, spec, `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`);
  }
  return r.data as T;
}

/** `--drive FILE[,format=raw|qcow2|…][,readonly[=on|off]]`, or QEMU's `--drive file=FILE,format=…,if=virtio[,media=disk]` */
export function parseDrive(spec: string): DriveConfig {
  const { value, rest } = leading(splitSpec(spec), ["file", "format", "if", "readonly", "media"]);
  const o = options("drive", spec, rest, ["format", "readonly", "if", "file", "media"]);
  if (value !== undefined && o.has("file")) usage("drive", spec, "the file is given twice (FILE and file=)");
  const path = value ?? o.get("file");
  if (!path) usage("drive", spec, "no file");
  if (o.has("if") && o.get("if") !== "virtio") usage("drive", spec, "only if=virtio (virtio-blk) is available");
  if (o.has("media") && o.get("media") !== "disk") usage("drive", spec, "only media=disk is available");
  return check(DriveConfigSchema, "drive", spec, {
    path,
    format: o.get("format") ?? "auto",
    readOnly: flag("drive", spec, o.get("readonly")),
  });
}

/** `--share DIR[,tag=T][,readonly]`, or QEMU's -virtfs spelling `--share local,path=DIR,mount_tag=T[,readonly=on]` */
export function parseShare(spec: string): ShareConfig {
  const parts = splitSpec(spec);
  const qemu = parts[0] === "local" && parts.slice(1).some((p) => p.startsWith("path="));
  const { value, rest } = leading(qemu ? parts.slice(1) : parts, ["path", "tag", "mount_tag", "readonly"]);
  const o = options("share", spec, rest, ["tag", "readonly", "path", "mount_tag"]);
  if (value !== undefined && o.has("path")) usage("share", spec, "the directory is given twice (DIR and path=)");
  if (o.has("tag") && o.has("mount_tag")) usage("share", spec, "tag and mount_tag are the same key");
  const path = value ?? o.get("path");
  if (!path) usage("share", spec, "no directory");
  return check(ShareConfigSchema, "share", spec, {
    path,
    tag: o.get("tag") ?? o.get("mount_tag"),
    readOnly: flag("share", spec, o.get("readonly")),
  });
}

/** QEMU's user-network addresses (net=, host=, dns=, dhcpstart=), read and derived by @ringzero/net-stack's parseNetdevUser. */
function userAddresses(spec: string, o: Map<string, string>) {
  const keys = ["net", "host", "dns", "dhcpstart"].filter((k) => o.has(k));
  const given = keys.map((k) => `${k}=${(o.get(k) as string).replaceAll(",", ",,")}`);
  try {
    const { config } = parseNetdevUser(["user", ...given].join(","));
    return { network: config.network, gateway: config.gateway, dns: config.dns, dhcpStart: config.dhcpStart, keys };
  } catch (e) {
    if (!(e instanceof NetError)) throw e;
    const issues = (e.context.issues as string[] | undefined)?.join("; ");
    return usage("net", spec, issues ?? e.message);
  }
}

/**
 * `--net none` or `--net user[,hostfwd=tcp:HOSTPORT-GUESTPORT]...[,restrict=on][,pcap=FILE][,mac=M]
 * [,net=ADDR/PREFIX][,host=IP][,dns=IP][,dhcpstart=IP]` (QEMU's keys; a network alone brings .2/.3/.15).
 * hostfwd also takes QEMU's form `tcp:[127.0.0.1]:HOSTPORT-[GUESTADDR]:GUESTPORT` (only 127.0.0.1 on the host
 * side; the guest address, when given, is the first DHCP address).
 */
export function parseNet(spec: string): NetConfig {
  const [mode, ...rest] = splitSpec(spec);
  if (mode !== "user" && mode !== "none" && mode !== "socket")
    usage("net", spec, 'the mode is "user", "socket" or "none"');
  const o = options("net", spec, rest, [
    "hostfwd",
    "restrict",
    "pcap",
    "mac",
    "dns-upstream",
    "listen",
    "connect",
    "net",
    "host",
    "dns",
    "dhcpstart",
  ]);
  if (mode === "none" && o.size > 0) usage("net", spec, "none takes no options");
  const addresses = userAddresses(spec, o);
  if (mode === "socket" && addresses.keys.length > 0)
    usage("net", spec, `${addresses.keys.join(", ")}: belongs to the user mode (the switch's owner)`);
  const hostfwd = (o.get("hostfwd")?.split("\n") ?? []).map((f) => {
    const m = /^(tcp|udp):(?:(127\.0\.0\.1)?:)?(\d+)-(?:([0-9.]*):)?(\d+)$/.exec(f);
    if (!m)
      return usage("net", spec, `hostfwd=${f}: expected tcp:HOSTPORT-GUESTPORT (or QEMU's tcp::HOSTPORT-:GUESTPORT)`);
    if (m[4] && m[4] !== addresses.dhcpStart)
      return usage("net", spec, `hostfwd=${f}: the guest address is the first DHCP address, ${addresses.dhcpStart}`);
    return { protocol: m[1], hostPort: Number(m[3]), guestPort: Number(m[5]) };
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
    ...(addresses.keys.length > 0
      ? { network: addresses.network, gateway: addresses.gateway, dns: addresses.dns, dhcpStart: addresses.dhcpStart }
      : {}),
    listen: o.get("listen"),
    connect: o.get("connect"),
  });
}
