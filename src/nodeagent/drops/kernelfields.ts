// The field scanner of the kernel LOG parser (kernellog.ts): one pass over the KEY=value tokens
// that follow "IN=", into a LineFields that is reused for every line (no allocation per token).
// Keys keep their FIRST value: the quoted packet of an ICMP error ("[SRC=... DST=...]", bracket
// depth 1) goes to the inner* fields, and UDP's own LEN= never overrides the IP header's.
//
// Characters are compared by code (charCodeAt) because this runs for every token of every line;
// the CH_* constants name them.
import { TCP_FLAG_ORDER, type Protocol, type TcpFlag } from '../../apis/drops.js';
import { PROTOCOL_NAMES } from './types.js';

const code = (ch: string): number => ch.charCodeAt(0);
const CH_SPACE = code(' ');
const CH_PAREN_OPEN = code('(');
const CH_PAREN_CLOSE = code(')');
const CH_BRACKET_OPEN = code('[');
const CH_BRACKET_CLOSE = code(']');
const CH_EQUALS = code('=');
const CH_0 = code('0');
const CH_9 = code('9');
const CH_LOWER_A = code('a');
const CH_LOWER_F = code('f');
const CH_LOWER_X = code('x');
/** OR-ing this into an ASCII letter's code gives the lower-case letter. */
const LOWER_CASE_BIT = 0x20;
const CH_C = code('C');
const CH_D = code('D');
const CH_E = code('E');
const CH_F = code('F');
const CH_G = code('G');
const CH_H = code('H');
const CH_I = code('I');
const CH_L = code('L');
const CH_M = code('M');
const CH_N = code('N');
const CH_O = code('O');
const CH_P = code('P');
const CH_S = code('S');
const CH_T = code('T');
const CH_U = code('U');
const CH_V = code('V');

// TCP flag bits, in TCP_FLAG_ORDER (bit i is TCP_FLAG_ORDER[i]).
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
    if (c < CH_0 || c > CH_9) return -1;
    v = v * 10 + (c - CH_0);
  }
  return v;
}

/** "0x1a2b" (or plain hex) in s[p, q) as a number, -1 if invalid. */
function hex(s: string, p: number, q: number): number {
  if (q - p > 2 && s.charCodeAt(p) === CH_0 && (s.charCodeAt(p + 1) | LOWER_CASE_BIT) === CH_LOWER_X) p += 2;
  if (q <= p || q - p > 8) return -1;
  let v = 0;
  for (let i = p; i < q; i++) {
    const c = s.charCodeAt(i) | LOWER_CASE_BIT;
    let d: number;
    if (c >= CH_0 && c <= CH_9) d = c - CH_0;
    else if (c >= CH_LOWER_A && c <= CH_LOWER_F) d = c - CH_LOWER_A + 10;
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
    if (c === CH_T && s.startsWith('TCP', p)) return 'TCP';
    if (c === CH_U && s.startsWith('UDP', p)) return 'UDP';
    if (c === CH_E && s.startsWith('ESP', p)) return 'ESP';
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

/**
 * What one line's tokens said. Strings are sliced when a key is first seen; addresses are kept as
 * [start, end) positions and sliced once the line is known to be a drop. -1 / undefined: absent.
 */
export class LineFields {
  inIf: string | undefined = undefined;
  outIf: string | undefined = undefined;
  physIn: string | undefined = undefined;
  physOut: string | undefined = undefined;
  mac: string | undefined = undefined;
  macSrc: string | undefined = undefined;
  macDst: string | undefined = undefined;
  vid = -1;
  srcP = -1;
  srcQ = -1;
  dstP = -1;
  dstQ = -1;
  ipLen = -1;
  ttl = -1;
  hop = -1;
  flowlbl = false;
  proto: Protocol | undefined = undefined;
  spt = -1;
  dpt = -1;
  flags = 0;
  icmpType = -1;
  icmpCode = -1;
  mark = -1;
  uid = -1;
  gid = -1;
  frag = -1;
  incomplete = false;
  arp = false;
  arpSrcP = -1;
  arpSrcQ = -1;
  arpDstP = -1;
  arpDstQ = -1;
  /** Nothing beyond interfaces and the link layer seen (so not an IP packet). */
  onlyLink = true;
  // The quoted packet of an ICMP error.
  iSrcP = -1;
  iSrcQ = -1;
  iDstP = -1;
  iDstQ = -1;
  iProto: Protocol | undefined = undefined;
  iSpt = -1;
  iDpt = -1;

  reset(): void {
    this.inIf = this.outIf = this.physIn = this.physOut = this.mac = this.macSrc = this.macDst = undefined;
    this.vid = this.srcP = this.srcQ = this.dstP = this.dstQ = this.ipLen = this.ttl = this.hop = -1;
    this.flowlbl = false;
    this.proto = undefined;
    this.spt = this.dpt = -1;
    this.flags = 0;
    this.icmpType = this.icmpCode = this.mark = this.uid = this.gid = this.frag = -1;
    this.incomplete = this.arp = false;
    this.arpSrcP = this.arpSrcQ = this.arpDstP = this.arpDstQ = -1;
    this.onlyLink = true;
    this.iSrcP = this.iSrcQ = this.iDstP = this.iDstQ = -1;
    this.iProto = undefined;
    this.iSpt = this.iDpt = -1;
  }
}

/**
 * Reads the tokens of line[from, len) into f (reset first). Tokens are separated by spaces;
 * "OPT (...)" groups are skipped (noting a bare ESP inside one), "[" and "]" enter and leave the
 * quoted packet of an ICMP error (also "INCOMPLETE [8 bytes]").
 */
export function scanFields(line: string, from: number, len: number, f: LineFields): void {
  f.reset();
  let depth = 0;
  let paren = false;
  let p = from;
  while (p < len) {
    let c = line.charCodeAt(p);
    if (c === CH_SPACE) {
      p++;
      continue;
    }
    let q = line.indexOf(' ', p);
    if (q < 0) q = len;
    const tokenEnd = q;
    if (paren) {
      // inside "OPT (...)": skip up to the token that ends with ')'
      if (line.charCodeAt(q - 1) === CH_PAREN_CLOSE) paren = false;
      else if (q - p === 3 && depth === 0 && line.startsWith('ESP', p) && f.proto === undefined) f.proto = 'ESP';
      p = tokenEnd + 1;
      continue;
    }
    if (c === CH_PAREN_OPEN) {
      if (line.charCodeAt(q - 1) !== CH_PAREN_CLOSE || q - p === 1) paren = true;
      p = tokenEnd + 1;
      continue;
    }
    while (c === CH_BRACKET_OPEN && p < q) {
      depth++;
      p++;
      c = line.charCodeAt(p);
    }
    let closes = 0;
    while (q > p && line.charCodeAt(q - 1) === CH_BRACKET_CLOSE) {
      closes++;
      q--;
    }
    if (p < q) {
      const eq = equalsIn(line, p, q);
      if (depth === 0) {
        if (eq < 0) {
          bareWord(line, p, q, f);
        } else {
          // KEY=value of the logged packet itself, dispatched on the key's length and first character
          const v = eq + 1;
          switch (eq - p) {
            case 2:
              if (c === CH_I && line.charCodeAt(p + 1) === CH_N) {
                if (f.inIf === undefined) f.inIf = line.slice(v, q); // IN
              } else if (c === CH_T && line.charCodeAt(p + 1) === CH_C) {
                f.onlyLink = false; // TC (IPv6)
              }
              break;
            case 3:
              switch (c) {
                case CH_O: // OUT
                  if (f.outIf === undefined && line.startsWith('UT', p + 1)) f.outIf = line.slice(v, q);
                  break;
                case CH_M: // MAC / MTU
                  if (f.mac === undefined && line.startsWith('AC', p + 1)) f.mac = line.slice(v, q);
                  break;
                case CH_S: // SRC / SPT / SEQ
                  if (line.startsWith('RC', p + 1)) {
                    if (f.srcP < 0) {
                      f.srcP = v;
                      f.srcQ = q;
                      f.onlyLink = false;
                    }
                  } else if (line.startsWith('PT', p + 1)) {
                    if (f.spt < 0) f.spt = uint(line, v, q);
                  }
                  break;
                case CH_D: // DST / DPT
                  if (line.startsWith('ST', p + 1)) {
                    if (f.dstP < 0) {
                      f.dstP = v;
                      f.dstQ = q;
                    }
                  } else if (line.startsWith('PT', p + 1)) {
                    if (f.dpt < 0) f.dpt = uint(line, v, q);
                  }
                  break;
                case CH_L: // LEN (first: IP; UDP's own LEN= comes later)
                  if (f.ipLen < 0 && line.startsWith('EN', p + 1)) f.ipLen = uint(line, v, q);
                  break;
                case CH_T: // TTL
                  if (f.ttl < 0 && line.startsWith('TL', p + 1)) f.ttl = uint(line, v, q);
                  break;
                case CH_U: // UID
                  if (f.uid < 0 && line.startsWith('ID', p + 1)) f.uid = uint(line, v, q);
                  break;
                case CH_G: // GID
                  if (f.gid < 0 && line.startsWith('ID', p + 1)) f.gid = uint(line, v, q);
                  break;
                case CH_V: // VID
                  if (f.vid < 0 && line.startsWith('ID', p + 1)) f.vid = uint(line, v, q);
                  break;
              }
              break;
            case 4:
              if (c === CH_T) {
                if (f.icmpType < 0 && line.startsWith('YPE', p + 1)) f.icmpType = uint(line, v, q);
              } else if (c === CH_C) {
                if (f.icmpCode < 0 && line.startsWith('ODE', p + 1)) f.icmpCode = uint(line, v, q);
              } else if (c === CH_M) {
                if (f.mark < 0 && line.startsWith('ARK', p + 1)) f.mark = hex(line, v, q);
              }
              break;
            case 5:
              if (c === CH_P) {
                if (f.proto === undefined && line.startsWith('ROTO', p + 1)) {
                  f.proto = protocolAt(line, v, q);
                  f.onlyLink = false;
                }
              } else if (c === CH_I) {
                if (line.startsWith('PSRC', p + 1)) {
                  if (f.arpSrcP < 0) {
                    f.arpSrcP = v;
                    f.arpSrcQ = q;
                  }
                } else if (line.startsWith('PDST', p + 1)) {
                  if (f.arpDstP < 0) {
                    f.arpDstP = v;
                    f.arpDstQ = q;
                  }
                }
              }
              break;
            case 6:
              if (c === CH_P) {
                if (f.physIn === undefined && line.startsWith('HYSIN', p + 1)) f.physIn = line.slice(v, q);
              } else if (c === CH_M) {
                if (line.startsWith('ACSRC', p + 1)) {
                  if (f.macSrc === undefined) f.macSrc = line.slice(v, q);
                } else if (line.startsWith('ACDST', p + 1)) {
                  if (f.macDst === undefined) f.macDst = line.slice(v, q);
                }
              }
              break;
            case 7:
              if (c === CH_P) {
                if (f.physOut === undefined && line.startsWith('HYSOUT', p + 1)) f.physOut = line.slice(v, q);
              } else if (c === CH_F) {
                if (line.startsWith('LOWLBL', p + 1)) f.flowlbl = true;
              }
              break;
            case 8:
              if (c === CH_H && f.hop < 0 && line.startsWith('OPLIMIT', p + 1)) f.hop = uint(line, v, q);
              break;
          }
        }
      } else if (depth === 1 && eq > p) {
        quotedPacketField(line, p, eq, q, f);
      }
    }
    depth -= closes;
    if (depth < 0) depth = 0;
    p = tokenEnd + 1;
  }
}

/** The position of the first "=" in line[p, q), -1 when there is none. */
function equalsIn(line: string, p: number, q: number): number {
  for (let i = p; i < q; i++) if (line.charCodeAt(i) === CH_EQUALS) return i;
  return -1;
}

/** A word without "=": TCP flags, ARP, FRAG:n, TRUNCATED, INCOMPLETE. */
function bareWord(line: string, p: number, q: number, f: LineFields): void {
  const n = q - p;
  if (n === 3) {
    if (line.startsWith('SYN', p)) f.flags |= FLAG_SYN;
    else if (line.startsWith('ACK', p)) f.flags |= FLAG_ACK;
    else if (line.startsWith('FIN', p)) f.flags |= FLAG_FIN;
    else if (line.startsWith('RST', p)) f.flags |= FLAG_RST;
    else if (line.startsWith('PSH', p)) f.flags |= FLAG_PSH;
    else if (line.startsWith('URG', p)) f.flags |= FLAG_URG;
    else if (line.startsWith('ECE', p)) f.flags |= FLAG_ECE;
    else if (line.startsWith('CWR', p)) f.flags |= FLAG_CWR;
    else if (line.startsWith('ARP', p)) {
      f.arp = true;
      f.onlyLink = false;
    }
  } else if (n === 2) {
    if (line.startsWith('AE', p)) f.flags |= FLAG_AE;
  } else if (n >= 6 && line.startsWith('FRAG:', p)) {
    if (f.frag < 0) {
      const u = uint(line, p + 5, q);
      if (u >= 0) f.frag = u * 8; // IPv4 FRAG: is in 8-byte units
    }
  } else if (n === 9 && line.startsWith('TRUNCATED', p)) {
    f.incomplete = true;
  } else if (n === 10 && line.startsWith('INCOMPLETE', p)) {
    f.incomplete = true;
  }
}

/** KEY=value inside the quoted packet of an ICMP error: only what identifies its flow. */
function quotedPacketField(line: string, p: number, eq: number, q: number, f: LineFields): void {
  const v = eq + 1;
  const n = eq - p;
  if (n === 3) {
    if (line.startsWith('SRC', p)) {
      if (f.iSrcP < 0) {
        f.iSrcP = v;
        f.iSrcQ = q;
      }
    } else if (line.startsWith('DST', p)) {
      if (f.iDstP < 0) {
        f.iDstP = v;
        f.iDstQ = q;
      }
    } else if (line.startsWith('SPT', p)) {
      if (f.iSpt < 0) f.iSpt = uint(line, v, q);
    } else if (line.startsWith('DPT', p)) {
      if (f.iDpt < 0) f.iDpt = uint(line, v, q);
    }
  } else if (n === 5 && f.iProto === undefined && line.startsWith('PROTO', p)) {
    f.iProto = protocolAt(line, v, q);
  }
}
