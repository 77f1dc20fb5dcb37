// Parser of netfilter's kernel log lines: iptables/ip6tables `-j LOG`, ebtables/arptables `--log`,
// nftables `log` without a group. The text is written by net/netfilter/nf_log_syslog.c:
//
//   <prefix>IN=<if> OUT=<if> [PHYSIN=<if>] [PHYSOUT=<if>] [MAC=<hex:..>[ TUNNEL=a->b] | MACSRC= MACDST= [VPROTO= VID=] MACPROTO=]
//   IPv4: SRC= DST= LEN= TOS=0x.. PREC=0x.. TTL= ID= [CE] [DF] [MF] [FRAG:n] [OPT (hex)]
//   IPv6: SRC= DST= LEN= TC= HOPLIMIT= FLOWLBL= [OPT ( FRAG:n [INCOMPLETE] ID:x ) ...]
//   PROTO=TCP SPT= DPT= [SEQ= ACK=] WINDOW= RES=0x.. [AE CWR ECE URG ACK PSH RST SYN FIN] URGP= [OPT (hex)]
//   PROTO=UDP|UDPLITE SPT= DPT= LEN=
//   PROTO=ICMP TYPE= CODE= [ID= SEQ= | PARAMETER= | GATEWAY=] [[SRC=... quoted packet ...]] [MTU=]
//   PROTO=ICMPv6 TYPE= CODE= [ID= SEQ= | POINTER=] [[SRC=... quoted packet ...]] [MTU=]
//   PROTO=AH|ESP SPI=0x..   PROTO=<n>   INCOMPLETE [n bytes]   TRUNCATED
//   [UID= GID=] [MARK=0x..]
//   ARP: ARP HTYPE= PTYPE=0x.. OPCODE= [MACSRC= IPSRC= MACDST= IPDST=]
//
// The prefix is glued to "IN=" (nft adds no space), may contain spaces and colons, and is matched
// against the configured prefixes. Keys keep their FIRST value: the quoted packet of an ICMP error
// and UDP's own LEN= never override the outer header (the quoted packet goes to `inner`).
// One pass over the line, no regular expressions, no exceptions. parseLine's steps: the line
// (trailing newline, length), the anchor, the prefix, the fields (kernelfields.ts, including the
// quoted packet of an ICMP error), the addresses, the time (timeheader.ts), and the drop.

import type { DropMetrics } from './metrics.js';
import { sharedDropMetrics } from './metrics.js';
import { normalizeIPv4, normalizeIPv6 } from '../../util/ip.js';
import { parseHeader, readBootTimeMs, type HeaderInfo, type TimeContext } from './timeheader.js';
import type { AddressFamily, InnerPacket, PacketDrop, Protocol, TimeSource } from '../../apis/drops.js';
import { LineFields, scanFields, tcpFlagsOf } from './kernelfields.js';
import type { ParseResult, SkipReason } from './types.js';

export interface KernelLogParserOptions {
  /**
   * Log prefixes of drop rules, e.g. "nftables-metal-dropped: ". Compared without trailing spaces;
   * a line's prefix matches when it ends with one of them (after a space, "]", ";" or ">" or at the
   * start of the message). Empty or absent: every netfilter line is accepted and its prefix is
   * taken from the line.
   */
  prefixes?: readonly string[];
  /** Boot time for dmesg / kmsg stamps. Default: from /proc/uptime, read once. */
  bootTime?: Date;
  /** Clock for the year of syslog stamps and the receive time. Default Date.now. */
  now?: () => number;
  /** Put the input line into `drop.raw`. */
  keepRaw?: boolean;
  /** Journal entries of other transports than "kernel" are skipped unless this is set. */
  anyTransport?: boolean;
  /** Where skipped/parsed lines are counted. Default: the shared registry. */
  metrics?: DropMetrics;
}

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Tab = 0x09, // '\t'
  Lf = 0x0a, // '\n'
  Cr = 0x0d, // '\r'
  Space = 0x20, // ' '
  BracketClose = 0x5d, // ']'
  Semicolon = 0x3b, // ';'
  GreaterThan = 0x3e, // '>'
}

/** Longer than any kernel log line plus syslog header can be. */
export const MAX_LINE_LENGTH = 8192;

/** A kernel log / journal parser with its configuration. Reuse one per input stream. */
export class KernelLogParser {
  private readonly prefixes: readonly string[];
  private readonly keepRaw: boolean;
  private readonly anyTransport: boolean;
  private readonly metrics: DropMetrics;
  private readonly now: () => number;
  private bootMs: number;
  private bootRead: boolean;
  private lastIsoMs = NaN;
  private lastIso = '';
  private isoMinute = NaN;
  private isoMinutePrefix = '';

  constructor(opts: KernelLogParserOptions = {}) {
    this.prefixes = (opts.prefixes ?? [])
      .map((p) => p.trimEnd())
      .filter((p) => p.length > 0)
      .sort((a, b) => b.length - a.length); // longest first: "a b:" wins over "b:"
    this.keepRaw = opts.keepRaw === true;
    this.anyTransport = opts.anyTransport === true;
    this.metrics = opts.metrics ?? sharedDropMetrics();
    this.now = opts.now ?? Date.now;
    this.bootMs = opts.bootTime !== undefined ? opts.bootTime.getTime() : NaN;
    this.bootRead = opts.bootTime !== undefined;
  }

  /** Parse one line (without or with its trailing newline). Never throws. */
  parse(line: string, receivedAt?: Date): ParseResult {
    let r: ParseResult;
    try {
      r = this.parseLine(line, receivedAt === undefined ? NaN : receivedAt.getTime(), NaN, 'received');
    } catch {
      // Defensive: the tokenizer is written not to throw; a bug must not kill the agent.
      r = { ok: false, reason: 'not-a-drop', line };
    }
    if (r.ok) this.metrics.lineParsed();
    else this.metrics.lineSkipped(r.reason);
    return r;
  }

  /**
   * Parse one `journalctl -o json` entry (an object, or its JSON text). MESSAGE may be a string or
   * an array of bytes; the time is __REALTIME_TIMESTAMP (µs). Never throws.
   */
  parseJournalEntry(entry: unknown): ParseResult {
    let r: ParseResult;
    try {
      r = this.journal(entry);
    } catch {
      r = { ok: false, reason: 'bad-json', line: typeof entry === 'string' ? entry : '' };
    }
    if (r.ok) this.metrics.lineParsed();
    else this.metrics.lineSkipped(r.reason);
    return r;
  }

  private journal(entry: unknown): ParseResult {
    let obj: unknown = entry;
    const text = typeof entry === 'string' ? entry : '';
    if (typeof entry === 'string') {
      try {
        obj = JSON.parse(entry);
      } catch {
        return { ok: false, reason: 'bad-json', line: text };
      }
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { ok: false, reason: 'bad-json', line: text };
    const e = obj as Record<string, unknown>;
    const m = e['MESSAGE'];
    let msg: string;
    if (typeof m === 'string') msg = m;
    else if (Array.isArray(m) && m.every((b) => typeof b === 'number')) msg = Buffer.from(m as number[]).toString('utf8');
    else return { ok: false, reason: 'bad-json', line: text };
    const transport = e['_TRANSPORT'];
    if (!this.anyTransport && transport !== undefined && transport !== 'kernel') {
      return { ok: false, reason: 'not-kernel', line: msg };
    }
    const rt = e['__REALTIME_TIMESTAMP'];
    let ms = NaN;
    if (typeof rt === 'string' || typeof rt === 'number') {
      const us = Number(rt);
      if (Number.isFinite(us) && us > 0) ms = Math.floor(us / 1000);
    }
    return this.parseLine(msg, NaN, ms, 'journal');
  }

  private readonly fields = new LineFields();
  private readonly ctx: TimeContext = { bootMs: NaN, nowMs: 0 };
  private readonly header: HeaderInfo = { ms: NaN, source: 'received', bodyStart: 0 };

  private timeContext(): TimeContext {
    if (!this.bootRead) {
      this.bootRead = true;
      this.bootMs = readBootTimeMs();
    }
    this.ctx.bootMs = this.bootMs;
    this.ctx.nowMs = this.now();
    return this.ctx;
  }

  /** toISOString() with the "YYYY-MM-DDTHH:MM:" part cached per minute (lines come in time order). */
  private iso(ms: number): string {
    if (ms === this.lastIsoMs) return this.lastIso;
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.isoMinute || !(ms >= 0 && ms < 253402300800000)) {
      const full = new Date(ms).toISOString();
      this.isoMinute = minute;
      this.isoMinutePrefix = full.slice(0, 17);
      this.lastIsoMs = ms;
      this.lastIso = full;
      return full;
    }
    const rest = ms - minute * 60_000;
    const sec = Math.floor(rest / 1000);
    const milli = rest - sec * 1000;
    const s = `${this.isoMinutePrefix}${sec < 10 ? '0' : ''}${sec}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
    this.lastIsoMs = ms;
    this.lastIso = s;
    return s;
  }

  /** The configured prefix that ends the line's message before the anchor, or undefined when none does. */
  private matchPrefix(line: string, anchor: number): string | undefined {
    let e = anchor;
    while (e > 0 && line.charCodeAt(e - 1) === Ch.Space) e--;
    for (const text of this.prefixes) {
      const start = e - text.length;
      if (start < 0 || !line.startsWith(text, start)) continue;
      if (start > 0) {
        const b = line.charCodeAt(start - 1);
        if (b !== Ch.Space && b !== Ch.BracketClose && b !== Ch.Semicolon && b !== Ch.GreaterThan && b !== Ch.Tab) continue;
      }
      return text;
    }
    return undefined;
  }

  private parseLine(input: string, receivedMs: number, fixedMs: number, fixedSource: TimeSource): ParseResult {
    const line = withoutNewline(input);
    const len = line.length;
    if (len === 0) return { ok: false, reason: 'empty', line };
    if (len > MAX_LINE_LENGTH) return { ok: false, reason: 'too-long', line };

    const anchor = findAnchor(line);
    if (anchor < 0) return { ok: false, reason: isBlank(line) ? 'empty' : 'not-a-drop', line };

    // The prefix; the header is parsed here only when the prefix is taken from the line.
    let prefix: string;
    let headerInfo: HeaderInfo | undefined;
    if (this.prefixes.length > 0) {
      const matched = this.matchPrefix(line, anchor);
      if (matched === undefined) return { ok: false, reason: this.missingPrefixReason(line, anchor), line };
      prefix = matched;
    } else {
      headerInfo = parseHeader(line, anchor, this.timeContext(), this.header);
      prefix = line.slice(headerInfo.bodyStart, anchor).trim();
    }

    const f = this.fields;
    scanFields(line, anchor, len, f);
    const endpoints = this.endpoints;
    const skip = readEndpoints(line, f, endpoints);
    if (skip !== undefined) return { ok: false, reason: skip, line };

    // The time: fixed by the caller (journal), else from the line's header, else when received.
    let ms = fixedMs;
    let source: TimeSource = fixedSource;
    if (Number.isNaN(ms)) {
      headerInfo ??= parseHeader(line, anchor, this.timeContext(), this.header);
      ms = headerInfo.ms;
      source = headerInfo.source;
      if (Number.isNaN(ms)) {
        ms = Number.isNaN(receivedMs) ? this.now() : receivedMs;
        source = 'received';
      }
    }

    const drop = buildDrop(line, f, endpoints, this.iso(ms), source, prefix);
    if (this.keepRaw) drop.raw = line;
    return { ok: true, drop };
  }

  /** A netfilter line none of the configured prefixes matched: one without any, or another one. */
  private missingPrefixReason(line: string, anchor: number): SkipReason {
    const h = parseHeader(line, anchor, this.timeContext(), this.header);
    return line.slice(h.bodyStart, anchor).trim().length === 0 ? 'no-prefix' : 'unknown-prefix';
  }

  private readonly endpoints: Endpoints = { src: '', dst: '', family: 'ipv4', protocol: '', incomplete: false };
}

/** The line without its trailing newline / CR. */
function withoutNewline(input: string): string {
  let len = input.length;
  while (len > 0) {
    const c = input.charCodeAt(len - 1);
    if (c !== Ch.Lf && c !== Ch.Cr) break;
    len--;
  }
  return len === input.length ? input : input.slice(0, len);
}

/** Where "IN=<if> OUT=" starts, the mark of a netfilter line; -1 when there is none. */
function findAnchor(line: string): number {
  let from = 0;
  for (;;) {
    const i = line.indexOf('IN=', from);
    if (i < 0) return -1;
    const sp = line.indexOf(' ', i + 3);
    if (sp > 0 && line.startsWith('OUT=', sp + 1)) return i;
    from = i + 3;
  }
}

function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (line.charCodeAt(i) > Ch.Space) return false;
  return true;
}

/** The addresses and protocol of a drop, filled by readEndpoints (one object per parser). */
interface Endpoints {
  src: string;
  dst: string;
  family: AddressFamily;
  protocol: Protocol;
  /** The kernel did not walk the IPv6 extension headers (no PROTO=). */
  incomplete: boolean;
}

/** Normalised addresses and the protocol, of the IP header or of ARP; the skip reason when the line has none. */
function readEndpoints(line: string, f: LineFields, out: Endpoints): SkipReason | undefined {
  const len = line.length;
  out.incomplete = false;
  if (f.srcP >= 0) {
    if (f.dstP < 0) return 'truncated';
    const s = line.slice(f.srcP, f.srcQ);
    const d = line.slice(f.dstP, f.dstQ);
    let src: string | undefined;
    let dst: string | undefined;
    if (s.indexOf(':') >= 0) {
      out.family = 'ipv6';
      src = normalizeIPv6(s);
      dst = d.indexOf(':') >= 0 ? normalizeIPv6(d) : undefined;
    } else {
      out.family = 'ipv4';
      src = normalizeIPv4(s);
      dst = normalizeIPv4(d);
    }
    // a line cut in the middle of DST looks like a bad address: call it truncated when DST is last
    if (src === undefined || dst === undefined) return f.dstQ === len && !f.flowlbl && f.ipLen < 0 ? 'truncated' : 'bad-address';
    out.src = src;
    out.dst = dst;
    if (f.proto !== undefined) {
      out.protocol = f.proto;
    } else if (out.family === 'ipv6' && f.flowlbl) {
      // IPv6 whose extension headers the kernel did not walk through (ESP, unknown) prints no PROTO=
      out.protocol = 'unknown';
      out.incomplete = true;
    } else {
      return 'truncated';
    }
    return undefined;
  }
  if (f.arp) {
    if (f.arpSrcP < 0 || f.arpDstP < 0) return f.incomplete ? 'truncated' : 'not-ip';
    const src = normalizeIPv4(line.slice(f.arpSrcP, f.arpSrcQ));
    const dst = normalizeIPv4(line.slice(f.arpDstP, f.arpDstQ));
    if (src === undefined || dst === undefined) return f.arpDstQ === len ? 'truncated' : 'bad-address';
    out.src = src;
    out.dst = dst;
    out.family = 'ipv4';
    out.protocol = 'ARP';
    return undefined;
  }
  return f.onlyLink && !f.incomplete ? 'not-ip' : 'truncated';
}

/** The PacketDrop of a line whose fields and endpoints were read; optional fields only when present. */
function buildDrop(line: string, f: LineFields, e: Endpoints, time: string, timeSource: TimeSource, prefix: string): PacketDrop {
  const { protocol, family } = e;
  const drop: PacketDrop = { time, timeSource, prefix, family, src: e.src, dst: e.dst, protocol };
  if (f.inIf) drop.inInterface = f.inIf;
  if (f.outIf) drop.outInterface = f.outIf;
  if (f.physIn) drop.physInInterface = f.physIn;
  if (f.physOut) drop.physOutInterface = f.physOut;
  const mac = f.mac;
  if (mac) {
    drop.mac = mac;
    if (mac.length === 41) {
      // dst(6):src(6):ethertype(2) as printed by the kernel for Ethernet
      drop.dstMac = mac.slice(0, 17);
      drop.srcMac = mac.slice(18, 35);
    }
  }
  if (f.macSrc) drop.srcMac = f.macSrc;
  if (f.macDst) drop.dstMac = f.macDst;
  if (f.vid >= 0) drop.vlanId = f.vid;
  if (f.spt >= 0) drop.srcPort = f.spt;
  if (f.dpt >= 0) drop.dstPort = f.dpt;
  if (f.ipLen >= 0 && protocol !== 'ARP') drop.length = f.ipLen;
  if (f.ttl >= 0) drop.ttl = f.ttl;
  if (f.hop >= 0) drop.hopLimit = f.hop;
  if (protocol === 'TCP' && f.flags !== 0) drop.tcpFlags = tcpFlagsOf(f.flags);
  if ((protocol === 'ICMP' || protocol === 'ICMPv6') && f.icmpType >= 0) {
    drop.icmpType = f.icmpType;
    if (f.icmpCode >= 0) drop.icmpCode = f.icmpCode;
  }
  const inner = quotedPacket(line, f, family);
  if (inner !== undefined) drop.inner = inner;
  if (f.mark >= 0) drop.mark = f.mark;
  if (f.uid >= 0) drop.uid = f.uid;
  if (f.gid >= 0) drop.gid = f.gid;
  if (f.frag > 0) drop.fragmentOffset = f.frag;
  if (f.incomplete || e.incomplete) drop.incomplete = true;
  return drop;
}

/** The flow an ICMP error is about (the packet it quotes), when both its addresses are valid. */
function quotedPacket(line: string, f: LineFields, family: AddressFamily): InnerPacket | undefined {
  if (f.iSrcP < 0 || f.iDstP < 0) return undefined;
  const normalize = family === 'ipv6' ? normalizeIPv6 : normalizeIPv4;
  const src = normalize(line.slice(f.iSrcP, f.iSrcQ));
  const dst = normalize(line.slice(f.iDstP, f.iDstQ));
  if (src === undefined || dst === undefined) return undefined;
  const inner: InnerPacket = { src, dst };
  if (f.iProto !== undefined) inner.protocol = f.iProto;
  if (f.iSpt >= 0) inner.srcPort = f.iSpt;
  if (f.iDpt >= 0) inner.dstPort = f.iDpt;
  return inner;
}
