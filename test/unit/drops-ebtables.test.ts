// Lines of ebtables' `log` watcher as net/bridge/netfilter/ebt_log.c prints them
// (ebt_log_packet): "<prefix> IN=<port> OUT=<port> MAC source = %pM MAC dest = %pM proto = 0x%04x"
// then the part of --log-ip (" IP SRC=%pI4 IP DST=%pI4, IP tos=0x%02X, IP proto=%d" and ports),
// --log-ip6 (" IPv6 SRC=%pI6 IPv6 DST=%pI6, IPv6 priority=0x%01X, Next Header=%d" and ports) or
// --log-arp (" ARP HTYPE=%d, PTYPE=0x%04x, OPCODE=%d" and the Ethernet/IPv4 payload).
import { expect } from 'chai';
import { KernelLogParser, type KernelLogParserOptions } from '../../src/nodeagent/drops/kernellog.js';
import { noDropMetrics } from '../../src/nodeagent/drops/counting.js';
import type { PacketDrop } from '../../src/apis/drops.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const HEADER = 'Nov 23 03:20:56 node-1 kernel: [ 1234.567890] ';
const ETH = 'MAC source = 52:54:00:12:34:56 MAC dest = ff:ff:ff:ff:ff:ff';

function parse(line: string, opts: KernelLogParserOptions = {}) {
  return new KernelLogParser({ metrics: noDropMetrics, now: () => NOW, bootTime: new Date(NOW - 3_600_000), ...opts }).parse(line);
}

function drop(line: string, opts: KernelLogParserOptions = {}): PacketDrop {
  const r = parse(line, opts);
  if (!r.ok) throw new Error(`expected a drop, got ${r.reason}: ${line}`);
  return r.drop;
}

function skip(line: string): string {
  const r = parse(line);
  if (r.ok) throw new Error(`expected a skip, got ${JSON.stringify(r.drop)}`);
  return r.reason;
}

describe('drops: ebtables log lines (ebt_log.c)', () => {
  it('IPv4 with ports (--log-ip): bridge ports, Ethernet addresses, IP addresses, protocol by number', () => {
    const d = drop(`${HEADER}ebt-drop: IN=veth1a2b OUT=veth3c4d ${ETH} proto = 0x0800 IP SRC=10.244.1.5 IP DST=10.244.1.255, IP tos=0x00, IP proto=17 SPT=137 DPT=138`, {
      prefixes: ['ebt-drop:'],
    });
    expect(d).to.deep.equal({
      time: new Date(2026, 10, 23, 3, 20, 56).toISOString(),
      timeSource: 'syslog',
      prefix: 'ebt-drop:',
      family: 'ipv4',
      src: '10.244.1.5',
      dst: '10.244.1.255',
      protocol: 'UDP',
      inInterface: 'veth1a2b',
      outInterface: 'veth3c4d',
      srcMac: '52:54:00:12:34:56',
      dstMac: 'ff:ff:ff:ff:ff:ff',
      srcPort: 137,
      dstPort: 138,
    });
    const tcp = drop(`ebt-drop: IN=eth0 OUT= ${ETH} proto = 0x0800 IP SRC=192.0.2.7 IP DST=10.0.0.5, IP tos=0x10, IP proto=6 SPT=41234 DPT=22`);
    expect(tcp).to.deep.include({ protocol: 'TCP', srcPort: 41234, dstPort: 22, inInterface: 'eth0' });
    expect(tcp).not.to.have.property('outInterface');
  });

  it('the prefix is followed by a space, as ebt_log prints it; an empty prefix leaves the space alone', () => {
    const line = (prefix: string): string => `${HEADER}${prefix} IN=veth1 OUT= ${ETH} proto = 0x0800 IP SRC=10.0.0.1 IP DST=10.0.0.2, IP tos=0x00, IP proto=1`;
    expect(drop(line('FW: bridge drop:')).prefix).to.equal('FW: bridge drop:');
    expect(drop(line('FW: bridge drop:'), { prefixes: ['bridge drop: '] }).prefix).to.equal('bridge drop:');
    expect(drop(line('')).prefix).to.equal('');
    expect(parse(line(''), { prefixes: ['bridge drop:'] })).to.deep.include({ ok: false, reason: 'no-prefix' });
  });

  it('IPv6 (--log-ip6): expanded addresses normalised; Next Header is the protocol; ports for TCP/UDP', () => {
    const icmp = drop(
      `ebt6: IN=veth1 OUT=veth2 MAC source = 52:54:00:12:34:56 MAC dest = 33:33:00:00:00:01 proto = 0x86dd IPv6 SRC=fe80:0000:0000:0000:5054:00ff:fe12:3456 IPv6 DST=ff02:0000:0000:0000:0000:0000:0000:0001, IPv6 priority=0x0, Next Header=58`,
    );
    expect(icmp).to.deep.include({ family: 'ipv6', src: 'fe80::5054:ff:fe12:3456', dst: 'ff02::1', protocol: 'ICMPv6', dstMac: '33:33:00:00:00:01' });
    expect(icmp).not.to.have.property('dstPort');
    const tcp = drop(
      `ebt6: IN=veth1 OUT=veth2 ${ETH} proto = 0x86dd IPv6 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 IPv6 DST=2001:0db8:0000:0000:0000:0000:0000:0002, IPv6 priority=0x0, Next Header=6 SPT=40000 DPT=443`,
    );
    expect(tcp).to.deep.include({ src: '2001:db8::1', dst: '2001:db8::2', protocol: 'TCP', srcPort: 40000, dstPort: 443 });
  });

  it('ARP (--log-arp): the addresses of the ARP payload; without a payload the line is no IP packet', () => {
    const d = drop(
      `ebt-arp: IN=veth1 OUT= ${ETH} proto = 0x0806 ARP HTYPE=1, PTYPE=0x0800, OPCODE=1 ARP MAC SRC=52:54:00:12:34:56 ARP IP SRC=10.0.0.7 ARP MAC DST=00:00:00:00:00:00 ARP IP DST=10.0.0.1`,
    );
    expect(d).to.deep.include({ protocol: 'ARP', family: 'ipv4', src: '10.0.0.7', dst: '10.0.0.1', srcMac: '52:54:00:12:34:56', dstMac: 'ff:ff:ff:ff:ff:ff' });
    // not Ethernet/IPv4 (HTYPE 6): ebt_log prints no payload
    expect(skip(`ebt-arp: IN=veth1 OUT= ${ETH} proto = 0x0806 ARP HTYPE=6, PTYPE=0x0800, OPCODE=1`)).to.equal('not-ip');
    expect(skip(`ebt-arp: IN=veth1 OUT= ${ETH} proto = 0x0806 ARP HTYPE=1, PTYPE=0x0800, OPCODE=1 INCOMPLETE ARP payload`)).to.equal('truncated');
  });

  it('unknown protocols: an IP protocol without ports by number, an EtherType ebtables does not decode', () => {
    expect(drop(`gre: IN=veth1 OUT= ${ETH} proto = 0x0800 IP SRC=10.0.0.1 IP DST=10.0.0.2, IP tos=0x00, IP proto=47`).protocol).to.equal('GRE');
    const unknown = drop(`p: IN=veth1 OUT= ${ETH} proto = 0x0800 IP SRC=10.0.0.1 IP DST=10.0.0.2, IP tos=0x00, IP proto=253`);
    expect(unknown).to.deep.include({ protocol: '253', src: '10.0.0.1' });
    expect(unknown).not.to.have.property('srcPort');
    // LLDP, or IPv4 logged without --log-ip: the line ends after the EtherType
    expect(skip(`lldp: IN=veth1 OUT= MAC source = 52:54:00:12:34:56 MAC dest = 01:80:c2:00:00:0e proto = 0x88cc`)).to.equal('not-ip');
    expect(skip(`ip: IN=veth1 OUT= ${ETH} proto = 0x0800`)).to.equal('not-ip');
  });

  it('INCOMPLETE headers, and lines cut short', () => {
    expect(skip(`inc: IN=veth1 OUT= ${ETH} proto = 0x0800 INCOMPLETE IP header`)).to.equal('truncated');
    expect(skip(`inc: IN=veth1 OUT= ${ETH} proto = 0x86dd INCOMPLETE IPv6 header`)).to.equal('truncated');
    const ports = drop(`inc: IN=veth1 OUT= ${ETH} proto = 0x0800 IP SRC=10.0.0.1 IP DST=10.0.0.2, IP tos=0x00, IP proto=6 INCOMPLETE TCP/UDP header`);
    expect(ports).to.deep.include({ protocol: 'TCP', incomplete: true });
    expect(ports).not.to.have.property('dstPort');
    const full = `cut: IN=veth1 OUT= ${ETH} proto = 0x0800 IP SRC=10.0.0.1 IP DST=10.0.0.2, IP tos=0x00, IP proto=17 SPT=1 DPT=2`;
    for (let i = full.indexOf('OUT=') + 4; i < full.indexOf(', IP proto='); i++) {
      const r = parse(full.slice(0, i));
      expect(r.ok, full.slice(0, i)).to.equal(false);
      if (!r.ok) expect(['truncated', 'not-ip', 'not-a-drop'], full.slice(0, i)).to.include(r.reason);
    }
  });
});
