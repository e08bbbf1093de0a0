// Ethernet II framing (IEEE 802.3 with an EtherType >= 0x0600). The FCS is not
// carried: TAP devices, virtio-net and pcap all exclude it.
import { DropReason } from "../stats.js";

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETH_HEADER_LEN = 14;
/** Largest frame accepted: 1500-byte MTU + header + one VLAN tag, with headroom for jumbo-less TSO-free NICs. */
export const ETH_MAX_FRAME = 1522;

export interface EthernetFrame {
  /** Destination MAC (view into the frame). */
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
  readonly etherType: number;
  readonly payload: Uint8Array;
}

export function parseEthernet(frame: Uint8Array, maxLen = ETH_MAX_FRAME): EthernetFrame | DropReason {
  if (frame.length < ETH_HEADER_LEN) return DropReason.ETH_TOO_SHORT;
  if (frame.length > maxLen) return DropReason.ETH_TOO_LONG;
  const etherType = (frame[12]! << 8) | frame[13]!;
  if (etherType === ETHERTYPE_VLAN || etherType === 0x88a8) return DropReason.ETH_VLAN;
  if (etherType < 0x0600) return DropReason.ETH_UNKNOWN_TYPE; // 802.3 length field: LLC frames unsupported
  return {
    dst: frame.subarray(0, 6),
    src: frame.subarray(6, 12),
    etherType,
    payload: frame.subarray(ETH_HEADER_LEN),
  };
}

/** Writes an Ethernet header into `out` at 0 and returns `out`; the payload is expected at offset 14. */
export function writeEthernetHeader(out: Uint8Array, dst: Uint8Array, src: Uint8Array, etherType: number): Uint8Array {
  out.set(dst.subarray(0, 6), 0);
  out.set(src.subarray(0, 6), 6);
  out[12] = etherType >>> 8;
  out[13] = etherType & 255;
  return out;
}

export function buildEthernet(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(ETH_HEADER_LEN + payload.length);
  writeEthernetHeader(out, dst, src, etherType);
  out.set(payload, ETH_HEADER_LEN);
  return out;
}
