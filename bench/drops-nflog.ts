// NFLOG packets decoded per second: decodeNflogPacket on packets as libpcap's nflog:N device hands
// them over (TLVs in host byte order: packet header, prefix, interfaces, timestamp, payload), a mix
// of IPv4 TCP SYN / UDP / ICMP echo and IPv6 UDP. Compared with the flood rate of 50,000
// drops per second. Prints nothing.
import { endianness } from 'node:os';
import { decodeNflogPacket, NFULA } from '../src/nodeagent/drops/nflog.js';
import { noDropMetrics } from '../src/nodeagent/drops/metrics.js';
import type { BenchResult } from './types.js';

const LE = endianness() === 'LE';
const FLOOD_PER_SECOND = 50_000;

function tlv(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  if (LE) {
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(type, 2);
  } else {
    b.writeUInt16BE(len, 0);
    b.writeUInt16BE(type, 2);
  }
  value.copy(b, 4);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function ipv4(proto: number, i: number, l4: number[]): Buffer {
  const b = Buffer.alloc(20 + l4.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x4000, 6);
  b[8] = 64;
  b[9] = proto;
  Buffer.from([10, 244, (i >> 8) & 255, i & 255]).copy(b, 12);
  Buffer.from([10, 244, 200, 1 + (i % 250)]).copy(b, 16);
  Buffer.from(l4).copy(b, 20);
  return b;
}

function ipv6Udp(i: number): Buffer {
  const b = Buffer.alloc(48);
  b.writeUInt32BE(0x60000000, 0);
  b.writeUInt16BE(8, 4);
  b[6] = 17;
  b[7] = 64;
  Buffer.from(`fd000000000000000000000000${(i & 0xffff).toString(16).padStart(4, '0')}0001`, 'hex').copy(b, 8);
  Buffer.from('fd000000000000000000000000000002', 'hex').copy(b, 24);
  Buffer.from([0x9c, 0x40, 0, 53, 0, 8, 0, 0]).copy(b, 40);
  return b;
}

function packet(i: number): Buffer {
  const kind = i % 4;
  const family = kind === 3 ? 10 : 2;
  const payload =
    kind === 0 ? ipv4(6, i, [0x9c, 0x40, 1, 187, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0])
    : kind === 1 ? ipv4(17, i, [0x9c, 0x40, 0, 53, 0, 12, 0, 0, 0x61, 0x61, 0x61, 0x61])
    : kind === 2 ? ipv4(1, i, [8, 0, 0, 0, 0, 1, 0, 1])
    : ipv6Udp(i);
  const ts = Buffer.alloc(16);
  ts.writeBigUInt64BE(BigInt(1_795_400_000 + i), 0);
  ts.writeBigUInt64BE(123_456n, 8);
  const header = Buffer.alloc(4);
  header[0] = family;
  header.writeUInt16BE(100, 2);
  return Buffer.concat([
    header,
    tlv(NFULA.PACKET_HDR, Buffer.from([family === 2 ? 0x08 : 0x86, family === 2 ? 0x00 : 0xdd, 1, 0])),
    tlv(NFULA.PREFIX, Buffer.from('nftables-metal-dropped: \0')),
    tlv(NFULA.IFINDEX_INDEV, u32(2)),
    tlv(NFULA.TIMESTAMP, ts),
    tlv(NFULA.PAYLOAD, payload),
  ]);
}

export async function benchDropsNflog(count = 1_000_000): Promise<BenchResult> {
  const packets = Array.from({ length: 1024 }, (_, i) => packet(i));
  const names: Record<number, string> = { 2: 'eth0' };
  const opts = { metrics: noDropMetrics, prefixes: ['nftables-metal-dropped: '], ifName: (i: number) => names[i] };
  for (let i = 0; i < 20_000; i++) decodeNflogPacket(packets[i & 1023]!, opts); // warm-up
  let decoded = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) if (decodeNflogPacket(packets[i & 1023]!, opts).ok) decoded += 1;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (decoded !== count) throw new Error(`only ${decoded} of ${count} packets decoded`);
  const perSecond = count / seconds;
  return {
    name: 'drops-nflog',
    rows: [{ metric: 'NFLOG packets decoded per second (1 core)', value: perSecond, unit: 'packets/s', reference: FLOOD_PER_SECOND, ratio: perSecond / FLOOD_PER_SECOND }],
  };
}
