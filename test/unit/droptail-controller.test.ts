// The controller side of DropTail, piece by piece: batch checks, durations, the IP index, the
// rate-limited status numbers, Event wording, reverse DNS against a real dnsmasq, Ready.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { expect } from 'chai';
import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { DropRecord, DropTail } from '../../src/apis/droptail.js';
import { MAX_DROPS_PER_BATCH, type AggregatedDrop, type DropBatch, type PacketDrop } from '../../src/apis/drops.js';
import { BatchError, parseDropBatch } from '../../src/reconcilers/droptail/batch.js';
import { describeEndpoint, labelValue, message } from '../../src/reconcilers/droptail/events.js';
import { IpIndex } from '../../src/reconcilers/droptail/ipindex.js';
import { dropId, dropRecord, namespaceBucket, serviceText } from '../../src/reconcilers/droptail/pipeline.js';
import { desiredStatus } from '../../src/reconcilers/droptail/reconciler.js';
import { ReverseDns } from '../../src/reconcilers/droptail/reversedns.js';
import { settingsOf } from '../../src/reconcilers/droptail/settings.js';
import { parseDuration } from '../../src/util/duration.js';
import { DropStats } from '../../src/reconcilers/droptail/stats.js';

const T0 = '2026-11-23T03:20:56.123Z';

function drop(overrides: Partial<PacketDrop> = {}): PacketDrop {
  return { time: T0, timeSource: 'nflog', prefix: 'nftables-metal-dropped:', family: 'ipv4', src: '10.1.2.3', dst: '10.1.2.4', protocol: 'UDP', srcPort: 40000, dstPort: 53, ...overrides };
}

function aggregated(overrides: Partial<AggregatedDrop> = {}): AggregatedDrop {
  return { drop: drop(), count: 2, firstSeen: T0, lastSeen: T0, source: 'nflog', ...overrides };
}

function batchJson(overrides: Record<string, unknown> = {}): string {
  const batch: DropBatch = { node: 'worker-1', sequence: 7, sentAt: T0, drops: [aggregated()], shedSinceLastBatch: 0 };
  return JSON.stringify({ ...batch, ...overrides });
}

function refusal(body: string): string {
  try {
    parseDropBatch(body);
  } catch (err) {
    expect(err).to.be.instanceOf(BatchError);
    return (err as Error).message;
  }
  throw new Error('the batch was accepted');
}

function dropTail(overrides: { spec?: Record<string, unknown>; status?: Record<string, unknown>; uid?: string } = {}): DropTail {
  return {
    apiVersion: 'netwarden.io/v1alpha1',
    kind: 'DropTail',
    metadata: { name: 'all', uid: overrides.uid ?? 'uid-1', generation: 1 },
    spec: { sources: [{ type: 'nflog', group: 100 }], ...overrides.spec },
    status: overrides.status,
  } as DropTail;
}

describe('DropTail controller: drop batches', function () {
  it('accepts a well-formed batch and normalises the fully expanded IPv6 the kernel prints', function () {
    const v6 = aggregated({ drop: drop({ family: 'ipv6', src: 'fd00:0000:0000:0000:0000:0000:0000:0001', dst: '2001:0db8:0000:0000:0000:0000:0000:00ff' }) });
    const batch = parseDropBatch(batchJson({ drops: [aggregated(), v6] }));
    expect(batch.node).to.equal('worker-1');
    expect(batch.drops).to.have.length(2);
    expect(batch.drops[1]!.drop.src).to.equal('fd00::1');
    expect(batch.drops[1]!.drop.dst).to.equal('2001:db8::ff');
  });

  it('refuses a bad batch whole, naming the JSON path of the first problem', function () {
    expect(refusal('{"node":')).to.match(/^body is not JSON/);
    expect(refusal('[]')).to.equal('$: must be an object');
    expect(refusal(batchJson({ node: 'Worker_1' }))).to.equal('$.node: "Worker_1" is not a node name');
    expect(refusal(batchJson({ sequence: -1 }))).to.match(/^\$\.sequence: must be an integer from 0/);
    expect(refusal(batchJson({ sentAt: 'yesterday' }))).to.equal('$.sentAt: "yesterday" is not an RFC 3339 time');
    expect(refusal(batchJson({ drops: [aggregated(), aggregated({ count: 0 })] }))).to.match(/^\$\.drops\[1\]\.count: must be an integer from 1/);
    expect(refusal(batchJson({ drops: [aggregated({ source: 'pcap' as never })] }))).to.equal('$.drops[0].source: must be one of nflog, journal, file, kernel');
    expect(refusal(batchJson({ drops: [aggregated({ drop: drop({ src: '10.1.2' }) })] }))).to.equal('$.drops[0].drop.src: "10.1.2" is not an IP address');
    expect(refusal(batchJson({ drops: [aggregated({ drop: drop({ dstPort: 70000 }) })] }))).to.match(/^\$\.drops\[0\]\.drop\.dstPort: must be an integer from 0 to 65535/);
    expect(refusal(batchJson({ drops: [aggregated({ firstSeen: '2026-11-23T03:21:00Z', lastSeen: '2026-11-23T03:20:00Z' })] }))).to.match(/lastSeen .* is before firstSeen/);
  });

  it('refuses more drops than one batch may carry', function () {
    const many = Array.from({ length: MAX_DROPS_PER_BATCH + 1 }, () => aggregated());
    expect(refusal(batchJson({ drops: many }))).to.equal(`$.drops: ${MAX_DROPS_PER_BATCH + 1} entries, at most ${MAX_DROPS_PER_BATCH} per batch`);
  });
});

describe('DropTail controller: settings', function () {
  it('reads Go-style durations and fills in the defaults users know', function () {
    expect(parseDuration('2m')).to.equal(120_000);
    expect(parseDuration('1m30s')).to.equal(90_000);
    expect(parseDuration('1.5h')).to.equal(5_400_000);
    expect(parseDuration('250ms')).to.equal(250);
    expect(parseDuration('2 minutes')).to.equal(undefined);
    expect(settingsOf(dropTail())).to.deep.equal({
      eventReason: 'PacketDrop', reportingComponent: 'netwarden', repeatIntervalMs: 120_000, expirationMs: 600_000, reverseDNS: true, metrics: true, recentDropsLimit: 20,
    });
  });
});

describe('DropTail controller: IP index', function () {
  const pod = (name: string, ips: string[], extra: { hostNetwork?: boolean; phase?: string } = {}): V1Pod => ({
    metadata: { namespace: 'storefront', name, uid: `uid-${name}` },
    spec: { containers: [], hostNetwork: extra.hostNetwork },
    status: { phase: extra.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  });

  it('resolves every pod IP, service cluster IP and node address, and follows updates and deletes', function () {
    const index = new IpIndex();
    index.setPod(pod('logging-7d9', ['10.244.1.3', 'fd00:0:0:0:0:0:0:3']));
    const service: V1Service = { metadata: { namespace: 'storefront', name: 'web' }, spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::10'] } };
    index.setService(service);
    const node: V1Node = { metadata: { name: 'worker-1' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.5' }, { type: 'Hostname', address: 'worker-1' }] } };
    index.setNode(node);

    expect(index.lookup('10.244.1.3')).to.deep.equal({ ip: '10.244.1.3', kind: 'Pod', namespace: 'storefront', name: 'logging-7d9' });
    expect(index.resolve('10.244.1.3')?.uid).to.equal('uid-logging-7d9');
    expect(index.lookup('fd00::3')?.name).to.equal('logging-7d9');
    expect(index.lookup('fd00:0096:0000:0000:0000:0000:0000:0010')).to.deep.equal({ ip: 'fd00:96::10', kind: 'Service', namespace: 'storefront', name: 'web' });
    expect(index.lookup('192.168.0.5')).to.deep.equal({ ip: '192.168.0.5', kind: 'Node', name: 'worker-1' });
    expect(index.lookup('203.0.113.1')).to.equal(undefined);

    index.setPod(pod('logging-7d9', ['10.244.1.9']));
    expect(index.lookup('10.244.1.3')).to.equal(undefined);
    expect(index.lookup('10.244.1.9')?.name).to.equal('logging-7d9');
    index.remove('Pod', pod('logging-7d9', []));
    expect(index.lookup('10.244.1.9')).to.equal(undefined);
    expect(index.size).to.equal(3);
  });

  it('resolves hostNetwork pods to their node, and prefers a running pod over a finished one with the same IP', function () {
    const index = new IpIndex();
    index.setNode({ metadata: { name: 'worker-1' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.5' }] } });
    index.setPod(pod('node-exporter', ['192.168.0.5'], { hostNetwork: true }));
    expect(index.lookup('192.168.0.5')).to.deep.equal({ ip: '192.168.0.5', kind: 'Node', name: 'worker-1' });

    index.setPod(pod('job-old', ['10.244.1.4'], { phase: 'Succeeded' }));
    index.setPod(pod('web-new', ['10.244.1.4']));
    expect(index.lookup('10.244.1.4')?.name).to.equal('web-new');
    index.remove('Pod', pod('web-new', []));
    expect(index.lookup('10.244.1.4')?.name).to.equal('job-old');
  });

  it("keeps a recreated Pod's address when the old Pod's delete arrives after the new one (claims are the objects' uids)", function () {
    const index = new IpIndex();
    const old = { ...pod('db-0', ['10.244.2.7']), metadata: { namespace: 'storefront', name: 'db-0', uid: 'uid-db-0-first' } };
    const recreated = { ...pod('db-0', ['10.244.2.8']), metadata: { namespace: 'storefront', name: 'db-0', uid: 'uid-db-0-second' } };
    index.setPod(old);
    index.setPod(recreated);
    index.remove('Pod', old);
    expect(index.resolve('10.244.2.8')).to.deep.equal({ endpoint: { ip: '10.244.2.8', kind: 'Pod', namespace: 'storefront', name: 'db-0' }, uid: 'uid-db-0-second' });
    expect(index.lookup('10.244.2.7')).to.equal(undefined);
    expect(index.size).to.equal(1);
  });

  it('gives an address back to the claim left when one of three owners goes', function () {
    const index = new IpIndex();
    index.setNode({ metadata: { name: 'worker-2', uid: 'uid-node' }, status: { addresses: [{ type: 'InternalIP', address: '10.244.3.1' }] } });
    index.setService({ metadata: { namespace: 'shop', name: 'odd', uid: 'uid-svc' }, spec: { externalIPs: ['10.244.3.1'] } });
    index.setPod(pod('p', ['10.244.3.1']));
    expect(index.lookup('10.244.3.1')?.kind).to.equal('Pod');
    index.remove('Pod', pod('p', []));
    expect(index.resolve('10.244.3.1')).to.deep.equal({ endpoint: { ip: '10.244.3.1', kind: 'Service', namespace: 'shop', name: 'odd' } });
    index.remove('Service', { metadata: { namespace: 'shop', name: 'odd', uid: 'uid-svc' } });
    expect(index.lookup('10.244.3.1')).to.deep.equal({ ip: '10.244.3.1', kind: 'Node', name: 'worker-2' });
  });
});

describe('DropTail controller: Event wording and metric labels', function () {
  it('words Events as kube-iptables-tailer does, with the peer, its IP and the service', function () {
    const peer = { ip: '10.1.2.3', kind: 'Pod' as const, namespace: 'storefront', name: 'logging-7d9' };
    expect(message({ direction: 'receiving', peer, service: 'UDP/53' })).to.equal('Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53)');
    expect(message({ direction: 'sending', peer: { ip: '10.96.0.10', kind: 'Service', namespace: 'storefront', name: 'web' }, service: 'TCP/80' }))
      .to.equal('Packet dropped when sending traffic to service storefront/web (IP: 10.96.0.10, TCP/80)');
    expect(describeEndpoint({ ip: '192.168.0.5', kind: 'Node', name: 'worker-1' })).to.equal('node worker-1');
    expect(describeEndpoint({ ip: '203.0.113.7', kind: 'External', name: 'edge.example.test' })).to.equal('edge.example.test');
    expect(describeEndpoint({ ip: '203.0.113.8', kind: 'Unknown' })).to.equal('unknown');
    expect(serviceText(drop())).to.equal('UDP/53');
    expect(serviceText(drop({ protocol: 'ICMP', srcPort: undefined, dstPort: undefined, icmpType: 3, icmpCode: 1 } as Partial<PacketDrop>))).to.equal('ICMP type 3 code 1');
    expect(labelValue('x'.repeat(64))).to.match(/^h-[0-9a-f]{40}$/);
  });

  it('buckets endpoints into namespaces, "node", "service:<ns>" and "external" only', function () {
    expect(namespaceBucket({ ip: '10.1.2.3', kind: 'Pod', namespace: 'storefront', name: 'a' })).to.equal('storefront');
    expect(namespaceBucket({ ip: '10.96.0.1', kind: 'Service', namespace: 'default', name: 'kubernetes' })).to.equal('service:default');
    expect(namespaceBucket({ ip: '192.168.0.5', kind: 'Node', name: 'w' })).to.equal('node');
    expect(namespaceBucket({ ip: '203.0.113.7', kind: 'External', name: 'edge.example.test' })).to.equal('external');
  });

  it('identifies a re-sent aggregated drop by DropTail, node, source, drop and first time', function () {
    const a = aggregated();
    expect(dropId('all', 'worker-1', a)).to.equal(dropId('all', 'worker-1', { ...a, count: 9, lastSeen: '2026-11-23T03:21:00Z' }));
    expect(dropId('all', 'worker-1', a)).not.to.equal(dropId('all', 'worker-2', a));
    expect(dropId('all', 'worker-1', a)).not.to.equal(dropId('all', 'worker-1', { ...a, firstSeen: '2026-11-23T03:20:57Z' }));
    expect(dropId('all', 'worker-1', a)).not.to.equal(dropId('other', 'worker-1', a));
  });
});

describe('DropTail controller: status numbers', function () {
  const record = (time: string, count = 1): DropRecord =>
    dropRecord('worker-1', aggregated({ count, lastSeen: time }), { ip: '10.1.2.3', kind: 'Unknown' }, { ip: '10.1.2.4', kind: 'Unknown' });

  it('keeps the newest drops first, bounded by the limit, and writes no undefined fields', function () {
    const stats = new DropStats({ publishIntervalMs: 2000, now: () => 10_000 });
    const dt = dropTail();
    stats.record(dt, record('2026-11-23T03:20:02.000Z', 2), 2);
    stats.record(dt, record('2026-11-23T03:20:01.000Z'), 2);
    stats.record(dt, record('2026-11-23T03:20:03.000Z'), 2);
    const { fields } = stats.statusFields(dt, 2);
    expect(fields.totalDrops).to.equal(4);
    expect(fields.lastDropTime).to.equal('2026-11-23T03:20:03.000Z');
    expect((fields.recentDrops as DropRecord[]).map((d) => d.time)).to.deep.equal(['2026-11-23T03:20:03.000Z', '2026-11-23T03:20:02.000Z']);
    expect(JSON.stringify(fields)).to.equal(JSON.stringify(JSON.parse(JSON.stringify(fields))));
    expect(Object.values(fields.lastDrop as object)).not.to.include(undefined);
  });

  it('publishes new numbers at most once per interval and says when to look again', function () {
    let now = 100_000;
    const stats = new DropStats({ publishIntervalMs: 2000, now: () => now });
    const dt = dropTail();
    stats.record(dt, record('2026-11-23T03:20:02.000Z'), 5);
    expect(stats.statusFields(dt, 5).fields.totalDrops).to.equal(1);
    now += 500;
    stats.record(dt, record('2026-11-23T03:20:03.000Z'), 5);
    const held = stats.statusFields(dt, 5);
    expect(held.fields.totalDrops).to.equal(1);
    expect(held.retryAfterMs).to.equal(1500);
    now += 1500;
    expect(stats.statusFields(dt, 5).fields.totalDrops).to.equal(2);
  });

  it('continues from the stored total after a restart, and starts over for a recreated DropTail', function () {
    const stats = new DropStats({ publishIntervalMs: 0 });
    const stored = dropTail({ status: { totalDrops: 41 } });
    stats.record(stored, record('2026-11-23T03:20:02.000Z'), 5);
    expect(stats.statusFields(stored, 5).fields.totalDrops).to.equal(42);
    const recreated = dropTail({ uid: 'uid-2' });
    expect(stats.statusFields(recreated, 5).fields.totalDrops).to.equal(0);
  });
});

describe('DropTail controller: Ready', function () {
  const node = (name: string, healthy: boolean) => ({ node: name, dropsSeen: 0, sources: [{ type: 'nflog' as const, healthy, ...(healthy ? {} : { message: 'cannot open nflog:100: Operation not permitted' }) }] });
  const ready = (reports: Array<ReturnType<typeof node>>) => {
    const conditions = desiredStatus(dropTail({}), 2, reports, reports.length, new Date(T0)).conditions as Array<{ status: string; reason: string; message: string }>;
    return conditions[0]!;
  };

  it('is False with the failing node and source when every reporting node has an unhealthy source', function () {
    const c = ready([node('worker-1', false), node('worker-2', false)]);
    expect(c).to.include({ status: 'False', reason: 'SourcesUnhealthy' });
    expect(c.message).to.contain('worker-1 nflog: cannot open nflog:100: Operation not permitted');
  });

  it('stays True while some node reads, and names the nodes that do not', function () {
    const c = ready([node('worker-1', false), node('worker-2', true)]);
    expect(c).to.include({ status: 'True', reason: 'Accepted' });
    expect(c.message).to.equal('selects 2 node(s); 2 agent(s) reporting; unhealthy: worker-1 nflog: cannot open nflog:100: Operation not permitted');
    expect(ready([]).status).to.equal('True');
  });
});

describe('DropTail controller: reverse DNS against dnsmasq on loopback', function () {
  let dnsmasq: ChildProcess;
  let port: number;

  before(async function () {
    port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    dnsmasq = spawn('dnsmasq', [
      '--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file', '--user=root',
      '--ptr-record=7.113.0.203.in-addr.arpa,edge.example.test',
    ], { stdio: 'ignore' });
    const dns = new ReverseDns({ servers: [`127.0.0.1:${port}`], negativeTtlMs: 0 });
    for (let i = 0; i < 50 && (await dns.resolve('203.0.113.7', 500)) === undefined; i++) await new Promise((r) => setTimeout(r, 100));
  });

  after(function () {
    dnsmasq?.kill();
  });

  it('finds PTR names, caches answers and misses, and never waits past the deadline', async function () {
    let now = 0;
    const dns = new ReverseDns({ servers: [`127.0.0.1:${port}`], positiveTtlMs: 1000, negativeTtlMs: 500, now: () => now });
    expect(await dns.resolve('203.0.113.7', 1000)).to.equal('edge.example.test');
    expect(dns.cached('203.0.113.7')).to.equal('edge.example.test');
    expect(await dns.resolve('203.0.113.8', 1000)).to.equal(undefined);
    expect(dns.cached('203.0.113.8')).to.equal(null);
    now = 600;
    expect(dns.cached('203.0.113.8')).to.equal(undefined);
    expect(dns.cached('203.0.113.7')).to.equal('edge.example.test');

    // A server that never answers (a closed UDP port): the caller gets undefined at its deadline.
    const silent = new ReverseDns({ servers: ['127.0.0.1:9'], timeoutMs: 300 });
    const started = Date.now();
    expect(await silent.resolve('203.0.113.7', 100)).to.equal(undefined);
    expect(Date.now() - started).to.be.below(1000);
  });
});
