import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { KernelLogParser, type KernelLogParserOptions } from '../../src/nodeagent/drops/kernellog.js';
import { createDropMetrics, noDropMetrics } from '../../src/nodeagent/drops/metrics.js';
import { normalizeIPv6 } from '../../src/util/ip.js';
import { dropKey, type PacketDrop } from '../../src/apis/drops.js';
import type { ParseResult } from '../../src/nodeagent/drops/types.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const BOOT = new Date('2026-11-23T00:00:00Z');

function parser(opts: KernelLogParserOptions = {}): KernelLogParser {
  return new KernelLogParser({ metrics: noDropMetrics, bootTime: BOOT, now: () => NOW, ...opts });
}

function drop(line: string, opts: KernelLogParserOptions = {}): PacketDrop {
  const r = parser(opts).parse(line);
  if (!r.ok) throw new Error(`expected a drop, got ${r.reason}: ${line}`);
  return r.drop;
}

function skip(line: string, opts: KernelLogParserOptions = {}): string {
  const r: ParseResult = parser(opts).parse(line);
  if (r.ok) throw new Error(`expected a skip, got ${JSON.stringify(r.drop)}`);
  expect(r.line).to.be.a('string');
  return r.reason;
}

const DROPTAILER =
  'nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=59265 DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0';

describe('drops: kernel log parser', () => {
  describe('formats written by nf_log_syslog', () => {
    it('parses the droptailer sample line', () => {
      const d = drop(DROPTAILER, { prefixes: ['nftables-metal-dropped: '] });
      expect(d).to.deep.include({
        prefix: 'nftables-metal-dropped:',
        family: 'ipv4',
        inInterface: 'vrf09',
        mac: '12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00',
        dstMac: '12:99:fd:3b:ce:f8',
        srcMac: '1a:ae:e9:a7:95:50',
        src: '1.2.3.4',
        dst: '4.3.2.1',
        protocol: 'TCP',
        srcPort: 59265,
        dstPort: 445,
        length: 40,
        ttl: 238,
        timeSource: 'received',
      });
      expect(d.tcpFlags).to.deep.equal(['SYN']);
      expect(d).not.to.have.property('outInterface'); // "OUT=" is empty
      expect(d.time).to.equal(new Date(NOW).toISOString());
    });

    it('iptables LOG TCP from syslog with a dmesg stamp (UFW)', () => {
      const d = drop(
        'Sep  3 11:38:30 node-1 kernel: [  957.705811] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.7 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=41234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0',
        { prefixes: ['[UFW BLOCK]'] },
      );
      expect(d.prefix).to.equal('[UFW BLOCK]');
      expect(d.time).to.equal(new Date(2026, 8, 3, 11, 38, 30).toISOString()); // syslog header wins over [957.7]
      expect(d.timeSource).to.equal('syslog');
      expect(d).to.deep.include({ src: '203.0.113.7', dst: '10.0.0.5', srcPort: 41234, dstPort: 22, ttl: 52 });
    });

    it('UDP keeps the IP LEN=, not the UDP LEN= that follows', () => {
      const d = drop(
        '[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.23 DST=10.0.0.5 LEN=76 TOS=0x00 PREC=0x00 TTL=57 ID=0 DF PROTO=UDP SPT=123 DPT=123 LEN=56',
      );
      expect(d).to.deep.include({ protocol: 'UDP', length: 76, srcPort: 123, dstPort: 123 });
      expect(d).not.to.have.property('tcpFlags');
    });

    it('ICMP echo request: TYPE/CODE, the ICMP ID= does not override the IP ID', () => {
      const d = drop(
        'IPTables-Dropped: IN=eth0 OUT= MAC=00:0c:29:4f:8e:35:00:50:56:c0:00:08:08:00 SRC=192.168.56.1 DST=192.168.56.101 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=36413 DF PROTO=ICMP TYPE=8 CODE=0 ID=7411 SEQ=1',
      );
      expect(d).to.deep.include({ prefix: 'IPTables-Dropped:', protocol: 'ICMP', icmpType: 8, icmpCode: 0, length: 84 });
      expect(d).not.to.have.property('srcPort');
    });

    it('ICMP error: the quoted packet in [...] never overrides the outer header and becomes `inner`', () => {
      const d = drop(
        'Jan 12 08:00:01 gw kernel: [ 1234.000001] DROP-ICMP: IN=eth1 OUT= MAC=00:1b:21:3a:4f:10:00:1b:21:3a:4f:11:08:00 SRC=192.0.2.1 DST=10.1.2.3 LEN=88 TOS=0x00 PREC=0xC0 TTL=254 ID=4242 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.1.2.3 DST=192.0.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=33434 DPT=33435 LEN=40 ] MARK=0x1f',
      );
      expect(d).to.deep.include({ src: '192.0.2.1', dst: '10.1.2.3', length: 88, ttl: 254, icmpType: 3, icmpCode: 3, mark: 0x1f });
      expect(d).not.to.have.property('srcPort');
      expect(d.inner).to.deep.equal({ src: '10.1.2.3', dst: '192.0.2.1', protocol: 'UDP', srcPort: 33434, dstPort: 33435 });
    });

    it('ICMP fragmentation needed with a TCP quoted packet and MTU=', () => {
      const d = drop(
        'pmtu: IN=eth0 OUT= SRC=198.51.100.1 DST=10.0.0.9 LEN=576 TOS=0x00 PREC=0x00 TTL=60 ID=0 PROTO=ICMP TYPE=3 CODE=4 [SRC=10.0.0.9 DST=203.0.113.80 LEN=1500 TOS=0x00 PREC=0x00 TTL=63 ID=555 DF PROTO=TCP SPT=51000 DPT=443 WINDOW=502 RES=0x00 ACK PSH URGP=0 ] MTU=1400',
      );
      expect(d.inner).to.deep.equal({ src: '10.0.0.9', dst: '203.0.113.80', protocol: 'TCP', srcPort: 51000, dstPort: 443 });
      expect(d).not.to.have.property('tcpFlags');
      expect(d.icmpCode).to.equal(4);
    });

    it('ICMP error whose quoted packet is INCOMPLETE [n bytes] (nested brackets)', () => {
      const d = drop(
        'x: IN=eth0 OUT= SRC=192.0.2.1 DST=10.1.2.3 LEN=56 TOS=0x00 PREC=0x00 TTL=254 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.1.2.3 DST=8.8.8.8 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=2 PROTO=TCP INCOMPLETE [8 bytes] ] UID=0 GID=0 MARK=0x4000',
      );
      expect(d).to.deep.include({ icmpType: 11, mark: 0x4000, uid: 0, gid: 0 });
      expect(d.inner).to.deep.include({ src: '10.1.2.3', dst: '8.8.8.8', protocol: 'TCP' });
      expect(d).not.to.have.property('incomplete'); // the outer packet is complete
    });

    it('ICMP redirect with GATEWAY=', () => {
      const d = drop(
        'redir: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.20 LEN=56 TOS=0x00 PREC=0xC0 TTL=64 ID=9 PROTO=ICMP TYPE=5 CODE=1 GATEWAY=10.0.0.254 [SRC=10.0.0.20 DST=1.1.1.1 LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=3 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1 ] ',
      );
      expect(d).to.deep.include({ icmpType: 5, icmpCode: 1, src: '10.0.0.1' });
      expect(d.inner).to.deep.equal({ src: '10.0.0.20', dst: '1.1.1.1', protocol: 'ICMP' });
    });

    it('IPv6 with the expanded addresses the kernel prints, TCP SYN', () => {
      const d = drop(
        '2026-11-23T03:20:56.123456+00:00 node-1 kernel: ip6-drop: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:ff00:0042:8329 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=123456 PROTO=TCP SPT=50000 DPT=443 WINDOW=65535 RES=0x00 SYN URGP=0',
      );
      expect(d).to.deep.include({
        family: 'ipv6',
        src: '2001:db8::1',
        dst: '2001:db8::ff00:42:8329',
        hopLimit: 64,
        length: 80,
        protocol: 'TCP',
        dstPort: 443,
        time: '2026-11-23T03:20:56.123Z',
        timeSource: 'rfc3339',
      });
      expect(d).not.to.have.property('ttl');
    });

    it('IPv6 link-local DHCPv6 UDP to a multicast group', () => {
      const d = drop(
        'DROP6: IN=eth0 OUT= MAC=33:33:00:01:00:02:52:54:00:65:43:21:86:dd SRC=fe80:0000:0000:0000:5054:00ff:fe65:4321 DST=ff02:0000:0000:0000:0000:0000:0001:0002 LEN=120 TC=0 HOPLIMIT=1 FLOWLBL=0 PROTO=UDP SPT=546 DPT=547 LEN=80',
      );
      expect(d).to.deep.include({ src: 'fe80::5054:ff:fe65:4321', dst: 'ff02::1:2', length: 120, srcPort: 546, dstPort: 547 });
    });

    it('ICMPv6 neighbor solicitation and a destination-unreachable with a quoted IPv6 packet', () => {
      const ns = drop(
        'ip6: IN=eth0 OUT= MAC=33:33:ff:00:00:01:52:54:00:65:43:21:86:dd SRC=0000:0000:0000:0000:0000:0000:0000:0000 DST=ff02:0000:0000:0000:0000:0001:ff00:0001 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 ',
      );
      expect(ns).to.deep.include({ src: '::', dst: 'ff02::1:ff00:1', protocol: 'ICMPv6', icmpType: 135, icmpCode: 0 });
      const un = drop(
        'ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:00fe DST=2001:0db8:0000:0000:0000:0000:0000:0001 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0001:0000:0000:0000:0002 LEN=56 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=53 LEN=16 ] ',
      );
      expect(un).to.deep.include({ src: '2001:db8::fe', dst: '2001:db8::1', icmpType: 1, icmpCode: 4, length: 104 });
      expect(un.inner).to.deep.equal({ src: '2001:db8::1', dst: '2001:db8:0:1::2', protocol: 'UDP', srcPort: 40000, dstPort: 53 });
    });

    it('IPv6 with extension headers logged as OPT ( ... ) and with ESP that prints no PROTO=', () => {
      const frag = drop(
        'ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=1280 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:0 INCOMPLETE ID:0000abcd ) PROTO=UDP SPT=5000 DPT=5001 LEN=1232 ',
      );
      expect(frag).to.deep.include({ protocol: 'UDP', srcPort: 5000, dstPort: 5001, length: 1280 });
      const esp = drop(
        'ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=200 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( ESP SPI=0x1234 )',
      );
      expect(esp.protocol).to.equal('ESP');
      const bare = drop('ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=200 TC=0 HOPLIMIT=64 FLOWLBL=0 ');
      expect(bare).to.deep.include({ protocol: 'unknown', incomplete: true });
    });

    it('bridge netfilter: PHYSIN= / PHYSOUT=', () => {
      const d = drop(
        'br-drop: IN=br0 OUT=br0 PHYSIN=veth1a2b PHYSOUT=eth0 MAC=ff:ff:ff:ff:ff:ff:0a:58:0a:f4:01:05:08:00 SRC=10.244.1.5 DST=10.244.1.255 LEN=78 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=137 DPT=137 LEN=58',
      );
      expect(d).to.deep.include({ inInterface: 'br0', outInterface: 'br0', physInInterface: 'veth1a2b', physOutInterface: 'eth0', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: '0a:58:0a:f4:01:05' });
    });

    it('--log-ip-options OPT (hex) with IGMP (PROTO=2), and --log-tcp-options after URGP', () => {
      const igmp = drop(
        'igmp: IN=eth0 OUT= MAC=01:00:5e:00:00:16:52:54:00:65:43:21:08:00 SRC=10.0.0.7 DST=224.0.0.22 LEN=40 TOS=0x00 PREC=0xC0 TTL=1 ID=0 DF OPT (94040000) PROTO=2 ',
      );
      expect(igmp).to.deep.include({ protocol: 'IGMP', dst: '224.0.0.22', ttl: 1 });
      const tcp = drop(
        'tcpopt: IN=eth0 OUT= SRC=10.0.0.7 DST=10.0.0.8 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=80 SEQ=123456 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B40402080A0001E2400000000001030307) UID=1000 GID=1000 ',
      );
      expect(tcp).to.deep.include({ srcPort: 40000, dstPort: 80, uid: 1000, gid: 1000 });
      expect(tcp.tcpFlags).to.deep.equal(['SYN']); // "ACK=0" is the sequence field, not the ACK flag
    });

    it('all TCP flags in kernel order, OUTPUT chain with no MAC', () => {
      const d = drop(
        'out-drop: IN= OUT=eth0 SRC=10.0.0.7 DST=10.0.0.8 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 CWR ECE URG ACK PSH RST SYN FIN URGP=0 MARK=0xc0ffee',
      );
      expect(d.tcpFlags).to.deep.equal(['CWR', 'ECE', 'URG', 'ACK', 'PSH', 'RST', 'SYN', 'FIN']);
      expect(d).to.deep.include({ outInterface: 'eth0', mark: 0xc0ffee });
      expect(d).not.to.have.property('inInterface');
      expect(d).not.to.have.property('mac');
    });

    it('nft log flags all (MACDECODE) with a VLAN tag', () => {
      const d = drop(
        'vlan-drop: IN=eth0.10 OUT= MACSRC=52:54:00:65:43:21 MACDST=52:54:00:12:34:56 VPROTO=8100 VID=10 MACPROTO=0800 SRC=10.10.0.2 DST=10.10.0.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=5 SEQ=2 UID=0 GID=0 ',
      );
      expect(d).to.deep.include({ vlanId: 10, srcMac: '52:54:00:65:43:21', dstMac: '52:54:00:12:34:56', inInterface: 'eth0.10', icmpType: 8 });
    });

    it('non-first fragment: FRAG:n (8-byte units), no ports', () => {
      const d = drop('frag: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=548 TOS=0x00 PREC=0x00 TTL=64 ID=12345 MF FRAG:185 PROTO=UDP ');
      expect(d).to.deep.include({ protocol: 'UDP', fragmentOffset: 1480 });
      expect(d).not.to.have.property('srcPort');
    });

    it('protocols without ports: GRE, SCTP by number, ESP/AH with SPI, unknown numbers', () => {
      expect(drop('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=47 ').protocol).to.equal('GRE');
      expect(drop('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=132 ').protocol).to.equal('SCTP');
      expect(drop('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ESP SPI=0xdeadbeef ').protocol).to.equal('ESP');
      expect(drop('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=AH SPI=0x1 ').protocol).to.equal('AH');
      expect(drop('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=253 ').protocol).to.equal('253');
    });

    it('wireguard / tun: empty MAC=, SIT tunnel TUNNEL=a->b', () => {
      const wg = drop('wg: IN=wg0 OUT= MAC= SRC=10.8.0.2 DST=10.8.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 ');
      expect(wg).not.to.have.property('mac');
      const sit = drop(
        'sit: IN=sit1 OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 TUNNEL=192.0.2.1->192.0.2.2 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=64 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1 ',
      );
      expect(sit).to.deep.include({ family: 'ipv6', src: '2001:db8::1', icmpType: 128 });
    });

    it('ARP (arptables / nft arp family)', () => {
      const d = drop(
        'arp-drop: IN=eth0 OUT= MACSRC=52:54:00:65:43:21 MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=52:54:00:65:43:21 IPSRC=10.0.0.7 MACDST=00:00:00:00:00:00 IPDST=10.0.0.1',
      );
      expect(d).to.deep.include({ protocol: 'ARP', family: 'ipv4', src: '10.0.0.7', dst: '10.0.0.1', srcMac: '52:54:00:65:43:21' });
      expect(skip('arp-drop: IN=eth0 OUT= ARP HTYPE=772 PTYPE=0x0800 OPCODE=1')).to.equal('not-ip');
    });

    it('TRUNCATED / INCOMPLETE written by the kernel', () => {
      const d = drop('t: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP INCOMPLETE [12 bytes] ');
      expect(d).to.deep.include({ protocol: 'TCP', incomplete: true });
      expect(skip('t: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 TRUNCATED')).to.equal('truncated');
      expect(skip('t: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:88:cc ')).to.equal('not-ip');
    });
  });

  describe('prefixes', () => {
    it('real-world prefixes: Calico, kube-iptables-tailer input, firewalld, UFW', () => {
      const calico = drop(
        '2019-02-04T10:10:12.345678-08:00 node-7 kernel: [ 1234.567890] calico-drop: IN=cali8ab24f1c2f3 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:1a:2b:3c:4d:5e:6f:08:00 SRC=10.244.3.12 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4562 DF PROTO=TCP SPT=51432 DPT=53 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x10000',
        { prefixes: ['calico-drop: ', 'calico-packet: '] },
      );
      expect(calico).to.deep.include({ prefix: 'calico-drop:', inInterface: 'cali8ab24f1c2f3', outInterface: 'eth0', time: '2019-02-04T18:10:12.345Z', mark: 0x10000 });
      const packet = drop(
        'calico-packet: IN=eth0 OUT=cali1234567890a MAC=06:2d:1a:2b:3c:4d:06:7e:5f:6a:7b:8c:08:00 SRC=10.0.1.5 DST=192.168.45.3 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=1 DF PROTO=TCP SPT=41000 DPT=8080 WINDOW=26883 RES=0x00 SYN URGP=0 ',
        { prefixes: ['calico-drop: ', 'calico-packet: '] },
      );
      expect(packet.prefix).to.equal('calico-packet:');
      const firewalld = drop(
        'Nov 23 03:20:56 node-1 kernel: filter_IN_public_REJECT: IN=ens3 OUT= MAC=fa:16:3e:11:22:33:fa:16:3e:44:55:66:08:00 SRC=10.0.0.50 DST=10.0.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=55555 DPT=5432 WINDOW=29200 RES=0x00 SYN URGP=0 ',
        { prefixes: ['filter_IN_public_REJECT: ', 'FINAL_REJECT: '] },
      );
      expect(firewalld).to.deep.include({ prefix: 'filter_IN_public_REJECT:', dstPort: 5432, timeSource: 'syslog' });
      expect(firewalld.time).to.equal(new Date(2026, 10, 23, 3, 20, 56).toISOString());
    });

    it('prefix glued to IN= without a space; prefixes with spaces and colons', () => {
      expect(drop('DROP:IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 RST URGP=0', { prefixes: ['DROP:'] }).prefix).to.equal(
        'DROP:',
      );
      expect(drop('kernel: [ 5.000000] FW: drop in: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=1').prefix).to.equal('FW: drop in:');
      expect(
        drop('Sep  3 11:38:30 host kernel: FW: drop in:IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=0 CODE=0', {
          prefixes: ['FW: drop in:'],
        }).prefix,
      ).to.equal('FW: drop in:');
    });

    it('skips a line whose prefix is not configured, and one without any prefix', () => {
      const opts = { prefixes: ['nftables-metal-dropped: '] };
      expect(skip(DROPTAILER.replace('nftables-metal-dropped', 'nftables-metal-accepted'), opts)).to.equal('unknown-prefix');
      expect(skip('Sep  3 11:38:30 host kernel: [ 1.0] IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20', opts)).to.equal('no-prefix');
      // a configured prefix must be the whole word before IN=, not the tail of another one
      expect(skip(DROPTAILER, { prefixes: ['dropped: '] })).to.equal('unknown-prefix');
      // longest configured prefix wins
      expect(drop(`x ${DROPTAILER}`, { prefixes: ['dropped:', 'nftables-metal-dropped:'] }).prefix).to.equal('nftables-metal-dropped:');
    });
  });

  describe('time headers', () => {
    const body = 'p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20';

    it('RFC 3339 with offsets, short-iso without colon, Z', () => {
      expect(drop(`2026-11-23T03:20:56.123456+00:00 h kernel: ${body}`).time).to.equal('2026-11-23T03:20:56.123Z');
      expect(drop(`2026-11-23T05:20:56.5+02:00 h kernel: ${body}`).time).to.equal('2026-11-23T03:20:56.500Z');
      expect(drop(`2024-09-03T11:38:30+0000 h kernel: ${body}`).time).to.equal('2024-09-03T11:38:30.000Z');
      expect(drop(`2024-09-03T11:38:30Z h kernel: ${body}`).time).to.equal('2024-09-03T11:38:30.000Z');
    });

    it('classic syslog: current year, last year when that would be in the future', () => {
      expect(drop(`Nov 23 03:00:00 h kernel: ${body}`).time).to.equal(new Date(2026, 10, 23, 3, 0, 0).toISOString());
      expect(drop(`Dec 31 23:59:59 h kernel: ${body}`).time).to.equal(new Date(2025, 11, 31, 23, 59, 59).toISOString());
      expect(drop(`Sep 03 11:38:30 h kernel: ${body}`).time).to.equal(new Date(2026, 8, 3, 11, 38, 30).toISOString()); // journalctl short
    });

    it('dmesg seconds since boot, /dev/kmsg microseconds, dmesg -T, <prio>', () => {
      const d = drop(`[  957.705811] ${body}`);
      expect(d).to.deep.include({ time: '2026-11-23T00:15:57.705Z', timeSource: 'dmesg', prefix: 'p:' });
      expect(drop(`4,1234,957705811,-;${body}`)).to.deep.include({ time: '2026-11-23T00:15:57.705Z', timeSource: 'dmesg', prefix: 'p:' });
      expect(drop(`<4>[  957.705811] ${body}`).time).to.equal('2026-11-23T00:15:57.705Z');
      const t = drop(`[Tue Sep  3 11:38:30 2024] ${body}`);
      expect(t).to.deep.include({ timeSource: 'dmesg-ctime', time: new Date(2024, 8, 3, 11, 38, 30).toISOString(), prefix: 'p:' });
    });

    it('no header: the receive time', () => {
      const at = new Date('2026-01-02T03:04:05.678Z');
      const r = parser().parse(body, at);
      expect(r.ok && r.drop.time).to.equal('2026-01-02T03:04:05.678Z');
      expect(r.ok && r.drop.timeSource).to.equal('received');
    });

    it('ISO strings stay correct across minutes and for many different milliseconds', () => {
      const p = parser();
      for (const ms of [0, 59_999, 60_000, 1_795_404_056_123, 1_795_404_056_999, 1_795_404_057_000, 1_795_404_116_001]) {
        const r = p.parse(body, new Date(ms));
        expect(r.ok && r.drop.time).to.equal(new Date(ms).toISOString());
      }
    });
  });

  describe('robustness', () => {
    it('skips garbage with a reason and never throws', () => {
      expect(skip('')).to.equal('empty');
      expect(skip('   \t ')).to.equal('empty');
      expect(skip('Sep  3 11:38:32 node-1 kernel: [  958.5] e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps')).to.equal('not-a-drop');
      expect(skip('MARGIN=5 OUTPUT=3')).to.equal('not-a-drop');
      expect(skip('x'.repeat(10_000))).to.equal('too-long');
      expect(skip('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2')).to.equal('truncated'); // no PROTO=
      expect(skip('p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0')).to.equal('truncated'); // cut inside DST
      expect(skip('p: IN=eth0 OUT= SRC=10.0.0.1')).to.equal('truncated');
      expect(skip('p: IN=eth0 OUT= SRC=10.0.0.999 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP')).to.equal('bad-address');
      expect(skip('p: IN=eth0 OUT= SRC=hello DST=10.0.0.2 LEN=40 PROTO=UDP')).to.equal('bad-address');
      expect(skip('p: IN=eth0 OUT= SRC=1.2.3.4 DST=2001:db8::1 LEN=40 PROTO=UDP')).to.equal('bad-address');
    });

    it('handles every prefix of a real line (cut lines) and random bytes without throwing', () => {
      const p = parser({ prefixes: ['nftables-metal-dropped:'] });
      const full = `2026-11-23T03:20:56.123456+00:00 node-1 kernel: ${DROPTAILER}`;
      for (let i = 0; i <= full.length; i++) {
        const r = p.parse(full.slice(0, i));
        if (r.ok) {
          // once it parses, SRC/DST are always whole addresses
          expect(r.drop.src).to.equal('1.2.3.4');
          expect(r.drop.dst).to.equal('4.3.2.1');
        }
      }
      let seed = 1;
      const rnd = (): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed;
      };
      const alphabet = 'IN=OUT= SRC=DST=[]()0123456789.:abcdef PROTO=TCP SPT=DPT=LEN=\u0000\u00ff\u{1F600}';
      for (let n = 0; n < 3000; n++) {
        let s = n % 3 === 0 ? full.slice(0, rnd() % full.length) : '';
        const k = rnd() % 200;
        for (let i = 0; i < k; i++) s += n % 2 ? alphabet[rnd() % alphabet.length] : String.fromCharCode(rnd() % 65536);
        const r = p.parse(s);
        expect(r.ok === true || typeof r.reason === 'string').to.equal(true);
      }
    });

    it('CRLF and trailing newline are ignored; raw is kept on request', () => {
      const d = drop(`${DROPTAILER}\r\n`, { keepRaw: true });
      expect(d.raw).to.equal(DROPTAILER);
      expect(d.tcpFlags).to.deep.equal(['SYN']);
    });

    it('parses a line of bytes in place as it parses its text (the file source), multi-byte characters and CRLF included', () => {
      const lines = [
        `${DROPTAILER}\r\n`,
        'Sep  3 11:38:30 höst kernel: [  957.705811] dröp 😀: IN=eth0 OUT= SRC=fd00:0000:0000:0000:0000:0000:0000:0001 DST=fd00:0000:0000:0000:0000:0000:0000:0002 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=UDP SPT=1 DPT=2 LEN=40',
        'dröp 😀: IN=br0 OUT=br0 PHYSIN=vethä PHYSOUT=veth2 SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 MF FRAG:10 PROTO=UDP',
        'no anchor here',
        `x: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=1 ${'ä'.repeat(5000)}`,
      ];
      for (const keepRaw of [false, true]) {
        const p = parser({ keepRaw, prefixes: ['nftables-metal-dropped:', 'dröp 😀:', 'x:'] });
        for (const line of lines) {
          const fromText = p.parse(line);
          // in the middle of a bigger Buffer, as a chunk of a file holds it
          const chunk = Buffer.from(`junk before\n${line}\njunk after`);
          const start = chunk.indexOf('\n') + 1;
          const fromBytes = p.parseBytes(chunk, start, chunk.lastIndexOf('\n'));
          expect(fromBytes, line).to.deep.equal(fromText);
        }
      }
      expect(drop(lines[2]!, { prefixes: ['dröp 😀:'] })).to.deep.include({ physInInterface: 'vethä', fragmentOffset: 80, prefix: 'dröp 😀:' });
      expect(skip(lines[4]!, {})).to.equal('too-long'); // 10,000 bytes of UTF-8 in 5,000 characters
    });

    it('counts skipped lines per reason in netwarden_agent_drop_lines_skipped_total', async () => {
      const reg = new Registry();
      const p = new KernelLogParser({ prefixes: ['nftables-metal-dropped:'], metrics: createDropMetrics(reg), now: () => NOW });
      p.parse('garbage');
      p.parse('garbage 2');
      p.parse('');
      p.parse(DROPTAILER);
      p.parse(DROPTAILER.replace('nftables-metal-dropped', 'other'));
      const text = await reg.metrics();
      expect(text).to.contain('netwarden_agent_drop_lines_skipped_total{reason="not-a-drop"} 2');
      expect(text).to.contain('netwarden_agent_drop_lines_skipped_total{reason="empty"} 1');
      expect(text).to.contain('netwarden_agent_drop_lines_skipped_total{reason="unknown-prefix"} 1');
      expect(text).to.contain('netwarden_agent_drop_lines_parsed_total 1');
    });
  });

  describe('journald entries', () => {
    const entries = readFileSync(new URL('../fixtures/drops/journal.jsonl', import.meta.url), 'utf8').split('\n').filter((l) => l.length > 0);

    it('MESSAGE as string and as a byte array, __REALTIME_TIMESTAMP in µs', () => {
      const p = parser({ prefixes: ['calico-drop:'] });
      const a = p.parseJournalEntry(JSON.parse(entries[0]!));
      expect(a.ok).to.equal(true);
      if (a.ok) {
        expect(a.drop).to.deep.include({ time: '2024-09-03T11:38:30.123Z', timeSource: 'journal', prefix: 'calico-drop:', src: '10.244.1.17', dstPort: 53, mark: 0x10000 });
      }
      const b = p.parseJournalEntry(entries[1]!); // JSON text works too
      expect(b.ok && b.drop).to.deep.include({ time: '2024-09-03T11:38:31.000Z', protocol: 'ICMP', icmpType: 8, src: '1.2.3.4', dst: '5.6.7.8' });
    });

    it('skips user-space transports, null MESSAGE and non-JSON', () => {
      const p = parser({ prefixes: ['calico-drop:'] });
      const c = p.parseJournalEntry(entries[2]!);
      expect(!c.ok && c.reason).to.equal('not-kernel');
      const d = p.parseJournalEntry(entries[3]!);
      expect(!d.ok && d.reason).to.equal('bad-json');
      const e = p.parseJournalEntry(entries[4]!);
      expect(!e.ok && e.reason).to.equal('bad-json');
      expect(parser({ anyTransport: true, prefixes: ['calico-drop:'] }).parseJournalEntry(entries[2]!).ok).to.equal(true);
      expect(p.parseJournalEntry(42).ok).to.equal(false);
      expect(p.parseJournalEntry(null).ok).to.equal(false);
    });
  });

  describe('helpers', () => {
    it('normalises IPv6 the RFC 5952 way', () => {
      expect(normalizeIPv6('fe80:0000:0000:0000:0202:b3ff:fe1e:8329')).to.equal('fe80::202:b3ff:fe1e:8329');
      expect(normalizeIPv6('2001:0db8:0000:0000:0001:0000:0000:0001')).to.equal('2001:db8::1:0:0:1');
      expect(normalizeIPv6('2001:0db8:0000:0001:0001:0001:0001:0001')).to.equal('2001:db8:0:1:1:1:1:1');
      expect(normalizeIPv6('0000:0000:0000:0000:0000:ffff:0a00:0001')).to.equal('::ffff:10.0.0.1');
      expect(normalizeIPv6('0000:0000:0000:0000:0000:0000:0000:0001')).to.equal('::1');
      expect(normalizeIPv6('FE80::1')).to.equal('fe80::1');
      expect(normalizeIPv6('1:2:3:4:5:6:7:8:9')).to.equal(undefined);
      expect(normalizeIPv6('1::2::3')).to.equal(undefined);
      expect(normalizeIPv6('12345::')).to.equal(undefined);
    });

    it('dropKey groups identical drops and ignores the ephemeral source port by default', () => {
      const a = drop(DROPTAILER);
      const b = drop(DROPTAILER.replace('SPT=59265', 'SPT=60000').replace('TTL=238', 'TTL=1'));
      expect(dropKey(a)).to.equal(dropKey(b));
      expect(dropKey(a, { includeSrcPort: true })).not.to.equal(dropKey(b, { includeSrcPort: true }));
      expect(dropKey(a)).not.to.equal(dropKey(drop(DROPTAILER.replace('DPT=445', 'DPT=446'))));
    });

    it('drops are plain JSON', () => {
      const d = drop(DROPTAILER);
      expect(JSON.parse(JSON.stringify(d))).to.deep.equal(d);
    });
  });
});
