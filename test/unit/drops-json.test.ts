// `netwarden drops parse` writes each drop as JSON straight from the parser's fields
// (DropJsonWriter), without building the PacketDrop the agent gets from parse(). Both must say the
// same thing: the bytes written are JSON.stringify(parser.drop()), for every kind of line.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { generateLines } from '../../bench/drops-parse.js';
import { noDropMetrics } from '../../src/nodeagent/drops/counting.js';
import { DropJsonWriter } from '../../src/nodeagent/drops/dropjson.js';
import { JsonOut } from '../../src/nodeagent/drops/jsonout.js';
import { KernelLogParser, type KernelLogParserOptions } from '../../src/nodeagent/drops/kernellog.js';

const BOOT = new Date('2026-11-23T00:00:00Z');
const NOW = Date.parse('2026-11-23T12:00:00Z');

/** Lines of every shape the parser reads (nf_log_syslog, ebt_log, headers, odd characters). */
const SAMPLES = [
  'Sep  3 11:38:30 node-1 kernel: [  957.705811] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.7 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=41234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0',
  'Jan 12 08:00:01 gw kernel: [ 1234.000001] DROP-ICMP: IN=eth1 OUT= MAC=00:1b:21:3a:4f:10:00:1b:21:3a:4f:11:08:00 SRC=192.0.2.1 DST=10.1.2.3 LEN=88 TOS=0x00 PREC=0xC0 TTL=254 ID=4242 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.1.2.3 DST=192.0.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=33434 DPT=33435 LEN=40 ] MARK=0x1f',
  'x: IN=eth0 OUT= SRC=192.0.2.1 DST=10.1.2.3 LEN=56 TOS=0x00 PREC=0x00 TTL=254 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.1.2.3 DST=8.8.8.8 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=2 PROTO=TCP INCOMPLETE [8 bytes] ] UID=0 GID=0 MARK=0x4000',
  '2026-11-23T03:20:56.123456+00:00 node-1 kernel: ip6-drop: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:ff00:0042:8329 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=123456 PROTO=TCP SPT=50000 DPT=443 WINDOW=65535 RES=0x00 SYN URGP=0',
  'ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:00fe DST=2001:0db8:0000:0000:0000:0000:0000:0001 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0001:0000:0000:0000:0002 LEN=56 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=53 LEN=16 ] ',
  'ip6: IN=eth0 OUT= SRC=0000:0000:0000:0000:0000:ffff:0a00:0001 DST=::1 LEN=200 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( ESP SPI=0x1234 )',
  'ip6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=200 TC=0 HOPLIMIT=64 FLOWLBL=0 ',
  'br-drop: IN=br0 OUT=br0 PHYSIN=veth1a2b PHYSOUT=eth0 MAC=ff:ff:ff:ff:ff:ff:0a:58:0a:f4:01:05:08:00 SRC=10.244.1.5 DST=10.244.1.255 LEN=78 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=137 DPT=137 LEN=58',
  'vlan-drop: IN=eth0.10 OUT= MACSRC=52:54:00:65:43:21 MACDST=52:54:00:12:34:56 VPROTO=8100 VID=10 MACPROTO=0800 SRC=10.10.0.2 DST=10.10.0.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=5 SEQ=2 UID=0 GID=0 ',
  'both: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 MACDST=aa:aa:aa:aa:aa:aa MACSRC=bb:bb:bb:bb:bb:bb SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  'mac-and-dst: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 MACDST=aa:aa:aa:aa:aa:aa SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  'mac-and-src: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 MACSRC=bb:bb:bb:bb:bb:bb SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  'arp-len: IN=eth0 OUT= LEN=28 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 IPSRC=10.0.0.7 IPDST=10.0.0.1',
  'short-mac: IN=eth0 OUT= MAC=00:11 MACDST=aa:aa:aa:aa:aa:aa MACSRC=bb:bb:bb:bb:bb:bb SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  'arp-drop: IN=eth0 OUT= MACSRC=52:54:00:65:43:21 MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=52:54:00:65:43:21 IPSRC=10.0.0.7 MACDST=00:00:00:00:00:00 IPDST=10.0.0.1',
  'out-drop: IN= OUT=eth0 SRC=10.0.0.7 DST=10.0.0.8 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 AE CWR ECE URG ACK PSH RST SYN FIN URGP=0 MARK=0xffffffff',
  'frag: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=548 TOS=0x00 PREC=0x00 TTL=64 ID=12345 MF FRAG:185 PROTO=UDP UID=4294967295 GID=9999999999',
  'x: IN=a OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=1 PROTO=47',
  'frag0: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=548 TOS=0x00 PREC=0x00 TTL=64 ID=12345 MF FRAG:0 PROTO=UDP SPT=1 DPT=2',
  'p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=253 ',
  'p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=100 PROTO=WEIRD"\\\u00e9 ',
  'ebt-drop: IN=veth1a2b OUT=veth3c4d MAC source = 52:54:00:12:34:56 MAC dest = ff:ff:ff:ff:ff:ff proto = 0x0800 IP SRC=10.244.1.5 IP DST=10.244.1.255, IP tos=0x00, IP proto=17 SPT=137 DPT=138',
  'ebt-arp: IN=veth1 OUT= MAC source = 52:54:00:12:34:56 MAC dest = ff:ff:ff:ff:ff:ff proto = 0x0806 ARP HTYPE=1, PTYPE=0x0800, OPCODE=1 ARP MAC SRC=52:54:00:12:34:56 ARP IP SRC=10.0.0.7 ARP MAC DST=00:00:00:00:00:00 ARP IP DST=10.0.0.1',
  'ebt6: IN=veth1 OUT=veth2 MAC source = 52:54:00:12:34:56 MAC dest = 33:33:00:00:00:01 proto = 0x86dd IPv6 SRC=fe80:0000:0000:0000:5054:00ff:fe12:3456 IPv6 DST=ff02:0000:0000:0000:0000:0000:0000:0001, IPv6 priority=0x0, Next Header=58',
  // odd characters: a prefix with quotes, a backslash, a control character, non-ASCII and an emoji; an interface with a quote
  '"q\\t\u0001 dröp 😀: IN=et"h0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20',
  'del\u007f: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  // times: dmesg, kmsg, dmesg -T, a year past 9999, before the epoch
  '[  957.705811] p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  '4,1234,957705811,-;p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  '[Tue Sep  3 11:38:30 2024] p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  '[ 900000000000.5] p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  '1960-01-01T00:00:00.001Z h kernel: p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  ...readFileSync(new URL('../fixtures/drops/kernel-mixed.log', import.meta.url), 'utf8').split('\n'),
];

function parserOf(opts: KernelLogParserOptions): KernelLogParser {
  return new KernelLogParser({ metrics: noDropMetrics, bootTime: BOOT, now: () => NOW, ...opts });
}

/** For each line: the outcome of parse() and what the JSON writer wrote after read(), which must agree. */
function expectSameJson(lines: readonly string[], opts: KernelLogParserOptions = {}): number {
  const agent = parserOf(opts);
  const cli = parserOf(opts);
  const out = new JsonOut(4096); // small slabs: lines also cross from one slab to the next
  const writer = new DropJsonWriter(out);
  const held: Array<[Buffer, string]> = []; // chunks a stream would still hold
  let drops = 0;
  for (const line of lines) {
    const r = agent.parse(line);
    const skip = cli.read(line);
    expect(skip, line).to.equal(r.ok ? undefined : r.reason);
    if (!r.ok) {
      expect(cli.last.line, line).to.equal(r.line);
      continue;
    }
    writer.drop(cli);
    const chunk = out.take();
    expect(chunk.toString('utf8'), line).to.equal(JSON.stringify(r.drop));
    if (drops % 3 === 0) held.push([chunk, chunk.toString('utf8')]);
    else out.written(chunk); // its slab may be reused
    drops++;
  }
  for (const [chunk, text] of held) expect(chunk.toString('utf8'), 'a chunk not yet written stays as it was').to.equal(text);
  return drops;
}

/** Every line cut at every position, as a log cut short by rotation or a size limit writes it. */
function allCuts(lines: readonly string[]): string[] {
  return lines.flatMap((l) => Array.from({ length: l.length + 1 }, (_, i) => l.slice(0, i)));
}

describe('drops: the JSON writer of netwarden drops parse', () => {
  it('writes what JSON.stringify writes of the PacketDrop, for each kind of line, with and without raw', () => {
    for (const keepRaw of [false, true]) {
      expect(expectSameJson(SAMPLES, { keepRaw })).to.be.greaterThan(20);
      expect(expectSameJson(SAMPLES, { keepRaw, prefixes: ['[UFW BLOCK]', 'p:', 'ebt-drop:', 'dröp 😀:'] })).to.be.greaterThan(5);
    }
  });

  it('agrees on every cut of every sample line and on the benchmark lines', () => {
    expect(expectSameJson(allCuts(SAMPLES))).to.be.greaterThan(1000);
    const bench = generateLines(20_000, 3);
    expect(expectSameJson(bench, { prefixes: ['nftables-metal-dropped: ', '[UFW BLOCK] ', 'calico-drop: ', 'nwdrop: '] })).to.be.greaterThan(15_000);
  });

  it('agrees on lines with random characters changed', () => {
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ' =[]()":\\\u0000\u007f\u00e9\ud83d\ude00.0123456789abcdefABCDEF-';
    const mutated: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const chars = [...SAMPLES[rnd(SAMPLES.length)]!];
      for (let k = rnd(4); k >= 0; k--) chars[rnd(chars.length || 1)] = alphabet[rnd(alphabet.length)]!;
      mutated.push(chars.join(''));
    }
    expect(expectSameJson(mutated)).to.be.greaterThan(1000);
  });

  it('writes each time as toISOString() does, across minutes and far from now', () => {
    const out = new JsonOut();
    const writer = new DropJsonWriter(out);
    const p = parserOf({});
    const body = 'p: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2';
    for (const ms of [0, 1, 59_999, 60_000, 1_795_404_056_123, 1_795_404_056_999, 1_795_404_057_000, 1_795_404_116_001, 253402300799999, 253402300800000, -1, -62198755200000]) {
      expect(p.read(body, ms)).to.equal(undefined);
      writer.drop(p);
      expect((JSON.parse(out.take().toString('utf8')) as { time: string }).time).to.equal(new Date(ms).toISOString());
    }
  });

  it('passes every text JSON.stringify made through the escape hook (prefix, fields, whole strings), keeping the values', () => {
    const escape = (json: string): string => json.replace(/[\u007f-\u009f\u202e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    const out = new JsonOut(4096, escape);
    const writer = new DropJsonWriter(out);
    const p = parserOf({ keepRaw: true });
    const line = 'bad\u202e\u007f: IN=et\u0085h0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2';
    expect(p.read(line)).to.equal(undefined);
    writer.drop(p);
    out.string(p.last.line);
    const text = out.take().toString('utf8');
    expect(text).not.to.match(/[\u007f-\u009f\u202e]/);
    expect(text).to.contain('bad\\u202e\\u007f:');
    const [drop, raw] = text.split('}"') as [string, string];
    expect(JSON.parse(`${drop}}`)).to.deep.equal(p.drop());
    expect(JSON.parse(`"${raw}`)).to.equal(line);
  });
});
