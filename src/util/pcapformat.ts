// The classic pcap file format as Netwarden writes it (what `tcpdump -w` writes;
// https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html): a 24-byte file header (magic
// a1b2c3d4 little-endian, version 2.4, snaplen, link type), then per packet a 16-byte record header
// (seconds, microseconds, captured length, original length) and the captured bytes. The agent's
// capture writer, the tests, the benchmarks and the demo all write their headers here.

/** Microsecond-resolution pcap, in the writer's byte order. */
export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;

export function pcapFileHeader(linkType: number, snapLen = 262144): Buffer {
  const header = Buffer.alloc(PCAP_HEADER_BYTES);
  header.writeUInt32LE(PCAP_MAGIC_US, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeInt32LE(0, 8); // thiszone
  header.writeUInt32LE(0, 12); // sigfigs
  header.writeUInt32LE(snapLen, 16);
  header.writeUInt32LE(linkType, 20);
  return header;
}

/** One record (header and data) at a nanosecond timestamp, kept to microseconds. */
export function pcapRecord(timestampNs: bigint, data: Buffer, originalLength = data.length): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  header.writeUInt32LE(Number(timestampNs / 1_000_000_000n), 0);
  header.writeUInt32LE(Number((timestampNs % 1_000_000_000n) / 1000n), 4);
  header.writeUInt32LE(data.length, 8);
  header.writeUInt32LE(originalLength, 12);
  return Buffer.concat([header, data]);
}

// --- pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html) -----------------
// A file is a sequence of blocks: type (32 bits), total length (32 bits, a multiple of 4), the body,
// the total length again. Netwarden writes little-endian sections of three block types: a Section
// Header Block, one Interface Description Block per pod interface, and Enhanced Packet Blocks.
// Options are (code 16 bits, length 16 bits, value padded to 32 bits), ended by opt_endofopt.
// No if_tsresol is written: the default, microseconds, is what the agent's clock gives.

export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_IDB = 1;
export const PCAPNG_EPB = 6;
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** EPB fixed part: type, length, interface id, timestamp (high, low), captured and original length. */
export const EPB_HEADER_BYTES = 28;
/** The trailing copy of the block's total length. */
export const BLOCK_TRAILER_BYTES = 4;

export const OPT_ENDOFOPT = 0;
export const OPT_COMMENT = 1;
export const SHB_USERAPPL = 4;
export const IF_NAME = 2;
export const IF_DESCRIPTION = 3;

/** n rounded up to a multiple of 4 (every block body part and option value is padded so). */
export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options (in order) with opt_endofopt; empty values are left out. */
export function pcapngOptions(options: ReadonlyArray<readonly [code: number, value: string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [code, text] of options) {
    const value = Buffer.from(text, 'utf8');
    if (value.length === 0) continue;
    if (value.length > 0xffff) throw new RangeError(`pcapng option ${code} is longer than 65535 bytes`);
    const option = Buffer.alloc(4 + pad4(value.length));
    option.writeUInt16LE(code, 0);
    option.writeUInt16LE(value.length, 2);
    value.copy(option, 4);
    parts.push(option);
  }
  parts.push(Buffer.alloc(4)); // opt_endofopt: code 0, length 0
  return Buffer.concat(parts);
}

function block(type: number, body: Buffer): Buffer {
  const total = 8 + body.length + BLOCK_TRAILER_BYTES;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  body.copy(out, 8);
  out.writeUInt32LE(total, total - 4);
  return out;
}

/** Section Header Block, version 1.0, section length unknown (-1). */
export function pcapngSectionHeader(userApplication = 'netwarden'): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(PCAPNG_BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8);
  return block(PCAPNG_SHB, Buffer.concat([fixed, pcapngOptions([[SHB_USERAPPL, userApplication]])]));
}

export interface PcapngInterface {
  linkType: number;
  snapLen: number;
  /** if_name */
  name: string;
  /** if_description */
  description?: string;
  /** opt_comment */
  comment?: string;
}

/** Interface Description Block. */
export function pcapngInterfaceDescription(iface: PcapngInterface): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(iface.linkType, 0);
  fixed.writeUInt32LE(iface.snapLen, 4);
  const options = pcapngOptions([
    [IF_NAME, iface.name],
    [IF_DESCRIPTION, iface.description ?? ''],
    [OPT_COMMENT, iface.comment ?? ''],
  ]);
  return block(PCAPNG_IDB, Buffer.concat([fixed, options]));
}

/** Bytes of an EPB with capturedLength bytes of data and these (already encoded) options. */
export function epbBytes(capturedLength: number, optionBytes: number): number {
  return EPB_HEADER_BYTES + pad4(capturedLength) + optionBytes + BLOCK_TRAILER_BYTES;
}

/**
 * Writes one Enhanced Packet Block into `out` at `at` (room for epbBytes() is the caller's
 * business) and returns its length. `options` is encoded once per interface (pcapngOptions), so a
 * packet costs a few integer writes and two copies. Timestamps are microseconds (if_tsresol 6).
 */
export function writeEnhancedPacket(out: Buffer, at: number, interfaceId: number, timestampMicros: number, data: Buffer, capturedLength: number, originalLength: number, options: Buffer): number {
  const padded = (capturedLength + 3) & ~3;
  const total = EPB_HEADER_BYTES + padded + options.length + BLOCK_TRAILER_BYTES;
  const high = Math.floor(timestampMicros / 0x1_0000_0000);
  out.writeUInt32LE(PCAPNG_EPB, at);
  out.writeUInt32LE(total, at + 4);
  out.writeUInt32LE(interfaceId, at + 8);
  out.writeUInt32LE(high, at + 12);
  out.writeUInt32LE(timestampMicros - high * 0x1_0000_0000, at + 16);
  out.writeUInt32LE(capturedLength, at + 20);
  out.writeUInt32LE(originalLength, at + 24);
  // The padding: zero the last word the data ends in before the data goes over its first bytes.
  if (padded !== capturedLength) out.writeUInt32LE(0, at + EPB_HEADER_BYTES + padded - 4);
  data.copy(out, at + EPB_HEADER_BYTES, 0, capturedLength);
  // set() rather than copy() or fill() calls: measured the cheapest for a few dozen bytes.
  out.set(options, at + EPB_HEADER_BYTES + padded);
  out.writeUInt32LE(total, at + total - 4);
  return total;
}

/** One EPB as its own buffer (tests, the demo). */
export function pcapngEnhancedPacket(interfaceId: number, timestampMicros: number, data: Buffer, options: Buffer = pcapngOptions([]), originalLength = data.length): Buffer {
  const out = Buffer.alloc(epbBytes(data.length, options.length));
  writeEnhancedPacket(out, 0, interfaceId, timestampMicros, data, data.length, originalLength, options);
  return out;
}

/** What a pcapng capture file says about its pod interface (IDB and per-packet comment). */
export interface PodInterfaceLabel {
  namespace: string;
  pod: string;
  node: string;
  /** The pod's host-side interface. */
  iface: string;
  /** spec.direction, relative to the pod. */
  direction: string;
  /** The PacketCapture, namespace/name. */
  capture: string;
}

/** The IDB of one pod interface: Wireshark's frame.interface_name is "namespace/pod@node/interface". */
export function podInterfaceDescription(label: PodInterfaceLabel, linkType: number, snapLen: number): PcapngInterface {
  const who = `${label.namespace}/${label.pod}`;
  return {
    linkType,
    snapLen,
    name: `${who}@${label.node}/${label.iface}`,
    description: `pod ${who} on node ${label.node}, host interface ${label.iface}, direction ${label.direction}`,
    comment: `netwarden PacketCapture ${label.capture}: pod ${who}, node ${label.node}, interface ${label.iface}, direction ${label.direction}`,
  };
}

/** The options every packet of that interface carries: opt_comment "namespace/pod" (frame.comment). */
export function podPacketOptions(label: Pick<PodInterfaceLabel, 'namespace' | 'pod'>): Buffer {
  return pcapngOptions([[OPT_COMMENT, `${label.namespace}/${label.pod}`]]);
}
