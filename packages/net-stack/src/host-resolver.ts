// The host's DNS resolver, from /etc/resolv.conf (node:fs; the package's
// "./node" entry).
import { readFileSync } from "node:fs";
import { parseResolvConf } from "./config.js";

/** The first IPv4 nameserver of the host's resolv.conf (port 53), or null. */
export function hostResolver(path = "/etc/resolv.conf"): { host: string; port: number } | null {
  try {
    const ns = parseResolvConf(readFileSync(path, "utf8"));
    return ns ? { host: ns, port: 53 } : null;
  } catch {
    return null;
  }
}
