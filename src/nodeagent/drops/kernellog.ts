// Parser of netfilter's kernel log lines: iptables/ip6tables `-j LOG`, arptables `--log`, nftables
// `log` without a group, and ebtables' `log` watcher. The text is written by net/netfilter/nf_log_syslog.c:
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
// and by net/bridge/netfilter/ebt_log.c ("<prefix> IN= OUT= MAC source = ...", see ebtables.ts).
//
// The prefix is glued to "IN=" (nft adds no space; ebtables does), may contain spaces and colons,
// and is matched against the configured prefixes. Keys keep their FIRST value: the quoted packet of
// an ICMP error and UDP's own LEN= never override the outer header (the quoted packet goes to
// `inner`). One pass over the line, no regular expressions, no exceptions. readLine's steps: the
// line (trailing newline, length), the anchor, the prefix, the fields (kernelfields.ts, including
// the quoted packet of an ICMP error, or ebtables.ts), the addresses, and the time
// (timeheader.ts). What they found stays in the parser (`last`, positions in the line, nothing
// sliced): parse() builds the PacketDrop from it, writeDropJson (dropjson.ts) writes it as JSON.

import { defaultDropMetrics, type DropMetrics } from './counting.js';
import { formatIPv6Groups, isIPv4At, parseIPv6At } from '../../util/ip.js';
import { parseHeader, readBootTimeMs, type HeaderInfo, type TimeContext } from './timeheader.js';
import type { AddressFamily, InnerPacket, PacketDrop, Protocol, TimeSource } from '../../apis/drops.js';
import { scanFields, tcpFlagsOf } from './kernelfields.js';
import { LineFields } from './linefields.js';
import { isEbtablesLine, scanEbtablesFields } from './ebtables.js';
import { IsoTimes } from './isotime.js';
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
  /** Where skipped/parsed lines are counted. Default: the shared registry's counters where metrics.ts is loaded (counting.ts). */
  metrics?: DropMetrics;
}

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Tab = 0x09, // '\t'
  Lf = 0x0a, // '\n'
  Cr = 0x0d, // '\r'
  Space = 0x20, // ' '
  Colon = 0x3a, // ':'
  BracketClose = 0x5d, // ']'
  Semicolon = 0x3b, // ';'
  GreaterThan = 0x3e, // '>'
}

/** The farthest a Date reaches from the epoch, either way. */
const MAX_TIME_MS = 8.64e15;

/** Longer than any kernel log line plus syslog header can be. */
export const MAX_LINE_LENGTH = 8192;

/** The addresses and protocol of a drop, filled by readEndpoints (one object per parser). */
export class Endpoints {
  family: AddressFamily = 'ipv4';
  protocol: Protocol = '';
  /** The kernel did not walk the IPv6 extension headers (no PROTO=). */
  incomplete = false;
  /** IPv4: where the addresses are in the line (of the IP header, or ARP's); the kernel prints them canonical. */
  srcP = -1;
  srcQ = -1;
  dstP = -1;
  dstQ = -1;
  /** IPv6: the groups of the source (0-7) and destination (8-15), of the quoted packet's (16-23, 24-31). */
  readonly groups = new Uint16Array(32);
  /** The quoted packet of an ICMP error has two valid addresses (LineFields.iSrcP...; groups 16-31 for IPv6). */
  inner = false;
}

/** What read() found in the line it read last; valid until the next read. */
export class LastLine {
  /** The line (without its newline) or journal entry text; what a skip reports. */
  line = '';
  readonly fields = new LineFields();
  readonly endpoints = new Endpoints();
  /** The drop's time in ms since the epoch, and where it came from. */
  ms = NaN;
  timeSource: TimeSource = 'received';
  prefix = '';
}

/** A kernel log / journal parser with its configuration. Reuse one per input stream. */
export class KernelLogParser {
  /** The line read last: the drop's fields in place when read() returned undefined. */
  readonly last = new LastLine();
  /** Put the line into the drop as `raw`. */
  readonly keepRaw: boolean;
  private readonly prefixes: readonly string[];
  private readonly anyTransport: boolean;
  private readonly metrics: DropMetrics;
  private readonly now: () => number;
  private bootMs: number;
  private bootRead: boolean;
  private readonly iso = new IsoTimes();
  private readonly ctx: TimeContext = { bootMs: NaN, nowMs: 0 };
  private readonly header: HeaderInfo = { ms: NaN, source: 'received', bodyStart: 0 };

  constructor(opts: KernelLogParserOptions = {}) {
    this.prefixes = (opts.prefixes ?? [])
      .map((p) => p.trimEnd())
      .filter((p) => p.length > 0)
      .sort((a, b) => b.length - a.length); // longest first: "a b:" wins over "b:"
    this.keepRaw = opts.keepRaw === true;
    this.anyTransport = opts.anyTransport === true;
    this.metrics = opts.metrics ?? defaultDropMetrics();
    this.now = opts.now ?? Date.now;
    this.bootMs = opts.bootTime !== undefined ? opts.bootTime.getTime() : NaN;
    this.bootRead = opts.bootTime !== undefined;
  }

  /** Parse one line (without or with its trailing newline). Never throws. */
  parse(line: string, receivedAt?: Date): ParseResult {
    return this.result(this.read(line, receivedAt === undefined ? NaN : receivedAt.getTime()));
  }

  /**
   * Parse one `journalctl -o json` entry (an object, or its JSON text). MESSAGE may be a string or
   * an array of bytes; the time is __REALTIME_TIMESTAMP (µs). Never throws.
   */
  parseJournalEntry(entry: unknown): ParseResult {
    return this.result(this.readJournalEntry(entry));
  }

  /**
   * Reads one line into `last` and counts it: the skip reason, or undefined for a drop (then
   * drop() builds it, or writeDropJson writes it). Never throws. receivedMs: when the line was
   * received (NaN: now), the time of a line without a time header.
   */
  read(line: string, receivedMs = NaN): SkipReason | undefined {
    let r: SkipReason | undefined;
    try {
      r = this.readLine(line, receivedMs, NaN, 'received');
    } catch {
      // Defensive: the tokenizer is written not to throw; a bug must not kill the agent.
      this.last.line = line;
      r = 'not-a-drop';
    }
    this.count(r);
    return r;
  }

  /** Reads one `journalctl -o json` entry (see parseJournalEntry) into `last` and counts it, as read() does. */
  readJournalEntry(entry: unknown): SkipReason | undefined {
    let r: SkipReason | undefined;
    try {
      r = this.journal(entry);
    } catch {
      this.last.line = typeof entry === 'string' ? entry : '';
      r = 'bad-json';
    }
    this.count(r);
    return r;
  }

  /** The PacketDrop of the line read last, when read() returned undefined. */
  drop(): PacketDrop {
    const last = this.last;
    const drop = buildDrop(last, this.iso.text(last.ms));
    if (this.keepRaw) drop.raw = last.line;
    return drop;
  }

  private result(reason: SkipReason | undefined): ParseResult {
    return reason === undefined ? { ok: true, drop: this.drop() } : { ok: false, reason, line: this.last.line };
  }

  private count(reason: SkipReason | undefined): void {
    if (reason === undefined) this.metrics.lineParsed();
    else this.metrics.lineSkipped(reason);
  }

  private journal(entry: unknown): SkipReason | undefined {
    let obj: unknown = entry;
    const text = typeof entry === 'string' ? entry : '';
    this.last.line = text;
    if (typeof entry === 'string') {
      try {
        obj = JSON.parse(entry);
      } catch {
        return 'bad-json';
      }
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return 'bad-json';
    const e = obj as Record<string, unknown>;
    const m = e['MESSAGE'];
    let msg: string;
    if (typeof m === 'string') msg = m;
    else if (Array.isArray(m) && m.every((b) => typeof b === 'number')) msg = Buffer.from(m as number[]).toString('utf8');
    else return 'bad-json';
    const transport = e['_TRANSPORT'];
    if (!this.anyTransport && transport !== undefined && transport !== 'kernel') {
      this.last.line = msg;
      return 'not-kernel';
    }
    const rt = e['__REALTIME_TIMESTAMP'];
    let ms = NaN;
    if (typeof rt === 'string' || typeof rt === 'number') {
      const us = Number(rt);
      if (Number.isFinite(us) && us > 0) ms = Math.floor(us / 1000);
    }
    return this.readLine(msg, NaN, ms, 'journal');
  }

  private timeContext(): TimeContext {
    if (!this.bootRead) {
      this.bootRead = true;
      this.bootMs = readBootTimeMs();
    }
    this.ctx.bootMs = this.bootMs;
    this.ctx.nowMs = this.now();
    return this.ctx;
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

  private readLine(input: string, receivedMs: number, fixedMs: number, fixedSource: TimeSource): SkipReason | undefined {
    const last = this.last;
    const line = withoutNewline(input);
    last.line = line;
    const len = line.length;
    if (len === 0) return 'empty';
    if (len > MAX_LINE_LENGTH) return 'too-long';

    const anchor = findAnchor(line);
    if (anchor < 0) return isBlank(line) ? 'empty' : 'not-a-drop';

    // The prefix; the header is parsed here only when the prefix is taken from the line.
    let headerInfo: HeaderInfo | undefined;
    if (this.prefixes.length > 0) {
      const matched = this.matchPrefix(line, anchor);
      if (matched === undefined) return this.missingPrefixReason(line, anchor);
      last.prefix = matched;
    } else {
      headerInfo = parseHeader(line, anchor, this.timeContext(), this.header);
      last.prefix = line.slice(headerInfo.bodyStart, anchor).trim();
    }

    // The fields: ebt_log's format, or nf_log_syslog's.
    const f = last.fields;
    if (isEbtablesLine(line, anchor)) scanEbtablesFields(line, anchor, len, f);
    else scanFields(line, anchor, len, f);
    const skip = readEndpoints(line, f, last.endpoints);
    if (skip !== undefined) return skip;

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
    // toISOString() throws beyond it (a dmesg stamp of absurd seconds): read()'s catch skips the line, as it always has
    if (!(Math.abs(ms) <= MAX_TIME_MS)) throw new RangeError(`time ${ms} ms is out of range`);
    last.ms = ms;
    last.timeSource = source;
    return undefined;
  }

  /** A netfilter line none of the configured prefixes matched: one without any, or another one. */
  private missingPrefixReason(line: string, anchor: number): SkipReason {
    const h = parseHeader(line, anchor, this.timeContext(), this.header);
    return line.slice(h.bodyStart, anchor).trim().length === 0 ? 'no-prefix' : 'unknown-prefix';
  }
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

function hasColon(line: string, p: number, q: number): boolean {
  for (let i = p; i < q; i++) if (line.charCodeAt(i) === Ch.Colon) return true;
  return false;
}

/** Checked addresses and the protocol, of the IP header or of ARP, into out; the skip reason when the line has none. */
function readEndpoints(line: string, f: LineFields, out: Endpoints): SkipReason | undefined {
  const len = line.length;
  out.incomplete = false;
  out.inner = false;
  if (f.srcP >= 0) {
    if (f.dstP < 0) return 'truncated';
    let valid: boolean;
    if (hasColon(line, f.srcP, f.srcQ)) {
      out.family = 'ipv6';
      valid = parseIPv6At(line, f.srcP, f.srcQ, out.groups, 0) && hasColon(line, f.dstP, f.dstQ) && parseIPv6At(line, f.dstP, f.dstQ, out.groups, 8);
    } else {
      out.family = 'ipv4';
      valid = isIPv4At(line, f.srcP, f.srcQ) && isIPv4At(line, f.dstP, f.dstQ);
    }
    // a line cut in the middle of DST looks like a bad address: call it truncated when DST is last
    if (!valid) return f.dstQ === len && !f.flowlbl && f.ipLen < 0 ? 'truncated' : 'bad-address';
    setAddresses(out, f.srcP, f.srcQ, f.dstP, f.dstQ);
    if (f.proto !== undefined) {
      out.protocol = f.proto;
    } else if (out.family === 'ipv6' && f.flowlbl) {
      // IPv6 whose extension headers the kernel did not walk through (ESP, unknown) prints no PROTO=
      out.protocol = 'unknown';
      out.incomplete = true;
    } else {
      return 'truncated';
    }
    out.inner = readQuotedAddresses(line, f, out);
    return undefined;
  }
  if (f.arp) {
    if (f.arpSrcP < 0 || f.arpDstP < 0) return f.incomplete ? 'truncated' : 'not-ip';
    if (!isIPv4At(line, f.arpSrcP, f.arpSrcQ) || !isIPv4At(line, f.arpDstP, f.arpDstQ)) return f.arpDstQ === len ? 'truncated' : 'bad-address';
    setAddresses(out, f.arpSrcP, f.arpSrcQ, f.arpDstP, f.arpDstQ);
    out.family = 'ipv4';
    out.protocol = 'ARP';
    return undefined;
  }
  return f.onlyLink && !f.incomplete ? 'not-ip' : 'truncated';
}

function setAddresses(out: Endpoints, srcP: number, srcQ: number, dstP: number, dstQ: number): void {
  out.srcP = srcP;
  out.srcQ = srcQ;
  out.dstP = dstP;
  out.dstQ = dstQ;
}

/** Whether the quoted packet of an ICMP error has both addresses, valid in the outer packet's family. */
function readQuotedAddresses(line: string, f: LineFields, out: Endpoints): boolean {
  if (f.iSrcP < 0 || f.iDstP < 0) return false;
  if (out.family === 'ipv6') return parseIPv6At(line, f.iSrcP, f.iSrcQ, out.groups, 16) && parseIPv6At(line, f.iDstP, f.iDstQ, out.groups, 24);
  return isIPv4At(line, f.iSrcP, f.iSrcQ) && isIPv4At(line, f.iDstP, f.iDstQ);
}

/** An address of the drop as text: IPv4 as printed, IPv6 in RFC 5952 form (groups at `group`). */
function address(line: string, e: Endpoints, p: number, q: number, group: number): string {
  return e.family === 'ipv6' ? formatIPv6Groups(e.groups, group) : line.slice(p, q);
}

/** The PacketDrop of a line whose fields and endpoints were read; optional fields only when present. */
function buildDrop(last: LastLine, time: string): PacketDrop {
  const { line, fields: f, endpoints: e } = last;
  const { protocol, family } = e;
  const src = address(line, e, e.srcP, e.srcQ, 0);
  const dst = address(line, e, e.dstP, e.dstQ, 8);
  const drop: PacketDrop = { time, timeSource: last.timeSource, prefix: last.prefix, family, src, dst, protocol };
  if (f.inQ > f.inP) drop.inInterface = line.slice(f.inP, f.inQ);
  if (f.outQ > f.outP) drop.outInterface = line.slice(f.outP, f.outQ);
  if (f.physInQ > f.physInP) drop.physInInterface = line.slice(f.physInP, f.physInQ);
  if (f.physOutQ > f.physOutP) drop.physOutInterface = line.slice(f.physOutP, f.physOutQ);
  if (f.macQ > f.macP) {
    drop.mac = line.slice(f.macP, f.macQ);
    if (f.macQ - f.macP === 41) {
      // dst(6):src(6):ethertype(2) as printed by the kernel for Ethernet
      drop.dstMac = line.slice(f.macP, f.macP + 17);
      drop.srcMac = line.slice(f.macP + 18, f.macP + 35);
    }
  }
  if (f.macSrcQ > f.macSrcP) drop.srcMac = line.slice(f.macSrcP, f.macSrcQ);
  if (f.macDstQ > f.macDstP) drop.dstMac = line.slice(f.macDstP, f.macDstQ);
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
  if (e.inner) drop.inner = quotedPacket(line, f, e);
  if (f.mark >= 0) drop.mark = f.mark;
  if (f.uid >= 0) drop.uid = f.uid;
  if (f.gid >= 0) drop.gid = f.gid;
  if (f.frag > 0) drop.fragmentOffset = f.frag;
  if (f.incomplete || e.incomplete) drop.incomplete = true;
  return drop;
}

/** The flow an ICMP error is about (the packet it quotes), whose addresses readEndpoints checked. */
function quotedPacket(line: string, f: LineFields, e: Endpoints): InnerPacket {
  const inner: InnerPacket = { src: address(line, e, f.iSrcP, f.iSrcQ, 16), dst: address(line, e, f.iDstP, f.iDstQ, 24) };
  if (f.iProto !== undefined) inner.protocol = f.iProto;
  if (f.iSpt >= 0) inner.srcPort = f.iSpt;
  if (f.iDpt >= 0) inner.dstPort = f.iDpt;
  return inner;
}
