// Small, allocation-light IP address helpers shared by the drop parsers, the controller's IP index and the pcap summary.
//  - IPv4 from the kernel is already canonical (%pI4): only validated.
//  - IPv6 from the kernel is fully expanded (%pI6: "fe80:0000:0000:0000:0202:b3ff:fe1e:8329"):
//    parsed into 8 groups and printed in RFC 5952 form ("fe80::202:b3ff:fe1e:8329").

/** The dotted quad if `s` is a valid IPv4 address (no leading zeros beyond "0"), else undefined. */
export function normalizeIPv4(s: string): string | undefined {
  const n = s.length;
  if (n < 7 || n > 15) return undefined;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return undefined; // leading zero
      octet = octet * 10 + (c - 48);
      if (octet > 255 || ++digits > 3) return undefined;
    } else {
      return undefined;
    }
  }
  return dots === 3 && digits > 0 ? s : undefined;
}

const cache = new Map<string, string | null>();
const CACHE_MAX = 8192;

/** RFC 5952 text of an IPv6 address (expanded, compressed or with an IPv4 tail), else undefined. */
export function normalizeIPv6(s: string): string | undefined {
  const hit = cache.get(s);
  if (hit !== undefined) return hit ?? undefined;
  const groups = parseIPv6(s);
  const out = groups === undefined ? null : formatIPv6Groups(groups);
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(s, out);
  return out ?? undefined;
}

/** Either family: IPv4 as is, IPv6 normalised. */
export function normalizeIP(s: string): string | undefined {
  return s.indexOf(':') >= 0 ? normalizeIPv6(s) : normalizeIPv4(s);
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** 8 groups of 16 bits, or undefined. Accepts "::", an embedded IPv4 tail and a %zone (dropped). */
export function parseIPv6(input: string): number[] | undefined {
  let s = input;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const n = s.length;
  if (n < 2 || n > 45) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  let cur = head;
  let seenDouble = false;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return undefined;
    seenDouble = true;
    cur = tail;
    i = 2;
    if (n === 2) return [0, 0, 0, 0, 0, 0, 0, 0];
  }
  while (i < n) {
    // one group: up to 4 hex digits, or an IPv4 tail
    let v = 0;
    let d = 0;
    const start = i;
    while (i < n) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      i++;
      if (++d > 4) return undefined;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      // IPv4 tail
      const v4 = normalizeIPv4(s.slice(start));
      if (v4 === undefined) return undefined;
      const p = v4.split('.');
      cur.push((Number(p[0]) << 8) | Number(p[1]), (Number(p[2]) << 8) | Number(p[3]));
      i = n;
      break;
    }
    if (d === 0) return undefined;
    cur.push(v);
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return undefined;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (seenDouble) return undefined;
      seenDouble = true;
      cur = tail;
      i++;
      if (i === n) break;
    } else if (i === n) {
      return undefined; // trailing single colon
    }
  }
  const total = head.length + tail.length;
  if (seenDouble) {
    if (total > 7) return undefined;
    const out = head.slice();
    for (let k = total; k < 8; k++) out.push(0);
    for (const t of tail) out.push(t);
    return out;
  }
  return total === 8 ? head : undefined;
}

/** RFC 5952: lower case, no leading zeros, longest run (>= 2) of zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6Groups(g: readonly number[]): string {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return g.map((x) => x.toString(16)).join(':');
  const left = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const right = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${left}::${right}`;
}

/** Dotted quad of 4 bytes at `off`. */
export function formatIPv4Bytes(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text of 16 bytes at `off`. */
export function formatIPv6Bytes(b: Uint8Array, off: number): string {
  const g: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) g[i] = (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!;
  return formatIPv6Groups(g);
}
