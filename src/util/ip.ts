// Small, allocation-light IP address helpers shared by the drop parsers, the controller's IP index and the pcap summary.
//  - IPv4 from the kernel is already canonical (%pI4): only validated, in place.
//  - IPv6 from the kernel is fully expanded (%pI6: "fe80:0000:0000:0000:0202:b3ff:fe1e:8329"):
//    parsed into 8 groups and printed in RFC 5952 form ("fe80::202:b3ff:fe1e:8329"), as bytes
//    (writeIPv6Groups, for writers of JSON) or as a string.

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Percent = 0x25, // '%'
  Dot = 0x2e, // '.'
  Digit0 = 0x30, // '0'
  Digit9 = 0x39, // '9'
  Colon = 0x3a, // ':'
  UpperA = 0x41, // 'A'
  UpperF = 0x46, // 'F'
  LowerA = 0x61, // 'a'
  LowerF = 0x66, // 'f'
}

/** The dotted quad if `s` is a valid IPv4 address (no leading zeros beyond "0"), else undefined. */
export function normalizeIPv4(s: string): string | undefined {
  return isIPv4At(s, 0, s.length) ? s : undefined;
}

/** Whether s[p, q) is a valid dotted quad (no leading zeros beyond "0"), read in place. */
export function isIPv4At(s: string, p: number, q: number): boolean {
  const n = q - p;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = p; i < q; i++) {
    const c = s.charCodeAt(i);
    if (c === Ch.Dot) {
      if (digits === 0 || ++dots > 3) return false;
      octet = 0;
      digits = 0;
    } else if (c >= Ch.Digit0 && c <= Ch.Digit9) {
      if (digits === 1 && octet === 0) return false; // leading zero
      octet = octet * 10 + (c - Ch.Digit0);
      if (octet > 255 || ++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots === 3 && digits > 0;
}

/** Whether the bytes b[p, q) are a valid dotted quad, as isIPv4At (for parsers that read bytes). */
export function isIPv4Bytes(b: Uint8Array, p: number, q: number): boolean {
  const n = q - p;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = p; i < q; i++) {
    const c = b[i]!;
    if (c === Ch.Dot) {
      if (digits === 0 || ++dots > 3) return false;
      octet = 0;
      digits = 0;
    } else if (c >= Ch.Digit0 && c <= Ch.Digit9) {
      if (digits === 1 && octet === 0) return false; // leading zero
      octet = octet * 10 + (c - Ch.Digit0);
      if (octet > 255 || ++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots === 3 && digits > 0;
}

const cache = new Map<string, string | null>();
const CACHE_MAX = 8192;

/** RFC 5952 text of an IPv6 address (expanded, compressed or with an IPv4 tail), else undefined. */
export function normalizeIPv6(s: string): string | undefined {
  const hit = cache.get(s);
  if (hit !== undefined) return hit ?? undefined;
  const out = normalizeIPv6At(s, 0, s.length) ?? null;
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(s, out);
  return out ?? undefined;
}

const scratchGroups = new Uint16Array(8);

/** RFC 5952 text of the IPv6 address in s[p, q), read in place (no cache), else undefined. */
export function normalizeIPv6At(s: string, p: number, q: number): string | undefined {
  return parseIPv6At(s, p, q, scratchGroups, 0) ? formatIPv6Groups(scratchGroups) : undefined;
}

/** Either family: IPv4 as is, IPv6 normalised. */
export function normalizeIP(s: string): string | undefined {
  return s.indexOf(':') >= 0 ? normalizeIPv6(s) : normalizeIPv4(s);
}

function hexVal(c: number): number {
  if (c >= Ch.Digit0 && c <= Ch.Digit9) return c - Ch.Digit0;
  if (c >= Ch.LowerA && c <= Ch.LowerF) return c - Ch.LowerA + 10;
  if (c >= Ch.UpperA && c <= Ch.UpperF) return c - Ch.UpperA + 10;
  return -1;
}

/** 8 groups of 16 bits, or undefined. Accepts "::", an embedded IPv4 tail and a %zone (dropped). */
export function parseIPv6(input: string): number[] | undefined {
  const out = new Array<number>(8);
  return parseIPv6At(input, 0, input.length, out, 0) ? out : undefined;
}

/** Writable groups: a plain array or a typed one. */
type Groups = { [i: number]: number; readonly length: number };

/**
 * Parses the IPv6 address in s[p, q) into out[off, off + 8); false (out partly written) when it is
 * none. The kernel's fully expanded form is read directly; any other form by parseGroups.
 */
export function parseIPv6At(s: string, p: number, q: number, out: Groups, off: number): boolean {
  if (q - p === 39 && readExpanded(s, p, out, off)) return true;
  return parseGroups(s, p, q, out, off);
}

/**
 * parseIPv6At for the bytes b[p, q): the kernel's expanded form is read in place; any other form
 * (rare in kernel logs) as latin1 text, in which a non-ASCII byte is no hex digit either.
 */
export function parseIPv6Bytes(b: Buffer, p: number, q: number, out: Groups, off: number): boolean {
  if (q - p === 39 && readExpandedBytes(b, p, out, off)) return true;
  if (q - p < 2) return false;
  const text = b.toString('latin1', p, q);
  return parseGroups(text, 0, text.length, out, off);
}

/** readExpanded on bytes. */
function readExpandedBytes(b: Uint8Array, p: number, out: Groups, off: number): boolean {
  for (let g = 0; g < 8; g++) {
    const i = p + g * 5;
    if (g > 0 && b[i - 1] !== Ch.Colon) return false;
    const x = hexVal(b[i]!);
    const y = hexVal(b[i + 1]!);
    const z = hexVal(b[i + 2]!);
    const w = hexVal(b[i + 3]!);
    if ((x | y | z | w) < 0) return false;
    out[off + g] = (x << 12) | (y << 8) | (z << 4) | w;
  }
  return true;
}

/** "xxxx:xxxx:...:xxxx" (8 groups of 4 hex digits, as %pI6 prints) at p. */
function readExpanded(s: string, p: number, out: Groups, off: number): boolean {
  for (let g = 0; g < 8; g++) {
    const i = p + g * 5;
    if (g > 0 && s.charCodeAt(i - 1) !== Ch.Colon) return false;
    const a = hexVal(s.charCodeAt(i));
    const b = hexVal(s.charCodeAt(i + 1));
    const c = hexVal(s.charCodeAt(i + 2));
    const d = hexVal(s.charCodeAt(i + 3));
    if ((a | b | c | d) < 0) return false;
    out[off + g] = (a << 12) | (b << 8) | (c << 4) | d;
  }
  return true;
}

/** Any textual form of RFC 4291 in s[p, q): groups before "::" are written in place, those after it moved to the end. */
function parseGroups(s: string, p: number, qIn: number, out: Groups, off: number): boolean {
  let q = qIn;
  for (let k = p; k < q; k++) {
    if (s.charCodeAt(k) === Ch.Percent) {
      q = k; // %zone
      break;
    }
  }
  const n = q - p;
  if (n < 2 || n > 45) return false;
  let count = 0; // groups written
  let double = -1; // how many groups came before "::"
  let i = p;
  if (s.charCodeAt(p) === Ch.Colon) {
    if (s.charCodeAt(p + 1) !== Ch.Colon) return false;
    double = 0;
    i = p + 2;
  }
  while (i < q) {
    // one group: up to 4 hex digits, or an IPv4 tail
    let v = 0;
    let d = 0;
    const start = i;
    while (i < q) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      i++;
      if (++d > 4) return false;
    }
    if (i < q && s.charCodeAt(i) === Ch.Dot) {
      if (count > 6 || !isIPv4At(s, start, q)) return false;
      const dots = ipv4Octets(s, start, q);
      out[off + count++] = dots >>> 16;
      out[off + count++] = dots & 0xffff;
      break;
    }
    if (d === 0 || count > 7) return false;
    out[off + count++] = v;
    if (i === q) break;
    if (s.charCodeAt(i) !== Ch.Colon) return false;
    i++;
    if (i < q && s.charCodeAt(i) === Ch.Colon) {
      if (double >= 0) return false;
      double = count;
      i++;
    } else if (i === q) {
      return false; // trailing single colon
    }
  }
  if (double < 0) return count === 8;
  if (count > 7) return false;
  // move the groups after "::" to the end, zeros between
  const after = count - double;
  for (let k = after - 1; k >= 0; k--) out[off + 8 - after + k] = out[off + double + k]!;
  for (let k = double; k < 8 - after; k++) out[off + k] = 0;
  return true;
}

/** The 32 bits of a dotted quad already validated by isIPv4At. */
function ipv4Octets(s: string, p: number, q: number): number {
  let v = 0;
  let octet = 0;
  for (let i = p; i < q; i++) {
    const c = s.charCodeAt(i);
    if (c === Ch.Dot) {
      v = v * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - Ch.Digit0);
    }
  }
  return v * 256 + octet;
}

const HEX = '0123456789abcdef';
const formatted = Buffer.alloc(64);

/** RFC 5952 of groups g[off, off + 8): lower case, no leading zeros, longest run (>= 2) of zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6Groups(g: ArrayLike<number>, off = 0): string {
  const n = writeIPv6Groups(g, off, formatted, 0);
  return formatted.toString('latin1', 0, n);
}

/** The RFC 5952 text of groups g[off, off + 8) as ASCII bytes at out[pos]; the position after them (at most 39 written). */
export function writeIPv6Groups(g: ArrayLike<number>, off: number, out: Uint8Array, pos: number): number {
  if (g[off] === 0 && g[off + 1] === 0 && g[off + 2] === 0 && g[off + 3] === 0 && g[off + 4] === 0 && g[off + 5] === 0xffff) {
    out[pos++] = Ch.Colon;
    out[pos++] = Ch.Colon;
    pos = writeHexGroup(0xffff, out, pos);
    out[pos++] = Ch.Colon;
    const a = g[off + 6]!;
    const b = g[off + 7]!;
    pos = writeDecimalByte(a >> 8, out, pos);
    out[pos++] = Ch.Dot;
    pos = writeDecimalByte(a & 255, out, pos);
    out[pos++] = Ch.Dot;
    pos = writeDecimalByte(b >> 8, out, pos);
    out[pos++] = Ch.Dot;
    return writeDecimalByte(b & 255, out, pos);
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[off + i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[off + j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out[pos++] = Ch.Colon;
      out[pos++] = Ch.Colon;
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLen) out[pos++] = Ch.Colon;
    pos = writeHexGroup(g[off + i]!, out, pos);
  }
  return pos;
}

function writeHexGroup(x: number, out: Uint8Array, pos: number): number {
  if (x >= 0x1000) out[pos++] = HEX.charCodeAt(x >> 12);
  if (x >= 0x100) out[pos++] = HEX.charCodeAt((x >> 8) & 15);
  if (x >= 0x10) out[pos++] = HEX.charCodeAt((x >> 4) & 15);
  out[pos++] = HEX.charCodeAt(x & 15);
  return pos;
}

function writeDecimalByte(x: number, out: Uint8Array, pos: number): number {
  if (x >= 100) out[pos++] = Ch.Digit0 + Math.floor(x / 100);
  if (x >= 10) out[pos++] = Ch.Digit0 + (Math.floor(x / 10) % 10);
  out[pos++] = Ch.Digit0 + (x % 10);
  return pos;
}

/** Dotted quad of 4 bytes at `off`. */
export function formatIPv4Bytes(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text of 16 bytes at `off`. */
export function formatIPv6Bytes(b: Uint8Array, off: number): string {
  const g = scratchGroups;
  for (let i = 0; i < 8; i++) g[i] = (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!;
  return formatIPv6Groups(g);
}
