// Capture retention without a cluster: the order in which the node's byte budget evicts finished
// captures' files, the budget asking for eviction before it refuses, and the controller's expiry
// times (finishedAt, filesExpireAt) and conditions from the agents' entries.
import { expect } from 'chai';
import { NodeCaptureBudget, planEviction, type DiskProbe, type EvictionCandidate } from '../../src/nodeagent/capture/budget.js';
import type { NodeCaptureLimits } from '../../src/nodeagent/capture/plan.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';
import { captureObjectKey, secretAllowsNamespace } from '../../src/apis/captureretention.js';
import { planRetention, retentionConditions } from '../../src/reconcilers/packetcapture/retention.js';
import { planCapture } from '../../src/reconcilers/packetcapture/reconciler.js';

const MIB = 1024 * 1024;

function pcap(pod: string, sequence: number, bytes: number) {
  return { pod, sequence, bytes, fileName: `${pod}_eth0_${String(sequence).padStart(5, '0')}.pcap` };
}

function candidate(key: string, finishedAt: number, files: EvictionCandidate['files']): EvictionCandidate {
  return { key, finishedAt, files };
}

describe('capture retention: which files the node budget evicts', function () {
  const old = candidate('ns/old/u1', 1000, [pcap('web', 2, 100), pcap('web', 1, 100), { pod: '', sequence: 0, bytes: 10, fileName: 'metadata-n1.txt' }, pcap('api', 1, 100)]);
  const newer = candidate('ns/newer/u2', 2000, [pcap('web', 1, 300)]);

  it('takes the oldest finished capture first, its oldest files first, and stops once enough is free', function () {
    const steps = planEviction([newer, old], 150);
    expect(steps).to.deep.equal([{ key: 'ns/old/u1', fileNames: ['api_eth0_00001.pcap', 'web_eth0_00001.pcap'], bytes: 200 }]);
  });

  it('keeps the node metadata snapshot until every pcap file of that capture went, then moves to the next capture', function () {
    const steps = planEviction([newer, old], 320);
    expect(steps.map((s) => [s.key, s.fileNames])).to.deep.equal([
      ['ns/old/u1', ['api_eth0_00001.pcap', 'web_eth0_00001.pcap', 'web_eth0_00002.pcap', 'metadata-n1.txt']],
      ['ns/newer/u2', ['web_eth0_00001.pcap']],
    ]);
  });

  it('deletes nothing when all the finished captures together would not make room', function () {
    expect(planEviction([newer, old], 611)).to.deep.equal([]);
    expect(planEviction([], 1)).to.deep.equal([]);
    expect(planEviction([old], 0)).to.deep.equal([]);
  });

  it('orders captures that finished at the same time by key, the same on every run', function () {
    const a = candidate('ns/a/u', 5, [pcap('p', 1, 10)]);
    const b = candidate('ns/b/u', 5, [pcap('p', 1, 10)]);
    expect(planEviction([b, a], 5).map((s) => s.key)).to.deep.equal(['ns/a/u']);
  });
});

class FakeDisk implements DiskProbe {
  stored = 0;
  storedBytes(): number {
    return this.stored;
  }
  space() {
    return { freeBytes: 1000 * MIB, totalBytes: 1000 * MIB };
  }
}

function budgetWith(over: Partial<NodeCaptureLimits>, disk: FakeDisk) {
  const limits: NodeCaptureLimits = { maxConcurrent: 12, ringBytes: 16 * MIB, ringBudgetBytes: 384 * MIB, maxBytes: 10 * MIB, minFreeDisk: { bytes: 0 }, ...over };
  let clock = 1_000_000;
  return new NodeCaptureBudget(limits, disk, () => undefined, () => (clock += 2000));
}

describe('capture retention: the node budget evicts before it refuses', function () {
  it('asks for exactly the bytes missing, and lets the file through once they are freed', function () {
    const disk = new FakeDisk();
    disk.stored = 9 * MIB;
    const budget = budgetWith({}, disk);
    const asked: number[] = [];
    budget.setEvictor((needed, reason) => {
      asked.push(needed);
      expect(reason).to.contain('--capture-max-bytes');
      disk.stored -= needed;
      return needed;
    });
    expect(budget.refuse(2 * MIB)).to.equal(undefined);
    expect(asked).to.deep.equal([MIB]);
  });

  it('still refuses, naming the limit, when eviction frees too little', function () {
    const disk = new FakeDisk();
    disk.stored = 9 * MIB;
    const budget = budgetWith({}, disk);
    budget.setEvictor(() => 0);
    expect(budget.refuse(2 * MIB)?.message).to.match(/node limit: 10485760 bytes of capture files \(--capture-max-bytes\)/);
  });

  it('evicts nothing with --no-capture-evict-finished', function () {
    const disk = new FakeDisk();
    disk.stored = 9 * MIB;
    const budget = budgetWith({ evictFinished: false }, disk);
    let called = false;
    budget.setEvictor(() => ((called = true), MIB));
    expect(budget.refuse(2 * MIB)?.kind).to.equal('quota');
    expect(called).to.equal(false);
  });
});

function capture(spec: Partial<PacketCapture['spec']>, status: PacketCapture['status'] = {}): PacketCapture {
  return {
    apiVersion: 'netwarden.io/v1alpha1',
    kind: 'PacketCapture',
    metadata: { name: 'pc', namespace: 'ns', uid: '11111111-2222-3333-4444-555555555555', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' as unknown as Date },
    spec: { selector: 'all()', direction: 'both', fileSizeBytes: MIB, maxFiles: 10, snapLen: 262144, includeMetadata: false, ...spec },
    status,
  } as PacketCapture;
}

describe('capture retention: when files expire', function () {
  const now = new Date('2026-01-01T01:00:00Z');

  it('counts a capture that ran to its end time from that end time, so a restarted controller agrees', function () {
    const c = capture({ endTime: '2026-01-01T00:30:00Z', ttlSecondsAfterFinished: 600 });
    const plan = planRetention(c, 'Finished', now);
    expect(plan.status.finishedAt).to.equal('2026-01-01T00:30:00Z');
    expect(plan.status.filesExpireAt).to.equal('2026-01-01T00:40:00Z');
    expect(plan.expired).to.equal(true);
  });

  it('keeps the recorded finish time, and comes back at the expiry', function () {
    const c = capture({ ttlSecondsAfterFinished: 7200 }, { finishedAt: '2026-01-01T00:50:00Z' });
    const plan = planRetention(c, 'Stopped', now);
    expect(plan.status.filesExpireAt).to.equal('2026-01-01T02:50:00Z');
    expect(plan.expired).to.equal(false);
    expect(plan.nextBoundary?.toISOString()).to.equal('2026-01-01T02:50:00.000Z');
  });

  it('has no finish time while it runs, and no expiry without a TTL', function () {
    expect(planRetention(capture({ ttlSecondsAfterFinished: 1 }, { finishedAt: '2026-01-01T00:50:00Z' }), 'Capturing', now).status.finishedAt).to.equal(undefined);
    const kept = planRetention(capture({}), 'Finished', now);
    expect(kept.status.finishedAt).to.equal('2026-01-01T01:00:00Z');
    expect(kept.status.filesExpireAt).to.equal(undefined);
    expect(kept.expired).to.equal(false);
  });

  it('waits for uploads still under way before the files go, but not past the grace', function () {
    const status = { finishedAt: '2026-01-01T00:58:00Z', files: [{ node: 'n1', uploads: { state: 'Uploading' as const, pending: 1, count: 0, bytes: 0 } }] };
    const c = capture({ ttlSecondsAfterFinished: 60, export: { s3: { bucket: 'b', forcePathStyle: false, credentialsSecretRef: { name: 's' } } } }, status);
    expect(planRetention(c, 'Finished', now).expired).to.equal(false);
    expect(planRetention(c, 'Finished', new Date('2026-01-01T01:10:00Z')).expired).to.equal(true);
  });

  it('writes finishedAt and filesExpireAt through planCapture, and the Expires column reads the latter', function () {
    const c = capture({ endTime: '2026-01-01T00:30:00Z', ttlSecondsAfterFinished: 3600 });
    const plan = planCapture(c, [], now);
    expect(plan.status.phase).to.equal('Finished');
    expect(plan.status.filesExpireAt).to.equal('2026-01-01T01:30:00Z');
    expect(plan.expired).to.equal(false);
    expect(plan.nextBoundary?.toISOString()).to.equal('2026-01-01T01:30:00.000Z');
  });
});

describe('capture retention: what the status says of uploads and evictions', function () {
  const now = new Date('2026-01-01T01:00:00Z');
  const s3 = { bucket: 'caps', prefix: '/team/', forcePathStyle: true, credentialsSecretRef: { name: 's' } };

  it('Exported=False SecretNotAllowed with the node\'s words when a node was refused', function () {
    const c = capture({ export: { s3 } }, { files: [{ node: 'n1', uploads: { state: 'Refused', message: 'Secret netwarden-system/s3 may not be used', count: 0, bytes: 0, pending: 2 } }] });
    const ready = retentionConditions(c, [], 1, now)!.find((x) => x.type === 'Exported')!;
    expect([ready.status, ready.reason, ready.message]).to.deep.equal(['False', 'SecretNotAllowed', 'node n1: Secret netwarden-system/s3 may not be used']);
  });

  it('Exported=True with the sums over the nodes once nothing is pending', function () {
    const files = [
      { node: 'n1', uploads: { state: 'Uploaded' as const, count: 2, bytes: 300, pending: 0 } },
      { node: 'n2', uploads: { state: 'Uploaded' as const, count: 1, bytes: 50, pending: 0 } },
    ];
    const c = capture({ export: { s3 } }, { files });
    const exported = retentionConditions(c, [], 1, now)!.find((x) => x.type === 'Exported')!;
    expect([exported.status, exported.message]).to.deep.equal(['True', '3 object(s), 350 bytes uploaded to s3://caps/team']);
    expect(planRetention(c, 'Capturing', now).status).to.include({ uploadedObjects: 3, uploadedBytes: 350 });
  });

  it('FilesEvicted names each node, what went and why', function () {
    const c = capture({}, { files: [{ node: 'n1', evicted: { fileNames: ['a_eth0_00001.pcap'], count: 1, bytes: 99, reason: 'to make room' } }] });
    const evicted = retentionConditions(c, [], 1, now)!.find((x) => x.type === 'FilesEvicted')!;
    expect(evicted.message).to.equal('node n1: 1 file(s), 99 bytes evicted: to make room');
  });

  it('keys objects <prefix>/<namespace>/<capture>/<node>/<file>', function () {
    expect(captureObjectKey('/team/x/', 'ns', 'pc', 'n1', 'web_eth0_00001.pcap')).to.equal('team/x/ns/pc/n1/web_eth0_00001.pcap');
    expect(captureObjectKey(undefined, 'ns', 'pc', 'n1', 'f.pcap')).to.equal('ns/pc/n1/f.pcap');
  });

  it('lets a namespace use a Secret only when its annotation names it, or "*"', function () {
    expect(secretAllowsNamespace({ 'netwarden.io/allowed-namespaces': 'team-a, team-b' }, 'team-b')).to.equal(true);
    expect(secretAllowsNamespace({ 'netwarden.io/allowed-namespaces': 'team-a' }, 'team-b')).to.equal(false);
    expect(secretAllowsNamespace({ 'netwarden.io/allowed-namespaces': '*' }, 'anything')).to.equal(true);
    expect(secretAllowsNamespace({}, 'team-a')).to.equal(false);
    expect(secretAllowsNamespace(undefined, 'team-a')).to.equal(false);
  });
});
