// Parses QEMU-style `-netdev user` / `--net user` option strings into a
// UserNet configuration, e.g. "user,hostfwd=tcp::2222-:22,restrict=on,pcap=net.pcap".
// Accepted keys (QEMU names): net, host, dns, dhcpstart, restrict, hostfwd
// (repeatable; "tcp:HOSTPORT-GUESTPORT" or QEMU's "tcp:[hostaddr]:hostport-[guestaddr]:guestport"),
// plus pcap=FILE. Anything else is rejected.
import { parseUserNetConfig, type UserNetConfig, type UserNetConfigInput } from "./config.js";
import { NetError, NetErrorCode } from "./errors.js";

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
  const parts = spec.split(",");
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
        input.network = value;
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
