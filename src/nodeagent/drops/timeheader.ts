// Time stamps at the start of a kernel log line, in the shapes they reach a node agent:
//   RFC 3339 / ISO 8601   "2026-11-23T03:20:56.123456+00:00 host kernel: ..."   (rsyslog, journalctl -o short-iso[-precise])
//   BSD syslog            "Sep  3 11:38:30 host kernel: [  957.705811] ..."       (no year, local time)
//   dmesg                 "[  957.705811] ..."                                  (seconds since boot)
//   dmesg -T              "[Tue Sep  3 11:38:30 2024] ..."                       (local time)
//   /dev/kmsg             "4,1234,957705811,-;..."                              (microseconds since boot)
//   syslog priority       "<4>..." in front of any of these (skipped)
// All functions are pure and never throw; they return NaN when there is no usable time. They read
// the line's bytes b[start, lim) in place (positions are into b): no string is made per line.

import { readFileSync } from 'node:fs';
import type { TimeSource } from '../../apis/drops.js';

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Digit0 = 0x30, // '0'
  GreaterThan = 0x3e, // '>'
  Semicolon = 0x3b, // ';'
  Digit9 = 0x39, // '9'
  A = 0x41, // 'A'
  BracketClose = 0x5d, // ']'
  BracketOpen = 0x5b, // '['
  Colon = 0x3a, // ':'
  Comma = 0x2c, // ','
  Dot = 0x2e, // '.'
  LowerT = 0x74, // 't'
  LowerZ = 0x7a, // 'z'
  LessThan = 0x3c, // '<'
  Minus = 0x2d, // '-'
  Plus = 0x2b, // '+'
  Space = 0x20, // ' '
  T = 0x54, // 'T'
  Z = 0x5a, // 'Z'
}

export interface HeaderInfo {
  /** Milliseconds since the epoch, NaN when the line carries no time (or it could not be converted). */
  ms: number;
  source: TimeSource;
  /** Where the message (log prefix) starts, best effort. */
  bodyStart: number;
}

export interface TimeContext {
  /** Boot time in ms since the epoch, or NaN when unknown (dmesg stamps then fall back to receive time). */
  bootMs: number;
  /** The clock, for the year of BSD syslog stamps: read only when a line's stamp differs from the one before. */
  now: () => number;
  /** The stamp of the syslog line before (a key of its fields, -1: none) and its time: consecutive lines mostly share their second. */
  syslogKey: number;
  syslogMs: number;
}

const MONTHS = 'JanFebMarAprMayJunJulAugSepOctNovDec';

function isDigit(c: number): boolean {
  return c >= Ch.Digit0 && c <= Ch.Digit9;
}

/** The byte at i of a line that ends at lim, -1 past its end (as charCodeAt's NaN, it is no character). */
function at(b: Buffer, i: number, lim: number): number {
  return i < lim ? b[i]! : -1;
}

function num(b: Buffer, p: number, n: number, lim: number): number {
  let v = 0;
  for (let i = p; i < p + n; i++) {
    const c = at(b, i, lim);
    if (c < Ch.Digit0 || c > Ch.Digit9) return -1;
    v = v * 10 + (c - Ch.Digit0);
  }
  return v;
}

/** Month 0-11 of the "Mmm" at p, -1 if none; compared in place (once per syslog line, no slice). */
function month(s: Buffer, p: number, lim: number): number {
  if (p + 3 > lim) return -1;
  const a = s[p];
  const b = s[p + 1];
  const c = s[p + 2];
  for (let m = 0; m < MONTHS.length; m += 3) {
    if (MONTHS.charCodeAt(m) === a && MONTHS.charCodeAt(m + 1) === b && MONTHS.charCodeAt(m + 2) === c) return m / 3;
  }
  return -1;
}

let fractionEnd = 0;
/**
 * Milliseconds of an optional fraction of a second at p (".123456"; ISO 8601 also allows ",");
 * sets fractionEnd to the index after it (p when there is none).
 */
function fractionMsAt(s: Buffer, p: number, allowComma: boolean, lim: number): number {
  const c = at(s, p, lim);
  if (c !== Ch.Dot && !(allowComma && c === Ch.Comma)) {
    fractionEnd = p;
    return 0;
  }
  let i = p + 1;
  let ms = 0;
  let scale = 100;
  while (i < lim && isDigit(s[i]!)) {
    ms += (s[i]! - Ch.Digit0) * scale;
    scale /= 10;
    i++;
  }
  fractionEnd = i;
  return Math.floor(ms);
}

let isoEnd = 0;
/** ISO 8601 date-time at p (date and time required); sets isoEnd. */
export function parseIsoAt(s: Buffer, p: number, lim: number): number {
  if (p + 19 > lim) return NaN;
  const y = num(s, p, 4, lim);
  const mo = num(s, p + 5, 2, lim);
  const d = num(s, p + 8, 2, lim);
  const h = num(s, p + 11, 2, lim);
  const mi = num(s, p + 14, 2, lim);
  const se = num(s, p + 17, 2, lim);
  const sep = at(s, p + 10, lim);
  if (
    y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60 ||
    at(s, p + 4, lim) !== Ch.Minus || at(s, p + 7, lim) !== Ch.Minus || (sep !== Ch.T && sep !== Ch.LowerT && sep !== Ch.Space) ||
    at(s, p + 13, lim) !== Ch.Colon || at(s, p + 16, lim) !== Ch.Colon
  ) {
    return NaN;
  }
  const ms = fractionMsAt(s, p + 19, true, lim);
  let i = fractionEnd;
  const c = at(s, i, lim);
  let t: number;
  if (c === Ch.Z || c === Ch.LowerZ) {
    // Z
    t = Date.UTC(y, mo - 1, d, h, mi, se, ms);
    i++;
  } else if (c === Ch.Plus || c === Ch.Minus) {
    const oh = num(s, i + 1, 2, lim);
    let j = i + 3;
    if (at(s, j, lim) === Ch.Colon) j++;
    const om = num(s, j, 2, lim);
    if (oh < 0 || om < 0) return NaN;
    const off = (oh * 60 + om) * (c === Ch.Minus ? -1 : 1);
    t = Date.UTC(y, mo - 1, d, h, mi, se, ms) - off * 60000;
    i = j + 2;
  } else {
    t = new Date(y, mo - 1, d, h, mi, se, ms).getTime();
  }
  isoEnd = i;
  return t;
}

let syslogEnd = 0;
/** "Mmm dd hh:mm:ss" at p in local time, the year from ctx.now() (last year if it would be more than a day ahead). */
export function parseSyslogAt(s: Buffer, p: number, lim: number, ctx: TimeContext): number {
  const mo = month(s, p, lim);
  if (mo < 0 || at(s, p + 3, lim) !== Ch.Space) return NaN;
  let i = p + 4;
  if (at(s, i, lim) === Ch.Space) i++;
  let day = 0;
  let nd = 0;
  while (nd < 2 && isDigit(at(s, i, lim))) {
    day = day * 10 + (at(s, i, lim) - Ch.Digit0);
    i++;
    nd++;
  }
  if (nd === 0 || day < 1 || day > 31 || at(s, i, lim) !== Ch.Space) return NaN;
  i++;
  const h = num(s, i, 2, lim);
  const mi = num(s, i + 3, 2, lim);
  const se = num(s, i + 6, 2, lim);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60 || at(s, i + 2, lim) !== Ch.Colon || at(s, i + 5, lim) !== Ch.Colon) {
    return NaN;
  }
  const ms = fractionMsAt(s, i + 8, false, lim);
  i = fractionEnd;
  syslogEnd = i;
  // Consecutive lines mostly share the second: one-entry cache. The year depends on "now" only
  // around New Year, and each new second in the log reads the clock again.
  const key = ((((mo * 32 + day) * 24 + h) * 60 + mi) * 61 + se) * 1000 + ms;
  if (key === ctx.syslogKey) return ctx.syslogMs;
  const nowMs = ctx.now();
  const year = new Date(nowMs).getFullYear();
  let t = new Date(year, mo, day, h, mi, se, ms).getTime();
  if (t > nowMs + 86_400_000) t = new Date(year - 1, mo, day, h, mi, se, ms).getTime();
  ctx.syslogKey = key;
  ctx.syslogMs = t;
  return t;
}

let bracketEnd = 0;
/** "[  957.705811]" at p: seconds since boot (NaN if not that shape); sets bracketEnd past ']'. */
export function parseDmesgStampAt(s: Buffer, p: number, lim: number): number {
  if (at(s, p, lim) !== Ch.BracketOpen) return NaN;
  let i = p + 1;
  while (at(s, i, lim) === Ch.Space) i++;
  let secs = 0;
  let nd = 0;
  while (isDigit(at(s, i, lim))) {
    secs = secs * 10 + (at(s, i, lim) - Ch.Digit0);
    i++;
    nd++;
  }
  if (nd === 0) return NaN;
  let frac = 0;
  if (at(s, i, lim) === Ch.Dot) {
    i++;
    let scale = 0.1;
    while (isDigit(at(s, i, lim))) {
      frac += (at(s, i, lim) - Ch.Digit0) * scale;
      scale /= 10;
      i++;
    }
  }
  if (at(s, i, lim) !== Ch.BracketClose) return NaN;
  bracketEnd = i + 1;
  return secs + frac;
}

function skipSpaces(s: Buffer, i: number, end: number): number {
  while (i < end && s[i] === Ch.Space) i++;
  return i;
}

/** The first position of byte c in s[from, to), -1 when there is none (bounded, unlike Buffer.indexOf). */
function indexOfByte(s: Buffer, c: number, from: number, to: number): number {
  for (let i = from; i < to; i++) if (s[i] === c) return i;
  return -1;
}

const KERNEL_TAG = 'kernel:';

/** Whether "kernel:" is at p, before `to`. */
function isKernelTagAt(s: Buffer, p: number, to: number): boolean {
  if (p + KERNEL_TAG.length > to) return false;
  for (let k = 0; k < KERNEL_TAG.length; k++) if (s[p + k] !== KERNEL_TAG.charCodeAt(k)) return false;
  return true;
}

/**
 * The time of the line s[start, lim) and where its message starts. `end` bounds the header (the
 * position of the netfilter "IN=" anchor): nothing at or after it is looked at for the message.
 */
export function parseHeader(s: Buffer, start: number, end: number, lim: number, ctx: TimeContext, out?: HeaderInfo): HeaderInfo {
  let p = start;
  // "<4>" syslog priority
  if (at(s, start, lim) === Ch.LessThan) {
    const gt = indexOfByte(s, Ch.GreaterThan, start + 1, end);
    if (gt > 0 && gt - start < 5) p = gt + 1;
  }
  let ms = NaN;
  let source: TimeSource = 'received';
  let body = p;
  const c = at(s, p, lim);
  if (isDigit(c)) {
    // ISO date or /dev/kmsg record
    if (at(s, p + 4, lim) === Ch.Minus) {
      ms = parseIsoAt(s, p, lim);
      if (!Number.isNaN(ms)) {
        source = 'rfc3339';
        body = afterSyslogHost(s, isoEnd, end, lim);
      }
    } else {
      const semi = indexOfByte(s, Ch.Semicolon, p, Math.min(end, p + 64));
      if (semi >= 0) {
        const c1 = indexOfByte(s, Ch.Comma, p, semi);
        const c2 = c1 < 0 ? -1 : indexOfByte(s, Ch.Comma, c1 + 1, semi);
        if (c2 >= 0) {
          let usec = 0;
          let i = c2 + 1;
          let nd = 0;
          while (isDigit(at(s, i, lim))) {
            usec = usec * 10 + (s[i]! - Ch.Digit0);
            i++;
            nd++;
          }
          if (nd > 0) {
            body = semi + 1;
            if (!Number.isNaN(ctx.bootMs)) {
              ms = ctx.bootMs + Math.floor(usec / 1000);
              source = 'dmesg';
            }
          }
        }
      }
    }
  } else if (c >= Ch.A && c <= Ch.Z) {
    ms = parseSyslogAt(s, p, lim, ctx);
    if (!Number.isNaN(ms)) {
      source = 'syslog';
      body = afterSyslogHost(s, syslogEnd, end, lim);
    }
  } else if (c === Ch.BracketOpen) {
    const secs = parseDmesgStampAt(s, p, lim);
    if (!Number.isNaN(secs)) {
      body = skipSpaces(s, bracketEnd, end);
      if (!Number.isNaN(ctx.bootMs)) {
        ms = ctx.bootMs + Math.floor(secs * 1000);
        source = 'dmesg';
      }
    } else {
      // dmesg -T: "[Tue Sep  3 11:38:30 2024]"
      const close = indexOfByte(s, Ch.BracketClose, p, Math.min(end, p + 32));
      if (close >= 0) {
        const t = Date.parse(s.toString('utf8', p + 1, close));
        if (!Number.isNaN(t)) {
          ms = t;
          source = 'dmesg-ctime';
          body = skipSpaces(s, close + 1, end);
        }
      }
    }
  }
  if (body === p && isKernelTagAt(s, p, lim)) {
    // bare "kernel: [  957.705811] ..." (a syslog line with its date/host cut off)
    body = skipSpaces(s, p + 7, end);
    const secs = parseDmesgStampAt(s, body, lim);
    if (!Number.isNaN(secs)) {
      body = skipSpaces(s, bracketEnd, end);
      if (!Number.isNaN(ctx.bootMs)) {
        ms = ctx.bootMs + Math.floor(secs * 1000);
        source = 'dmesg';
      }
    }
  }
  const bodyStart = body > end ? end : body;
  if (out === undefined) return { ms, source, bodyStart };
  out.ms = ms;
  out.source = source;
  out.bodyStart = bodyStart;
  return out;
}

/** After a syslog time: skip " host tag: " (tag "kernel:" most of the time) and a dmesg "[ 957.7]" stamp. */
function afterSyslogHost(s: Buffer, i: number, end: number, lim: number): number {
  let k = -1;
  for (let j = indexOfByte(s, KERNEL_TAG.charCodeAt(0), i, end); j >= 0; j = indexOfByte(s, KERNEL_TAG.charCodeAt(0), j + 1, end)) {
    if (isKernelTagAt(s, j, end)) {
      k = j;
      break;
    }
  }
  let b: number;
  if (k >= 0) {
    b = skipSpaces(s, k + 7, end);
  } else {
    b = skipSpaces(s, i, end);
    const hostEnd = indexOfByte(s, Ch.Space, b, end);
    if (hostEnd < 0) return b;
    const tagStart = skipSpaces(s, hostEnd, end);
    const tagEnd = indexOfByte(s, Ch.Space, tagStart, end);
    if (tagEnd > 0 && at(s, tagEnd - 1, lim) === Ch.Colon) b = skipSpaces(s, tagEnd, end);
    else b = tagStart;
  }
  if (at(s, b, lim) === Ch.BracketOpen && !Number.isNaN(parseDmesgStampAt(s, b, lim))) b = skipSpaces(s, bracketEnd, end);
  return b;
}

/** Boot time from /proc/uptime (ms since the epoch), NaN where there is none. */
export function readBootTimeMs(nowMs: number = Date.now()): number {
  try {
    const up = Number.parseFloat(readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '');
    return Number.isFinite(up) ? Math.round(nowMs - up * 1000) : NaN;
  } catch {
    return NaN;
  }
}
