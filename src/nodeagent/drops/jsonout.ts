// A byte sink for JSON text: strings are copied into a Buffer as they are when they are plain
// printable ASCII (what kernel log fields are), escaped by JSON.stringify otherwise, so writing a
// drop as JSON makes no strings and no objects. Bytes are handed out with take() and not written
// over until written() says the stream is done with them. Full slabs are recycled then: new
// ones for every megabyte of output become garbage that only a full GC frees, and V8 runs few of
// those in a process whose heap stays small, so the process grew by every slab it had written.
import { writeIPv6Groups } from '../../util/ip.js';

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  Space = 0x20, // ' '
  Quote = 0x22, // '"'
  Backslash = 0x5c, // '\\'
  Digit0 = 0x30, // '0'
  LowerU = 0x75, // 'u'
  /** The last printable ASCII character. */
  Tilde = 0x7e, // '~'
}

/** UTF-8 bytes per UTF-16 unit at most, and JSON's longest escape (\u001f). */
const MAX_BYTES_PER_CHAR = 6; // also what an escape hook that writes \uXXXX for one character needs
/** JSON.stringify's two-character escapes of C0 controls (\b \t \n \f \r), by code: the letter after the backslash. */
const SHORT_ESCAPES: Readonly<Record<number, number>> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
const HEX_DIGITS = '0123456789abcdef';
/** Slabs kept for reuse beyond the one being written. */
const SPARE_SLABS = 4;

interface Slab {
  readonly bytes: Buffer;
  /** Chunks taken from it that the stream has not written yet. */
  unwritten: number;
}

export class JsonOut {
  private slab: Slab;
  private buf: Buffer;
  private pos = 0;
  private start = 0;
  private readonly slabs: Slab[] = [];

  /**
   * escape: applied to every JSON text made by JSON.stringify (strings that are not plain printable
   * ASCII, and text from encode()), e.g. to escape what a terminal would act on. Default: none.
   */
  constructor(
    private readonly slabBytes = 256 * 1024,
    private readonly escape: (json: string) => string = (json) => json,
  ) {
    this.slab = this.newSlab(slabBytes);
    this.buf = this.slab.bytes;
  }

  /** Bytes written and not taken yet. */
  get pending(): number {
    return this.pos - this.start;
  }

  /** The bytes written since the last take(); untouched until written(chunk) is called (if ever). */
  take(): Buffer {
    const chunk = this.buf.subarray(this.start, this.pos);
    this.start = this.pos;
    this.slab.unwritten++;
    return chunk;
  }

  /** The stream is done with a chunk of take(): its slab may be used again once all its chunks are. */
  written(chunk: Buffer): void {
    const slab = this.slabs.find((s) => s.bytes.buffer === chunk.buffer);
    if (slab !== undefined) slab.unwritten--;
  }

  /** Room for n more bytes: another slab (with the bytes not taken yet) when this one is too full. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const pending = this.pos - this.start;
    const size = Math.max(this.slabBytes, 2 * (pending + n));
    const next = this.slabs.find((s) => s !== this.slab && s.unwritten === 0 && s.bytes.length >= size) ?? this.newSlab(size);
    this.buf.copy(next.bytes, 0, this.start, this.pos);
    this.slab = next;
    this.buf = next.bytes;
    this.start = 0;
    this.pos = pending;
  }

  private newSlab(size: number): Slab {
    // forget spare slabs beyond SPARE_SLABS, and big ones made for one long line
    for (let i = this.slabs.length - 1; i >= 0; i--) {
      const s = this.slabs[i]!;
      if (s.unwritten === 0 && s !== this.slab && (this.slabs.length > SPARE_SLABS || s.bytes.length > this.slabBytes)) this.slabs.splice(i, 1);
    }
    const slab: Slab = { bytes: Buffer.allocUnsafeSlow(size), unwritten: 0 };
    this.slabs.push(slab);
    return slab;
  }

  /** The bytes of ASCII JSON text that is written often (a key with its punctuation, `,"dst":`), for bytes() and the *Field methods. */
  static key(json: string): Uint8Array {
    return Buffer.from(json, 'latin1');
  }

  /** Text that needs no escaping and is ASCII (JSON punctuation, keys). */
  ascii(s: string): void {
    const n = s.length;
    this.room(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
    this.pos = pos;
  }

  /** JSON text made elsewhere, as bytes (JsonOut.encode). */
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The UTF-8 bytes of JSON text (after `escape`), for bytes(): text written often is kept encoded. */
  encode(json: string): Uint8Array {
    return Buffer.from(this.escape(json), 'utf8');
  }

  /** A JSON string of s, as JSON.stringify(s) writes it. */
  string(s: string): void {
    this.field('', s, 0, s.length);
  }

  /** `key` (ASCII, written as it is: the ',"name":' before a value) and the JSON string of s[p, q). */
  field(key: string, s: string, p: number, q: number): void {
    const k = key.length;
    this.room(k + q - p + 2);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < k; i++) buf[pos++] = key.charCodeAt(i);
    const begin = pos;
    buf[pos++] = Ch.Quote;
    for (let i = p; i < q; i++) {
      const c = s.charCodeAt(i);
      if (c < Ch.Space || c > Ch.Tilde || c === Ch.Quote || c === Ch.Backslash) {
        // controls, '"', '\\', DEL and non-ASCII: JSON.stringify writes the whole string
        this.pos = begin;
        this.escaped(s.slice(p, q));
        return;
      }
      buf[pos++] = c;
    }
    buf[pos++] = Ch.Quote;
    this.pos = pos;
  }

  /** `key` (JSON text as bytes, see JsonOut.key) and the JSON string of the UTF-8 bytes b[p, q), copied when no byte needs escaping. */
  bytesField(key: Uint8Array, b: Buffer, p: number, q: number): void {
    this.room(key.length + q - p + 2);
    const buf = this.buf;
    buf.set(key, this.pos);
    let pos = this.pos + key.length;
    const begin = pos;
    buf[pos++] = Ch.Quote;
    for (let i = p; i < q; i++) {
      const c = b[i]!;
      if (c < Ch.Space || c > Ch.Tilde || c === Ch.Quote || c === Ch.Backslash) {
        this.pos = begin;
        this.escapedBytes(b, p, q);
        return;
      }
      buf[pos++] = c;
    }
    buf[pos++] = Ch.Quote;
    this.pos = pos;
  }

  /** `key` (bytes, see JsonOut.key) and a non-negative integer as JSON.stringify writes it. */
  numberField(key: Uint8Array, n: number): void {
    if (n > 0x7fffffff) {
      this.bytes(key);
      return this.ascii(String(n));
    }
    let digits = 1;
    for (let t = 10; t <= n; t *= 10) digits++;
    this.room(key.length + digits);
    const buf = this.buf;
    buf.set(key, this.pos);
    let pos = this.pos + key.length + digits;
    this.pos = pos;
    do {
      const next = (n / 10) | 0;
      buf[--pos] = Ch.Digit0 + (n - next * 10);
      n = next;
    } while (n > 0);
  }

  /** `key` and a JSON string of the RFC 5952 text of IPv6 groups g[off, off + 8). */
  ipv6Field(key: Uint8Array, g: ArrayLike<number>, off: number): void {
    this.bytes(key);
    this.room(41);
    const buf = this.buf;
    buf[this.pos++] = Ch.Quote;
    this.pos = writeIPv6Groups(g, off, buf, this.pos);
    buf[this.pos++] = Ch.Quote;
  }

  /**
   * The JSON string of bytes b[p, q) that need escapes: ASCII is escaped here as JSON.stringify
   * does it ('"', '\\' and C0 controls, all ASCII, which the escape hook leaves alone); DEL and
   * non-ASCII go through JSON.stringify and the hook.
   */
  private escapedBytes(b: Buffer, p: number, q: number): void {
    for (let i = p; i < q; i++) {
      if (b[i]! > Ch.Tilde) {
        this.escaped(b.toString('utf8', p, q));
        return;
      }
    }
    this.room(MAX_BYTES_PER_CHAR * (q - p) + 2);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = Ch.Quote;
    for (let i = p; i < q; i++) {
      const c = b[i]!;
      if (c === Ch.Quote || c === Ch.Backslash) {
        buf[pos++] = Ch.Backslash;
        buf[pos++] = c;
      } else if (c < Ch.Space) {
        buf[pos++] = Ch.Backslash;
        const short = SHORT_ESCAPES[c];
        if (short !== undefined) {
          buf[pos++] = short;
        } else {
          buf[pos++] = Ch.LowerU;
          buf[pos++] = Ch.Digit0;
          buf[pos++] = Ch.Digit0;
          buf[pos++] = HEX_DIGITS.charCodeAt(c >> 4);
          buf[pos++] = HEX_DIGITS.charCodeAt(c & 15);
        }
      } else {
        buf[pos++] = c;
      }
    }
    buf[pos++] = Ch.Quote;
    this.pos = pos;
  }

  /** The slow path: escapes, and non-ASCII as UTF-8. */
  private escaped(s: string): void {
    this.room(s.length * MAX_BYTES_PER_CHAR + 2);
    this.pos += this.buf.write(this.escape(JSON.stringify(s)), this.pos, 'utf8');
  }
}
