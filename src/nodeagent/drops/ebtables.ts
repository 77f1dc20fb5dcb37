// Lines of ebtables' `log` watcher (net/bridge/netfilter/ebt_log.c, ebt_log_packet), read by
// position because its printk formats are fixed (the header and each part below are one printk):
//
//   <prefix> IN=<port> OUT=<port> MAC source = %pM MAC dest = %pM proto = 0x%04x
//   --log-ip:   " IP SRC=%pI4 IP DST=%pI4, IP tos=0x%02X, IP proto=%d"
//   --log-ip6:  " IPv6 SRC=%pI6 IPv6 DST=%pI6, IPv6 priority=0x%01X, Next Header=%d"
//     then, for TCP, UDP, UDPLITE, SCTP and DCCP: " SPT=%u DPT=%u" or " INCOMPLETE TCP/UDP header"
//   --log-arp:  " ARP HTYPE=%d, PTYPE=0x%04x, OPCODE=%d"
//     then, for Ethernet/IPv4 ARP: " ARP MAC SRC=%pM ARP IP SRC=%pI4 ARP MAC DST=%pM ARP IP DST=%pI4"
//     or " INCOMPLETE ARP payload"
//   " INCOMPLETE IP header" | " INCOMPLETE IPv6 header" | " INCOMPLETE ARP header"
//
// Unlike nf_log_syslog, a space always follows the prefix (also an empty one), IN/OUT are the
// bridge ports, and there is no MAC=, LEN= or TTL=. Other EtherTypes, or IP/ARP without the
// matching --log-* flag, end after "proto = 0x....": such a line is no IP packet ('not-ip').
// "Next Header" is the IPv6 header's own next header: with extension headers it names the first
// of them, while the ports are those of the upper-layer header behind them.
import { isAt, spaceOrEnd, uint } from './kernelfields.js';
import type { LineFields } from './linefields.js';
import { PROTOCOL_NAMES } from './types.js';

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Comma = 0x2c, // ','
}

const HEADER_MAC_SOURCE = ' MAC source = ';
const HEADER_MAC_DEST = ' MAC dest = ';
const HEADER_PROTO = ' proto = 0x';

/** Whether the netfilter line whose "IN=" is at anchor was written by ebt_log (" MAC source = " after OUT=). */
export function isEbtablesLine(line: Buffer, anchor: number, len: number): boolean {
  const outValue = spaceOrEnd(line, anchor + 3, len) + 5; // after " OUT=", which findAnchor saw
  const outEnd = spaceOrEnd(line, outValue, len);
  return startsWith(line, outEnd, len, HEADER_MAC_SOURCE);
}

/** Where the token at p ends: the next space, or len. */
function tokenEnd(line: Buffer, p: number, len: number): number {
  return spaceOrEnd(line, p, len);
}

/** Whether the ASCII text is at p, before len. */
function startsWith(line: Buffer, p: number, len: number, text: string): boolean {
  return p >= 0 && p + text.length <= len && isAt(line, p, text);
}

/** Where the value at p ends: before its comma (", IP tos=...") or at the next space or len. */
function valueBeforeComma(line: Buffer, p: number, len: number): number {
  const q = tokenEnd(line, p, len);
  return q > p && line[q - 1] === Ch.Comma ? q - 1 : q;
}

/** p + text.length when text is at p (before len), else -1. */
function after(line: Buffer, p: number, len: number, text: string): number {
  return startsWith(line, p, len, text) ? p + text.length : -1;
}

/** The decimal at p (up to a comma, space or the end) as a protocol name, or undefined when there is none. */
function protocolNumberAt(line: Buffer, p: number, len: number): string | undefined {
  const n = uint(line, p, valueBeforeComma(line, p, len));
  return n < 0 ? undefined : (PROTOCOL_NAMES[n] ?? String(n));
}

/**
 * Reads an ebt_log line (isEbtablesLine) into f (reset first): ports as IN/OUT, the Ethernet
 * addresses as MACSRC/MACDST, then the IPv4, IPv6 or ARP part. A line cut short is `incomplete`.
 */
export function scanEbtablesFields(line: Buffer, anchor: number, len: number, f: LineFields): void {
  f.reset();
  f.inP = anchor + 3;
  f.inQ = spaceOrEnd(line, f.inP, len);
  f.outP = f.inQ + 5;
  f.outQ = spaceOrEnd(line, f.outP, len);
  let p = f.outQ + HEADER_MAC_SOURCE.length;
  f.macSrcP = p;
  p = f.macSrcQ = tokenEnd(line, p, len);
  p = after(line, p, len, HEADER_MAC_DEST);
  if (p < 0) return void (f.incomplete = true);
  f.macDstP = p;
  p = f.macDstQ = tokenEnd(line, p, len);
  p = after(line, p, len, HEADER_PROTO);
  if (p < 0 || p + 4 > len) return void (f.incomplete = true);
  p += 4;
  if (p === len) return; // an EtherType the rule did not ask to log
  if (startsWith(line, p, len, ' IP SRC=')) ipPart(line, p + 8, len, f, ' IP DST=', ', IP tos=', ', IP proto=');
  else if (startsWith(line, p, len, ' IPv6 SRC=')) ipPart(line, p + 10, len, f, ' IPv6 DST=', ', IPv6 priority=', ', Next Header=');
  else if (startsWith(line, p, len, ' ARP HTYPE=')) arpPart(line, p + 11, len, f);
  else if (startsWith(line, p, len, ' INCOMPLETE')) {
    f.incomplete = true;
    f.onlyLink = false;
  }
}

/** "SRC=a <DST>b, <TOS>x, <PROTO>n" (IPv4 or IPv6) and the ports after it; p is at the source address. */
function ipPart(line: Buffer, p: number, len: number, f: LineFields, dstKey: string, tosKey: string, protoKey: string): void {
  f.onlyLink = false;
  f.srcP = p;
  p = f.srcQ = tokenEnd(line, p, len);
  p = after(line, p, len, dstKey);
  if (p < 0) return;
  f.dstP = p;
  p = f.dstQ = valueBeforeComma(line, p, len);
  p = after(line, p, len, tosKey);
  if (p < 0) return;
  p = after(line, valueBeforeComma(line, p, len), len, protoKey);
  if (p < 0) return;
  const proto = protocolNumberAt(line, p, len);
  if (proto === undefined) return;
  f.proto = proto;
  p = tokenEnd(line, p, len);
  if (startsWith(line, p, len, ' INCOMPLETE')) {
    f.incomplete = true;
    return;
  }
  const spt = after(line, p, len, ' SPT=');
  if (spt < 0) return;
  const sptEnd = tokenEnd(line, spt, len);
  f.spt = uint(line, spt, sptEnd);
  const dpt = after(line, sptEnd, len, ' DPT=');
  if (dpt >= 0) f.dpt = uint(line, dpt, tokenEnd(line, dpt, len));
}

/** "HTYPE=1, PTYPE=0x0800, OPCODE=1" and the Ethernet/IPv4 payload after it; p is at the HTYPE value. */
function arpPart(line: Buffer, p: number, len: number, f: LineFields): void {
  f.arp = true;
  f.onlyLink = false;
  p = after(line, valueBeforeComma(line, p, len), len, ', PTYPE=');
  if (p >= 0) p = after(line, valueBeforeComma(line, p, len), len, ', OPCODE=');
  if (p < 0) return void (f.incomplete = true);
  p = tokenEnd(line, p, len);
  if (p === len) return; // not Ethernet/IPv4: no payload printed
  // from here on the payload, or " INCOMPLETE ARP payload": anything short of both addresses is cut
  f.incomplete = true;
  p = skipValue(line, after(line, p, len, ' ARP MAC SRC='), len);
  p = after(line, p, len, ' ARP IP SRC=');
  if (p < 0) return;
  f.arpSrcP = p;
  p = f.arpSrcQ = tokenEnd(line, p, len);
  p = skipValue(line, after(line, p, len, ' ARP MAC DST='), len);
  p = after(line, p, len, ' ARP IP DST=');
  if (p < 0) return;
  f.arpDstP = p;
  f.arpDstQ = tokenEnd(line, p, len);
  f.incomplete = false;
}

/** The end of the value at p, or -1 when p is -1. */
function skipValue(line: Buffer, p: number, len: number): number {
  return p < 0 ? -1 : tokenEnd(line, p, len);
}
