// The controller's drop pipeline under load: its queue is bounded in bytes (a flood is refused,
// not held), every accepted drop is still handled, and a re-sent batch counts nothing twice, with
// the dedupe ids kept in a fixed number of bytes.
import { expect } from 'chai';
import type { V1Node } from '@kubernetes/client-node';
import type { DropTail } from '../../src/apis/droptail.js';
import type { AggregatedDrop, DropBatch } from '../../src/apis/drops.js';
import { DedupeTable, idsInBytes } from '../../src/reconcilers/droptail/dedupe.js';
import type { DropEventRequest, DropEventWriter, EventOutcome } from '../../src/reconcilers/droptail/events.js';
import { IpIndex } from '../../src/reconcilers/droptail/ipindex.js';
import { DropPipeline, type PipelineDeps } from '../../src/reconcilers/droptail/pipeline.js';
import type { ReverseDns } from '../../src/reconcilers/droptail/reversedns.js';
import { DropStats } from '../../src/reconcilers/droptail/stats.js';
import type { Informer } from '../../src/runtime/informer.js';

describe('drop dedupe ids in fixed memory', function () {
  it('stays within its bytes and remembers what it was told, in place', function () {
    expect(idsInBytes(8 * 1024 * 1024)).to.be.within(200_000, (8 * 1024 * 1024) / 24);
    const table = new DedupeTable(64 * 1024);
    table.set('a', 1000, 3);
    table.set('b', 2000, 1);
    table.set('a', 3000, 5);
    expect(table.get('a')).to.deep.equal({ untilMs: 3000, count: 5 });
    expect(table.get('b')).to.deep.equal({ untilMs: 2000, count: 1 });
    expect(table.get('c')).to.equal(undefined);
    expect(table.size).to.equal(2);
  });

  it('forgets the oldest insertion when full and finds every other id through many evictions', function () {
    const table = new DedupeTable(32 * 100);
    const capacity = table.capacity;
    const ids = Array.from({ length: capacity * 7 + 3 }, (_, i) => `id-${i}-${(i * 2654435761) % 1000}`);
    ids.forEach((id, i) => table.set(id, i, i + 1));
    expect(table.size).to.equal(capacity);
    const kept = ids.slice(-capacity);
    for (const [i, id] of kept.entries()) expect(table.get(id), id).to.deep.equal({ untilMs: ids.length - capacity + i, count: ids.length - capacity + i + 1 });
    for (const id of ids.slice(0, -capacity)) expect(table.get(id), id).to.equal(undefined);
  });
});

const NOW = Date.parse('2026-12-02T08:00:00.000Z');
const DROPTAIL = { apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'all', uid: 'dt-1' }, spec: { sources: [{ type: 'nflog', group: 100 }], reverseDNS: false } } as unknown as DropTail;

function entry(i: number, count = 1): AggregatedDrop {
  const at = new Date(NOW - 1000).toISOString();
  return { drop: { time: at, timeSource: 'nflog', prefix: 'p:', family: 'ipv4', src: '10.1.0.5', dst: '203.0.113.9', protocol: 'UDP', srcPort: 40000, dstPort: 1 + i }, count, firstSeen: at, lastSeen: at, source: 'nflog' };
}

function batch(from: number, n: number): DropBatch {
  return { node: 'worker-1', sequence: from, sentAt: new Date(NOW).toISOString(), drops: Array.from({ length: n }, (_, i) => entry(from + i)), shedSinceLastBatch: 0 };
}

/** A pipeline whose Event writer records what it is asked (one Pod at 10.1.0.5 sends every drop). */
function rig(opts: ConstructorParameters<typeof DropPipeline>[1]) {
  const requests: DropEventRequest[] = [];
  const events = {
    record: async (req: DropEventRequest): Promise<EventOutcome> => {
      requests.push(req);
      await new Promise((r) => setImmediate(r));
      return 'written';
    },
    rebuild: async () => [],
    forget: () => {},
  } as unknown as DropEventWriter;
  const index = new IpIndex();
  index.setPod({ metadata: { name: 'web', namespace: 'shop', uid: 'pod-1' }, spec: { containers: [] }, status: { phase: 'Running', podIP: '10.1.0.5' } });
  const deps: PipelineDeps = {
    dropTails: { get: (name: string) => (name === 'all' ? DROPTAIL : undefined) } as unknown as Informer<DropTail>,
    nodes: { get: () => undefined } as unknown as Informer<V1Node>,
    index,
    dns: { resolve: async () => undefined } as unknown as ReverseDns,
    events,
    stats: new DropStats(),
    now: () => NOW,
  };
  return { pipeline: new DropPipeline(deps, opts), requests };
}

const bodyBytes = (b: DropBatch) => Buffer.byteLength(JSON.stringify(b));

describe('drop pipeline: bounded queue', function () {
  it('refuses a batch once its drops would go over the queue bytes, and takes it again when there is room', async function () {
    const { pipeline, requests } = rig({ maxPendingBytes: 64 * 1024, workers: 1 });
    const first = batch(0, 100);
    expect(pipeline.hasRoomFor(first.drops.length, bodyBytes(first))).to.equal(true);
    pipeline.submit('all', first);
    expect(pipeline.pendingBytes).to.be.above(100 * 200).and.below(64 * 1024);
    const big = batch(100, 300);
    expect(pipeline.hasRoomFor(big.drops.length, bodyBytes(big))).to.equal(false);
    await pipeline.idle();
    expect(pipeline.pendingBytes).to.equal(0);
    // An empty queue takes any batch the intake lets through, however large.
    expect(pipeline.hasRoomFor(big.drops.length, bodyBytes(big))).to.equal(true);
    pipeline.submit('all', big);
    await pipeline.idle();
    expect(requests.map((r) => r.count)).to.have.length(400);
    expect(new Set(requests.map((r) => r.service)).size).to.equal(400);
  });

  it('counts the bodies the intake is reading in the same budget', function () {
    const { pipeline } = rig({ maxPendingBytes: 64 * 1024 });
    expect(pipeline.hasRoomFor(0, 40 * 1024, 0), 'alone').to.equal(true);
    expect(pipeline.hasRoomFor(0, 40 * 1024, 40 * 1024), 'beside another body of 40 KiB').to.equal(false);
    expect(pipeline.hasRoomFor(0, 20 * 1024, 40 * 1024)).to.equal(true);
  });

  it('still refuses by count (maxPending)', function () {
    const { pipeline } = rig({ maxPending: 150 });
    pipeline.submit('all', batch(0, 100));
    expect(pipeline.hasRoomFor(60, 1)).to.equal(false);
    expect(pipeline.hasRoomFor(50, 1)).to.equal(true);
  });

  it('hands each accepted drop to the Event writer as sent, in order, and a re-sent batch counts only what is new', async function () {
    const { pipeline, requests } = rig({ workers: 1 });
    const sent = batch(0, 3);
    pipeline.submit('all', sent);
    await pipeline.idle();
    expect(requests.map((r) => [r.pod.name, r.direction, r.service, r.count, r.firstSeen])).to.deep.equal(sent.drops.map((d) => ['web', 'sending', `UDP/${d.drop.dstPort}`, 1, d.firstSeen]));
    // The agent did not see the 202 and sends it again, one entry having grown since.
    const resent = { ...sent, drops: [sent.drops[0]!, sent.drops[1]!, { ...sent.drops[2]!, count: 4 }] };
    pipeline.submit('all', resent);
    await pipeline.idle();
    expect(requests.slice(3).map((r) => [r.service, r.count, r.countedForId])).to.deep.equal([['UDP/3', 3, 4]]);
  });
});
