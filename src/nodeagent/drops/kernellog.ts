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
// One pass over the line, no regular expressions, no exceptions.

import type { DropMetrics } from './metrics.js';
import { sharedDropMetrics } from './metrics.js';
import { normalizeIPv4, normalizeIPv6 } from '../../util/ip.js';
import { parseHeader, readBootTimeMs, type HeaderInfo, type TimeContext } from './timeheader.js';
import { TCP_FLAG_ORDER, type InnerPacket, type PacketDrop, type Protocol, type TcpFlag, type TimeSource } from '../../apis/drops.js';
import { PROTOCOL_NAMES, type ParseResult } from './types.js';

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

/** Longer than any kernel log line plus syslog header can be. */
export const MAX_LINE_LENGTH = 8192;

const FLAG_AE = 1 << 0;
const FLAG_CWR = 1 << 1;
const FLAG_ECE = 1 << 2;
const FLAG_URG = 1 << 3;
const FLAG_ACK = 1 << 4;
const FLAG_PSH = 1 << 5;
const FLAG_RST = 1 << 6;
const FLAG_SYN = 1 << 7;
const FLAG_FIN = 1 << 8;

const flagArrays = new Map<number, readonly TcpFlag[]>();
/** Shared frozen array for a flag bit set (kernel order). */
export function tcpFlagsOf(mask: number): readonly TcpFlag[] {
  let a = flagArrays.get(mask);
  if (a === undefined) {
    const out: TcpFlag[] = [];
    for (let i = 0; i < TCP_FLAG_ORDER.length; i++) if (mask & (1 << i)) out.push(TCP_FLAG_ORDER[i]!);
    a = Object.freeze(out);
    flagArrays.set(mask, a);
  }
  return a;
}

/** TCP flag bits from the flag byte (and the AE bit) of a TCP header; shares the bit layout above. */
export function tcpFlagMaskFromHeader(flagsByte: number, aeBit: number): number {
  let m = aeBit ? FLAG_AE : 0;
  if (flagsByte & 0x80) m |= FLAG_CWR;
  if (flagsByte & 0x40) m |= FLAG_ECE;
  if (flagsByte & 0x20) m |= FLAG_URG;
  if (flagsByte & 0x10) m |= FLAG_ACK;
  if (flagsByte & 0x08) m |= FLAG_PSH;
  if (flagsByte & 0x04) m |= FLAG_RST;
  if (flagsByte & 0x02) m |= FLAG_SYN;
  if (flagsByte & 0x01) m |= FLAG_FIN;
  return m;
}

/** Decimal unsigned integer in s[p, q), -1 if empty / not digits / absurdly long. */
function uint(s: string, p: number, q: number): number {
  if (q <= p || q - p > 10) return -1;
  let v = 0;
  for (let i = p; i < q; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

/** "0x1a2b" (or plain hex) in s[p, q) as a number, -1 if invalid. */
function hex(s: string, p: number, q: number): number {
  if (q - p > 2 && s.charCodeAt(p) === 48 && (s.charCodeAt(p + 1) | 32) === 120) p += 2;
  if (q <= p || q - p > 8) return -1;
  let v = 0;
  for (let i = p; i < q; i++) {
    const c = s.charCodeAt(i) | 32;
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

/** Protocol word of PROTO= without allocating for the common ones. */
function protocolAt(s: string, p: number, q: number): Protocol {
  const n = q - p;
  const c = s.charCodeAt(p);
  if (n === 3) {
    if (c === 84 && s.startsWith('TCP', p)) return 'TCP';
    if (c === 85 && s.startsWith('UDP', p)) return 'UDP';
    if (c === 69 && s.startsWith('ESP', p)) return 'ESP';
  } else if (n === 4) {
    if (s.startsWith('ICMP', p)) return 'ICMP';
  } else if (n === 6) {
    if (s.startsWith('ICMPv6', p)) return 'ICMPv6';
  } else if (n === 2) {
    if (s.startsWith('AH', p)) return 'AH';
  } else if (n === 7) {
    if (s.startsWith('UDPLITE', p)) return 'UDPLITE';
  }
  const v = uint(s, p, q);
  if (v >= 0) return PROTOCOL_NAMES[v] ?? String(v);
  return s.slice(p, q);
}

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
    while (e > 0 && line.charCodeAt(e - 1) === 32) e--;
    for (const text of this.prefixes) {
      const start = e - text.length;
      if (start < 0 || !line.startsWith(text, start)) continue;
      if (start > 0) {
        const b = line.charCodeAt(start - 1);
        if (b !== 32 && b !== 93 /* ] */ && b !== 59 /* ; */ && b !== 62 /* > */ && b !== 9) continue;
      }
      return text;
    }
    return undefined;
  }

  private parseLine(input: string, receivedMs: number, fixedMs: number, fixedSource: TimeSource): ParseResult {
    let line = input;
    let len = line.length;
    // trailing newline / CR
    while (len > 0) {
      const c = line.charCodeAt(len - 1);
      if (c !== 10 && c !== 13) break;
      len--;
    }
    if (len !== line.length) line = line.slice(0, len);
    if (len === 0) return { ok: false, reason: 'empty', line };
    if (len > MAX_LINE_LENGTH) return { ok: false, reason: 'too-long', line };

    // --- anchor: "IN=<if> OUT=" ---
    let anchor = -1;
    let from = 0;
    for (;;) {
      const i = line.indexOf('IN=', from);
      if (i < 0) break;
      const sp = line.indexOf(' ', i + 3);
      if (sp > 0 && line.startsWith('OUT=', sp + 1)) {
        anchor = i;
        break;
      }
      from = i + 3;
    }
    if (anchor < 0) {
      let blank = true;
      for (let i = 0; i < len && blank; i++) if (line.charCodeAt(i) > 32) blank = false;
      return { ok: false, reason: blank ? 'empty' : 'not-a-drop', line };
    }

    // --- prefix ---
    let prefix: string;
    let headerInfo: HeaderInfo | undefined;
    if (this.prefixes.length > 0) {
      const matched = this.matchPrefix(line, anchor);
      if (matched === undefined) {
        const h = parseHeader(line, anchor, this.timeContext(), this.header);
        const own = line.slice(h.bodyStart, anchor).trim();
        return { ok: false, reason: own.length === 0 ? 'no-prefix' : 'unknown-prefix', line };
      }
      prefix = matched;
    } else {
      headerInfo = parseHeader(line, anchor, this.timeContext(), this.header);
      prefix = line.slice(headerInfo.bodyStart, anchor).trim();
    }

    // --- fields: one pass over tokens ---
    let inIf: string | undefined;
    let outIf: string | undefined;
    let physIn: string | undefined;
    let physOut: string | undefined;
    let mac: string | undefined;
    let macSrc: string | undefined;
    let macDst: string | undefined;
    let vid = -1;
    let srcP = -1; // value start/end positions for SRC/DST (sliced once validated)
    let srcQ = -1;
    let dstP = -1;
    let dstQ = -1;
    let ipLen = -1;
    let ttl = -1;
    let hop = -1;
    let flowlbl = false;
    let proto: Protocol | undefined;
    let spt = -1;
    let dpt = -1;
    let flags = 0;
    let icmpType = -1;
    let icmpCode = -1;
    let mark = -1;
    let uid = -1;
    let gid = -1;
    let frag = -1;
    let incomplete = false;
    let arp = false;
    let arpSrcP = -1;
    let arpSrcQ = -1;
    let arpDstP = -1;
    let arpDstQ = -1;
    let onlyLink = true; // nothing beyond interfaces / link layer seen
    // quoted packet of an ICMP error (bracket depth 1)
    let depth = 0;
    let paren = false;
    let iSrcP = -1;
    let iSrcQ = -1;
    let iDstP = -1;
    let iDstQ = -1;
    let iProto: Protocol | undefined;
    let iSpt = -1;
    let iDpt = -1;

    let p = anchor;
    while (p < len) {
      // skip spaces
      let c = line.charCodeAt(p);
      if (c === 32) {
        p++;
        continue;
      }
      let q = line.indexOf(' ', p);
      if (q < 0) q = len;
      const tokenEnd = q;
      if (paren) {
        // inside "OPT (...)": skip up to the token that ends with ')'
        if (line.charCodeAt(q - 1) === 41) paren = false;
        else if (q - p === 3 && depth === 0 && line.startsWith('ESP', p) && proto === undefined) proto = 'ESP';
        p = tokenEnd + 1;
        continue;
      }
      if (c === 40 /* ( */) {
        if (line.charCodeAt(q - 1) !== 41 || q - p === 1) paren = true;
        p = tokenEnd + 1;
        continue;
      }
      // brackets: "[SRC=..." opens the quoted packet, "...]" closes (also "INCOMPLETE [8 bytes]")
      while (c === 91 /* [ */ && p < q) {
        depth++;
        p++;
        c = line.charCodeAt(p);
      }
      let closes = 0;
      while (q > p && line.charCodeAt(q - 1) === 93 /* ] */) {
        closes++;
        q--;
      }
      if (p < q) {
        // find '='
        let eq = -1;
        for (let i = p; i < q; i++) {
          if (line.charCodeAt(i) === 61) {
            eq = i;
            break;
          }
        }
        const v = eq + 1;
        if (depth === 0) {
          if (eq < 0) {
            // bare word
            const n = q - p;
            if (n === 3) {
              if (line.startsWith('SYN', p)) flags |= FLAG_SYN;
              else if (line.startsWith('ACK', p)) flags |= FLAG_ACK;
              else if (line.startsWith('FIN', p)) flags |= FLAG_FIN;
              else if (line.startsWith('RST', p)) flags |= FLAG_RST;
              else if (line.startsWith('PSH', p)) flags |= FLAG_PSH;
              else if (line.startsWith('URG', p)) flags |= FLAG_URG;
              else if (line.startsWith('ECE', p)) flags |= FLAG_ECE;
              else if (line.startsWith('CWR', p)) flags |= FLAG_CWR;
              else if (line.startsWith('ARP', p)) {
                arp = true;
                onlyLink = false;
              }
            } else if (n === 2) {
              if (line.startsWith('AE', p)) flags |= FLAG_AE;
            } else if (n >= 6 && line.startsWith('FRAG:', p)) {
              if (frag < 0) {
                const u = uint(line, p + 5, q);
                if (u >= 0) frag = u * 8; // IPv4 FRAG: is in 8-byte units
              }
            } else if (n === 9 && line.startsWith('TRUNCATED', p)) {
              incomplete = true;
            } else if (n === 10 && line.startsWith('INCOMPLETE', p)) {
              incomplete = true;
            }
          } else {
            switch (eq - p) {
              case 2:
                if (c === 73 && line.charCodeAt(p + 1) === 78) {
                  // IN
                  if (inIf === undefined) inIf = line.slice(v, q);
                } else if (c === 84 && line.charCodeAt(p + 1) === 67) {
                  // TC (IPv6)
                  onlyLink = false;
                }
                break;
              case 3:
                switch (c) {
                  case 79: // OUT
                    if (outIf === undefined && line.startsWith('UT', p + 1)) outIf = line.slice(v, q);
                    break;
                  case 77: // MAC / MTU
                    if (mac === undefined && line.startsWith('AC', p + 1)) mac = line.slice(v, q);
                    break;
                  case 83: // SRC / SPT / SEQ
                    if (line.startsWith('RC', p + 1)) {
                      if (srcP < 0) {
                        srcP = v;
                        srcQ = q;
                        onlyLink = false;
                      }
                    } else if (line.startsWith('PT', p + 1)) {
                      if (spt < 0) spt = uint(line, v, q);
                    }
                    break;
                  case 68: // DST / DPT
                    if (line.startsWith('ST', p + 1)) {
                      if (dstP < 0) {
                        dstP = v;
                        dstQ = q;
                      }
                    } else if (line.startsWith('PT', p + 1)) {
                      if (dpt < 0) dpt = uint(line, v, q);
                    }
                    break;
                  case 76: // LEN (first: IP; UDP's own LEN= comes later)
                    if (ipLen < 0 && line.startsWith('EN', p + 1)) ipLen = uint(line, v, q);
                    break;
                  case 84: // TTL
                    if (ttl < 0 && line.startsWith('TL', p + 1)) ttl = uint(line, v, q);
                    break;
                  case 85: // UID
                    if (uid < 0 && line.startsWith('ID', p + 1)) uid = uint(line, v, q);
                    break;
                  case 71: // GID
                    if (gid < 0 && line.startsWith('ID', p + 1)) gid = uint(line, v, q);
                    break;
                  case 86: // VID
                    if (vid < 0 && line.startsWith('ID', p + 1)) vid = uint(line, v, q);
                    break;
                }
                break;
              case 4:
                if (c === 84) {
                  if (icmpType < 0 && line.startsWith('YPE', p + 1)) icmpType = uint(line, v, q);
                } else if (c === 67) {
                  if (icmpCode < 0 && line.startsWith('ODE', p + 1)) icmpCode = uint(line, v, q);
                } else if (c === 77) {
                  if (mark < 0 && line.startsWith('ARK', p + 1)) mark = hex(line, v, q);
                }
                break;
              case 5:
                if (c === 80) {
                  if (proto === undefined && line.startsWith('ROTO', p + 1)) {
                    proto = protocolAt(line, v, q);
                    onlyLink = false;
                  }
                } else if (c === 73) {
                  if (line.startsWith('PSRC', p + 1)) {
                    if (arpSrcP < 0) {
                      arpSrcP = v;
                      arpSrcQ = q;
                    }
                  } else if (line.startsWith('PDST', p + 1)) {
                    if (arpDstP < 0) {
                      arpDstP = v;
                      arpDstQ = q;
                    }
                  }
                }
                break;
              case 6:
                if (c === 80) {
                  if (physIn === undefined && line.startsWith('HYSIN', p + 1)) physIn = line.slice(v, q);
                } else if (c === 77) {
                  if (line.startsWith('ACSRC', p + 1)) {
                    if (macSrc === undefined) macSrc = line.slice(v, q);
                  } else if (line.startsWith('ACDST', p + 1)) {
                    if (macDst === undefined) macDst = line.slice(v, q);
                  }
                }
                break;
              case 7:
                if (c === 80) {
                  if (physOut === undefined && line.startsWith('HYSOUT', p + 1)) physOut = line.slice(v, q);
                } else if (c === 70) {
                  if (line.startsWith('LOWLBL', p + 1)) flowlbl = true;
                }
                break;
              case 8:
                if (c === 72 && hop < 0 && line.startsWith('OPLIMIT', p + 1)) hop = uint(line, v, q);
                break;
            }
          }
        } else if (depth === 1 && eq > 0) {
          // the quoted packet of an ICMP error: only what identifies its flow
          const n = eq - p;
          if (n === 3) {
            if (line.startsWith('SRC', p)) {
              if (iSrcP < 0) {
                iSrcP = v;
                iSrcQ = q;
              }
            } else if (line.startsWith('DST', p)) {
              if (iDstP < 0) {
                iDstP = v;
                iDstQ = q;
              }
            } else if (line.startsWith('SPT', p)) {
              if (iSpt < 0) iSpt = uint(line, v, q);
            } else if (line.startsWith('DPT', p)) {
              if (iDpt < 0) iDpt = uint(line, v, q);
            }
          } else if (n === 5 && iProto === undefined && line.startsWith('PROTO', p)) {
            iProto = protocolAt(line, v, q);
          }
        }
      }
      depth -= closes;
      if (depth < 0) depth = 0;
      p = tokenEnd + 1;
    }

    // --- assemble ---
    let src: string | undefined;
    let dst: string | undefined;
    let family: 'ipv4' | 'ipv6';
    let protocol: Protocol;
    if (srcP >= 0) {
      if (dstP < 0) return { ok: false, reason: 'truncated', line };
      const s = line.slice(srcP, srcQ);
      const d = line.slice(dstP, dstQ);
      if (s.indexOf(':') >= 0) {
        family = 'ipv6';
        src = normalizeIPv6(s);
        dst = d.indexOf(':') >= 0 ? normalizeIPv6(d) : undefined;
      } else {
        family = 'ipv4';
        src = normalizeIPv4(s);
        dst = normalizeIPv4(d);
      }
      if (src === undefined || dst === undefined) {
        // a line cut in the middle of DST looks like a bad address: call it truncated when DST is last
        return { ok: false, reason: dstQ === len && !flowlbl && ipLen < 0 ? 'truncated' : 'bad-address', line };
      }
      if (proto === undefined) {
        // IPv6 whose extension headers the kernel did not walk through (ESP, unknown) prints no PROTO=
        if (family === 'ipv6' && flowlbl) {
          protocol = 'unknown';
          incomplete = true;
        } else {
          return { ok: false, reason: 'truncated', line };
        }
      } else {
        protocol = proto;
      }
    } else if (arp) {
      if (arpSrcP < 0 || arpDstP < 0) return { ok: false, reason: incomplete ? 'truncated' : 'not-ip', line };
      src = normalizeIPv4(line.slice(arpSrcP, arpSrcQ));
      dst = normalizeIPv4(line.slice(arpDstP, arpDstQ));
      if (src === undefined || dst === undefined) return { ok: false, reason: arpDstQ === len ? 'truncated' : 'bad-address', line };
      family = 'ipv4';
      protocol = 'ARP';
    } else {
      return { ok: false, reason: onlyLink && !incomplete ? 'not-ip' : 'truncated', line };
    }

    // --- time ---
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

    const drop: PacketDrop = { time: this.iso(ms), timeSource: source, prefix, family, src, dst, protocol };
    if (inIf) drop.inInterface = inIf;
    if (outIf) drop.outInterface = outIf;
    if (physIn) drop.physInInterface = physIn;
    if (physOut) drop.physOutInterface = physOut;
    if (mac) {
      drop.mac = mac;
      if (mac.length === 41) {
        // dst(6):src(6):ethertype(2) as printed by the kernel for Ethernet
        drop.dstMac = mac.slice(0, 17);
        drop.srcMac = mac.slice(18, 35);
      }
    }
    if (macSrc) drop.srcMac = macSrc;
    if (macDst) drop.dstMac = macDst;
    if (vid >= 0) drop.vlanId = vid;
    if (spt >= 0) drop.srcPort = spt;
    if (dpt >= 0) drop.dstPort = dpt;
    if (ipLen >= 0 && protocol !== 'ARP') drop.length = ipLen;
    if (ttl >= 0) drop.ttl = ttl;
    if (hop >= 0) drop.hopLimit = hop;
    if (protocol === 'TCP' && flags !== 0) drop.tcpFlags = tcpFlagsOf(flags);
    if ((protocol === 'ICMP' || protocol === 'ICMPv6') && icmpType >= 0) {
      drop.icmpType = icmpType;
      if (icmpCode >= 0) drop.icmpCode = icmpCode;
    }
    if (iSrcP >= 0 && iDstP >= 0) {
      const is = family === 'ipv6' ? normalizeIPv6(line.slice(iSrcP, iSrcQ)) : normalizeIPv4(line.slice(iSrcP, iSrcQ));
      const id = family === 'ipv6' ? normalizeIPv6(line.slice(iDstP, iDstQ)) : normalizeIPv4(line.slice(iDstP, iDstQ));
      if (is !== undefined && id !== undefined) {
        const inner: InnerPacket = { src: is, dst: id };
        if (iProto !== undefined) inner.protocol = iProto;
        if (iSpt >= 0) inner.srcPort = iSpt;
        if (iDpt >= 0) inner.dstPort = iDpt;
        drop.inner = inner;
      }
    }
    if (mark >= 0) drop.mark = mark;
    if (uid >= 0) drop.uid = uid;
    if (gid >= 0) drop.gid = gid;
    if (frag > 0) drop.fragmentOffset = frag;
    if (incomplete) drop.incomplete = true;
    if (this.keepRaw) drop.raw = line;
    return { ok: true, drop };
  }
}
