// The pure tenancy logic of PacketCapture: whether a node may capture a target IP (ownership by a
// running pod of the capture's namespace), the node budget (slots, ring memory, bytes, disk floor,
// first come first served), and the namespace quota (ConfigMap parsing and the verdict).
import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import type { PacketCapture } from '../../src/apis/packetcapture.js';
import { NodeCaptureBudget, type DiskProbe } from '../../src/nodeagent/capture/budget.js';
import { ownershipRefusal } from '../../src/nodeagent/capture/ownership.js';
import { ceilingsProblem, DEFAULT_CEILINGS, parseRingSize, RING_MEMORY_FACTOR, type NodeCaptureLimits } from '../../src/nodeagent/capture/plan.js';
import { planCapture } from '../../src/reconcilers/packetcapture/reconciler.js';
import { counterInterval } from '../../src/nodeagent/capture/reconciler.js';
import { CachedPod } from '../../src/runtime/cachedpod.js';
import { BUILTIN_NAMESPACE_QUOTA, parseQuotaConfig, quotaFor, type EffectiveQuota } from '../../src/apis/capturequota.js';
import { quotaVerdict } from '../../src/reconcilers/packetcapture/quota.js';

const NODE = 'node-a';
const MIB = 1024 * 1024;

function pod(namespace: string, name: string, ip: string, over: { node?: string; phase?: string; hostNetwork?: boolean; podIPs?: string[] } = {}): V1Pod {
  return {
    metadata: { namespace, name },
    spec: { nodeName: over.node ?? NODE, hostNetwork: over.hostNetwork, containers: [] },
    status: { phase: over.phase ?? 'Running', podIP: ip, podIPs: (over.podIPs ?? [ip]).map((x) => ({ ip: x })) },
  };
}

describe('capture tenancy: target ownership', function () {
  const pods = [pod('shop', 'web', '10.0.0.5', { podIPs: ['10.0.0.5', 'fd00::5'] }), pod('bank', 'vault', '10.0.0.9'), pod('shop', 'host-agent', '192.168.1.10', { hostNetwork: true }), pod('shop', 'done', '10.0.0.7', { phase: 'Succeeded' })];
  const claim = (p: string, ip: string, namespace = 'shop') => ownershipRefusal({ namespace, pod: p, ip, node: NODE }, pods);

  it("captures a running pod of the capture's namespace on this node at any of its IPs", function () {
    expect(claim('web', '10.0.0.5')).to.equal(undefined);
    expect(claim('web', 'fd00::5')).to.equal(undefined);
  });

  it('refuses an IP no pod of the namespace owns, without naming the pod of another namespace that does', function () {
    const other = claim('web', '10.0.0.9');
    expect(other).to.equal('IP 10.0.0.9 is not an address of pod shop/web on node node-a (status.podIPs), so no pod of namespace shop owns it; not capturing');
    expect(other).to.not.contain('bank');
    expect(other).to.not.contain('vault');
    // The other namespace's pod, named as if it were the capture's own.
    expect(claim('vault', '10.0.0.9')).to.equal('IP 10.0.0.9: no pod shop/vault on node node-a, so no pod of namespace shop owns it here; not capturing');
    expect(claim('nobody', '10.9.9.9')).to.match(/^IP 10\.9\.9\.9: no pod shop\/nobody on node node-a/);
  });

  it('refuses host-network pods, pods that are not running, and pods of other nodes', function () {
    expect(claim('host-agent', '192.168.1.10')).to.match(/uses the host network/);
    expect(claim('done', '10.0.0.7')).to.match(/is Succeeded, not Running/);
    const elsewhere = [pod('shop', 'web', '10.0.0.5', { node: 'node-b' })];
    expect(ownershipRefusal({ namespace: 'shop', pod: 'web', ip: '10.0.0.5', node: NODE }, elsewhere)).to.match(/no pod shop\/web on node node-a/);
  });

  it('refuses an IP that another live pod on the node claims too', function () {
    const twins = [...pods, pod('bank', 'copycat', '10.0.0.5')];
    expect(ownershipRefusal({ namespace: 'shop', pod: 'web', ip: '10.0.0.5', node: NODE }, twins)).to.equal('IP 10.0.0.5 is also claimed by another pod on node node-a; not capturing an address whose owner is ambiguous');
    // A finished pod that kept its old IP in its status is no rival.
    const stale = [...pods, pod('bank', 'old', '10.0.0.5', { phase: 'Failed' })];
    expect(ownershipRefusal({ namespace: 'shop', pod: 'web', ip: '10.0.0.5', node: NODE }, stale)).to.equal(undefined);
  });
});

/** A disk whose stored bytes and free space the test sets. */
class FakeDisk implements DiskProbe {
  stored = 0;
  free = 1000 * MIB;
  total = 1000 * MIB;
  walks = 0;
  storedBytes(): number {
    this.walks += 1;
    return this.stored;
  }
  space() {
    return { freeBytes: this.free, totalBytes: this.total };
  }
}

function budgetWith(over: Partial<NodeCaptureLimits> = {}, disk = new FakeDisk()) {
  const limits: NodeCaptureLimits = { maxConcurrent: 12, ringBytes: 16 * MIB, ringBudgetBytes: 384 * MIB, maxBytes: 100 * MIB, minFreeDisk: { percent: 15 }, ...over };
  const nudged: string[][] = [];
  let clock = 1_000_000;
  const budget = new NodeCaptureBudget(limits, disk, (refs) => nudged.push(refs.map((r) => r.name)), () => clock);
  return { budget, disk, nudged, tick: (ms: number) => (clock += ms) };
}

const claim = (n: number, createdAt = n) => ({ id: `uid-${n}/pod`, createdAt, ref: { namespace: 'ns', name: `pc-${n}` } });

describe('capture tenancy: the node budget', function () {
  it('the defaults: 12 pod captures of a 16 MiB buffer, whose 32 MiB kernel rings fill the 384 MiB budget exactly', function () {
    expect(DEFAULT_CEILINGS.maxConcurrent).to.equal(12);
    expect(RING_MEMORY_FACTOR * DEFAULT_CEILINGS.ringBytes * DEFAULT_CEILINGS.maxConcurrent).to.equal(DEFAULT_CEILINGS.ringBudgetBytes);
    expect(DEFAULT_CEILINGS.minFreeDisk).to.deep.equal({ percent: 15 });
    const { budget } = budgetWith({ maxBytes: 10 * 1024 ** 3 });
    expect(budget.slots()).to.equal(12);
  });

  it('holds the 13th pod capture back with the node limit, and gives it the first slot that frees', function () {
    const { budget, nudged } = budgetWith();
    for (let i = 1; i <= 12; i++) expect(budget.acquire(claim(i), MIB), `capture ${i}`).to.equal(undefined);
    const held = budget.acquire(claim(13), MIB);
    expect(held).to.equal('node limit: 12 concurrent pod captures (--capture-max-concurrent); 12 running');
    budget.release(claim(4).id);
    expect(nudged.at(-1)).to.deep.equal(['pc-13']);
    expect(budget.acquire(claim(13), MIB)).to.equal(undefined);
    expect(budget.running()).to.equal(12);
  });

  it('counts kernel ring memory: a budget smaller than the ceiling holds fewer, and says so', function () {
    const { budget } = budgetWith({ ringBudgetBytes: 100 * MIB });
    expect(budget.slots()).to.equal(3);
    for (let i = 1; i <= 3; i++) expect(budget.acquire(claim(i), MIB)).to.equal(undefined);
    expect(budget.acquire(claim(4), MIB)).to.equal(`node limit: the kernel ring budget of ${100 * MIB} bytes (--capture-ring-budget) holds 3 pod capture(s) of ${32 * MIB} bytes each (--capture-ring-size ${16 * MIB} x 2); 3 running`);
  });

  it('first come, first served by the capture\'s creation time, whoever asks first after a slot frees', function () {
    const { budget } = budgetWith({ maxConcurrent: 1 });
    expect(budget.acquire(claim(1), MIB)).to.equal(undefined);
    // Created in the order 3, 2: capture 2 is older.
    expect(budget.acquire(claim(3, 300), MIB)).to.match(/1 running$/);
    expect(budget.acquire(claim(2, 200), MIB)).to.match(/1 running$/);
    budget.release(claim(1).id);
    // The newer one asks first but waits for the older one.
    expect(budget.acquire(claim(3, 300), MIB)).to.equal('node limit: 1 concurrent pod captures (--capture-max-concurrent); 0 running, 1 earlier capture(s) waiting');
    expect(budget.acquire(claim(2, 200), MIB)).to.equal(undefined);
    // A waiting claim no longer wanted steps out of the line.
    budget.release(claim(2).id);
    budget.forget(claim(3).id);
    expect(budget.acquire(claim(5, 500), MIB)).to.equal(undefined);
  });

  it('drops a waiting claim nobody repeated for a minute, so a capture gone unseen blocks no one', function () {
    const { budget, tick } = budgetWith({ maxConcurrent: 1 });
    budget.acquire(claim(1), MIB);
    budget.acquire(claim(2, 2), MIB);
    budget.release(claim(1).id);
    expect(budget.acquire(claim(3, 3), MIB)).to.match(/1 earlier capture\(s\) waiting/);
    tick(61_000);
    expect(budget.acquire(claim(3, 3), MIB)).to.equal(undefined);
  });

  it('limits bytes on disk, counting each file being written at its full size', function () {
    const { budget, disk, tick } = budgetWith({ maxBytes: 50 * MIB });
    disk.stored = 20 * MIB;
    expect(budget.refuse(10 * MIB)).to.equal(undefined);
    budget.opened('/a', 10 * MIB, () => 10 * MIB);
    budget.opened('/b', 10 * MIB, () => 10 * MIB);
    // 20 stored + 2 x 10 promised: another 10 MiB file would make 50 MiB, one more byte is over.
    expect(budget.refuse(10 * MIB)).to.equal(undefined);
    expect(budget.refuse(10 * MIB + 1)).to.deep.equal({ kind: 'quota', message: `node limit: ${50 * MIB} bytes of capture files (--capture-max-bytes); ${40 * MIB} in use or being written, another file needs ${10 * MIB + 1}` });
    expect(budget.acquire(claim(1), 10 * MIB + 1)).to.match(/^node limit: 52428800 bytes of capture files/);
    // A file closes at 4 MiB and a rotation deletes 3 MiB: counted before the disk is walked again.
    budget.closed('/a', 4 * MIB);
    budget.deleted(3 * MIB);
    expect(budget.usedBytes()).to.equal(20 * MIB + 4 * MIB - 3 * MIB + 10 * MIB);
    // Walks are at most a second old.
    const walks = disk.walks;
    budget.usedBytes();
    expect(disk.walks).to.equal(walks);
    tick(1001);
    disk.stored = 0;
    expect(budget.usedBytes()).to.equal(10 * MIB);
    expect(disk.walks).to.equal(walks + 1);
  });

  it('keeps the disk floor, counting what files being written may still add', function () {
    const { budget, disk } = budgetWith({ maxBytes: 10 * 1024 * MIB, minFreeDisk: { percent: 15 } });
    disk.total = 1000 * MIB;
    disk.free = 200 * MIB; // the floor is 150 MiB
    expect(budget.refuse(50 * MIB)).to.equal(undefined);
    budget.opened('/a', 40 * MIB, () => 30 * MIB);
    const refused = budget.refuse(50 * MIB);
    expect(refused?.kind).to.equal('disk');
    expect(refused?.message).to.equal(`stopped writing: free disk ${200 * MIB} bytes (${30 * MIB} more promised to files being written) would fall below the agent's floor of ${150 * MIB} bytes (15% of the filesystem, --capture-min-free-disk) with another ${50 * MIB}-byte file`);
    expect(budget.refuse(20 * MIB)).to.equal(undefined);
  });

  it('refuses flags that could never start a capture, and ring sizes out of bounds', function () {
    expect(ceilingsProblem({ ...DEFAULT_CEILINGS, ringBudgetBytes: 16 * MIB })).to.match(/--capture-ring-budget 16777216 holds no ring of 33554432 bytes/);
    expect(ceilingsProblem(DEFAULT_CEILINGS)).to.equal(undefined);
    expect(parseRingSize('16Mi')).to.equal(16 * MIB);
    expect(() => parseRingSize('128Mi')).to.throw('ring size 128Mi must be between 1Mi and 64Mi');
    expect(() => parseRingSize('512Ki')).to.throw(/between 1Mi and 64Mi/);
  });
});

function capture(name: string, over: { created?: string; reserved?: boolean; phase?: string; bytes?: number; uid?: string; endTime?: string; startTime?: string } = {}): PacketCapture {
  return {
    apiVersion: 'netwarden.io/v1alpha1',
    kind: 'PacketCapture',
    metadata: { namespace: 'shop', name, uid: over.uid ?? `uid-${name}`, generation: 1, creationTimestamp: (over.created ?? '2026-01-10T11:00:00Z') as unknown as Date },
    spec: { selector: 'all()', ...(over.endTime ? { endTime: over.endTime } : {}), ...(over.startTime ? { startTime: over.startTime } : {}) },
    status: {
      ...(over.phase ? { phase: over.phase } : {}),
      ...(over.reserved !== undefined ? { conditions: [{ type: 'QuotaReserved', status: over.reserved ? 'True' : 'False', reason: 'x', message: '', lastTransitionTime: '2026-01-10T11:00:00Z' }] } : {}),
      ...(over.bytes !== undefined ? { files: [{ node: NODE, bytes: over.bytes }] } : {}),
    },
  } as unknown as PacketCapture;
}

const NOW = new Date('2026-01-10T12:00:00Z');
const quota = (maxConcurrentCaptures: number, maxBytes = 1000): EffectiveQuota => ({ maxConcurrentCaptures, maxBytes, source: 'test' });

describe('capture tenancy: the namespace quota', function () {
  it('parses the admin\'s ConfigMap: a default, overrides by namespace, sizes', function () {
    const config = parseQuotaConfig({
      metadata: { namespace: 'netwarden-system', name: 'netwarden-capture-quotas' },
      data: { default: 'maxConcurrentCaptures: 2\nmaxBytes: 1Gi\n', namespaces: 'storefront: {maxConcurrentCaptures: 10}\nbank: {maxBytes: 500Mi, maxConcurrentCaptures: 0}\n' },
    });
    expect(config.error).to.equal(undefined);
    expect(quotaFor(config, 'other')).to.deep.equal({ maxConcurrentCaptures: 2, maxBytes: 1024 ** 3, source: 'ConfigMap netwarden-system/netwarden-capture-quotas, default' });
    expect(quotaFor(config, 'storefront')).to.deep.equal({ maxConcurrentCaptures: 10, maxBytes: 1024 ** 3, source: 'ConfigMap netwarden-system/netwarden-capture-quotas, namespaces.storefront' });
    expect(quotaFor(config, 'bank')).to.include({ maxConcurrentCaptures: 0, maxBytes: 500 * MIB });
  });

  it('falls back to the built-in default without the ConfigMap, or with a broken one, saying why', function () {
    expect(quotaFor(parseQuotaConfig(undefined), 'x')).to.deep.include({ ...BUILTIN_NAMESPACE_QUOTA });
    const broken = parseQuotaConfig({ metadata: { namespace: 'netwarden-system', name: 'netwarden-capture-quotas' }, data: { default: 'maxConcurrentCaptures: lots' } });
    expect(broken.error).to.equal('ConfigMap netwarden-system/netwarden-capture-quotas is invalid: default.maxConcurrentCaptures: "lots" is not a whole number >= 0');
    expect(quotaFor(broken, 'x')).to.deep.include({ ...BUILTIN_NAMESPACE_QUOTA });
    expect(parseQuotaConfig({ metadata: {}, data: { defaults: '{}' } }).error).to.match(/unknown key\(s\) defaults/);
    expect(parseQuotaConfig({ metadata: {}, data: { namespaces: 'shop: {maxCaptures: 3}' } }).error).to.match(/namespaces\.shop: unknown field maxCaptures/);
  });

  it('admits up to the limit, then holds back with the limit and who holds the places', function () {
    const running = [capture('a', { reserved: true, phase: 'Capturing' }), capture('b', { reserved: true, phase: 'WaitingForTraffic' })];
    const fresh = capture('c');
    expect(quotaVerdict(fresh, [...running, fresh], quota(3), NOW).admitted).to.equal(true);
    const held = quotaVerdict(fresh, [...running, fresh], quota(2), NOW);
    expect(held).to.deep.equal({ admitted: false, message: 'namespace quota: 2 concurrent captures (test); namespace shop runs 2 (a, b)' });
  });

  it('lets finished captures go, keeps a place for stopped ones until their end, and never takes a place away', function () {
    const finished = capture('a', { reserved: true, phase: 'Finished' });
    const ended = capture('b', { reserved: true, phase: 'Capturing', endTime: '2026-01-10T11:30:00Z' });
    const stopped = capture('c', { reserved: true, phase: 'Stopped' });
    const fresh = capture('d');
    expect(quotaVerdict(fresh, [finished, ended, stopped, fresh], quota(2), NOW).admitted).to.equal(true);
    expect(quotaVerdict(fresh, [finished, ended, stopped, fresh], quota(1), NOW).admitted).to.equal(false);
    // The admin lowers the limit below what runs: those running keep their places.
    expect(quotaVerdict(stopped, [stopped, capture('e', { reserved: true, phase: 'Capturing' })], quota(1), NOW).admitted).to.equal(true);
  });

  it('first come, first served: a newer capture waits while an older one waits', function () {
    const holder = capture('a', { reserved: true, phase: 'Capturing', created: '2026-01-10T10:00:00Z' });
    const older = capture('z-old', { reserved: false, phase: 'Queued', created: '2026-01-10T11:00:00Z' });
    const newer = capture('b-new', { created: '2026-01-10T11:05:00Z' });
    const all = [holder, older, newer];
    expect(quotaVerdict(newer, all, quota(2), NOW)).to.deep.equal({ admitted: false, message: 'namespace quota: 2 concurrent captures (test); namespace shop runs 1 (a); 1 earlier capture(s) wait before this one' });
    expect(quotaVerdict(older, all, quota(2), NOW).admitted).to.equal(true);
    // A scheduled capture (start ahead) does not wait yet, so it is nobody's turn.
    const later = capture('c-later', { created: '2026-01-10T10:30:00Z', startTime: '2026-01-10T13:00:00Z' });
    expect(quotaVerdict(newer, [holder, later, newer], quota(2), NOW).admitted).to.equal(true);
  });

  it("holds every capture back once the namespace's files reach its byte quota, running ones too", function () {
    const running = capture('a', { reserved: true, phase: 'Capturing', bytes: 600 });
    const done = capture('b', { reserved: true, phase: 'Finished', bytes: 400 });
    const verdict = quotaVerdict(running, [running, done], quota(5, 1000), NOW);
    expect(verdict).to.deep.equal({ admitted: false, message: 'namespace quota: 1000 bytes of capture files (test); namespace shop holds 1000: delete captures or their files to make room' });
    expect(quotaVerdict(running, [running, done], quota(5, 1001), NOW).admitted).to.equal(true);
  });

  it('a held capture gets no targets, phase Queued and Ready=False QuotaExceeded; an admitted one its targets and QuotaReserved=True', function () {
    const pods = [pod('shop', 'web', '10.0.0.5')];
    const holder = capture('a', { reserved: true, phase: 'Capturing' });
    const fresh = capture('b');
    const held = planCapture(fresh, pods.map((p) => CachedPod.from(p)), NOW, {}, { captures: [holder, fresh], quota: quota(1) }).status;
    expect(held.targets).to.deep.equal([]);
    expect(held.phase).to.equal('Queued');
    const conditions = held.conditions as Array<{ type: string; status: string; reason: string; message: string }>;
    expect(conditions.find((c) => c.type === 'Ready')).to.include({ status: 'False', reason: 'QuotaExceeded', message: 'namespace quota: 1 concurrent captures (test); namespace shop runs 1 (a)' });
    expect(conditions.find((c) => c.type === 'QuotaReserved')).to.include({ status: 'False', reason: 'QuotaExceeded' });
    const admitted = planCapture(fresh, pods.map((p) => CachedPod.from(p)), NOW, {}, { captures: [fresh], quota: quota(1) }).status;
    expect(admitted.targets).to.deep.equal([{ pod: 'web', node: NODE, ip: '10.0.0.5' }]);
    expect((admitted.conditions as Array<{ type: string; status: string }>).find((c) => c.type === 'QuotaReserved')?.status).to.equal('True');
  });

  it("surfaces the agents' reports: pods a node quota holds back (Ready=False, Queued) and targets a node refused (TargetsVerified=False)", function () {
    const pods = [pod('shop', 'web', '10.0.0.5')];
    const c = capture('a', { reserved: true, phase: 'Queued' });
    c.status = {
      ...c.status,
      files: [{ node: NODE, state: 'Scheduled', notCaptured: [{ pod: 'web', ip: '10.0.0.5', reason: 'QuotaExceeded', message: 'node limit: 12 concurrent pod captures (--capture-max-concurrent); 12 running' }] }],
    } as PacketCapture['status'];
    const status = planCapture(c, pods.map((p) => CachedPod.from(p)), NOW, {}, { captures: [c], quota: quota(5) }).status;
    expect(status.phase).to.equal('Queued');
    const ready = (status.conditions as Array<{ type: string; status: string; reason: string; message: string }>).find((x) => x.type === 'Ready');
    expect(ready).to.include({ status: 'False', reason: 'QuotaExceeded', message: 'node node-a: pod web: node limit: 12 concurrent pod captures (--capture-max-concurrent); 12 running' });
    c.status = { ...c.status, files: [{ node: NODE, state: 'Error', notCaptured: [{ pod: 'intruder', ip: '10.0.0.9', reason: 'TargetNotOwned', message: 'IP 10.0.0.9: no pod shop/intruder on node node-a' }] }] } as PacketCapture['status'];
    const verified = (planCapture(c, pods.map((p) => CachedPod.from(p)), NOW, {}, { captures: [c], quota: quota(5) }).status.conditions as Array<{ type: string; status: string; reason: string; message: string }>).find((x) => x.type === 'TargetsVerified');
    expect(verified).to.include({ status: 'False', reason: 'TargetNotOwned', message: 'not captured: node node-a: pod intruder: IP 10.0.0.9: no pod shop/intruder on node node-a' });
  });
});

describe('capture tenancy: how wide one capture may be', function () {
  const ready = (status: Record<string, unknown>) => (status.conditions as Array<{ type: string; status: string; reason: string; message: string }>).find((c) => c.type === 'Ready');
  const podsOn = (nodes: number, perNode = 1) =>
    Array.from({ length: nodes * perNode }, (_, i) => CachedPod.from(pod('shop', `web-${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, { node: `node-${i % nodes}` })));

  it('captures pods on up to --capture-max-nodes nodes, and refuses a wider selector whole, saying how wide it is', function () {
    const within = planCapture(capture('wide'), podsOn(3), NOW, { maxNodes: 3 }).status;
    expect(within.podCount).to.equal(3);
    const over = planCapture(capture('wide'), podsOn(4, 2), NOW, { maxNodes: 3 }).status;
    expect(over).to.include({ phase: 'Failed', podCount: 0 });
    expect(over.targets).to.deep.equal([]);
    expect(ready(over)).to.include({ status: 'False', reason: 'ExceedsClusterLimit', message: 'spec.selector selects 8 pods on 4 nodes; a capture spans at most 3 nodes (controller flag --capture-max-nodes): narrow the selector' });
  });

  it('defaults to 500 nodes, and refuses more pods than status.targets holds', function () {
    expect(planCapture(capture('wide'), podsOn(500), NOW).status.podCount).to.equal(500);
    expect(ready(planCapture(capture('wide'), podsOn(501), NOW).status)).to.include({ reason: 'ExceedsClusterLimit' });
    const many = planCapture(capture('many'), podsOn(10, 501), NOW, { maxNodes: 100 }).status;
    expect(ready(many)?.message).to.equal('spec.selector selects 5010 pods; a capture takes at most 5000: narrow the selector');
  });

  it('spaces each node\'s counter updates by the nodes the capture spans, so all of them together write at most 5 a second', function () {
    const spanning = (nodes: number) => ({ ...capture('c'), status: { targets: Array.from({ length: nodes * 2 }, (_, i) => ({ pod: `p${i}`, node: `n${i % nodes}`, ip: '10.0.0.1' })) } }) as unknown as PacketCapture;
    expect(counterInterval(spanning(1))).to.equal(2_000);
    expect(counterInterval(spanning(10))).to.equal(2_000);
    expect(counterInterval(spanning(500))).to.equal(100_000);
    for (const nodes of [50, 500]) expect(nodes / (counterInterval(spanning(nodes)) / 1000)).to.be.at.most(5);
  });
});
