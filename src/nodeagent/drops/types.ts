// Shared shapes of the DropTail parsers: one PacketDrop per logged packet, whether it came from a
// kernel LOG / nftables `log` line (kernellog.ts) or from an NFLOG packet (nflog.ts).
//
// Everything is plain JSON data (no Date, no Buffer, no bigint) so a drop can be written as one JSON
// line, sent over the wire or compared with deep equality. `dropKey()` gives the aggregation key.

/** Where `PacketDrop.time` came from. */
export type TimeSource =
  | 'rfc3339' // RFC 3339 / ISO 8601 header (rsyslog high precision, journalctl -o short-iso, kube-iptables-tailer input)
  | 'syslog' // classic BSD syslog header "Sep  3 11:38:30" (year inferred, local time zone)
  | 'dmesg' // "[  957.705811]" or /dev/kmsg microseconds since boot, converted with the boot time
  | 'dmesg-ctime' // dmesg -T "[Tue Sep  3 11:38:30 2024]"
  | 'journal' // journald __REALTIME_TIMESTAMP
  | 'nflog' // NFULA_TIMESTAMP of an NFLOG packet
  | 'received'; // no time in the input: the time the line/packet was received

export type AddressFamily = 'ipv4' | 'ipv6';

/** TCP flags in the order the kernel prints them. */
export type TcpFlag = 'AE' | 'CWR' | 'ECE' | 'URG' | 'ACK' | 'PSH' | 'RST' | 'SYN' | 'FIN';
export const TCP_FLAG_ORDER: readonly TcpFlag[] = ['AE', 'CWR', 'ECE', 'URG', 'ACK', 'PSH', 'RST', 'SYN', 'FIN'];

/**
 * Protocol names: the kernel's own words (TCP, UDP, UDPLITE, ICMP, ICMPv6, AH, ESP) plus names for
 * the numbers it prints bare (SCTP, GRE, ...; see PROTOCOL_NAMES); any other protocol is its decimal
 * number as a string. ARP is used for arptables / nft arp-family lines.
 */
export type Protocol = 'TCP' | 'UDP' | 'UDPLITE' | 'ICMP' | 'ICMPv6' | 'SCTP' | 'AH' | 'ESP' | 'GRE' | 'ARP' | (string & {});

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

/** The header of the packet quoted inside an ICMP/ICMPv6 error (`[SRC=... DST=... ...]`). */
export interface InnerPacket {
  src: string;
  dst: string;
  protocol?: Protocol;
  srcPort?: number;
  dstPort?: number;
}

/** One dropped (logged) packet. Optional fields are absent (not undefined) when unknown. */
export interface PacketDrop {
  /** ISO 8601 in UTC with milliseconds, e.g. "2026-11-23T03:20:56.123Z". */
  time: string;
  timeSource: TimeSource;
  /** The log prefix, trimmed ("nftables-metal-dropped:"); the configured prefix when one matched. */
  prefix: string;
  family: AddressFamily;
  inInterface?: string;
  outInterface?: string;
  /** Bridge ports (PHYSIN=/PHYSOUT=, NFULA_IFINDEX_PHYS*). */
  physInInterface?: string;
  physOutInterface?: string;
  /** The link-layer header as the kernel prints it (MAC=dst:src:type), lower-case hex with colons. */
  mac?: string;
  /** Source / destination MAC when known (MAC= with a 14-byte Ethernet header, MACSRC=/MACDST=, NFLOG). */
  srcMac?: string;
  dstMac?: string;
  vlanId?: number;
  /** Normalised addresses: dotted quad, or RFC 5952 IPv6 ("fe80::1"). */
  src: string;
  dst: string;
  protocol: Protocol;
  srcPort?: number;
  dstPort?: number;
  /** IP total length (IPv4 LEN=, IPv6 payload + 40). */
  length?: number;
  ttl?: number;
  hopLimit?: number;
  tcpFlags?: readonly TcpFlag[];
  icmpType?: number;
  icmpCode?: number;
  /** For ICMP errors: the quoted packet, i.e. the flow the error is about. */
  inner?: InnerPacket;
  /** Packet mark (MARK=0x..., NFULA_MARK), as a number. */
  mark?: number;
  /** Socket owner (LOG --log-uid / nft log flags skuid, NFULA_UID/GID). */
  uid?: number;
  gid?: number;
  /** Fragment offset in bytes when the packet is a non-first fragment (no ports then). */
  fragmentOffset?: number;
  /** The kernel wrote TRUNCATED / INCOMPLETE: some header was cut off. */
  incomplete?: true;
  /** The input line (only when asked for with `keepRaw`). */
  raw?: string;
}

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

export interface DropKeyOptions {
  /** Source ports are mostly ephemeral: by default they are not part of the key. */
  includeSrcPort?: boolean;
}

/**
 * Stable aggregation key of "the same drop": prefix, interfaces, family, protocol, addresses,
 * destination port (and source port if asked), ICMP type/code. Time, length, TTL, flags, mark, MAC
 * and the like are left out on purpose.
 */
export function dropKey(d: PacketDrop, opts: DropKeyOptions = {}): string {
  const sp = opts.includeSrcPort === true && d.srcPort !== undefined ? String(d.srcPort) : '';
  const dp = d.dstPort !== undefined ? String(d.dstPort) : '';
  const icmp = d.icmpType !== undefined ? `${d.icmpType}/${d.icmpCode ?? ''}` : '';
  // A template rather than [...].join('|'): this runs once per drop in the agent's aggregator.
  return `${d.prefix}|${d.inInterface ?? ''}|${d.outInterface ?? ''}|${d.family}|${d.protocol}|${d.src}|${sp}|${d.dst}|${dp}|${icmp}`;
}
