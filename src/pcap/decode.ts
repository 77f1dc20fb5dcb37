// Decodes one captured frame into a tcpdump-like line: link layer (Ethernet with VLAN tags,
// Linux cooked v1/v2, raw IP, BSD loopback), then ARP, IPv4 (with its options, among them
// Cilium's DSR option), IPv6 (skipping extension headers), TCP, UDP (and DNS on port 53), ICMP and
// ICMPv6. A truncated or malformed header ends the line with what went wrong instead of throwing.
import { LinkType, type CapturedPacket } from './reader.js';
import { formatIPv4Bytes, formatIPv6Bytes } from '../util/ip.js';
import { escapeForTerminal } from '../util/terminal.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = [0x8100, 0x88a8, 0x9100];

const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;
const PROTO_NAMES: Record<number, string> = { 1: 'ICMP', 2: 'IGMP', 4: 'IPIP', 6: 'TCP', 17: 'UDP', 41: 'IPv6', 47: 'GRE', 50: 'ESP', 51: 'AH', 58: 'ICMPv6', 89: 'OSPF', 112: 'VRRP', 132: 'SCTP', 136: 'UDPLite' };
/** IPv6 extension headers that are followed by another header (RFC 8200 section 4). */
const IPV6_EXTENSIONS = new Set([0, 43, 44, 60, 51, 135, 139, 140]);

export class Truncated extends Error {}

function need(buf: Buffer, offset: number, length: number, what: string): void {
  if (offset + length > buf.length) throw new Truncated(`truncated ${what}`);
}

function mac(buf: Buffer, offset: number): string {
  return Array.from(buf.subarray(offset, offset + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

// ---- IPv4 options (RFC 791, RFC 2113, Cilium DSR) ----

export const IPV4_OPTION_DSR = 0x9a;

/**
 * One IPv4 option as text. Cilium's DSR option (bpf/lib/nodeport.h, struct dsr_opt_v4: u8 type,
 * u8 len, u16 port, u32 addr) is filled with host-order values, so on the little-endian nodes
 * Cilium runs on both fields arrive byte-reversed: `9a 08 80 75 0a 00 60 0a` is 10.96.0.10:30080.
 */
export function formatIpv4Option(type: number, body: Buffer): string {
  const addresses = (from: number, to: number): string[] => {
    const out: string[] = [];
    for (let o = from; o + 4 <= to; o += 4) out.push(formatIPv4Bytes(body, o));
    return out;
  };
  switch (type) {
    case 7: // Record Route
    case 131: // Loose Source and Record Route
    case 137: {
      // Strict Source and Record Route
      const name = type === 7 ? 'rr' : type === 131 ? 'lsrr' : 'ssrr';
      if (body.length < 1) return `[${name} malformed]`;
      // The pointer counts from the option's type byte; minimum 4.
      const pointer = body[0]!;
      const list = addresses(1, body.length);
      const next = Math.floor((pointer - 4) / 4);
      return `[${name} ${list.map((a, i) => (i === next ? `${a}*` : a)).join(',')}]`;
    }
    case 68: {
      // Timestamp: pointer, overflow(4) | flags(4), then timestamps or address+timestamp pairs
      if (body.length < 2) return '[ts malformed]';
      const flags = body[1]! & 0x0f;
      const overflow = body[1]! >> 4;
      const used = Math.max(0, body[0]! - 5); // bytes of entries filled in
      const entries: string[] = [];
      if (flags === 0) for (let o = 2; o + 4 <= 2 + used && o + 4 <= body.length; o += 4) entries.push(String(body.readUInt32BE(o)));
      else for (let o = 2; o + 8 <= 2 + used && o + 8 <= body.length; o += 8) entries.push(`${formatIPv4Bytes(body, o)}@${body.readUInt32BE(o + 4)}`);
      const kind = flags === 0 ? 'tsonly' : flags === 1 ? 'tsandaddr' : flags === 3 ? 'prespec' : `flags=${flags}`;
      return `[ts ${kind}${entries.length ? ` ${entries.join(',')}` : ''}${overflow ? ` overflow=${overflow}` : ''}]`;
    }
    case 148: // Router Alert
      return body.length === 2 ? `[ra ${body.readUInt16BE(0)}]` : '[ra malformed]';
    case IPV4_OPTION_DSR: {
      if (body.length !== 6) return `[dsr malformed: length ${body.length + 2}, expected 8]`;
      const port = body.readUInt16LE(0);
      const address = body.readUInt32LE(2);
      const dotted = [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join('.');
      return `[dsr svc ${dotted}:${port}]`;
    }
    default:
      return `[opt-${type} len ${body.length + 2}]`;
  }
}

/** All options of an IPv4 header's option area. */
export function formatIpv4Options(options: Buffer): string[] {
  const out: string[] = [];
  let offset = 0;
  while (offset < options.length) {
    const type = options[offset]!;
    if (type === 0) {
      out.push('[eol]');
      break;
    }
    if (type === 1) {
      out.push('[nop]');
      offset += 1;
      continue;
    }
    const length = options[offset + 1];
    if (length === undefined || length < 2 || offset + length > options.length) {
      out.push(`[bad option ${type}: length ${length ?? 'missing'}]`);
      break;
    }
    out.push(formatIpv4Option(type, options.subarray(offset + 2, offset + length)));
    offset += length;
  }
  return out;
}

// ---- Transport ----

function tcpFlags(flags: number): string {
  const letters: Array<[number, string]> = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U'], [0x40, 'E'], [0x80, 'W']];
  const text = letters.filter(([bit]) => flags & bit).map(([, c]) => c).join('');
  return text || 'none';
}

function formatTcp(buf: Buffer, offset: number, end: number, src: string, dst: string): string {
  need(buf, offset, 20, 'TCP header');
  const srcPort = buf.readUInt16BE(offset);
  const dstPort = buf.readUInt16BE(offset + 2);
  const seq = buf.readUInt32BE(offset + 4);
  const ack = buf.readUInt32BE(offset + 8);
  const headerLength = (buf[offset + 12]! >> 4) * 4;
  const flags = buf[offset + 13]!;
  const window = buf.readUInt16BE(offset + 14);
  const payload = Math.max(0, end - offset - headerLength);
  const parts = [`Flags [${tcpFlags(flags)}]`, `seq ${seq}`];
  if (flags & 0x10) parts.push(`ack ${ack}`);
  parts.push(`win ${window}`, `length ${payload}`);
  return `${src}.${srcPort} > ${dst}.${dstPort}: ${parts.join(', ')}`;
}

const DNS_TYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS', 255: 'ANY' };

/** The first question of a DNS message (RFC 1035), as tcpdump shows it: `4660+ A? example.com.`. */
export function formatDns(msg: Buffer): string | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  const questions = msg.readUInt16BE(4);
  const answers = msg.readUInt16BE(6);
  const response = (flags & 0x8000) !== 0;
  const rcode = flags & 0x0f;
  let text = `${id}${response ? '' : flags & 0x0100 ? '+' : ''}`;
  if (response) text += ` ${answers}/${msg.readUInt16BE(8)}/${msg.readUInt16BE(10)}${rcode === 3 ? ' NXDomain' : rcode ? ` rcode ${rcode}` : ''}`;
  if (questions === 0) return text;
  const labels: string[] = [];
  let offset = 12;
  for (let guard = 0; guard < 128; guard++) {
    const length = msg[offset];
    if (length === undefined) return `${text} [truncated]`;
    if (length === 0) break;
    if (length >= 0xc0) return `${text} [compressed question]`;
    labels.push(msg.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  if (offset + 5 > msg.length) return `${text} [truncated]`;
  const qtype = msg.readUInt16BE(offset + 1);
  return `${text} ${DNS_TYPES[qtype] ?? `Type${qtype}`}? ${labels.join('.')}.`;
}

function formatUdp(buf: Buffer, offset: number, end: number, src: string, dst: string): string {
  need(buf, offset, 8, 'UDP header');
  const srcPort = buf.readUInt16BE(offset);
  const dstPort = buf.readUInt16BE(offset + 2);
  const length = buf.readUInt16BE(offset + 4) - 8;
  const head = `${src}.${srcPort} > ${dst}.${dstPort}:`;
  if (srcPort === 53 || dstPort === 53) {
    const dns = formatDns(buf.subarray(offset + 8, end));
    if (dns) return `${head} ${dns} (${length})`;
  }
  return `${head} UDP, length ${length}`;
}

const ICMP_TYPES: Record<number, string> = { 0: 'echo reply', 3: 'destination unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded', 12: 'parameter problem' };
const ICMPV6_TYPES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 4: 'parameter problem', 128: 'echo request', 129: 'echo reply',
  133: 'router solicitation', 134: 'router advertisement', 135: 'neighbor solicitation', 136: 'neighbor advertisement', 137: 'redirect',
};

function formatIcmp(buf: Buffer, offset: number, end: number, src: string, dst: string, v6: boolean): string {
  need(buf, offset, 4, v6 ? 'ICMPv6 header' : 'ICMP header');
  const type = buf[offset]!;
  const code = buf[offset + 1]!;
  const name = (v6 ? ICMPV6_TYPES : ICMP_TYPES)[type] ?? `type ${type}`;
  const echo = v6 ? type === 128 || type === 129 : type === 0 || type === 8;
  let detail = name;
  if (echo && end - offset >= 8) detail += `, id ${buf.readUInt16BE(offset + 4)}, seq ${buf.readUInt16BE(offset + 6)}`;
  else if (v6 && (type === 135 || type === 136) && end - offset >= 24) detail += `, target ${formatIPv6Bytes(buf, offset + 8)}`;
  else if (code) detail += ` code ${code}`;
  return `${src} > ${dst}: ${v6 ? 'ICMP6' : 'ICMP'} ${detail}, length ${end - offset}`;
}

function formatTransport(protocol: number, buf: Buffer, offset: number, end: number, src: string, dst: string): string {
  switch (protocol) {
    case PROTO_TCP:
      return formatTcp(buf, offset, end, src, dst);
    case PROTO_UDP:
      return formatUdp(buf, offset, end, src, dst);
    case PROTO_ICMP:
      return formatIcmp(buf, offset, end, src, dst, false);
    case PROTO_ICMPV6:
      return formatIcmp(buf, offset, end, src, dst, true);
    default:
      return `${src} > ${dst}: ${PROTO_NAMES[protocol] ?? `ip-proto-${protocol}`}, length ${end - offset}`;
  }
}

// ---- Network ----

function formatIpv4(buf: Buffer, offset: number): string {
  need(buf, offset, 20, 'IPv4 header');
  const version = buf[offset]! >> 4;
  if (version !== 4) return `IP bad version ${version}`;
  const headerLength = (buf[offset]! & 0x0f) * 4;
  if (headerLength < 20) return `IP bad header length ${headerLength}`;
  need(buf, offset, headerLength, 'IPv4 options');
  const totalLength = buf.readUInt16BE(offset + 2);
  const fragment = buf.readUInt16BE(offset + 6);
  const protocol = buf[offset + 9]!;
  const src = formatIPv4Bytes(buf, offset + 12);
  const dst = formatIPv4Bytes(buf, offset + 16);
  const options = headerLength > 20 ? `${formatIpv4Options(buf.subarray(offset + 20, offset + headerLength)).join(' ')} ` : '';
  // The captured bytes may include Ethernet padding past the IP datagram, or stop short of it.
  const end = Math.min(buf.length, offset + totalLength);
  const fragmentOffset = (fragment & 0x1fff) * 8;
  if (fragmentOffset > 0) return `IP ${options}${src} > ${dst}: ${PROTO_NAMES[protocol] ?? `ip-proto-${protocol}`} fragment offset ${fragmentOffset}, length ${totalLength - headerLength}`;
  return `IP ${options}${transportOrTruncated(protocol, buf, offset + headerLength, end, src, dst)}`;
}

function transportOrTruncated(protocol: number, buf: Buffer, offset: number, end: number, src: string, dst: string): string {
  try {
    return formatTransport(protocol, buf, offset, end, src, dst);
  } catch (err) {
    if (err instanceof Truncated) return `${src} > ${dst}: ${PROTO_NAMES[protocol] ?? `ip-proto-${protocol}`} [${err.message}]`;
    throw err;
  }
}

function formatIpv6(buf: Buffer, offset: number): string {
  need(buf, offset, 40, 'IPv6 header');
  const payloadLength = buf.readUInt16BE(offset + 4);
  let next = buf[offset + 6]!;
  const src = formatIPv6Bytes(buf, offset + 8);
  const dst = formatIPv6Bytes(buf, offset + 24);
  const end = Math.min(buf.length, offset + 40 + payloadLength);
  let cursor = offset + 40;
  while (IPV6_EXTENSIONS.has(next)) {
    need(buf, cursor, 2, 'IPv6 extension header');
    if (next === 44 && (buf.readUInt16BE(cursor + 2) & 0xfff8) !== 0) return `IP6 ${src} > ${dst}: fragment, length ${end - cursor}`;
    const length = next === 44 ? 8 : next === 51 ? (buf[cursor + 1]! + 2) * 4 : (buf[cursor + 1]! + 1) * 8;
    next = buf[cursor]!;
    cursor += length;
  }
  return `IP6 ${transportOrTruncated(next, buf, cursor, end, src, dst)}`;
}

function formatArp(buf: Buffer, offset: number): string {
  need(buf, offset, 8, 'ARP header');
  const hardwareLength = buf[offset + 4]!;
  const protocolLength = buf[offset + 5]!;
  const op = buf.readUInt16BE(offset + 6);
  if (hardwareLength !== 6 || protocolLength !== 4) return `ARP, hardware length ${hardwareLength}, protocol length ${protocolLength}, op ${op}`;
  need(buf, offset, 28, 'ARP body');
  const senderMac = mac(buf, offset + 8);
  const senderIp = formatIPv4Bytes(buf, offset + 14);
  const targetIp = formatIPv4Bytes(buf, offset + 24);
  if (op === 1) return `ARP, Request who-has ${targetIp} tell ${senderIp}, length 28`;
  if (op === 2) return `ARP, Reply ${senderIp} is-at ${senderMac}, length 28`;
  return `ARP, op ${op}, length 28`;
}

function formatEtherType(etherType: number, buf: Buffer, offset: number): string {
  switch (etherType) {
    case ETHERTYPE_IPV4:
      return formatIpv4(buf, offset);
    case ETHERTYPE_IPV6:
      return formatIpv6(buf, offset);
    case ETHERTYPE_ARP:
      return formatArp(buf, offset);
    default:
      return `ethertype 0x${etherType.toString(16).padStart(4, '0')}, length ${buf.length - offset}`;
  }
}

function formatEthernet(buf: Buffer): string {
  need(buf, 0, 14, 'Ethernet header');
  let etherType = buf.readUInt16BE(12);
  let offset = 14;
  const vlans: number[] = [];
  while (ETHERTYPE_VLAN.includes(etherType)) {
    need(buf, offset, 4, 'VLAN tag');
    vlans.push(buf.readUInt16BE(offset) & 0x0fff);
    etherType = buf.readUInt16BE(offset + 2);
    offset += 4;
  }
  const line = formatEtherType(etherType, buf, offset);
  return vlans.length ? `vlan ${vlans.join(',')} ${line}` : line;
}

function formatRawIp(buf: Buffer, offset: number): string {
  need(buf, offset, 1, 'IP header');
  const version = buf[offset]! >> 4;
  return version === 6 ? formatIpv6(buf, offset) : formatIpv4(buf, offset);
}

/** The packet's protocol summary, without the time. */
export function describePacket(packet: Pick<CapturedPacket, 'linkType' | 'data'>): string {
  const buf = packet.data;
  try {
    switch (packet.linkType) {
      case LinkType.ETHERNET:
        return formatEthernet(buf);
      case LinkType.RAW:
      case LinkType.IPV4:
      case LinkType.IPV6:
        return formatRawIp(buf, 0);
      case LinkType.LINUX_SLL:
        need(buf, 0, 16, 'Linux cooked header');
        return formatEtherType(buf.readUInt16BE(14), buf, 16);
      case LinkType.LINUX_SLL2:
        need(buf, 0, 20, 'Linux cooked v2 header');
        return formatEtherType(buf.readUInt16BE(0), buf, 20);
      case LinkType.NULL:
      case LinkType.LOOP: {
        // The address family is in the capturing host's byte order (NULL) or network order (LOOP).
        need(buf, 0, 4, 'loopback header');
        return formatRawIp(buf, 4);
      }
      default:
        return `link type ${packet.linkType}, length ${buf.length}`;
    }
  } catch (err) {
    if (err instanceof Truncated) return `[${err.message}]`;
    throw err;
  }
}

/** `2024-05-01 12:00:00.123456` in UTC, like `tcpdump -tttt` (with UTC). */
export function formatTimestamp(timestampNs: bigint): string {
  const ms = Number(timestampNs / 1_000_000n);
  const micros = String((timestampNs / 1000n) % 1_000_000n).padStart(6, '0');
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.${micros}`;
}

/** One summary line per packet: time, the packet's comment in brackets when it has one (in
 * Netwarden's pcapng, the pod: namespace/pod), then the protocol summary, with whatever the packet
 * carried escaped for a terminal. */
export function summarizePacket(packet: CapturedPacket): string {
  const comment = packet.comment ? ` [${packet.comment}]` : '';
  return escapeForTerminal(`${formatTimestamp(packet.timestampNs)}${comment} ${describePacket(packet)}`);
}
