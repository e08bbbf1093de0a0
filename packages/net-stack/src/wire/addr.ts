// MAC and IPv4 address helpers. MACs travel as 6-byte arrays and are keyed as
// lower-case "aa:bb:cc:dd:ee:ff" strings; IPv4 addresses are unsigned 32-bit numbers.

export type Ipv4 = number;

export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export function macToString(b: Uint8Array, off = 0): string {
  let s = "";
  for (let i = 0; i < 6; i++) {
    const v = b[off + i] ?? 0;
    s += (i ? ":" : "") + (v < 16 ? "0" : "") + v.toString(16);
  }
  return s;
}

/** Parses "aa:bb:cc:dd:ee:ff"; returns null when malformed. */
export function parseMac(s: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(s);
  if (!m) return null;
  return Uint8Array.from(m.slice(1, 7).map((h) => Number.parseInt(h, 16)));
}

export function isBroadcastMac(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 6; i++) if (b[off + i] !== 0xff) return false;
  return true;
}

/** Group bit (I/G) of the first octet: multicast or broadcast. */
export function isMulticastMac(b: Uint8Array, off = 0): boolean {
  return ((b[off] ?? 0) & 1) === 1;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[i]) return false;
  return true;
}

export function ipToString(ip: Ipv4): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Parses dotted-quad IPv4; returns null when malformed. */
export function parseIpv4(s: string): Ipv4 | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    v = v * 256 + o;
  }
  return v >>> 0;
}

export function readIpv4(b: Uint8Array, off: number): Ipv4 {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function writeIpv4(b: Uint8Array, off: number, ip: Ipv4): void {
  b[off] = ip >>> 24;
  b[off + 1] = (ip >>> 16) & 255;
  b[off + 2] = (ip >>> 8) & 255;
  b[off + 3] = ip & 255;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function inSubnet(ip: Ipv4, net: Ipv4, prefix: number): boolean {
  const m = prefixMask(prefix);
  return (ip & m) >>> 0 === (net & m) >>> 0;
}

/** QEMU slirp's convention for the virtual hosts' MACs: 52:55 followed by the IPv4 address. */
export function slirpMac(ip: Ipv4): Uint8Array {
  const m = new Uint8Array(6);
  m[0] = 0x52;
  m[1] = 0x55;
  writeIpv4(m, 2, ip);
  return m;
}
