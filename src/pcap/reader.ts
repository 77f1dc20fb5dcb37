// Reads capture files: classic pcap (microsecond and nanosecond, either byte order) and pcapng
// (section, interface description, enhanced/simple/obsolete packet blocks, either byte order).
// Both are parsed incrementally from chunks, so a large capture is never held in memory whole.

import { PCAP_MAGIC_US } from '../util/pcapformat.js';

/** Link-layer header types (LINKTYPE_* from tcpdump.org) the decoder understands. */
export const LinkType = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export interface CapturedPacket {
  /** Capture time as nanoseconds since the Unix epoch. */
  timestampNs: bigint;
  linkType: number;
  /** The bytes kept (snap length applies). */
  data: Buffer;
  /** The packet's length on the wire. */
  originalLength: number;
  /** pcapng only: the interface name from its description block, when recorded. */
  interfaceName?: string | undefined;
  /** pcapng only: the packet's opt_comment (Netwarden's pcapng: "namespace/pod"). */
  comment?: string | undefined;
}

export class CaptureFormatError extends Error {}

const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** A record larger than this is a corrupt file, not a packet (pcap's own limit is 256 KiB). */
const MAX_RECORD = 16 * 1024 * 1024;

type Endian = 'le' | 'be';

function u32(buf: Buffer, offset: number, endian: Endian): number {
  return endian === 'le' ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}
function u16(buf: Buffer, offset: number, endian: Endian): number {
  return endian === 'le' ? buf.readUInt16LE(offset) : buf.readUInt16BE(offset);
}

interface Format {
  /** Parses as many records as `buf` holds from `offset`; returns the offset after the last complete one. */
  parse(buf: Buffer, offset: number, out: CapturedPacket[]): number;
}

/** Classic libpcap: a 24-byte file header, then 16-byte record headers each followed by its data. */
class PcapFormat implements Format {
  private constructor(
    private readonly endian: Endian,
    private readonly nanoseconds: boolean,
    readonly linkType: number,
  ) {}

  static fromHeader(header: Buffer): PcapFormat {
    const le = header.readUInt32LE(0);
    const be = header.readUInt32BE(0);
    const endian: Endian = le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS ? 'le' : 'be';
    const magic = endian === 'le' ? le : be;
    // The link type shares its 32-bit field with FCS flags in the upper bits (pcap spec, LinkType and additional information).
    const linkType = u32(header, 20, endian) & 0x0fffffff;
    return new PcapFormat(endian, magic === PCAP_MAGIC_NS, linkType);
  }

  parse(buf: Buffer, offset: number, out: CapturedPacket[]): number {
    while (buf.length - offset >= 16) {
      const seconds = u32(buf, offset, this.endian);
      const fraction = u32(buf, offset + 4, this.endian);
      const capturedLength = u32(buf, offset + 8, this.endian);
      const originalLength = u32(buf, offset + 12, this.endian);
      if (capturedLength > MAX_RECORD) throw new CaptureFormatError(`pcap record at byte ${offset} claims ${capturedLength} bytes: the file is corrupt`);
      if (buf.length - offset - 16 < capturedLength) break;
      const data = Buffer.from(buf.subarray(offset + 16, offset + 16 + capturedLength));
      const timestampNs = BigInt(seconds) * 1_000_000_000n + BigInt(fraction) * (this.nanoseconds ? 1n : 1000n);
      out.push({ timestampNs, linkType: this.linkType, data, originalLength });
      offset += 16 + capturedLength;
    }
    return offset;
  }
}

interface PcapngInterface {
  linkType: number;
  /** Ticks per second of this interface's timestamps (if_tsresol; default microseconds). */
  ticksPerSecond: bigint;
  name?: string | undefined;
}

/** pcapng: a sequence of blocks (type, total length, body, total length); sections may change byte order. */
class PcapngFormat implements Format {
  private endian: Endian = 'le';
  private interfaces: PcapngInterface[] = [];

  parse(buf: Buffer, offset: number, out: CapturedPacket[]): number {
    while (buf.length - offset >= 12) {
      const rawType = buf.readUInt32LE(offset);
      if (rawType === PCAPNG_SHB) this.startSection(buf, offset);
      const type = u32(buf, offset, this.endian);
      const length = u32(buf, offset + 4, this.endian);
      if (length < 12 || length % 4 !== 0 || length > MAX_RECORD) throw new CaptureFormatError(`pcapng block at byte ${offset} has an invalid length ${length}`);
      if (buf.length - offset < length) break;
      this.readBlock(type, buf.subarray(offset + 8, offset + length - 4), out);
      offset += length;
    }
    return offset;
  }

  private startSection(buf: Buffer, offset: number): void {
    const order = buf.readUInt32LE(offset + 8);
    if (order === PCAPNG_BYTE_ORDER_MAGIC) this.endian = 'le';
    else if (buf.readUInt32BE(offset + 8) === PCAPNG_BYTE_ORDER_MAGIC) this.endian = 'be';
    else throw new CaptureFormatError(`pcapng section at byte ${offset} has no valid byte-order magic`);
    this.interfaces = []; // interface ids are per section
  }

  private readBlock(type: number, body: Buffer, out: CapturedPacket[]): void {
    switch (type) {
      case 1: // Interface Description Block
        this.interfaces.push(this.readInterface(body));
        return;
      case 6: // Enhanced Packet Block
      case 2: {
        // Obsolete Packet Block: same layout with a 16-bit interface id and drop count
        const interfaceId = type === 6 ? u32(body, 0, this.endian) : u16(body, 0, this.endian);
        const iface = this.interfaces[interfaceId];
        if (!iface) throw new CaptureFormatError(`pcapng packet refers to undeclared interface ${interfaceId}`);
        const ticks = (BigInt(u32(body, 4, this.endian)) << 32n) | BigInt(u32(body, 8, this.endian));
        const capturedLength = u32(body, 12, this.endian);
        const originalLength = u32(body, 16, this.endian);
        if (20 + capturedLength > body.length) throw new CaptureFormatError('pcapng packet data runs past its block');
        const comment = type === 6 ? this.readComment(body, 20 + ((capturedLength + 3) & ~3)) : undefined;
        out.push({
          timestampNs: (ticks * 1_000_000_000n) / iface.ticksPerSecond,
          linkType: iface.linkType,
          data: Buffer.from(body.subarray(20, 20 + capturedLength)),
          originalLength,
          interfaceName: iface.name,
          ...(comment !== undefined ? { comment } : {}),
        });
        return;
      }
      case 3: {
        // Simple Packet Block: interface 0, no timestamp
        const iface = this.interfaces[0];
        if (!iface) throw new CaptureFormatError('pcapng simple packet before any interface');
        const originalLength = u32(body, 0, this.endian);
        out.push({ timestampNs: 0n, linkType: iface.linkType, data: Buffer.from(body.subarray(4, 4 + Math.min(originalLength, body.length - 4))), originalLength, interfaceName: iface.name });
        return;
      }
      default:
        return; // name resolution, statistics, custom blocks: nothing to list
    }
  }

  /** The first opt_comment among the options from `offset`, if any. */
  private readComment(body: Buffer, offset: number): string | undefined {
    while (offset + 4 <= body.length) {
      const code = u16(body, offset, this.endian);
      const length = u16(body, offset + 2, this.endian);
      if (code === 0 || offset + 4 + length > body.length) return undefined;
      if (code === 1) return body.toString('utf8', offset + 4, offset + 4 + length);
      offset += 4 + length + ((4 - (length % 4)) % 4);
    }
    return undefined;
  }

  private readInterface(body: Buffer): PcapngInterface {
    const iface: PcapngInterface = { linkType: u16(body, 0, this.endian), ticksPerSecond: 1_000_000n };
    let offset = 8;
    while (offset + 4 <= body.length) {
      const code = u16(body, offset, this.endian);
      const length = u16(body, offset + 2, this.endian);
      const value = body.subarray(offset + 4, offset + 4 + length);
      if (code === 0) break; // opt_endofopt
      if (code === 2) iface.name = value.toString('utf8').replace(/\0+$/, ''); // if_name
      if (code === 9 && length >= 1) {
        // if_tsresol: high bit set means a power of two, else a power of ten
        const v = value[0]!;
        iface.ticksPerSecond = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
      }
      offset += 4 + length + ((4 - (length % 4)) % 4);
    }
    return iface;
  }
}

function detectFormat(header: Buffer): { format: Format; headerLength: number } {
  const le = header.readUInt32LE(0);
  const be = header.readUInt32BE(0);
  if ([PCAP_MAGIC_US, PCAP_MAGIC_NS].includes(le) || [PCAP_MAGIC_US, PCAP_MAGIC_NS].includes(be)) {
    return { format: PcapFormat.fromHeader(header), headerLength: 24 };
  }
  if (le === PCAPNG_SHB) return { format: new PcapngFormat(), headerLength: 0 };
  throw new CaptureFormatError(`not a pcap or pcapng file (magic 0x${be.toString(16).padStart(8, '0')})`);
}

/** Incremental reader: push chunks, take the packets completed so far; `end()` checks nothing was cut off. */
export class CaptureReader {
  private pending: Buffer = Buffer.alloc(0);
  private format: Format | undefined;
  private consumed = 0;

  push(chunk: Buffer): CapturedPacket[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: CapturedPacket[] = [];
    if (!this.format) {
      if (this.pending.length < 24) return out;
      const { format, headerLength } = detectFormat(this.pending);
      this.format = format;
      this.advance(headerLength);
    }
    this.advance(this.format.parse(this.pending, 0, out));
    return out;
  }

  /** Throws when the input ended inside a header or record (a truncated file). */
  end(): void {
    if (!this.format) throw new CaptureFormatError(`not a capture file: only ${this.pending.length} bytes`);
    if (this.pending.length > 0) throw new CaptureFormatError(`the file is truncated: ${this.pending.length} bytes after byte ${this.consumed} do not form a whole record`);
  }

  private advance(bytes: number): void {
    this.pending = this.pending.subarray(bytes);
    this.consumed += bytes;
  }
}

/** All packets of a capture held in a buffer. */
export function readCapture(buf: Buffer): CapturedPacket[] {
  const reader = new CaptureReader();
  const packets = reader.push(buf);
  reader.end();
  return packets;
}

/** Packets of a capture stream as they arrive. */
export async function* readCaptureStream(input: AsyncIterable<Buffer | string>): AsyncGenerator<CapturedPacket> {
  const reader = new CaptureReader();
  for await (const chunk of input) yield* reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  reader.end();
}
