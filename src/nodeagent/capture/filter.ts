// Compiles a PacketCapture's Calico-style filters and direction into one libpcap (BPF) expression.
// Only we write the expression: protocols come from a closed list or are numbers, ports are
// numbers, the pod IP is checked to be an IP, so nothing in a resource reaches libpcap as text.
import net from 'node:net';
import type { CaptureFilter } from '../../apis/packetcapture.js';

export type CaptureDirection = 'ingress' | 'egress' | 'both';

export class FilterError extends Error {}

/** IP protocol numbers of Calico's protocol names. */
const PROTOCOL_NUMBERS: Record<string, number> = { TCP: 6, UDP: 17, ICMP: 1, ICMPv6: 58, SCTP: 132, UDPLite: 136 };

/** libpcap keywords for the protocols it knows by name (each covers IPv4 and IPv6). */
const PCAP_KEYWORDS: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** The transport protocols whose first 4 bytes are source and destination ports. */
const PORTED_PROTOCOLS = new Set([6, 17, 132, 136]);

interface PortRange {
  low: number;
  high: number;
}

/**
 * One expression for the pod: its IP in the given direction (ingress = to the pod, egress = from
 * the pod; stated by address, so it holds on either end of the veth), and any of the filters.
 */
export function compileCaptureFilter(filters: readonly CaptureFilter[] | undefined, direction: CaptureDirection, podIP: string): string {
  if (net.isIP(podIP) === 0) throw new FilterError(`pod IP ${JSON.stringify(podIP)} is not an IP address`);
  const host = direction === 'ingress' ? `dst host ${podIP}` : direction === 'egress' ? `src host ${podIP}` : `host ${podIP}`;
  const clauses = (filters ?? []).map((f, i) => compileOneFilter(f, i));
  // A filter with neither protocol nor ports matches everything, and so does the OR of the list.
  if (clauses.length === 0 || clauses.includes('')) return `(${host})`;
  return `(${host}) and (${clauses.join(' or ')})`;
}

/** "" when the filter matches every packet. */
function compileOneFilter(filter: CaptureFilter, index: number): string {
  const protocol = filter.protocol === undefined ? undefined : protocolNumber(filter.protocol, index);
  const ranges = (filter.ports ?? []).map((p, j) => parsePort(p, index, j));
  if (ranges.length > 0 && protocol !== undefined && !PORTED_PROTOCOLS.has(protocol)) {
    throw new FilterError(`filters[${index}]: ports are only valid with TCP, UDP, SCTP or UDPLite, not protocol ${String(filter.protocol)}`);
  }
  if (protocol === undefined) return ranges.length === 0 ? '' : `(${portClause(ranges)})`;
  if (protocol === 136) return udpLiteClause(ranges);
  const proto = PCAP_KEYWORDS[protocol] ?? (protocol === 1 ? 'icmp' : protocol === 58 ? 'icmp6' : `(ip proto ${protocol} or ip6 proto ${protocol})`);
  return ranges.length === 0 ? `(${proto})` : `(${proto} and (${portClause(ranges)}))`;
}

function protocolNumber(protocol: string | number, index: number): number {
  if (typeof protocol === 'number') {
    if (Number.isInteger(protocol) && protocol >= 1 && protocol <= 255) return protocol;
    throw new FilterError(`filters[${index}].protocol: ${protocol} is not an IP protocol number 1..255`);
  }
  const n = PROTOCOL_NUMBERS[protocol];
  if (n === undefined) throw new FilterError(`filters[${index}].protocol: ${JSON.stringify(protocol)} is not one of ${Object.keys(PROTOCOL_NUMBERS).join(', ')} or a number`);
  return n;
}

/** A port or "low:high" (Calico's syntax), as an inclusive range. */
export function parsePort(port: string | number, index: number, j: number): PortRange {
  const text = String(port);
  const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(text);
  const where = `filters[${index}].ports[${j}]`;
  if (!m) throw new FilterError(`${where}: ${JSON.stringify(text)} is not a port or a "low:high" range`);
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : Number(m[2]);
  if (low < 1 || high > 65535 || low > high) throw new FilterError(`${where}: ${text} must be within 1..65535 with low <= high`);
  return { low, high };
}

/** libpcap's `port`/`portrange` match either end, for TCP, UDP and SCTP. */
function portClause(ranges: readonly PortRange[]): string {
  return ranges.map((r) => (r.low === r.high ? `port ${r.low}` : `portrange ${r.low}-${r.high}`)).join(' or ');
}

/**
 * libpcap has no UDPLite keyword and its `port` does not cover it: read the ports from the first
 * 4 bytes after the IPv4 header (unfragmented packets only, like libpcap's own port tests) or the
 * fixed IPv6 header (no extension headers).
 */
function udpLiteClause(ranges: readonly PortRange[]): string {
  const v4 = 'ip proto 136';
  const v6 = 'ip6 proto 136';
  if (ranges.length === 0) return `(${v4} or ${v6})`;
  const v4Src = 'ip[(ip[0] & 0xf) << 2:2]';
  const v4Dst = 'ip[((ip[0] & 0xf) << 2) + 2:2]';
  const match = (src: string, dst: string) => ranges.map((r) => (r.low === r.high ? `${src} = ${r.low} or ${dst} = ${r.low}` : `(${src} >= ${r.low} and ${src} <= ${r.high}) or (${dst} >= ${r.low} and ${dst} <= ${r.high})`)).join(' or ');
  return `((${v4} and ip[6:2] & 0x1fff = 0 and (${match(v4Src, v4Dst)})) or (${v6} and (${match('ip6[40:2]', 'ip6[42:2]')})))`;
}
