// The field scanner of the kernel LOG parser (kernellog.ts): one pass over the KEY=value tokens
// that follow "IN=", into a LineFields that is reused for every line: values are kept as their
// positions in the line (linefields.ts), so scanning allocates nothing.
// Keys keep their FIRST value: the quoted packet of an ICMP error ("[SRC=... DST=...]", bracket
// depth 1) goes to the inner* fields, and UDP's own LEN= never overrides the IP header's.
//
// The line is read as bytes in place (b[from, end), positions are into b): this runs for every
// token of every line, so nothing is decoded or sliced; the Ch constants name the bytes compared.
import { TCP_FLAG_ORDER, type Protocol, type TcpFlag } from '../../apis/drops.js';
import { PROTOCOL_NAMES } from './types.js';
import type { LineFields } from './linefields.js';

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Space = 0x20, // ' '
  ParenOpen = 0x28, // '('
  ParenClose = 0x29, // ')'
  BracketOpen = 0x5b, // '['
  BracketClose = 0x5d, // ']'
  Equals = 0x3d, // '='
  Digit0 = 0x30, // '0'
  Digit9 = 0x39, // '9'
  LowerA = 0x61, // 'a'
  LowerF = 0x66, // 'f'
  LowerX = 0x78, // 'x'
  C = 0x43, // 'C'
  D = 0x44, // 'D'
  E = 0x45, // 'E'
  F = 0x46, // 'F'
  G = 0x47, // 'G'
  H = 0x48, // 'H'
  I = 0x49, // 'I'
  L = 0x4c, // 'L'
  M = 0x4d, // 'M'
  N = 0x4e, // 'N'
  O = 0x4f, // 'O'
  P = 0x50, // 'P'
  S = 0x53, // 'S'
  T = 0x54, // 'T'
  U = 0x55, // 'U'
  V = 0x56, // 'V'
  /** OR-ing this into an ASCII letter's code gives the lower-case letter. */
  LowerCaseBit = 0x20,
}

// TCP flag bits, in TCP_FLAG_ORDER (bit i is TCP_FLAG_ORDER[i]).
const enum Flag {
  AE = 1 << 0,
  CWR = 1 << 1,
  ECE = 1 << 2,
  URG = 1 << 3,
  ACK = 1 << 4,
  PSH = 1 << 5,
  RST = 1 << 6,
  SYN = 1 << 7,
  FIN = 1 << 8,
}

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
  let m = aeBit ? Flag.AE : 0;
  if (flagsByte & 0x80) m |= Flag.CWR;
  if (flagsByte & 0x40) m |= Flag.ECE;
  if (flagsByte & 0x20) m |= Flag.URG;
  if (flagsByte & 0x10) m |= Flag.ACK;
  if (flagsByte & 0x08) m |= Flag.PSH;
  if (flagsByte & 0x04) m |= Flag.RST;
  if (flagsByte & 0x02) m |= Flag.SYN;
  if (flagsByte & 0x01) m |= Flag.FIN;
  return m;
}

/** Whether the ASCII `text` is at b[p]; the caller has checked that it fits before the line's end. */
export function isAt(b: Buffer, p: number, text: string): boolean {
  for (let k = 0; k < text.length; k++) if (b[p + k] !== text.charCodeAt(k)) return false;
  return true;
}

/** Where the token at p ends: the next space before end, or end (a loop: tokens are short, Buffer.indexOf's call costs more). */
export function spaceOrEnd(b: Buffer, p: number, end: number): number {
  while (p < end && b[p] !== Ch.Space) p++;
  return p;
}

/** Decimal unsigned integer in s[p, q), -1 if empty / not digits / absurdly long. */
export function uint(s: Buffer, p: number, q: number): number {
  if (q <= p || q - p > 10) return -1;
  let v = 0;
  for (let i = p; i < q; i++) {
    const c = s[i]!;
    if (c < Ch.Digit0 || c > Ch.Digit9) return -1;
    v = v * 10 + (c - Ch.Digit0);
  }
  return v;
}

/** "0x1a2b" (or plain hex) in s[p, q) as a number, -1 if invalid. */
function hex(s: Buffer, p: number, q: number): number {
  if (q - p > 2 && s[p]! === Ch.Digit0 && (s[p + 1]! | Ch.LowerCaseBit) === Ch.LowerX) p += 2;
  if (q <= p || q - p > 8) return -1;
  let v = 0;
  for (let i = p; i < q; i++) {
    const c = s[i]! | Ch.LowerCaseBit;
    let d: number;
    if (c >= Ch.Digit0 && c <= Ch.Digit9) d = c - Ch.Digit0;
    else if (c >= Ch.LowerA && c <= Ch.LowerF) d = c - Ch.LowerA + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

/** Protocol word of PROTO= without allocating for the common ones. */
function protocolAt(s: Buffer, p: number, q: number): Protocol {
  const n = q - p;
  const c = s[p]!;
  if (n === 3) {
    if (c === Ch.T && isAt(s, p, 'TCP')) return 'TCP';
    if (c === Ch.U && isAt(s, p, 'UDP')) return 'UDP';
    if (c === Ch.E && isAt(s, p, 'ESP')) return 'ESP';
  } else if (n === 4) {
    if (isAt(s, p, 'ICMP')) return 'ICMP';
  } else if (n === 6) {
    if (isAt(s, p, 'ICMPv6')) return 'ICMPv6';
  } else if (n === 2) {
    if (isAt(s, p, 'AH')) return 'AH';
  } else if (n === 7) {
    if (isAt(s, p, 'UDPLITE')) return 'UDPLITE';
  }
  const v = uint(s, p, q);
  if (v >= 0) return PROTOCOL_NAMES[v] ?? String(v);
  return s.toString('utf8', p, q);
}

/**
 * Reads the tokens of line[from, len) into f (reset first). Tokens are separated by spaces;
 * "OPT (...)" groups are skipped (noting a bare ESP inside one), "[" and "]" enter and leave the
 * quoted packet of an ICMP error (also "INCOMPLETE [8 bytes]").
 */
export function scanFields(line: Buffer, from: number, len: number, f: LineFields): void {
  f.reset();
  let depth = 0;
  let paren = false;
  let p = from;
  while (p < len) {
    let c = line[p]!;
    if (c === Ch.Space) {
      p++;
      continue;
    }
    // the token's end and its first '=' in one pass over its bytes
    let q = p;
    let eq = -1;
    for (; q < len; q++) {
      const b = line[q]!;
      if (b === Ch.Space) break;
      if (b === Ch.Equals && eq < 0) eq = q;
    }
    const tokenEnd = q;
    if (paren) {
      // inside "OPT (...)": skip up to the token that ends with ')'
      if (line[q - 1]! === Ch.ParenClose) paren = false;
      else if (q - p === 3 && depth === 0 && isAt(line, p, 'ESP') && f.proto === undefined) f.proto = 'ESP';
      p = tokenEnd + 1;
      continue;
    }
    if (c === Ch.ParenOpen) {
      if (line[q - 1]! !== Ch.ParenClose || q - p === 1) paren = true;
      p = tokenEnd + 1;
      continue;
    }
    while (c === Ch.BracketOpen && p < q) {
      depth++;
      p++;
      c = line[p]!;
    }
    let closes = 0;
    while (q > p && line[q - 1]! === Ch.BracketClose) {
      closes++;
      q--;
    }
    if (p < q) {
      if (depth === 0) {
        if (eq < 0) {
          bareWord(line, p, q, f);
        } else {
          // KEY=value of the logged packet itself, dispatched on the key's length and first character
          const v = eq + 1;
          switch (eq - p) {
            case 2:
              if (c === Ch.I && line[p + 1]! === Ch.N) {
                if (f.inP < 0) {
                  f.inP = v; // IN
                  f.inQ = q;
                }
              } else if (c === Ch.T && line[p + 1]! === Ch.C) {
                f.onlyLink = false; // TC (IPv6)
              }
              break;
            case 3:
              switch (c) {
                case Ch.O: // OUT
                  if (f.outP < 0 && isAt(line, p + 1, 'UT')) {
                    f.outP = v;
                    f.outQ = q;
                  }
                  break;
                case Ch.M: // MAC / MTU
                  if (f.macP < 0 && isAt(line, p + 1, 'AC')) {
                    f.macP = v;
                    f.macQ = q;
                  }
                  break;
                case Ch.S: // SRC / SPT / SEQ
                  if (isAt(line, p + 1, 'RC')) {
                    if (f.srcP < 0) {
                      f.srcP = v;
                      f.srcQ = q;
                      f.onlyLink = false;
                    }
                  } else if (isAt(line, p + 1, 'PT')) {
                    if (f.spt < 0) f.spt = uint(line, v, q);
                  }
                  break;
                case Ch.D: // DST / DPT
                  if (isAt(line, p + 1, 'ST')) {
                    if (f.dstP < 0) {
                      f.dstP = v;
                      f.dstQ = q;
                    }
                  } else if (isAt(line, p + 1, 'PT')) {
                    if (f.dpt < 0) f.dpt = uint(line, v, q);
                  }
                  break;
                case Ch.L: // LEN (first: IP; UDP's own LEN= comes later)
                  if (f.ipLen < 0 && isAt(line, p + 1, 'EN')) f.ipLen = uint(line, v, q);
                  break;
                case Ch.T: // TTL
                  if (f.ttl < 0 && isAt(line, p + 1, 'TL')) f.ttl = uint(line, v, q);
                  break;
                case Ch.U: // UID
                  if (f.uid < 0 && isAt(line, p + 1, 'ID')) f.uid = uint(line, v, q);
                  break;
                case Ch.G: // GID
                  if (f.gid < 0 && isAt(line, p + 1, 'ID')) f.gid = uint(line, v, q);
                  break;
                case Ch.V: // VID
                  if (f.vid < 0 && isAt(line, p + 1, 'ID')) f.vid = uint(line, v, q);
                  break;
              }
              break;
            case 4:
              if (c === Ch.T) {
                if (f.icmpType < 0 && isAt(line, p + 1, 'YPE')) f.icmpType = uint(line, v, q);
              } else if (c === Ch.C) {
                if (f.icmpCode < 0 && isAt(line, p + 1, 'ODE')) f.icmpCode = uint(line, v, q);
              } else if (c === Ch.M) {
                if (f.mark < 0 && isAt(line, p + 1, 'ARK')) f.mark = hex(line, v, q);
              }
              break;
            case 5:
              if (c === Ch.P) {
                if (f.proto === undefined && isAt(line, p + 1, 'ROTO')) {
                  f.proto = protocolAt(line, v, q);
                  f.onlyLink = false;
                }
              } else if (c === Ch.I) {
                if (isAt(line, p + 1, 'PSRC')) {
                  if (f.arpSrcP < 0) {
                    f.arpSrcP = v;
                    f.arpSrcQ = q;
                  }
                } else if (isAt(line, p + 1, 'PDST')) {
                  if (f.arpDstP < 0) {
                    f.arpDstP = v;
                    f.arpDstQ = q;
                  }
                }
              }
              break;
            case 6:
              if (c === Ch.P) {
                if (f.physInP < 0 && isAt(line, p + 1, 'HYSIN')) {
                  f.physInP = v;
                  f.physInQ = q;
                }
              } else if (c === Ch.M) {
                if (isAt(line, p + 1, 'ACSRC')) {
                  if (f.macSrcP < 0) {
                    f.macSrcP = v;
                    f.macSrcQ = q;
                  }
                } else if (isAt(line, p + 1, 'ACDST')) {
                  if (f.macDstP < 0) {
                    f.macDstP = v;
                    f.macDstQ = q;
                  }
                }
              }
              break;
            case 7:
              if (c === Ch.P) {
                if (f.physOutP < 0 && isAt(line, p + 1, 'HYSOUT')) {
                  f.physOutP = v;
                  f.physOutQ = q;
                }
              } else if (c === Ch.F) {
                if (isAt(line, p + 1, 'LOWLBL')) f.flowlbl = true;
              }
              break;
            case 8:
              if (c === Ch.H && f.hop < 0 && isAt(line, p + 1, 'OPLIMIT')) f.hop = uint(line, v, q);
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

/** A word without "=": TCP flags, ARP, FRAG:n, TRUNCATED, INCOMPLETE. */
function bareWord(line: Buffer, p: number, q: number, f: LineFields): void {
  const n = q - p;
  if (n === 3) {
    if (isAt(line, p, 'SYN')) f.flags |= Flag.SYN;
    else if (isAt(line, p, 'ACK')) f.flags |= Flag.ACK;
    else if (isAt(line, p, 'FIN')) f.flags |= Flag.FIN;
    else if (isAt(line, p, 'RST')) f.flags |= Flag.RST;
    else if (isAt(line, p, 'PSH')) f.flags |= Flag.PSH;
    else if (isAt(line, p, 'URG')) f.flags |= Flag.URG;
    else if (isAt(line, p, 'ECE')) f.flags |= Flag.ECE;
    else if (isAt(line, p, 'CWR')) f.flags |= Flag.CWR;
    else if (isAt(line, p, 'ARP')) {
      f.arp = true;
      f.onlyLink = false;
    }
  } else if (n === 2) {
    if (isAt(line, p, 'AE')) f.flags |= Flag.AE;
  } else if (n >= 6 && isAt(line, p, 'FRAG:')) {
    if (f.frag < 0) {
      const u = uint(line, p + 5, q);
      if (u >= 0) f.frag = u * 8; // IPv4 FRAG: is in 8-byte units
    }
  } else if (n === 9 && isAt(line, p, 'TRUNCATED')) {
    f.incomplete = true;
  } else if (n === 10 && isAt(line, p, 'INCOMPLETE')) {
    f.incomplete = true;
  }
}

/** KEY=value inside the quoted packet of an ICMP error: only what identifies its flow. */
function quotedPacketField(line: Buffer, p: number, eq: number, q: number, f: LineFields): void {
  const v = eq + 1;
  const n = eq - p;
  if (n === 3) {
    if (isAt(line, p, 'SRC')) {
      if (f.iSrcP < 0) {
        f.iSrcP = v;
        f.iSrcQ = q;
      }
    } else if (isAt(line, p, 'DST')) {
      if (f.iDstP < 0) {
        f.iDstP = v;
        f.iDstQ = q;
      }
    } else if (isAt(line, p, 'SPT')) {
      if (f.iSpt < 0) f.iSpt = uint(line, v, q);
    } else if (isAt(line, p, 'DPT')) {
      if (f.iDpt < 0) f.iDpt = uint(line, v, q);
    }
  } else if (n === 5 && f.iProto === undefined && isAt(line, p, 'PROTO')) {
    f.iProto = protocolAt(line, v, q);
  }
}
