// Decoder of NFLOG packets as libpcap hands them out on the "nflog:<group>" device
// (DLT_NFLOG / LINKTYPE_NFLOG = 239, https://www.tcpdump.org/linktypes/LINKTYPE_NFLOG.html):
//
//   struct nfgenmsg { u8 family (AF_INET=2, AF_INET6=10, ...); u8 version (0); u16 resource id (group), big endian }
//   TLVs: u16 length (incl. the 4-byte header, not the padding), u16 type (low 15 bits; 0x8000 nested),
//         both in HOST byte order (a capture file is byte-swapped to the reader's order by libpcap);
//         value padded to a multiple of 4.
//   Values are big endian: NFULA_PACKET_HDR = { u16 hw_protocol; u8 hook; u8 pad },
//   NFULA_TIMESTAMP = { u64 sec; u64 usec }, IFINDEX_* / MARK / UID / GID / SEQ = u32,
//   NFULA_HWADDR = { u16 len; u16 pad; u8 addr[8] }, NFULA_PREFIX NUL-terminated, NFULA_PAYLOAD = the
//   packet from the network header on (IPv4 or IPv6).
//
// Never throws: malformed input gives { ok: false, reason }.

import { endianness } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import type { DropMetrics } from './metrics.js';
import { sharedDropMetrics } from './metrics.js';
import { formatIPv4Bytes, formatIPv6Bytes } from '../../util/ip.js';
import { tcpFlagMaskFromHeader, tcpFlagsOf } from './kernelfields.js';
import type { PacketDrop, Protocol } from '../../apis/drops.js';
import { PROTOCOL_NAMES, type DecodeResult, type SkipReason } from './types.js';

export const DLT_NFLOG = 239;

export const NFULA = {
  PACKET_HDR: 1,
  MARK: 2,
  TIMESTAMP: 3,
  IFINDEX_INDEV: 4,
  IFINDEX_OUTDEV: 5,
  IFINDEX_PHYSINDEV: 6,
  IFINDEX_PHYSOUTDEV: 7,
  HWADDR: 8,
  PAYLOAD: 9,
  PREFIX: 10,
  UID: 11,
  SEQ: 12,
  SEQ_GLOBAL: 13,
  GID: 14,
  HWTYPE: 15,
  HWHEADER: 16,
  HWLEN: 17,
  CT: 18,
  CT_INFO: 19,
} as const;

/** Interface index → name; undefined when unknown. */
export type IfIndexLookup = (index: number) => string | undefined;

export interface NflogDecodeOptions {
  /** Interface names for NFULA_IFINDEX_*; default: /sys/class/net (cached, refreshed on a miss at most every 5 s). */
  ifName?: IfIndexLookup;
  /** Only these prefixes (compared trimmed); empty/absent: all. */
  prefixes?: readonly string[];
  /** Byte order of the TLV length/type words. Default: this host's (right for live capture). */
  littleEndian?: boolean;
  /** Time when the packet carries no NFULA_TIMESTAMP. Default: now. */
  receivedAt?: Date;
  /** Where decoded/skipped packets are counted. Default: the shared registry. */
  metrics?: DropMetrics;
}

/** The raw NFLOG attributes, for callers that want more than a PacketDrop. */
export interface NflogRecord {
  family: number;
  version: number;
  group: number;
  hwProtocol?: number;
  hook?: number;
  mark?: number;
  timestampMs?: number;
  inIndex?: number;
  outIndex?: number;
  physInIndex?: number;
  physOutIndex?: number;
  hwAddr?: string;
  hwHeader?: Uint8Array;
  prefix?: string;
  uid?: number;
  gid?: number;
  payload?: Uint8Array;
}

const HOST_LE = endianness() === 'LE';

function macOf(b: Uint8Array, off: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const x = b[off + i]!;
    s += (i ? ':' : '') + (x < 16 ? '0' : '') + x.toString(16);
  }
  return s;
}

/** Split the NFLOG header and TLVs. */
export function parseNflogTlvs(buf: Uint8Array, littleEndian: boolean = HOST_LE): { ok: true; record: NflogRecord } | { ok: false; reason: SkipReason } {
  if (buf.length < 4) return { ok: false, reason: 'short-header' };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const rec: NflogRecord = { family: buf[0]!, version: buf[1]!, group: dv.getUint16(2, false) };
  let off = 4;
  while (off < buf.length) {
    if (off + 4 > buf.length) return { ok: false, reason: 'bad-tlv' };
    const len = dv.getUint16(off, littleEndian);
    const type = dv.getUint16(off + 2, littleEndian) & 0x7fff;
    if (len < 4 || off + len > buf.length) return { ok: false, reason: 'bad-tlv' };
    const v = off + 4;
    const vlen = len - 4;
    switch (type) {
      case NFULA.PACKET_HDR:
        if (vlen >= 3) {
          rec.hwProtocol = dv.getUint16(v, false);
          rec.hook = buf[v + 2]!;
        }
        break;
      case NFULA.MARK:
        if (vlen >= 4) rec.mark = dv.getUint32(v, false);
        break;
      case NFULA.TIMESTAMP:
        if (vlen >= 16) {
          const sec = Number(dv.getBigUint64(v, false));
          const usec = Number(dv.getBigUint64(v + 8, false));
          rec.timestampMs = sec * 1000 + Math.floor(usec / 1000);
        }
        break;
      case NFULA.IFINDEX_INDEV:
        if (vlen >= 4) rec.inIndex = dv.getUint32(v, false);
        break;
      case NFULA.IFINDEX_OUTDEV:
        if (vlen >= 4) rec.outIndex = dv.getUint32(v, false);
        break;
      case NFULA.IFINDEX_PHYSINDEV:
        if (vlen >= 4) rec.physInIndex = dv.getUint32(v, false);
        break;
      case NFULA.IFINDEX_PHYSOUTDEV:
        if (vlen >= 4) rec.physOutIndex = dv.getUint32(v, false);
        break;
      case NFULA.HWADDR:
        if (vlen >= 4) {
          const n = Math.min(dv.getUint16(v, false), 8, vlen - 4);
          if (n > 0) rec.hwAddr = macOf(buf, v + 4, n);
        }
        break;
      case NFULA.HWHEADER:
        rec.hwHeader = buf.subarray(v, v + vlen);
        break;
      case NFULA.PAYLOAD:
        rec.payload = buf.subarray(v, v + vlen);
        break;
      case NFULA.PREFIX: {
        let e = v;
        while (e < v + vlen && buf[e] !== 0) e++;
        rec.prefix = Buffer.from(buf.buffer, buf.byteOffset + v, e - v).toString('utf8');
        break;
      }
      case NFULA.UID:
        if (vlen >= 4) rec.uid = dv.getUint32(v, false);
        break;
      case NFULA.GID:
        if (vlen >= 4) rec.gid = dv.getUint32(v, false);
        break;
      default:
        break; // SEQ, SEQ_GLOBAL, HWTYPE, HWLEN, CT, CT_INFO, unknown: not needed
    }
    off += (len + 3) & ~3;
  }
  return { ok: true, record: rec };
}

/** Fields of an IP packet that a PacketDrop wants. */
export interface IpSummary {
  family: 'ipv4' | 'ipv6';
  src: string;
  dst: string;
  protocol: Protocol;
  length: number;
  ttl?: number;
  hopLimit?: number;
  srcPort?: number;
  dstPort?: number;
  tcpFlags?: PacketDrop['tcpFlags'];
  icmpType?: number;
  icmpCode?: number;
  fragmentOffset?: number;
  incomplete?: true;
}

function protoName(n: number): Protocol {
  return PROTOCOL_NAMES[n] ?? String(n);
}

/** Transport header at `off` (ports / flags / ICMP type); marks `incomplete` when it is cut off. */
function decodeL4(p: Uint8Array, off: number, proto: number, out: IpSummary): void {
  const avail = p.length - off;
  switch (proto) {
    case 6: // TCP
    case 17: // UDP
    case 136: // UDPLITE
    case 132: // SCTP: ports first in all four
      if (avail < 4) {
        out.incomplete = true;
        return;
      }
      out.srcPort = (p[off]! << 8) | p[off + 1]!;
      out.dstPort = (p[off + 2]! << 8) | p[off + 3]!;
      if (proto !== 6) return;
      if (avail < 14) {
        out.incomplete = true;
        return;
      }
      {
        const mask = tcpFlagMaskFromHeader(p[off + 13]!, p[off + 12]! & 1);
        if (mask !== 0) out.tcpFlags = tcpFlagsOf(mask);
      }
      return;
    case 1: // ICMP
    case 58: // ICMPv6
      if (avail < 2) {
        out.incomplete = true;
        return;
      }
      out.icmpType = p[off]!;
      out.icmpCode = p[off + 1]!;
      return;
    default:
      return;
  }
}

/** Decode an IPv4/IPv6 packet (network header first). */
export function decodeIpPacket(p: Uint8Array): { ok: true; ip: IpSummary } | { ok: false; reason: SkipReason } {
  if (p.length < 1) return { ok: false, reason: 'truncated' };
  const version = p[0]! >> 4;
  if (version === 4) {
    if (p.length < 20) return { ok: false, reason: 'truncated' };
    const ihl = (p[0]! & 15) * 4;
    if (ihl < 20) return { ok: false, reason: 'malformed' };
    if (p.length < ihl) return { ok: false, reason: 'truncated' };
    const total = (p[2]! << 8) | p[3]!;
    const fragOff = (((p[6]! & 0x1f) << 8) | p[7]!) * 8;
    const proto = p[9]!;
    const ip: IpSummary = {
      family: 'ipv4',
      src: formatIPv4Bytes(p, 12),
      dst: formatIPv4Bytes(p, 16),
      protocol: protoName(proto),
      length: total,
      ttl: p[8]!,
    };
    if (fragOff > 0) ip.fragmentOffset = fragOff;
    else decodeL4(p, ihl, proto, ip);
    return { ok: true, ip };
  }
  if (version === 6) {
    if (p.length < 40) return { ok: false, reason: 'truncated' };
    const payloadLen = (p[4]! << 8) | p[5]!;
    const ip: IpSummary = {
      family: 'ipv6',
      src: formatIPv6Bytes(p, 8),
      dst: formatIPv6Bytes(p, 24),
      protocol: '',
      length: payloadLen + 40,
      hopLimit: p[7]!,
    };
    let next = p[6]!;
    let off = 40;
    let fragment = false;
    // extension headers: hop-by-hop 0, routing 43, fragment 44, destination options 60, AH 51
    for (let guard = 0; guard < 16; guard++) {
      if (next === 0 || next === 43 || next === 60) {
        if (off + 2 > p.length) {
          ip.protocol = protoName(next);
          ip.incomplete = true;
          return { ok: true, ip };
        }
        const nn = p[off]!;
        off += (p[off + 1]! + 1) * 8;
        next = nn;
      } else if (next === 44) {
        if (off + 8 > p.length) {
          ip.protocol = protoName(next);
          ip.incomplete = true;
          return { ok: true, ip };
        }
        const fo = ((p[off + 2]! << 8) | p[off + 3]!) & 0xfff8;
        if (fo > 0) {
          ip.fragmentOffset = fo;
          fragment = true;
        }
        next = p[off]!;
        off += 8;
      } else if (next === 51) {
        if (off + 2 > p.length) {
          ip.protocol = 'AH';
          ip.incomplete = true;
          return { ok: true, ip };
        }
        const nn = p[off]!;
        off += (p[off + 1]! + 2) * 4;
        next = nn;
      } else {
        break;
      }
      if (fragment) break;
    }
    ip.protocol = next === 59 ? 'none' : protoName(next);
    if (!fragment) {
      if (off > p.length) ip.incomplete = true;
      else decodeL4(p, off, next, ip);
    }
    return { ok: true, ip };
  }
  return { ok: false, reason: 'bad-ip-version' };
}

// ---- interface names ----

let sysCache = new Map<number, string>();
let sysReadAt = -Infinity;

function readSysClassNet(): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const name of readdirSync('/sys/class/net')) {
      try {
        const idx = Number.parseInt(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'), 10);
        if (Number.isFinite(idx)) m.set(idx, name);
      } catch {
        // interface vanished meanwhile
      }
    }
  } catch {
    // no /sys (not Linux): no names
  }
  return m;
}

/** Default lookup: /sys/class/net/<name>/ifindex, cached; re-read on a miss at most every 5 s. */
export const sysfsIfName: IfIndexLookup = (index) => {
  let n = sysCache.get(index);
  if (n === undefined) {
    const now = Date.now();
    if (now - sysReadAt > 5000) {
      sysReadAt = now;
      sysCache = readSysClassNet();
      n = sysCache.get(index);
    }
  }
  return n;
};

function ifName(lookup: IfIndexLookup, index: number | undefined): string | undefined {
  if (index === undefined || index === 0) return undefined;
  let n: string | undefined;
  try {
    n = lookup(index);
  } catch {
    n = undefined;
  }
  return n ?? `if${index}`;
}

/** Decode one NFLOG packet (the bytes libpcap gives for DLT_NFLOG) into a PacketDrop. Never throws. */
export function decodeNflogPacket(buf: Uint8Array, opts: NflogDecodeOptions = {}): DecodeResult {
  const metrics = opts.metrics ?? sharedDropMetrics();
  let r: DecodeResult;
  try {
    r = decode(buf, opts);
  } catch {
    r = { ok: false, reason: 'truncated' };
  }
  if (r.ok) metrics.packetDecoded();
  else metrics.packetSkipped(r.reason);
  return r;
}

/** Whether a packet's (trimmed) prefix is among the configured ones; no non-blank prefix configured: any is. */
function prefixWanted(prefixes: readonly string[], prefix: string): boolean {
  // Per packet: compare in place rather than building the trimmed list each time.
  let any = false;
  for (const p of prefixes) {
    const t = p.trim();
    if (t.length === 0) continue;
    if (t === prefix) return true;
    any = true;
  }
  return !any;
}

function decode(buf: Uint8Array, opts: NflogDecodeOptions): DecodeResult {
  const t = parseNflogTlvs(buf, opts.littleEndian ?? HOST_LE);
  if (!t.ok) return t;
  const rec = t.record;
  const prefix = (rec.prefix ?? '').trim();
  if (opts.prefixes !== undefined && !prefixWanted(opts.prefixes, prefix)) return { ok: false, reason: prefix ? 'unknown-prefix' : 'no-prefix' };
  if (rec.payload === undefined) return { ok: false, reason: 'no-payload' };
  const ipr = decodeIpPacket(rec.payload);
  if (!ipr.ok) return ipr;
  const ip = ipr.ip;
  const hasTs = rec.timestampMs !== undefined && rec.timestampMs > 0;
  const ms = hasTs ? rec.timestampMs! : (opts.receivedAt?.getTime() ?? Date.now());
  const drop: PacketDrop = {
    time: new Date(ms).toISOString(),
    timeSource: hasTs ? 'nflog' : 'received',
    prefix,
    family: ip.family,
    src: ip.src,
    dst: ip.dst,
    protocol: ip.protocol,
  };
  const lookup = opts.ifName ?? sysfsIfName;
  const inIf = ifName(lookup, rec.inIndex);
  const outIf = ifName(lookup, rec.outIndex);
  const physIn = ifName(lookup, rec.physInIndex);
  const physOut = ifName(lookup, rec.physOutIndex);
  if (inIf !== undefined) drop.inInterface = inIf;
  if (outIf !== undefined) drop.outInterface = outIf;
  if (physIn !== undefined) drop.physInInterface = physIn;
  if (physOut !== undefined) drop.physOutInterface = physOut;
  if (rec.hwHeader !== undefined && rec.hwHeader.length > 0) {
    drop.mac = macOf(rec.hwHeader, 0, rec.hwHeader.length);
    if (rec.hwHeader.length === 14) {
      drop.dstMac = macOf(rec.hwHeader, 0, 6);
      drop.srcMac = macOf(rec.hwHeader, 6, 6);
    }
  }
  if (rec.hwAddr !== undefined && drop.srcMac === undefined) drop.srcMac = rec.hwAddr;
  if (ip.srcPort !== undefined) drop.srcPort = ip.srcPort;
  if (ip.dstPort !== undefined) drop.dstPort = ip.dstPort;
  drop.length = ip.length;
  if (ip.ttl !== undefined) drop.ttl = ip.ttl;
  if (ip.hopLimit !== undefined) drop.hopLimit = ip.hopLimit;
  if (ip.tcpFlags !== undefined) drop.tcpFlags = ip.tcpFlags;
  if (ip.icmpType !== undefined) drop.icmpType = ip.icmpType;
  if (ip.icmpCode !== undefined) drop.icmpCode = ip.icmpCode;
  if (rec.mark !== undefined && rec.mark !== 0) drop.mark = rec.mark;
  if (rec.uid !== undefined) drop.uid = rec.uid;
  if (rec.gid !== undefined) drop.gid = rec.gid;
  if (ip.fragmentOffset !== undefined) drop.fragmentOffset = ip.fragmentOffset;
  if (ip.incomplete) drop.incomplete = true;
  return { ok: true, drop };
}
