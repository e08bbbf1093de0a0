// Parses QEMU-style `-netdev user` / `--net user` option strings into a
// UserNet configuration, e.g. "user,hostfwd=tcp::2222-:22,restrict=on,pcap=net.pcap".
// Accepted keys (QEMU names): net, host, dns, dhcpstart, restrict, hostfwd
// (repeatable; "tcp:HOSTPORT-GUESTPORT" or QEMU's "tcp:[hostaddr]:hostport-[guestaddr]:guestport"),
// plus pcap=FILE. Anything else is rejected. As in QEMU's option syntax, ","
// inside a value is written ",,"; net= takes ADDR/PREFIX, ADDR/MASK or a bare
// ADDR (a /24), and the addresses not given are derived from it as QEMU does
// (net=10.0.3.0/24 → host 10.0.3.2, dns 10.0.3.3, dhcpstart 10.0.3.15).
import { parseUserNetConfig, type UserNetConfig, type UserNetConfigInput } from "./config.js";
import { NetError, NetErrorCode } from "./errors.js";
import { parseIpv4, prefixMask } from "./wire/addr.js";

export interface NetdevUser {
  readonly config: UserNetConfig;
  /** Capture file requested with pcap=FILE. */
  readonly pcap?: string;
}

type Forward = NonNullable<UserNetConfigInput["hostForwards"]>[number];

export function parseNetdevUser(spec: string): NetdevUser {
  const fail = (detail: string): never => {
    throw new NetError(NetErrorCode.CONFIG_INVALID, { spec }, detail);
  };
  const parts = splitQemuOpts(spec);
  if (parts[0] !== "user") fail('must start with "user"');
  const input: { -readonly [K in keyof UserNetConfigInput]: UserNetConfigInput[K] } = {};
  const forwards: Forward[] = [];
  let pcap: string | undefined;
  for (const part of parts.slice(1)) {
    const eq = part.indexOf("=");
    if (eq <= 0) fail(`option without a value: ${part}`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    switch (key) {
      case "net":
        input.network = qemuNetwork(value) ?? fail(`net=${value}: expected ADDR/PREFIX, ADDR/MASK or ADDR`);
        break;
      case "host":
        input.gateway = value;
        break;
      case "dns":
        input.dns = value;
        break;
      case "dhcpstart":
        input.dhcpStart = value;
        break;
      case "restrict":
        if (value !== "on" && value !== "off" && value !== "yes" && value !== "no") fail(`restrict=${value}`);
        input.restrict = value === "on" || value === "yes";
        break;
      case "pcap":
        if (!value) fail("empty pcap file name");
        pcap = value;
        break;
      case "hostfwd":
        forwards.push(parseHostfwd(value, fail));
        break;
      default:
        fail(`unknown option ${key}`);
    }
  }
  if (forwards.length) input.hostForwards = forwards;
  const config = parseUserNetConfig(input);
  return pcap === undefined ? { config } : { config, pcap };
}

/** Splits QEMU option text at "," where ",," is a literal comma: "a,,b,c=d" → ["a,b", "c=d"]. */
export function splitQemuOpts(spec: string): string[] {
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

/** QEMU's net= forms as CIDR: "10.0.3.0/24", "10.0.3.0/255.255.255.0", "10.0.3.0" (a /24); null when malformed. */
function qemuNetwork(value: string): string | null {
  const [addr, mask] = value.split("/", 2) as [string, string | undefined];
  if (parseIpv4(addr) === null) return null;
  if (mask === undefined) return `${addr}/24`;
  if (/^\d{1,2}$/.test(mask)) return Number(mask) <= 32 ? `${addr}/${mask}` : null;
  const m = parseIpv4(mask);
  if (m === null) return null;
  const prefix = 32 - Math.log2(((~m >>> 0) + 1) >>> 0 || 2 ** 32);
  return Number.isInteger(prefix) && prefixMask(prefix) === m ? `${addr}/${prefix}` : null;
}

function parseHostfwd(v: string, fail: (d: string) => never): Forward {
  // QEMU: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport; short form tcp:HOSTPORT-GUESTPORT.
  const m =
    /^(tcp|udp):(?:([0-9.]*):)?(\d{1,5})-(?:([0-9.]*):)?(\d{1,5})$/.exec(v) ??
    fail(`hostfwd=${v}: expected tcp:HOSTPORT-GUESTPORT`);
  const f: { -readonly [K in keyof Forward]: Forward[K] } = {
    protocol: m[1] as "tcp" | "udp",
    hostPort: Number(m[3]),
    guestPort: Number(m[5]),
  };
  if (m[2]) f.hostAddress = m[2];
  if (m[4]) f.guestAddress = m[4];
  return f;
}
