// The pcap reader and the tcpdump-like summary, on packets built byte by byte here and on files
// written by Wireshark's own text2pcap/editcap (pcap, nanosecond pcap, pcapng).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { CaptureFormatError, CaptureReader, LinkType, readCapture } from '../../src/pcap/reader.js';
import { pcapFileHeader, pcapRecord } from '../../src/util/pcapformat.js';
import { describePacket, formatIpv4Options, summarizePacket } from '../../src/pcap/decode.js';
import { runPcapSummary, writeSummary } from '../../src/pcap/summary.js';

// ---- packet builders (network byte order, checksums left zero: the summary does not check them) ----

function ipv4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

function ipv6(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g || '0', 16), 2 * i));
  return buf;
}

function ipv4Packet(src: string, dst: string, protocol: number, payload: Buffer, options = Buffer.alloc(0)): Buffer {
  const headerLength = 20 + options.length;
  const header = Buffer.alloc(20);
  header[0] = 0x40 | (headerLength / 4);
  header.writeUInt16BE(headerLength + payload.length, 2);
  header[8] = 64;
  header[9] = protocol;
  ipv4(src).copy(header, 12);
  ipv4(dst).copy(header, 16);
  return Buffer.concat([header, options, payload]);
}

function ipv6Packet(src: string, dst: string, next: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(payload.length, 4);
  header[6] = next;
  header[7] = 64;
  ipv6(src).copy(header, 8);
  ipv6(dst).copy(header, 24);
  return Buffer.concat([header, payload]);
}

function udp(srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(srcPort, 0);
  h.writeUInt16BE(dstPort, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

function tcp(srcPort: number, dstPort: number, flags: number, seq: number, ack: number, payload = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(srcPort, 0);
  h.writeUInt16BE(dstPort, 2);
  h.writeUInt32BE(seq, 4);
  h.writeUInt32BE(ack, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(64240, 14);
  return Buffer.concat([h, payload]);
}

/** A DNS message with one question; `flags` 0x8180 and `answers` make it an answer. Labels are bytes (latin1). */
function dnsQuery(id: number, name: string, qtype: number, flags = 0x0100 /* recursion desired */, answers = 0): Buffer {
  const labels = name.split('.').filter(Boolean).flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'latin1')]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers, 6);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(1, 3);
  return Buffer.concat([header, ...labels, tail]);
}

function ethernet(etherType: number, payload: Buffer): Buffer {
  const h = Buffer.from('02000000000102000000000200', 'hex');
  const type = Buffer.alloc(2);
  type.writeUInt16BE(etherType);
  return Buffer.concat([h.subarray(0, 12), type, payload]);
}

const T0 = 1_714_564_800_000_000_000n; // 2024-05-01 12:00:00 UTC

describe('pcap summary', function () {
  describe('IPv4 options', function () {
    it("decodes Cilium's DSR option bytes 9a 08 80 75 0a 00 60 0a as service 10.96.0.10:30080", function () {
      expect(formatIpv4Options(Buffer.from('9a0880750a00600a', 'hex'))).to.deep.equal(['[dsr svc 10.96.0.10:30080]']);
    });

    it('decodes the DSR option in the header of a NodePort SYN, before the TCP summary', function () {
      const syn = ipv4Packet('192.168.1.20', '10.244.1.7', 6, tcp(40000, 8080, 0x02, 1000, 0), Buffer.from('9a0880750a00600a', 'hex'));
      expect(describePacket({ linkType: LinkType.RAW, data: syn })).to.equal(
        'IP [dsr svc 10.96.0.10:30080] 192.168.1.20.40000 > 10.244.1.7.8080: Flags [S], seq 1000, win 64240, length 0',
      );
    });

    it('reads a DSR option with other addresses and ports (each field byte-reversed)', function () {
      // 172.16.5.200 port 443 -> port bytes bb 01, address bytes c8 05 10 ac
      expect(formatIpv4Options(Buffer.from('9a08bb01c80510ac', 'hex'))).to.deep.equal(['[dsr svc 172.16.5.200:443]']);
    });

    it('decodes NOP, EOL, Record Route, Timestamp, LSRR, SSRR and Router Alert', function () {
      const rr = Buffer.from('070b080a0000010a000002', 'hex'); // pointer 8: one address recorded, the next slot marked
      expect(formatIpv4Options(Buffer.concat([Buffer.from([1]), rr]))).to.deep.equal(['[nop]', '[rr 10.0.0.1,10.0.0.2*]']);
      const ts = Buffer.from('440c0d010a000001000003e8', 'hex'); // flags 1 (address+timestamp), one pair filled
      expect(formatIpv4Options(ts)).to.deep.equal(['[ts tsandaddr 10.0.0.1@1000]']);
      const tsOnly = Buffer.from('440c0d00000000640000012c', 'hex');
      expect(formatIpv4Options(tsOnly)).to.deep.equal(['[ts tsonly 100,300]']);
      expect(formatIpv4Options(Buffer.from('830b040a0000010a000002', 'hex'))).to.deep.equal(['[lsrr 10.0.0.1*,10.0.0.2]']);
      expect(formatIpv4Options(Buffer.from('890704c0a80001', 'hex'))).to.deep.equal(['[ssrr 192.168.0.1*]']);
      expect(formatIpv4Options(Buffer.from('94040000', 'hex'))).to.deep.equal(['[ra 0]']);
      expect(formatIpv4Options(Buffer.from('01000000', 'hex'))).to.deep.equal(['[nop]', '[eol]']);
    });

    it('reports a malformed option instead of reading past the header', function () {
      expect(formatIpv4Options(Buffer.from('9a0680750a00', 'hex'))).to.deep.equal(['[dsr malformed: length 6, expected 8]']);
      expect(formatIpv4Options(Buffer.from('0728', 'hex'))).to.deep.equal(['[bad option 7: length 40]']);
      expect(formatIpv4Options(Buffer.from('07', 'hex'))).to.deep.equal(['[bad option 7: length missing]']);
    });
  });

  describe('protocols', function () {
    it('lists a DNS query and answer over Ethernet like tcpdump', function () {
      const query = ethernet(0x0800, ipv4Packet('10.244.1.3', '10.96.0.10', 17, udp(41000, 53, dnsQuery(4660, 'storefront.svc.cluster.local', 1))));
      expect(describePacket({ linkType: LinkType.ETHERNET, data: query })).to.equal('IP 10.244.1.3.41000 > 10.96.0.10.53: 4660+ A? storefront.svc.cluster.local. (46)');
    });

    it('lists plain UDP, TCP with ack and payload, ICMP echo and ARP', function () {
      const plain = ipv4Packet('10.244.0.1', '10.244.0.2', 17, udp(5000, 6000, Buffer.alloc(12)));
      expect(describePacket({ linkType: LinkType.RAW, data: plain })).to.equal('IP 10.244.0.1.5000 > 10.244.0.2.6000: UDP, length 12');
      const push = ipv4Packet('10.244.0.1', '10.244.0.2', 6, tcp(80, 40000, 0x18, 7, 9, Buffer.alloc(100)));
      expect(describePacket({ linkType: LinkType.RAW, data: push })).to.equal('IP 10.244.0.1.80 > 10.244.0.2.40000: Flags [P.], seq 7, ack 9, win 64240, length 100');
      const echo = ipv4Packet('10.244.0.1', '10.244.0.2', 1, Buffer.from('0800000012340001', 'hex'));
      expect(describePacket({ linkType: LinkType.RAW, data: echo })).to.equal('IP 10.244.0.1 > 10.244.0.2: ICMP echo request, id 4660, seq 1, length 8');
      const arp = ethernet(0x0806, Buffer.from('0001080006040001' + '020000000001' + '0af40001' + '000000000000' + '0af40002', 'hex'));
      expect(describePacket({ linkType: LinkType.ETHERNET, data: arp })).to.equal('ARP, Request who-has 10.244.0.2 tell 10.244.0.1, length 28');
    });

    it('lists IPv6 UDP behind a hop-by-hop header, and ICMPv6 neighbor solicitation', function () {
      const hopByHop = Buffer.from('1100050200000100', 'hex'); // next UDP, router alert option, padding
      const packet = ipv6Packet('fd00::1', 'fd00::a:2', 0, Buffer.concat([hopByHop, udp(1000, 2000, Buffer.alloc(4))]));
      expect(describePacket({ linkType: LinkType.RAW, data: packet })).to.equal('IP6 fd00::1.1000 > fd00::a:2.2000: UDP, length 4');
      const ns = Buffer.concat([Buffer.from('87000000' + '00000000', 'hex'), ipv6('fe80::1')]);
      const nsPacket = ipv6Packet('fe80::2', 'ff02::1:ff00:1', 58, ns);
      expect(describePacket({ linkType: LinkType.RAW, data: nsPacket })).to.equal('IP6 fe80::2 > ff02::1:ff00:1: ICMP6 neighbor solicitation, target fe80::1, length 24');
    });

    it('says where a packet was cut short by the snap length', function () {
      const full = ipv4Packet('10.244.0.1', '10.244.0.2', 6, tcp(80, 40000, 0x02, 1, 0));
      expect(describePacket({ linkType: LinkType.RAW, data: full.subarray(0, 30) })).to.equal('IP 10.244.0.1 > 10.244.0.2: TCP [truncated TCP header]');
      expect(describePacket({ linkType: LinkType.ETHERNET, data: Buffer.alloc(10) })).to.equal('[truncated Ethernet header]');
    });
  });

  describe('file formats', function () {
    let dir: string;
    before(function () {
      dir = mkdtempSync(path.join(tmpdir(), 'pcap-summary-'));
    });
    after(function () {
      rmSync(dir, { recursive: true, force: true });
    });

    const frame = ethernet(0x0800, ipv4Packet('10.244.1.3', '10.96.0.10', 17, udp(41000, 53, dnsQuery(7, 'example.com', 28))));

    it('reads a pcap written here, split into arbitrary chunks', function () {
      const file = Buffer.concat([pcapFileHeader(LinkType.ETHERNET), pcapRecord(T0 + 123_456_000n, frame), pcapRecord(T0 + 1_000_000_000n, frame)]);
      const reader = new CaptureReader();
      const packets = [];
      for (let i = 0; i < file.length; i += 7) packets.push(...reader.push(file.subarray(i, i + 7)));
      reader.end();
      expect(packets.map(summarizePacket)).to.deep.equal([
        '2024-05-01 12:00:00.123456 IP 10.244.1.3.41000 > 10.96.0.10.53: 7+ AAAA? example.com. (29)',
        '2024-05-01 12:00:01.000000 IP 10.244.1.3.41000 > 10.96.0.10.53: 7+ AAAA? example.com. (29)',
      ]);
    });

    it('refuses a file that is not a capture, and a truncated one', function () {
      expect(() => readCapture(Buffer.from('this is certainly not a pcap file'))).to.throw(CaptureFormatError, /not a pcap or pcapng file/);
      const file = Buffer.concat([pcapFileHeader(LinkType.ETHERNET), pcapRecord(T0, frame)]);
      expect(() => readCapture(file.subarray(0, file.length - 3))).to.throw(CaptureFormatError, /truncated/);
    });

    function text2pcap(args: string[], name: string): Buffer {
      const hex = path.join(dir, `${name}.txt`);
      const lines = ['2024-05-01 12:00:00.250000', ...Array.from({ length: Math.ceil(frame.length / 16) }, (_, i) => `${(i * 16).toString(16).padStart(6, '0')} ${Array.from(frame.subarray(i * 16, i * 16 + 16), (b) => b.toString(16).padStart(2, '0')).join(' ')}`)];
      writeFileSync(hex, `${lines.join('\n')}\n`);
      const out = path.join(dir, name);
      const r = spawnSync('text2pcap', ['-q', '-t', '%Y-%m-%d %H:%M:%S.%f', ...args, hex, out], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      return readFileSync(out);
    }

    it("reads Wireshark's pcap, nanosecond pcap and pcapng (with the interface name)", function () {
      const pcap = text2pcap(['-F', 'pcap'], 'w.pcap');
      const expected = 'IP 10.244.1.3.41000 > 10.96.0.10.53: 7+ AAAA? example.com. (29)';
      const [fromPcap] = readCapture(pcap);
      expect(describePacket(fromPcap!)).to.equal(expected);
      const ns = path.join(dir, 'w-ns.pcap');
      expect(spawnSync('editcap', ['-F', 'nsecpcap', path.join(dir, 'w.pcap'), ns]).status).to.equal(0);
      const [fromNs] = readCapture(readFileSync(ns));
      expect(fromNs!.timestampNs).to.equal(fromPcap!.timestampNs);
      const ng = text2pcap(['-F', 'pcapng'], 'w.pcapng');
      const [fromNg] = readCapture(ng);
      expect(describePacket(fromNg!)).to.equal(expected);
      expect(fromNg!.timestampNs).to.equal(fromPcap!.timestampNs);
    });

    it('writes one line per packet for a file, as `netwarden pcap summary` prints', async function () {
      const file = path.join(dir, 'two.pcap');
      writeFileSync(file, Buffer.concat([pcapFileHeader(LinkType.RAW), pcapRecord(T0, frame.subarray(14)), pcapRecord(T0 + 5n, frame.subarray(14))]));
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      const counts = await writeSummary(file, out);
      expect(counts.packets).to.equal(2);
      expect(Buffer.concat(chunks).toString().trim().split('\n')).to.have.length(2);
    });

    it('prints control characters a DNS answer carries escaped, so they never reach the terminal', async function () {
      // A pod answers with a name that would retitle the window, ring the bell, clear the screen
      // (7-bit ESC and 8-bit CSI sequences) and carries a DEL.
      const name = 'evil\x1b]0;owned\x07\x1b[2J.\x9b31m\x7f.example';
      const answer = ethernet(0x0800, ipv4Packet('10.96.0.10', '10.244.1.3', 17, udp(53, 41000, dnsQuery(4660, name, 1, 0x8180, 1))));
      const file = path.join(dir, 'evil-dns.pcap');
      writeFileSync(file, Buffer.concat([pcapFileHeader(LinkType.ETHERNET), pcapRecord(T0, answer)]));
      const out = new PassThrough();
      expect(await runPcapSummary([file], out, new PassThrough())).to.equal(0);
      const printed = (out.read() as Buffer).toString('latin1');
      expect(printed).to.contain('IP 10.96.0.10.53 > 10.244.1.3.41000: 4660 1/0/0 A? evil\\x1b]0;owned\\x07\\x1b[2J.\\x9b31m\\x7f.example.');
      expect(printed.trimEnd()).to.not.match(/[\x00-\x1f\x7f-\x9f]/);
    });
  });
});
