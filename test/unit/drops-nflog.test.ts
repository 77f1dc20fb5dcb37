import { expect } from 'chai';
import { endianness } from 'node:os';
import { decodeIpPacket, decodeNflogPacket, NFULA, parseNflogTlvs, type NflogDecodeOptions } from '../../src/nodeagent/drops/nflog.js';
import { noDropMetrics } from '../../src/nodeagent/drops/metrics.js';

const LE = endianness() === 'LE';

/** One TLV: u16 length + u16 type in host order, value, padded to 4. */
function tlv(type: number, value: Uint8Array | number[], littleEndian = LE): Buffer {
  const v = Buffer.from(value);
  const len = 4 + v.length;
  const b = Buffer.alloc((len + 3) & ~3);
  if (littleEndian) {
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(type, 2);
  } else {
    b.writeUInt16BE(len, 0);
    b.writeUInt16BE(type, 2);
  }
  v.copy(b, 4);
  return b;
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0])]);

function nflog(family: number, group: number, tlvs: Buffer[]): Buffer {
  const h = Buffer.alloc(4);
  h[0] = family;
  h[1] = 0;
  h.writeUInt16BE(group, 2);
  return Buffer.concat([h, ...tlvs]);
}

function ipv4(proto: number, src: number[], dst: number[], l4: number[], opts: { ttl?: number; options?: number[]; fragOff?: number } = {}): Buffer {
  const optBytes = opts.options ?? [];
  const ihl = 20 + optBytes.length;
  const b = Buffer.alloc(ihl + l4.length);
  b[0] = 0x40 | (ihl / 4);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE(opts.fragOff ?? 0x4000, 6); // DF
  b[8] = opts.ttl ?? 64;
  b[9] = proto;
  Buffer.from(src).copy(b, 12);
  Buffer.from(dst).copy(b, 16);
  Buffer.from(optBytes).copy(b, 20);
  Buffer.from(l4).copy(b, ihl);
  return b;
}

function ipv6(next: number, src: string, dst: string, rest: number[], hop = 64): Buffer {
  const b = Buffer.alloc(40 + rest.length);
  b.writeUInt32BE(0x60000000, 0);
  b.writeUInt16BE(rest.length, 4);
  b[6] = next;
  b[7] = hop;
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(b, 8);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(b, 24);
  Buffer.from(rest).copy(b, 40);
  return b;
}

const udp = (sp: number, dp: number, payload = 4): number[] => [sp >> 8, sp & 255, dp >> 8, dp & 255, 0, 8 + payload, 0, 0, ...new Array<number>(payload).fill(0x61)];
const tcpSyn = (sp: number, dp: number): number[] => [sp >> 8, sp & 255, dp >> 8, dp & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0];

const names: Record<number, string> = { 1: 'lo', 2: 'eth0', 7: 'veth7' };
const opts: NflogDecodeOptions = { metrics: noDropMetrics, ifName: (i) => names[i], receivedAt: new Date('2026-11-23T01:02:03.004Z') };

const hdr = (proto: number, hook: number): number[] => [proto >> 8, proto & 255, hook, 0];

describe('drops: NFLOG decoder', () => {
  it('IPv4 UDP with prefix, interfaces, mark, uid/gid, timestamp and hardware header', () => {
    const ts = Buffer.alloc(16);
    ts.writeBigUInt64BE(1795404056n, 0);
    ts.writeBigUInt64BE(123456n, 8);
    const pkt = nflog(2, 77, [
      tlv(NFULA.PACKET_HDR, hdr(0x0800, 1)),
      tlv(NFULA.MARK, u32(0x4000)),
      tlv(NFULA.TIMESTAMP, ts),
      tlv(NFULA.IFINDEX_INDEV, u32(2)),
      tlv(NFULA.HWTYPE, [0, 1]),
      tlv(NFULA.HWHEADER, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0x65, 0x43, 0x21, 0x08, 0x00]),
      tlv(NFULA.PREFIX, cstr('nwtest-dropped: ')),
      tlv(NFULA.UID, u32(1000)),
      tlv(NFULA.GID, u32(1001)),
      tlv(NFULA.SEQ, u32(5)),
      tlv(NFULA.PAYLOAD, ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], udp(40000, 53))),
    ]);
    const r = decodeNflogPacket(pkt, opts);
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.drop).to.deep.equal({
      time: '2026-11-23T03:20:56.123Z',
      timeSource: 'nflog',
      prefix: 'nwtest-dropped:',
      family: 'ipv4',
      inInterface: 'eth0',
      mac: '52:54:00:12:34:56:52:54:00:65:43:21:08:00',
      dstMac: '52:54:00:12:34:56',
      srcMac: '52:54:00:65:43:21',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      protocol: 'UDP',
      srcPort: 40000,
      dstPort: 53,
      length: 32,
      ttl: 64,
      mark: 0x4000,
      uid: 1000,
      gid: 1001,
    });
    const t = parseNflogTlvs(pkt);
    expect(t.ok && t.record).to.deep.include({ family: 2, version: 0, group: 77, hwProtocol: 0x0800, hook: 1 });
  });

  it('IPv4 TCP SYN with IP options (IHL > 5), output interface by index, receive time when no timestamp', () => {
    const payload = ipv4(6, [192, 168, 1, 10], [93, 184, 216, 34], tcpSyn(51000, 443), { options: [0x94, 0x04, 0, 0] });
    const r = decodeNflogPacket(nflog(2, 1, [tlv(NFULA.IFINDEX_OUTDEV, u32(7)), tlv(NFULA.PREFIX, cstr('x')), tlv(NFULA.PAYLOAD, payload)]), opts);
    expect(r.ok && r.drop).to.deep.include({
      protocol: 'TCP',
      srcPort: 51000,
      dstPort: 443,
      outInterface: 'veth7',
      time: '2026-11-23T01:02:03.004Z',
      timeSource: 'received',
    });
    expect(r.ok && r.drop.tcpFlags).to.deep.equal(['SYN']);
  });

  it('ICMP echo request; unknown interface index becomes ifN', () => {
    const icmp = [8, 0, 0, 0, 0, 1, 0, 1];
    const r = decodeNflogPacket(nflog(2, 1, [tlv(NFULA.IFINDEX_INDEV, u32(99)), tlv(NFULA.PAYLOAD, ipv4(1, [10, 0, 0, 1], [10, 0, 0, 2], icmp))]), opts);
    expect(r.ok && r.drop).to.deep.include({ protocol: 'ICMP', icmpType: 8, icmpCode: 0, inInterface: 'if99', prefix: '' });
  });

  it('IPv4 non-first fragment: offset, no ports', () => {
    const r = decodeNflogPacket(nflog(2, 1, [tlv(NFULA.PAYLOAD, ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], [1, 2, 3, 4], { fragOff: 185 }))]), opts);
    expect(r.ok && r.drop).to.deep.include({ protocol: 'UDP', fragmentOffset: 1480 });
    expect(r.ok && r.drop).not.to.have.property('srcPort');
  });

  it('IPv6 UDP', () => {
    const p6 = ipv6(17, '2001:0db8:0000:0000:0000:0000:0000:0001', 'fe80:0000:0000:0000:0202:b3ff:fe1e:8329', udp(546, 547));
    const r = decodeNflogPacket(nflog(10, 1, [tlv(NFULA.PAYLOAD, p6)]), opts);
    expect(r.ok && r.drop).to.deep.include({
      family: 'ipv6',
      src: '2001:db8::1',
      dst: 'fe80::202:b3ff:fe1e:8329',
      protocol: 'UDP',
      srcPort: 546,
      dstPort: 547,
      hopLimit: 64,
      length: 52,
    });
  });

  it('IPv6 with hop-by-hop, destination options and fragment headers before ICMPv6 / TCP', () => {
    // hop-by-hop (next=58 ICMPv6, len 0 → 8 bytes): router alert MLD
    const hbh = [58, 0, 5, 2, 0, 0, 1, 0];
    const mld = [143, 0, 0, 0, 0, 0, 0, 1];
    const r = decodeNflogPacket(nflog(10, 1, [tlv(NFULA.PAYLOAD, ipv6(0, 'fe80:0000:0000:0000:0000:0000:0000:0001', 'ff02:0000:0000:0000:0000:0000:0000:0016', [...hbh, ...mld], 1))]), opts);
    expect(r.ok && r.drop).to.deep.include({ protocol: 'ICMPv6', icmpType: 143, icmpCode: 0, src: 'fe80::1', dst: 'ff02::16', hopLimit: 1 });

    // dest-opts (next=44, len 1 → 16 bytes) then fragment (next=6, offset 0) then TCP
    const dst = [44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const frag0 = [6, 0, 0, 1, 0, 0, 0, 42]; // offset 0, M=1
    const p = ipv6(60, '20010db8000000000000000000000001', '20010db8000000000000000000000002', [...dst, ...frag0, ...tcpSyn(1234, 22)]);
    const r3 = decodeNflogPacket(nflog(10, 1, [tlv(NFULA.PAYLOAD, p)]), opts);
    expect(r3.ok && r3.drop).to.deep.include({ protocol: 'TCP', srcPort: 1234, dstPort: 22 });

    // non-first fragment: no transport header
    const fragN = [17, 0, 0x05, 0xc8, 0, 0, 0, 42]; // offset 1480
    const r4 = decodeNflogPacket(nflog(10, 1, [tlv(NFULA.PAYLOAD, ipv6(44, '20010db8000000000000000000000001', '20010db8000000000000000000000002', [...fragN, 1, 2, 3, 4]))]), opts);
    expect(r4.ok && r4.drop).to.deep.include({ protocol: 'UDP', fragmentOffset: 1480 });
    expect(r4.ok && r4.drop).not.to.have.property('srcPort');
  });

  it('a TCP header cut by the copy range gives ports and incomplete', () => {
    const payload = ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], tcpSyn(1000, 2000)).subarray(0, 28);
    const r = decodeNflogPacket(nflog(2, 1, [tlv(NFULA.PAYLOAD, payload)]), opts);
    expect(r.ok && r.drop).to.deep.include({ srcPort: 1000, dstPort: 2000, incomplete: true });
  });

  it('malformed input: short header, truncated TLV, bad lengths, no payload, bad IP', () => {
    const reason = (b: Uint8Array, o: NflogDecodeOptions = opts): string => {
      const r = decodeNflogPacket(b, o);
      return r.ok ? 'ok' : r.reason;
    };
    expect(reason(Buffer.from([2, 0]))).to.equal('short-header');
    expect(reason(Buffer.from([2, 0, 0, 1, 8]))).to.equal('bad-tlv'); // half a TLV header
    const good = tlv(NFULA.PAYLOAD, ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], udp(1, 2)));
    expect(reason(nflog(2, 1, [good.subarray(0, good.length - 8)]))).to.equal('bad-tlv'); // TLV runs past the end
    const zero = Buffer.alloc(4); // length 0 would loop forever if not rejected
    expect(reason(nflog(2, 1, [zero]))).to.equal('bad-tlv');
    const three = Buffer.from(LE ? [3, 0, 9, 0] : [0, 3, 0, 9]);
    expect(reason(nflog(2, 1, [three]))).to.equal('bad-tlv');
    expect(reason(nflog(2, 1, [tlv(NFULA.PREFIX, cstr('p'))]))).to.equal('no-payload');
    expect(reason(nflog(2, 1, [tlv(NFULA.PAYLOAD, [0x45, 0, 0])]))).to.equal('truncated');
    expect(reason(nflog(2, 1, [tlv(NFULA.PAYLOAD, [0x60, 0, 0, 0, 0, 0])]))).to.equal('truncated');
    expect(reason(nflog(2, 1, [tlv(NFULA.PAYLOAD, new Array<number>(40).fill(0x20))]))).to.equal('bad-ip-version');
    expect(reason(nflog(2, 1, [tlv(NFULA.PAYLOAD, [0x42, ...new Array<number>(30).fill(0)])]))).to.equal('malformed');
    expect(reason(nflog(2, 1, [tlv(NFULA.PREFIX, cstr('other')), good]), { ...opts, prefixes: ['nwtest-dropped: '] })).to.equal('unknown-prefix');
    expect(reason(nflog(2, 1, [tlv(NFULA.PREFIX, cstr('nwtest-dropped: ')), good]), { ...opts, prefixes: ['nwtest-dropped: '] })).to.equal('ok');
  });

  it('reads the other byte order when told to (a capture file from another host)', () => {
    const pkt = nflog(2, 1, [tlv(NFULA.PAYLOAD, ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], udp(1, 2)), !LE)]);
    expect(decodeNflogPacket(pkt, opts).ok).to.equal(false);
    expect(decodeNflogPacket(pkt, { ...opts, littleEndian: !LE }).ok).to.equal(true);
  });

  it('never throws on random bytes', () => {
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 5000; n++) {
      const len = rnd() % 120;
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = rnd() & 255;
      if (len > 8 && n % 2 === 0) {
        b[4] = LE ? len - 4 : 0;
        b[5] = LE ? 0 : len - 4;
        b[6] = LE ? 9 : 0;
        b[7] = LE ? 0 : 9;
      }
      const r = decodeNflogPacket(b, opts);
      expect(typeof r.ok).to.equal('boolean');
    }
    expect(decodeIpPacket(new Uint8Array(0)).ok).to.equal(false);
  });
});
