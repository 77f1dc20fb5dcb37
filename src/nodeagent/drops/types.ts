// What the DropTail parsers share beyond the drop record itself (which is in src/apis/drops.ts):
// the protocol names of bare numbers, skip reasons and parse results.
import type { PacketDrop, Protocol } from '../../apis/drops.js';

/** Names for the IP protocol numbers that the kernel logs as `PROTO=<n>`. */
export const PROTOCOL_NAMES: Readonly<Record<number, Protocol>> = {
  1: 'ICMP',
  2: 'IGMP',
  4: 'IPIP',
  6: 'TCP',
  17: 'UDP',
  41: 'IPv6',
  47: 'GRE',
  50: 'ESP',
  51: 'AH',
  58: 'ICMPv6',
  89: 'OSPF',
  103: 'PIM',
  112: 'VRRP',
  132: 'SCTP',
  136: 'UDPLITE',
};

/** Reasons a line or packet is skipped; also the `reason` label of the skipped metrics. */
export type SkipReason =
  | 'empty' // blank line
  | 'too-long' // longer than any kernel log line can be
  | 'not-a-drop' // no "IN=... OUT=" netfilter anchor
  | 'no-prefix' // a netfilter line without any log prefix while prefixes are configured
  | 'unknown-prefix' // a netfilter line whose prefix is not one of the configured ones
  | 'truncated' // the line/packet ends before SRC/DST/PROTO
  | 'bad-address' // SRC/DST is not an IP address
  | 'not-ip' // a netfilter line of a packet that is neither IP nor ARP (e.g. only MAC=)
  | 'bad-json' // a journald entry that is not JSON / has no MESSAGE
  | 'not-kernel' // a journald entry that was not written by the kernel
  | 'short-header' // NFLOG: shorter than its 4-byte header
  | 'bad-tlv' // NFLOG: a TLV length that is too small or runs past the end
  | 'no-payload' // NFLOG: no NFULA_PAYLOAD
  | 'bad-ip-version' // NFLOG: payload is not IPv4/IPv6
  | 'malformed'; // NFLOG: an IP header field that cannot be (IHL < 5)

export type ParseResult = { ok: true; drop: PacketDrop } | { ok: false; reason: SkipReason; line: string };

export type DecodeResult = { ok: true; drop: PacketDrop } | { ok: false; reason: SkipReason };
