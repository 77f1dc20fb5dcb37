// The drop record and the wire format of drop batches that node agents POST to the controller:
//   POST {controllerUrl}/droptail/{dropTailName}/drops   (JSON body: DropBatch)
// The caller's ServiceAccount token must pass a TokenReview and a SubjectAccessReview for
// `create` on `droptails/drops` (group netwarden.io) named dropTailName.
//
// One PacketDrop per logged packet, whether it came from a kernel LOG / nftables `log` line or
// from an NFLOG packet. Everything is plain JSON data (no Date, no Buffer, no bigint) so a drop can
// be written as one JSON line, sent over the wire or compared with deep equality. `dropKey()` gives
// the aggregation key, used by the agent's aggregator and the controller's pipeline alike.
import { GROUP } from './meta.js';

export const DROPS_PATH = '/droptail/:name/drops';

/** The path of one DropTail's intake, for the agent's POST. */
export function dropsPath(dropTailName: string): string {
  return DROPS_PATH.replace(':name', encodeURIComponent(dropTailName));
}

/** Largest request body the intake reads; agents split bigger batches. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Most aggregated drops in one batch. */
export const MAX_DROPS_PER_BATCH = 10_000;

/** The access review an agent's POST must pass (plus `name`: the DropTail's). */
export const DROPS_ACCESS = { verb: 'create', group: GROUP, resource: 'droptails', subresource: 'drops' } as const;

/** Where `PacketDrop.time` came from. */
export type TimeSource =
  | 'rfc3339' // RFC 3339 / ISO 8601 header (rsyslog high precision, journalctl -o short-iso, kube-iptables-tailer input)
  | 'syslog' // classic BSD syslog header "Sep  3 11:38:30" (year inferred, local time zone)
  | 'dmesg' // "[  957.705811]" or /dev/kmsg microseconds since boot, converted with the boot time
  | 'dmesg-ctime' // dmesg -T "[Tue Sep  3 11:38:30 2024]"
  | 'journal' // journald __REALTIME_TIMESTAMP
  | 'nflog' // NFULA_TIMESTAMP of an NFLOG packet
  | 'kernel' // the eBPF program's clock at the drop (CLOCK_MONOTONIC, converted)
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
export const KNOWN_PROTOCOLS = ['TCP', 'UDP', 'UDPLITE', 'ICMP', 'ICMPv6', 'SCTP', 'AH', 'ESP', 'GRE', 'ARP'] as const;
export type KnownProtocol = (typeof KNOWN_PROTOCOLS)[number];
export type Protocol = KnownProtocol | (string & {});

const knownProtocols: ReadonlySet<string> = new Set(KNOWN_PROTOCOLS);

/** One of the named protocols above (not a bare number): what metric labels may carry. */
export function isKnownProtocol(protocol: string): protocol is KnownProtocol {
  return knownProtocols.has(protocol);
}

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
  /**
   * The kernel's drop reason (enum skb_drop_reason without its SKB_DROP_REASON_ prefix, e.g.
   * NETFILTER_DROP, NO_SOCKET), from the kernel source; absent for logged drops.
   */
  reason?: string;
  /** The input line (only when asked for with `keepRaw`). */
  raw?: string;
}

export interface DropKeyOptions {
  /** Source ports are mostly ephemeral: by default they are not part of the key. */
  includeSrcPort?: boolean;
}

/**
 * Stable aggregation key of "the same drop": prefix, interfaces, family, protocol, addresses,
 * destination port (and source port if asked), ICMP type/code, the kernel's reason. Time, length, TTL, flags, mark, MAC
 * and the like are left out on purpose.
 */
export function dropKey(d: PacketDrop, opts: DropKeyOptions = {}): string {
  const sp = opts.includeSrcPort === true && d.srcPort !== undefined ? String(d.srcPort) : '';
  const dp = d.dstPort !== undefined ? String(d.dstPort) : '';
  const icmp = d.icmpType !== undefined ? `${d.icmpType}/${d.icmpCode ?? ''}` : '';
  // A template rather than [...].join('|'): this runs once per drop in the agent's aggregator.
  const reason = d.reason === undefined ? '' : `|${d.reason}`;
  return `${d.prefix}|${d.inInterface ?? ''}|${d.outInterface ?? ''}|${d.family}|${d.protocol}|${d.src}|${sp}|${d.dst}|${dp}|${icmp}${reason}`;
}

export type DropSourceType = 'nflog' | 'journal' | 'file' | 'kernel';
/** A drop reason's name: the kernel's enum member, or "SUBSYSTEM:code" for a subsystem's reason. */
export const DROP_REASON_PATTERN = /^[A-Z][A-Z0-9_]{0,47}(:[0-9]{1,5})?$/;

export const DROP_SOURCE_TYPES: readonly DropSourceType[] = ['nflog', 'journal', 'file', 'kernel'];

/** Identical drops aggregated over the agent's window: one entry, counted. */
export interface AggregatedDrop {
  drop: PacketDrop;
  /** How many identical drops (same dropKey) were seen in the window; at least 1. */
  count: number;
  /** ISO times of the first and last of them. */
  firstSeen: string;
  lastSeen: string;
  source: DropSourceType;
}

export interface DropBatch {
  node: string;
  /** Sequence number per agent process, so the controller can log gaps (shed batches). */
  sequence: number;
  /** ISO time the agent sent the batch. */
  sentAt: string;
  drops: AggregatedDrop[];
  /** Drops the agent had to shed since its previous accepted batch (controller unreachable, queue full). */
  shedSinceLastBatch: number;
}

/** The controller's answer to an accepted batch (HTTP 202). */
export interface DropBatchAccepted {
  accepted: number;
}
