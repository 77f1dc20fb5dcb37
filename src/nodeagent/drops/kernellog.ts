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
// sliced): parse() builds the PacketDrop from it, DropJsonWriter (dropjson.ts) writes it as JSON.
//
// The line is read as UTF-8 bytes in place (readBytes: a chunk of stdin or of a log file, no
// string made per line); a line given as a string is first written into a scratch Buffer. The
// tokens the parser compares are ASCII, which is never part of a multi-byte character, so a
// field's bytes are the UTF-8 of its text. Only the fields a drop keeps are decoded (buildDrop),
// or copied as bytes into JSON (dropjson.ts).

import { defaultDropMetrics, type DropMetrics } from './counting.js';
import { formatIPv6Groups, isIPv4Bytes, parseIPv6Bytes } from '../../util/ip.js';
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
  Equals = 0x3d, // '='
  I = 0x49, // 'I'
  N = 0x4e, // 'N'
  O = 0x4f, // 'O'
  T = 0x54, // 'T'
  U = 0x55, // 'U'
}

/** The farthest a Date reaches from the epoch, either way. */
const MAX_TIME_MS = 8.64e15;

/** Longer than any kernel log line plus syslog header can be (bytes of UTF-8). */
export const MAX_LINE_LENGTH = 8192;

/** Bytes a string of MAX_LINE_LENGTH UTF-16 units takes in UTF-8 at most. */
const SCRATCH_BYTES = 3 * MAX_LINE_LENGTH;

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
  /** The line's bytes (without its newline) are buf[start, end); the fields' positions are into buf. */
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  /** The line as text, when it was given as text or has been decoded; undefined: not made yet. */
  private text: string | undefined = '';
  readonly fields = new LineFields();
  readonly endpoints = new Endpoints();
  /** The drop's time in ms since the epoch, and where it came from. */
  ms = NaN;
  timeSource: TimeSource = 'received';
  prefix = '';

  /** The line (without its newline) or journal entry text; what a skip reports. Decoded on first use. */
  get line(): string {
    this.text ??= this.buf.toString('utf8', this.start, this.end);
    return this.text;
  }

  /** Whether `line` would be decoded from buf[start, end) (so a writer may copy those bytes instead). */
  get fromBytes(): boolean {
    return this.text === undefined;
  }

  /** A line of bytes; `text` is its text when the caller has it. */
  setBytes(buf: Buffer, start: number, end: number, text: string | undefined): void {
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.text = text;
  }

  /** Text that is not parsed (a journal entry, a line too long to read): no bytes. */
  setText(text: string): void {
    this.setBytes(EMPTY, 0, 0, text);
  }

  /** The text of buf[p, q), a field of the line: a slice of the line's text when it is ASCII (one byte per character). */
  slice(p: number, q: number): string {
    const text = this.line;
    return text.length === this.end - this.start ? text.slice(p - this.start, q - this.start) : this.buf.toString('utf8', p, q);
  }
}

const EMPTY = Buffer.alloc(0);

/** A kernel log / journal parser with its configuration. Reuse one per input stream. */
export class KernelLogParser {
  /** The line read last: the drop's fields in place when read() returned undefined. */
  readonly last = new LastLine();
  /** Put the line into the drop as `raw`. */
  readonly keepRaw: boolean;
  private readonly prefixes: readonly string[];
  /** The UTF-8 of each of `prefixes`, compared with the line's bytes. */
  private readonly prefixBytes: readonly Buffer[];
  /** Where read() writes a line given as text. */
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private readonly anyTransport: boolean;
  private readonly metrics: DropMetrics;
  private readonly now: () => number;
  private bootMs: number;
  private bootRead: boolean;
  private readonly iso = new IsoTimes();
  private readonly ctx: TimeContext;
  private readonly header: HeaderInfo = { ms: NaN, source: 'received', bodyStart: 0 };

  constructor(opts: KernelLogParserOptions = {}) {
    this.prefixes = (opts.prefixes ?? [])
      .map((p) => p.trimEnd())
      .filter((p) => p.length > 0)
      .sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a)); // longest first: "a b:" wins over "b:"
    this.prefixBytes = this.prefixes.map((p) => Buffer.from(p, 'utf8'));
    this.keepRaw = opts.keepRaw === true;
    this.anyTransport = opts.anyTransport === true;
    this.metrics = opts.metrics ?? defaultDropMetrics();
    this.now = opts.now ?? Date.now;
    this.ctx = { bootMs: NaN, now: this.now, syslogKey: -1, syslogMs: NaN };
    this.bootMs = opts.bootTime !== undefined ? opts.bootTime.getTime() : NaN;
    this.bootRead = opts.bootTime !== undefined;
  }

  /** Parse one line (without or with its trailing newline). Never throws. */
  parse(line: string, receivedAt?: Date): ParseResult {
    return this.result(this.read(line, receivedAt === undefined ? NaN : receivedAt.getTime()));
  }

  /** Parse one line of UTF-8 bytes, buf[start, end) (without or with its trailing newline). Never throws. */
  parseBytes(buf: Buffer, start = 0, end = buf.length, receivedAt?: Date): ParseResult {
    return this.result(this.readBytes(buf, start, end, receivedAt === undefined ? NaN : receivedAt.getTime()));
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
      r = this.readText(line, receivedMs, NaN, 'received');
    } catch {
      // Defensive: the tokenizer is written not to throw; a bug must not kill the agent.
      this.last.setText(line);
      r = 'not-a-drop';
    }
    this.count(r);
    return r;
  }

  /**
   * read() for the UTF-8 bytes buf[start, end) (without or with the trailing newline), read in
   * place: `last` refers to buf until the next read, so the caller keeps those bytes until then.
   */
  readBytes(buf: Buffer, start: number, end: number, receivedMs = NaN): SkipReason | undefined {
    let r: SkipReason | undefined;
    try {
      r = this.readLine(buf, start, withoutNewline(buf, start, end), undefined, receivedMs, NaN, 'received');
    } catch {
      this.last.setText(buf.toString('utf8', start, end));
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
      this.last.setText(typeof entry === 'string' ? entry : '');
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
    this.last.setText(text);
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
    let msg: string | Buffer;
    if (typeof m === 'string') msg = m;
    else if (Array.isArray(m) && m.every((b) => typeof b === 'number')) msg = Buffer.from(m as number[]);
    else return 'bad-json';
    const transport = e['_TRANSPORT'];
    if (!this.anyTransport && transport !== undefined && transport !== 'kernel') {
      this.last.setText(typeof msg === 'string' ? msg : msg.toString('utf8'));
      return 'not-kernel';
    }
    const rt = e['__REALTIME_TIMESTAMP'];
    let ms = NaN;
    if (typeof rt === 'string' || typeof rt === 'number') {
      const us = Number(rt);
      if (Number.isFinite(us) && us > 0) ms = Math.floor(us / 1000);
    }
    if (typeof msg === 'string') return this.readText(msg, NaN, ms, 'journal');
    return this.readLine(msg, 0, withoutNewline(msg, 0, msg.length), undefined, NaN, ms, 'journal');
  }

  private timeContext(): TimeContext {
    if (!this.bootRead) {
      this.bootRead = true;
      this.bootMs = readBootTimeMs();
    }
    this.ctx.bootMs = this.bootMs;
    return this.ctx;
  }

  /** The configured prefix that ends the line's message before the anchor, or undefined when none does. */
  private matchPrefix(line: Buffer, lineStart: number, anchor: number): string | undefined {
    let e = anchor;
    while (e > lineStart && line[e - 1] === Ch.Space) e--;
    const prefixes = this.prefixBytes;
    for (let k = 0; k < prefixes.length; k++) {
      const text = prefixes[k]!;
      const start = e - text.length;
      if (start < lineStart || !bytesAt(line, start, text)) continue;
      if (start > lineStart) {
        const b = line[start - 1];
        if (b !== Ch.Space && b !== Ch.BracketClose && b !== Ch.Semicolon && b !== Ch.GreaterThan && b !== Ch.Tab) continue;
      }
      return this.prefixes[k];
    }
    return undefined;
  }

  /** A line given as text: checked for length, written into the scratch Buffer and read from there. */
  private readText(input: string, receivedMs: number, fixedMs: number, fixedSource: TimeSource): SkipReason | undefined {
    const line = withoutNewlineText(input);
    if (line.length > MAX_LINE_LENGTH) {
      this.last.setText(line);
      return 'too-long';
    }
    const n = this.scratch.write(line, 0, 'utf8');
    return this.readLine(this.scratch, 0, n, line, receivedMs, fixedMs, fixedSource);
  }

  /** Reads the line line[start, end) (no newline); text: its text when the caller has it. */
  private readLine(line: Buffer, start: number, end: number, text: string | undefined, receivedMs: number, fixedMs: number, fixedSource: TimeSource): SkipReason | undefined {
    const last = this.last;
    last.setBytes(line, start, end, text);
    const len = end;
    if (end === start) return 'empty';
    if (end - start > MAX_LINE_LENGTH) return 'too-long';

    const anchor = findAnchor(line, start, end);
    if (anchor < 0) return isBlank(line, start, end) ? 'empty' : 'not-a-drop';

    // The prefix; the header is parsed here only when the prefix is taken from the line.
    let headerInfo: HeaderInfo | undefined;
    if (this.prefixes.length > 0) {
      const matched = this.matchPrefix(line, start, anchor);
      if (matched === undefined) return this.missingPrefixReason(line, start, anchor, end);
      last.prefix = matched;
    } else {
      headerInfo = parseHeader(line, start, anchor, end, this.timeContext(), this.header);
      last.prefix = line.toString('utf8', headerInfo.bodyStart, anchor).trim();
    }

    // The fields: ebt_log's format, or nf_log_syslog's.
    const f = last.fields;
    if (isEbtablesLine(line, anchor, len)) scanEbtablesFields(line, anchor, len, f);
    else scanFields(line, anchor, len, f);
    const skip = readEndpoints(line, end, f, last.endpoints);
    if (skip !== undefined) return skip;

    // The time: fixed by the caller (journal), else from the line's header, else when received.
    let ms = fixedMs;
    let source: TimeSource = fixedSource;
    if (Number.isNaN(ms)) {
      headerInfo ??= parseHeader(line, start, anchor, end, this.timeContext(), this.header);
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
  private missingPrefixReason(line: Buffer, start: number, anchor: number, end: number): SkipReason {
    const h = parseHeader(line, start, anchor, end, this.timeContext(), this.header);
    return line.toString('utf8', h.bodyStart, anchor).trim().length === 0 ? 'no-prefix' : 'unknown-prefix';
  }
}

/** Whether the bytes of `text` are at line[p] (the caller has checked that they fit). */
function bytesAt(line: Buffer, p: number, text: Buffer): boolean {
  for (let k = 0; k < text.length; k++) if (line[p + k] !== text[k]) return false;
  return true;
}

/** The end of line[start, end) without its trailing newlines / CRs. */
function withoutNewline(line: Buffer, start: number, end: number): number {
  while (end > start && (line[end - 1] === Ch.Lf || line[end - 1] === Ch.Cr)) end--;
  return end;
}

/** The line without its trailing newline / CR. */
function withoutNewlineText(input: string): string {
  let len = input.length;
  while (len > 0) {
    const c = input.charCodeAt(len - 1);
    if (c !== Ch.Lf && c !== Ch.Cr) break;
    len--;
  }
  return len === input.length ? input : input.slice(0, len);
}

/** Where "IN=<if> OUT=" starts in line[start, end), the mark of a netfilter line; -1 when there is none. */
function findAnchor(line: Buffer, start: number, end: number): number {
  // "IN=" by its last byte, skipping ahead as far as the byte seen allows (Horspool): most of a
  // header is neither 'I', 'N' nor '=', so this looks at about a third of its bytes
  let i = start;
  while (i + 3 <= end) {
    const c = line[i + 2];
    if (c === Ch.Equals) {
      if (line[i] === Ch.I && line[i + 1] === Ch.N && isOutAfter(line, i + 3, end)) return i;
      i += 3;
    } else if (c === Ch.N) {
      i += 1;
    } else if (c === Ch.I) {
      i += 2;
    } else {
      i += 3;
    }
  }
  return -1;
}

/** Whether the token at p (the value of IN=) is followed by " OUT=". */
function isOutAfter(line: Buffer, p: number, end: number): boolean {
  while (p < end && line[p] !== Ch.Space) p++;
  return p + 5 <= end && line[p + 1] === Ch.O && line[p + 2] === Ch.U && line[p + 3] === Ch.T && line[p + 4] === Ch.Equals;
}

function isBlank(line: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (line[i]! > Ch.Space) return false;
  return true;
}

function hasColon(line: Buffer, p: number, q: number): boolean {
  for (let i = p; i < q; i++) if (line[i] === Ch.Colon) return true;
  return false;
}

/** Checked addresses and the protocol, of the IP header or of ARP, into out; the skip reason when the line has none. */
function readEndpoints(line: Buffer, len: number, f: LineFields, out: Endpoints): SkipReason | undefined {
  out.incomplete = false;
  out.inner = false;
  if (f.srcP >= 0) {
    if (f.dstP < 0) return 'truncated';
    let valid: boolean;
    if (hasColon(line, f.srcP, f.srcQ)) {
      out.family = 'ipv6';
      valid = parseIPv6Bytes(line, f.srcP, f.srcQ, out.groups, 0) && hasColon(line, f.dstP, f.dstQ) && parseIPv6Bytes(line, f.dstP, f.dstQ, out.groups, 8);
    } else {
      out.family = 'ipv4';
      valid = isIPv4Bytes(line, f.srcP, f.srcQ) && isIPv4Bytes(line, f.dstP, f.dstQ);
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
    if (!isIPv4Bytes(line, f.arpSrcP, f.arpSrcQ) || !isIPv4Bytes(line, f.arpDstP, f.arpDstQ)) return f.arpDstQ === len ? 'truncated' : 'bad-address';
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
function readQuotedAddresses(line: Buffer, f: LineFields, out: Endpoints): boolean {
  if (f.iSrcP < 0 || f.iDstP < 0) return false;
  if (out.family === 'ipv6') return parseIPv6Bytes(line, f.iSrcP, f.iSrcQ, out.groups, 16) && parseIPv6Bytes(line, f.iDstP, f.iDstQ, out.groups, 24);
  return isIPv4Bytes(line, f.iSrcP, f.iSrcQ) && isIPv4Bytes(line, f.iDstP, f.iDstQ);
}

/** An address of the drop as text: IPv4 as printed, IPv6 in RFC 5952 form (groups at `group`). */
function address(last: LastLine, e: Endpoints, p: number, q: number, group: number): string {
  return e.family === 'ipv6' ? formatIPv6Groups(e.groups, group) : last.slice(p, q);
}

/** The PacketDrop of a line whose fields and endpoints were read; optional fields only when present. */
function buildDrop(last: LastLine, time: string): PacketDrop {
  const { fields: f, endpoints: e } = last;
  const { protocol, family } = e;
  const src = address(last, e, e.srcP, e.srcQ, 0);
  const dst = address(last, e, e.dstP, e.dstQ, 8);
  const drop: PacketDrop = { time, timeSource: last.timeSource, prefix: last.prefix, family, src, dst, protocol };
  if (f.inQ > f.inP) drop.inInterface = last.slice(f.inP, f.inQ);
  if (f.outQ > f.outP) drop.outInterface = last.slice(f.outP, f.outQ);
  if (f.physInQ > f.physInP) drop.physInInterface = last.slice(f.physInP, f.physInQ);
  if (f.physOutQ > f.physOutP) drop.physOutInterface = last.slice(f.physOutP, f.physOutQ);
  if (f.macQ > f.macP) {
    drop.mac = last.slice(f.macP, f.macQ);
    if (f.macQ - f.macP === 41) {
      // dst(6):src(6):ethertype(2) as printed by the kernel for Ethernet
      drop.dstMac = last.slice(f.macP, f.macP + 17);
      drop.srcMac = last.slice(f.macP + 18, f.macP + 35);
    }
  }
  if (f.macSrcQ > f.macSrcP) drop.srcMac = last.slice(f.macSrcP, f.macSrcQ);
  if (f.macDstQ > f.macDstP) drop.dstMac = last.slice(f.macDstP, f.macDstQ);
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
  if (e.inner) drop.inner = quotedPacket(last, f, e);
  if (f.mark >= 0) drop.mark = f.mark;
  if (f.uid >= 0) drop.uid = f.uid;
  if (f.gid >= 0) drop.gid = f.gid;
  if (f.frag > 0) drop.fragmentOffset = f.frag;
  if (f.incomplete || e.incomplete) drop.incomplete = true;
  return drop;
}

/** The flow an ICMP error is about (the packet it quotes), whose addresses readEndpoints checked. */
function quotedPacket(last: LastLine, f: LineFields, e: Endpoints): InnerPacket {
  const inner: InnerPacket = { src: address(last, e, f.iSrcP, f.iSrcQ, 16), dst: address(last, e, f.iDstP, f.iDstQ, 24) };
  if (f.iProto !== undefined) inner.protocol = f.iProto;
  if (f.iSpt >= 0) inner.srcPort = f.iSpt;
  if (f.iDpt >= 0) inner.dstPort = f.iDpt;
  return inner;
}
