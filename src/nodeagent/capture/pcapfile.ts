// Writes standard pcap or pcapng files (the formats: src/util/pcapformat.ts) as packets arrive.
// Records are gathered in memory and written in blocks: the packet callback runs for every packet,
// and one write per packet would cost more than the capture itself.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { CaptureFormat } from '../../apis/packetcapture.js';
import {
  epbBytes,
  pcapFileHeader,
  pcapngInterfaceDescription,
  pcapngSectionHeader,
  podInterfaceDescription,
  podPacketOptions,
  RECORD_HEADER_BYTES,
  writeEnhancedPacket,
  type PodInterfaceLabel,
} from '../../util/pcapformat.js';

const BLOCK_BYTES = 1024 * 1024;

/** Wall-clock microseconds with the monotonic clock's resolution (Date.now() has only ms). A
 * double holds today's microseconds exactly (< 2^53), and is much cheaper per packet than BigInt. */
export function microClock(): () => number {
  const origin = performance.timeOrigin;
  return () => Math.floor((origin + performance.now()) * 1000);
}

/**
 * The packet's length on the wire, from its own headers: cap gives only the captured length, which
 * snapLen may have cut. Ethernet (with VLAN tags), Linux cooked and raw IP; IPv4 total length or
 * IPv6 payload length. Falls back to the captured length (e.g. GSO packets with length 0).
 */
export function originalLength(packet: Buffer, capturedLength: number, linkType: number): number {
  let l3: number;
  let etherType: number;
  if (linkType === 1) {
    if (capturedLength < 14) return capturedLength;
    l3 = 14;
    etherType = packet.readUInt16BE(12);
    while ((etherType === 0x8100 || etherType === 0x88a8) && capturedLength >= l3 + 4) {
      etherType = packet.readUInt16BE(l3 + 2);
      l3 += 4;
    }
  } else if (linkType === 113) {
    if (capturedLength < 16) return capturedLength;
    l3 = 16;
    etherType = packet.readUInt16BE(14);
  } else if (linkType === 101 || linkType === 12) {
    l3 = 0;
    const version = capturedLength > 0 ? packet[0]! >> 4 : 0;
    etherType = version === 4 ? 0x0800 : version === 6 ? 0x86dd : 0;
  } else {
    return capturedLength;
  }
  let ipLength = 0;
  if (etherType === 0x0800 && capturedLength >= l3 + 4) ipLength = packet.readUInt16BE(l3 + 2);
  else if (etherType === 0x86dd && capturedLength >= l3 + 6) ipLength = 40 + packet.readUInt16BE(l3 + 4);
  return Math.max(capturedLength, ipLength > 0 ? l3 + ipLength : 0);
}

/**
 * What one pod's files look like: pcap, or pcapng whose single interface (IDB) names the pod and
 * whose every packet carries the pod in opt_comment. The comment's option bytes are encoded here
 * once, so a packet costs the same copies as in pcap plus one small one.
 */
export class CaptureFileLayout {
  readonly extension: CaptureFormat;
  /** Bytes before the first packet: the pcap header, or the SHB and the IDB. */
  readonly headerBytes: number;
  private readonly packetOptions: Buffer | undefined;

  constructor(
    format: CaptureFormat,
    readonly snapLen: number,
    private readonly label?: PodInterfaceLabel,
  ) {
    this.extension = format;
    if (format === 'pcapng') {
      if (!label) throw new Error('a pcapng capture file needs its pod interface label');
      this.packetOptions = podPacketOptions(label);
    }
    this.headerBytes = this.header(1).length; // the link type does not change the length
  }

  get pcapng(): boolean {
    return this.packetOptions !== undefined;
  }

  header(linkType: number): Buffer {
    if (!this.packetOptions) return pcapFileHeader(linkType, this.snapLen);
    return Buffer.concat([pcapngSectionHeader(), pcapngInterfaceDescription(podInterfaceDescription(this.label!, linkType, this.snapLen))]);
  }

  /** Bytes one packet with this captured length takes in the file. */
  recordBytes(capturedLength: number): number {
    return this.packetOptions ? epbBytes(capturedLength, this.packetOptions.length) : RECORD_HEADER_BYTES + capturedLength;
  }

  /** The EPB options (pcapng only). */
  get options(): Buffer | undefined {
    return this.packetOptions;
  }
}

/** One pcap or pcapng file being written. `bytes` counts what is written or buffered. */
export class PcapFileWriter {
  private fd: number | undefined;
  private block = Buffer.allocUnsafe(BLOCK_BYTES);
  private used = 0;
  /** pcapng: the EPB options of every packet (the pod); undefined for pcap. */
  private readonly epbOptions: Buffer | undefined;
  bytes = 0;
  packets = 0;

  constructor(
    readonly path: string,
    private readonly layout: CaptureFileLayout,
    private readonly linkType: number,
  ) {
    this.epbOptions = layout.options;
    // 'wx': a file that exists is never overwritten (sequence numbers only grow).
    this.fd = openSync(path, 'wx', 0o600);
    const header = layout.header(linkType);
    this.append(header, header.length);
    this.flush();
  }

  /** Bytes in the file itself (written, not buffered). */
  get onDisk(): number {
    return this.bytes - this.used;
  }

  /** Appends one record; `packet` is only read during the call. */
  write(packet: Buffer, capturedLength: number, timestampMicros: number): number {
    const recordBytes = this.layout.recordBytes(capturedLength);
    if (this.used + recordBytes > this.block.length) this.flush();
    if (recordBytes > this.block.length) this.block = Buffer.allocUnsafe(recordBytes);
    const at = this.used;
    if (this.epbOptions) {
      // Interface 0: each file holds one pod interface (the download merges them).
      writeEnhancedPacket(this.block, at, 0, timestampMicros, packet, capturedLength, originalLength(packet, capturedLength, this.linkType), this.epbOptions);
    } else {
      const seconds = Math.floor(timestampMicros / 1_000_000);
      this.block.writeUInt32LE(seconds, at);
      this.block.writeUInt32LE(timestampMicros - seconds * 1_000_000, at + 4);
      this.block.writeUInt32LE(capturedLength, at + 8);
      this.block.writeUInt32LE(originalLength(packet, capturedLength, this.linkType), at + 12);
      packet.copy(this.block, at + RECORD_HEADER_BYTES, 0, capturedLength);
    }
    this.used += recordBytes;
    this.bytes += recordBytes;
    this.packets += 1;
    return recordBytes;
  }

  /** Writes buffered records to the file, so readers (downloads, tshark) see them. */
  flush(): void {
    if (this.fd === undefined || this.used === 0) return;
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.block, off, this.used - off);
    this.used = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }

  private append(data: Buffer, length: number): void {
    if (this.used + length > this.block.length) this.block = Buffer.allocUnsafe(this.used + length);
    data.copy(this.block, this.used, 0, length);
    this.used += length;
    this.bytes += length;
  }
}
