// The kernel drop source's user-space parts: drop reason names from BTF (a built blob and this
// machine's kernel), the spec's reasons to codes, the ring buffer record to a PacketDrop, the
// capability check, and one packet seen by a log source and the kernel counted once.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import type { PacketDrop } from '../../src/apis/drops.js';
import { parseDropReasons, readKernelDropReasons, dropReasonName, VMLINUX_BTF } from '../../src/nodeagent/drops/kernel/btf.js';
import { missingBpfCapabilities, effectiveCapabilities } from '../../src/nodeagent/drops/kernel/capabilities.js';
import { DROP_EVENT_BYTES, readDropEvent, toPacketDrop } from '../../src/nodeagent/drops/kernel/record.js';
import { LoggedDropMatcher } from '../../src/nodeagent/droptail/logged.js';
import { selectReasons } from '../../src/nodeagent/droptail/sources/kernel.js';
import { message } from '../../src/reconcilers/droptail/events.js';
import { parseDropBatch } from '../../src/reconcilers/droptail/batch.js';

/** A BTF blob as the kernel lays it out: header, types, strings. */
class BtfBuilder {
  private strings = Buffer.from([0]);
  private types: Buffer[] = [];
  private nextId = 1;

  str(s: string): number {
    const off = this.strings.length;
    this.strings = Buffer.concat([this.strings, Buffer.from(`${s}\0`, 'latin1')]);
    return off;
  }

  private type(nameOff: number, kind: number, vlen: number, sizeOrType: number, body: Buffer = Buffer.alloc(0)): number {
    const head = Buffer.alloc(12);
    head.writeUInt32LE(nameOff, 0);
    head.writeUInt32LE(((kind & 0x1f) << 24) | vlen, 4);
    head.writeUInt32LE(sizeOrType, 8);
    this.types.push(head, body);
    return this.nextId++;
  }

  int(name: string): number {
    const body = Buffer.alloc(4);
    body.writeUInt32LE(32, 0);
    return this.type(this.str(name), 1, 0, 4, body);
  }

  struct(name: string, members: Array<[string, number]>): number {
    const body = Buffer.alloc(members.length * 12);
    members.forEach(([m, t], i) => {
      body.writeUInt32LE(this.str(m), i * 12);
      body.writeUInt32LE(t, i * 12 + 4);
      body.writeUInt32LE(i * 32, i * 12 + 8);
    });
    return this.type(this.str(name), 4, members.length, members.length * 4, body);
  }

  enumeration(name: string, members: Array<[string, number]>): number {
    const body = Buffer.alloc(members.length * 8);
    members.forEach(([m, v], i) => {
      body.writeUInt32LE(this.str(m), i * 8);
      body.writeUInt32LE(v >>> 0, i * 8 + 4);
    });
    return this.type(this.str(name), 6, members.length, 4, body);
  }

  pointer(to: number): number {
    return this.type(0, 2, 0, to);
  }

  funcProto(params: number[]): number {
    const body = Buffer.alloc(params.length * 8);
    params.forEach((t, i) => body.writeUInt32LE(t, i * 8 + 4));
    return this.type(0, 13, params.length, 0, body);
  }

  typedef(name: string, to: number): number {
    return this.type(this.str(name), 8, 0, to);
  }

  build(): Buffer {
    const types = Buffer.concat(this.types);
    const header = Buffer.alloc(24);
    header.writeUInt16LE(0xeb9f, 0);
    header[2] = 1;
    header.writeUInt32LE(24, 4);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(types.length, 12);
    header.writeUInt32LE(types.length, 16);
    header.writeUInt32LE(this.strings.length, 20);
    return Buffer.concat([header, types, this.strings]);
  }
}

/** A kernel of some version: its reasons, and a kfree_skb tracepoint with or without the reason. */
function kernelBtf(opts: { reasons?: Array<[string, number]>; withReasonArg?: boolean } = {}): Buffer {
  const b = new BtfBuilder();
  const int = b.int('int');
  const skb = b.struct('sk_buff', [['len', int], ['protocol', int]]);
  const reasons = opts.reasons ?? [
    ['SKB_NOT_DROPPED_YET', 0],
    ['SKB_CONSUMED', 1],
    ['SKB_DROP_REASON_NOT_SPECIFIED', 2],
    ['SKB_DROP_REASON_NO_SOCKET', 3],
    // A future kernel may insert reasons and move the numbers: the names follow.
    ['SKB_DROP_REASON_NEW_IN_SOME_KERNEL', 4],
    ['SKB_DROP_REASON_NETFILTER_DROP', 13],
    ['SKB_DROP_REASON_MAX', 14],
    ['SKB_DROP_REASON_SUBSYS_MASK', 0xffff0000],
  ];
  const reason = reasons.length > 0 ? b.enumeration('skb_drop_reason', reasons) : int;
  b.enumeration('skb_drop_reason_subsys', [['SKB_DROP_REASON_SUBSYS_CORE', 0], ['SKB_DROP_REASON_SUBSYS_OPENVSWITCH', 2], ['SKB_DROP_REASON_SUBSYS_NUM', 3]]);
  const voidPtr = b.pointer(0);
  const params = opts.withReasonArg === false ? [voidPtr, b.pointer(skb), voidPtr] : [voidPtr, b.pointer(skb), voidPtr, reason];
  b.typedef('btf_trace_kfree_skb', b.pointer(b.funcProto(params)));
  return b.build();
}

describe('kernel drop source: reasons from BTF', () => {
  it('names the codes the way this kernel numbers them, without SKB_DROP_REASON_', () => {
    const r = parseDropReasons(kernelBtf());
    expect(r.codes.get('NETFILTER_DROP')).to.equal(13);
    expect(r.codes.get('NEW_IN_SOME_KERNEL')).to.equal(4);
    expect(r.names.get(3)).to.equal('NO_SOCKET');
    expect(r.names.get(1)).to.equal('CONSUMED');
    expect(r.tracepointHasReason).to.equal(true);
    expect(dropReasonName(r, (2 << 16) | 7)).to.equal('OPENVSWITCH:7');
    expect(dropReasonName(r, 99)).to.equal('99');
  });

  it('tells a kernel whose tracepoint has no reason (before 5.17) and one with no BTF enum', () => {
    expect(parseDropReasons(kernelBtf({ withReasonArg: false })).tracepointHasReason).to.equal(false);
    expect(() => parseDropReasons(kernelBtf({ reasons: [] }))).to.throw(/no enum skb_drop_reason.*5\.17/);
    expect(() => parseDropReasons(Buffer.from('not btf at all, just bytes'))).to.throw(/not a BTF file/);
    expect(() => readKernelDropReasons('/nonexistent/vmlinux')).to.throw(/no BTF.*CONFIG_DEBUG_INFO_BTF/);
  });

  it("reads this machine's kernel BTF: NETFILTER_DROP and NO_SOCKET exist and the tracepoint passes them", function () {
    if (!existsSync(VMLINUX_BTF)) this.skip();
    const r = readKernelDropReasons();
    for (const name of ['NETFILTER_DROP', 'NO_SOCKET', 'NOT_SPECIFIED', 'CONSUMED', 'TCP_INVALID_SEQUENCE']) {
      const code = r.codes.get(name);
      expect(code, name).to.be.a('number');
      expect(r.names.get(code!)).to.equal(name);
    }
    expect(r.tracepointHasReason).to.equal(true);
  });

  it('selects the spec\'s reasons: "all" is every drop but NOT_SPECIFIED, which must be named', () => {
    const r = parseDropReasons(kernelBtf());
    const all = selectReasons(['all'], r);
    expect([...all.codes].sort((a, b) => a - b)).to.deep.equal([3, 4, 13]);
    expect(all.subsystems).to.equal(true);
    expect([...selectReasons(['all', 'NOT_SPECIFIED'], r).codes]).to.include(2);
    const some = selectReasons(['NETFILTER_DROP', 'TC_INGRESS', 'CONSUMED'], r);
    expect([...some.codes]).to.deep.equal([13]);
    expect(some.unknown).to.deep.equal(['TC_INGRESS', 'CONSUMED']);
    expect(some.subsystems).to.equal(false);
  });
});

/** struct drop_event as the program writes it (droptail.bpf.c). */
function record(fields: { reason: number; family: 4 | 6; protocol: number; saddr: number[]; daddr: number[]; sport?: number; dport?: number; iif?: number; ifindex?: number; icmp?: [number, number]; tcpFlags?: number; length?: number; timeNs?: bigint }): DataView {
  const b = Buffer.alloc(DROP_EVENT_BYTES);
  b.writeBigUInt64LE(fields.timeNs ?? 5_000_000_000n, 0);
  b.writeUInt32LE(fields.reason, 8);
  b.writeUInt32LE(fields.ifindex ?? 0, 12);
  b.writeUInt32LE(fields.iif ?? 0, 16);
  b.writeUInt16LE(fields.length ?? 60, 28);
  let flags = 0;
  if (fields.sport !== undefined) {
    b.writeUInt16LE(fields.sport, 30);
    b.writeUInt16LE(fields.dport ?? 0, 32);
    flags |= 1;
  }
  b[34] = fields.family;
  b[35] = fields.protocol;
  if (fields.icmp) {
    b[36] = fields.icmp[0];
    b[37] = fields.icmp[1];
    flags |= 2;
  }
  b[38] = fields.tcpFlags ?? 0;
  b[39] = flags;
  Buffer.from(fields.saddr).copy(b, 40);
  Buffer.from(fields.daddr).copy(b, 56);
  return new DataView(b.buffer, b.byteOffset, b.length);
}

describe('kernel drop source: ring buffer records', () => {
  const ctx = { reason: 'NETFILTER_DROP', timeMs: Date.parse('2026-12-03T07:00:00.123Z'), interfaceName: (i: number) => (i === 7 ? 'nwbr0' : undefined) };

  it('turns an IPv4 TCP SYN received on an interface into the drop every source produces', () => {
    const e = readDropEvent(record({ reason: 12, family: 4, protocol: 6, saddr: [10, 1, 2, 3], daddr: [10, 1, 2, 4], sport: 40000, dport: 8080, iif: 7, ifindex: 7, tcpFlags: 0x02 }));
    expect(toPacketDrop(e!, ctx)).to.deep.equal({
      time: '2026-12-03T07:00:00.123Z',
      timeSource: 'kernel',
      prefix: '',
      reason: 'NETFILTER_DROP',
      family: 'ipv4',
      src: '10.1.2.3',
      dst: '10.1.2.4',
      protocol: 'TCP',
      length: 60,
      inInterface: 'nwbr0',
      srcPort: 40000,
      dstPort: 8080,
      tcpFlags: ['SYN'],
    });
  });

  it('writes IPv6 addresses in RFC 5952 form, ICMPv6 type and code, and a sent packet\'s interface as outInterface', () => {
    const v6 = (last: number) => [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
    const e = readDropEvent(record({ reason: 12, family: 6, protocol: 58, saddr: v6(1), daddr: v6(2), icmp: [128, 0], ifindex: 7 }));
    const d = toPacketDrop(e!, ctx);
    expect(d).to.include({ family: 'ipv6', src: 'fd00::1', dst: 'fd00::2', protocol: 'ICMPv6', icmpType: 128, icmpCode: 0, outInterface: 'nwbr0' });
    expect(d).to.not.have.property('srcPort');
    expect(d).to.not.have.property('inInterface');
  });

  it('refuses a short record or one of a family the program never writes', () => {
    expect(readDropEvent(new DataView(new ArrayBuffer(40)))).to.equal(undefined);
    const bad = record({ reason: 12, family: 4, protocol: 6, saddr: [1, 2, 3, 4], daddr: [1, 2, 3, 4] });
    bad.setUint8(34, 5);
    expect(readDropEvent(bad)).to.equal(undefined);
  });
});

describe('kernel drop source: capabilities', () => {
  const bit = (n: number) => 1n << BigInt(n);
  it('needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, and names what is missing', () => {
    expect(missingBpfCapabilities(bit(39) | bit(38))).to.equal(undefined);
    expect(missingBpfCapabilities(bit(21))).to.equal(undefined);
    expect(missingBpfCapabilities(bit(12) | bit(13))).to.match(/lacks CAP_BPF and CAP_PERFMON \(or CAP_SYS_ADMIN/);
    expect(missingBpfCapabilities(bit(39))).to.match(/lacks CAP_PERFMON \(/);
    expect(effectiveCapabilities('Name:\tnode\nCapEff:\t000001ffffffffff\n')).to.equal(0x1ffffffffffn);
    expect(() => effectiveCapabilities('Name:\tnode\n')).to.throw(/no CapEff/);
  });
});

describe('kernel drop source: one packet, counted once', () => {
  const packet = (over: Partial<PacketDrop> = {}): PacketDrop => ({ time: '2026-12-03T07:00:00.000Z', timeSource: 'kernel', prefix: '', reason: 'NETFILTER_DROP', family: 'ipv4', src: '10.1.2.3', dst: '10.1.2.4', protocol: 'UDP', srcPort: 40000, dstPort: 53, ...over });
  const logged = (over: Partial<PacketDrop> = {}): PacketDrop => packet({ timeSource: 'nflog', prefix: 'nwtest:', reason: undefined, ...over });

  it('lets the kernel drop go when the log source saw the packet, before or after it', () => {
    let now = 0;
    const m = new LoggedDropMatcher({ holdMs: 1000, now: () => now });
    expect(m.hold(packet())).to.equal('held');
    m.noteLogged(logged());
    m.noteLogged(logged({ dstPort: 54 }));
    expect(m.hold(packet({ dstPort: 54 }))).to.equal('matched');
    now = 1500;
    expect(m.released()).to.deep.equal([]);
    expect(m.matched).to.equal(2);
  });

  it('hands back a kernel drop no log source saw, after the hold, and never matches another packet', () => {
    let now = 0;
    const m = new LoggedDropMatcher({ holdMs: 1000, now: () => now });
    m.noteLogged(logged({ srcPort: 40001 }));
    expect(m.hold(packet())).to.equal('held');
    now = 999;
    expect(m.released()).to.deep.equal([]);
    now = 1000;
    expect(m.released().map((d) => d.srcPort)).to.deep.equal([40000]);
    // A logged packet older than the hold stands for no later kernel drop.
    now = 5000;
    expect(m.hold(packet({ srcPort: 40001 }))).to.equal('held');
    expect(LoggedDropMatcher.mayBeLogged(packet({ reason: 'NO_SOCKET' }))).to.equal(false);
  });

  it('stays bounded: past maxEntries a kernel drop passes at once instead of waiting', () => {
    const m = new LoggedDropMatcher({ holdMs: 1000, maxEntries: 2, now: () => 0 });
    expect([m.hold(packet({ srcPort: 1 })), m.hold(packet({ srcPort: 2 })), m.hold(packet({ srcPort: 3 }))]).to.deep.equal(['held', 'held', 'pass']);
    expect(m.releaseAll().map((d) => d.srcPort)).to.deep.equal([1, 2]);
  });
});

describe('kernel drop source: controller', () => {
  it('names the reason at the end of the Event message', () => {
    const peer = { ip: '10.1.2.3', kind: 'Pod' as const, namespace: 'storefront', name: 'logging-7d9' };
    expect(message({ direction: 'receiving', peer, service: 'UDP/53', dropReason: 'NETFILTER_DROP' })).to.equal('Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53): NETFILTER_DROP');
    expect(message({ direction: 'receiving', peer, service: 'UDP/53' })).to.equal('Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53)');
  });

  it('takes kernel drops with a reason name and refuses a reason that is not one', () => {
    const batch = (reason: unknown) =>
      JSON.stringify({ node: 'n1', sequence: 1, sentAt: '2026-12-03T07:00:00Z', shedSinceLastBatch: 0, drops: [{ source: 'kernel', count: 1, firstSeen: '2026-12-03T07:00:00Z', lastSeen: '2026-12-03T07:00:00Z', drop: { time: '2026-12-03T07:00:00Z', timeSource: 'kernel', prefix: '', family: 'ipv4', src: '10.0.0.1', dst: '10.0.0.2', protocol: 'TCP', reason } }] });
    expect(parseDropBatch(batch('NETFILTER_DROP')).drops[0]!.drop.reason).to.equal('NETFILTER_DROP');
    expect(parseDropBatch(batch('OPENVSWITCH:7')).drops[0]!.drop.reason).to.equal('OPENVSWITCH:7');
    expect(() => parseDropBatch(batch('drop"; evil'))).to.throw(/\$\.drops\[0\]\.drop\.reason: .* is not a kernel drop reason name/);
    expect(() => parseDropBatch(batch(12))).to.throw(/reason: must be a string/);
  });
});
