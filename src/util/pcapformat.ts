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
