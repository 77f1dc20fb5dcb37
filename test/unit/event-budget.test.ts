// The budget of the controller's drop Event writes (src/reconcilers/droptail/budget.ts): a global
// token bucket, a per-Pod spam filter, and the aggregates that what is over budget folds into.
import { expect } from 'chai';
import type { DropTail } from '../../src/apis/droptail.js';
import { EventBudget, type Fold, type FoldInput } from '../../src/reconcilers/droptail/budget.js';
import { aggregateMessage } from '../../src/reconcilers/droptail/events.js';
import { eventsSuppressed } from '../../src/reconcilers/droptail/metrics.js';
import { DropStats } from '../../src/reconcilers/droptail/stats.js';
import { TokenBucket } from '../../src/util/tokenbucket.js';

const T0 = Date.parse('2026-12-02T05:00:00.000Z');

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = T0;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** One drop on `pod` in DropTail "dt"; the sample is its number, to see which one was last. */
function input(pod: string, n: number, packets = 1, at = T0): FoldInput<number> {
  const time = new Date(at).toISOString();
  return { pod: `ns/${pod}`, key: `dt|ns/${pod}`, owner: 'dt', packets, firstSeen: time, lastSeen: time, sample: n };
}

async function suppressed(reason: string): Promise<number> {
  return (await eventsSuppressed.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('event budget: global token bucket', function () {
  it('lets a burst through at once, then folds the rest, counted by reason', async function () {
    const c = clock();
    const budget = new EventBudget<number>({ qps: 10, burst: 50, podQps: 1, podBurst: 1000, now: c.now });
    const before = await suppressed('global_budget');
    const admitted = Array.from({ length: 80 }, (_, i) => budget.admit(input(`p${i}`, i))).filter(Boolean).length;
    expect(admitted).to.equal(50);
    expect((await suppressed('global_budget')) - before).to.equal(30);
    expect(budget.pendingCount).to.equal(30);
  });

  it('refills at qps; the backlog of aggregates is written before new pairs', function () {
    const c = clock();
    const budget = new EventBudget<number>({ qps: 10, burst: 5, podQps: 1, podBurst: 1000, now: c.now });
    for (let i = 0; i < 5; i++) expect(budget.admit(input(`p${i}`, i))).to.equal(true);
    expect(budget.admit(input('late', 5))).to.equal(false);
    // Waiting for a token: a new Pod's drop folds behind it.
    expect(budget.admit(input('other', 6))).to.equal(false);
    expect(budget.takeDue()).to.deep.equal([]);
    c.advance(100); // one token
    expect(budget.takeDue().map((f) => f.last)).to.deep.equal([5]);
    c.advance(100);
    expect(budget.takeDue().map((f) => f.last)).to.deep.equal([6]);
    // Backlog written: new drops are admitted again as tokens come.
    c.advance(300);
    expect([0, 1, 2, 3].map((i) => budget.admit(input(`q${i}`, i)))).to.deep.equal([true, true, true, false]);
  });

  it('never lets more writes through than burst + qps * t, aggregates included, and loses no drop', function () {
    const c = clock();
    const qps = 10;
    const burst = 50;
    const budget = new EventBudget<number>({ qps, burst, podQps: 1 / 300, podBurst: 25, foldIntervalMs: 10_000, now: c.now });
    let writes = 0;
    let admittedDrops = 0;
    let foldedDrops = 0;
    let offered = 0;
    const seconds = 60;
    // 5,000 drops a second on 300 Pods, aggregates looked at every 250 ms.
    for (let tick = 0; tick < seconds * 4; tick++) {
      for (let k = 0; k < 1250; k++, offered++) {
        if (budget.admit(input(`p${(offered * 7919) % 300}`, offered))) {
          writes++;
          admittedDrops++;
        }
      }
      for (const fold of budget.takeDue()) {
        writes++;
        foldedDrops += fold.drops;
      }
      c.advance(250);
    }
    const pending = drainPending(budget, c);
    expect(writes).to.be.at.most(burst + qps * seconds);
    expect(writes).to.be.at.least(qps * seconds * 0.9); // the budget is used, not wasted
    expect(admittedDrops + foldedDrops + pending).to.equal(offered);
  });
});

/** Drops still pending after a long quiet time (each aggregate written once). */
function drainPending(budget: EventBudget<number>, c: { advance: (ms: number) => void }): number {
  let drops = 0;
  for (let i = 0; i < 1000 && budget.pendingCount > 0; i++) {
    c.advance(1000);
    for (const fold of budget.takeDue()) drops += fold.drops;
  }
  return drops;
}

describe('event budget: per-Pod spam filter', function () {
  it('stops one noisy Pod at its burst while the others still get their Events', async function () {
    const c = clock();
    const budget = new EventBudget<number>({ qps: 10, burst: 50, podQps: 1 / 300, podBurst: 25, now: c.now });
    const before = await suppressed('pod_budget');
    const noisy = Array.from({ length: 40 }, (_, i) => budget.admit(input('noisy', i))).filter(Boolean).length;
    expect(noisy).to.equal(25);
    expect((await suppressed('pod_budget')) - before).to.equal(15);
    expect(Array.from({ length: 20 }, (_, i) => budget.admit(input(`quiet${i}`, i))).every(Boolean)).to.equal(true);
    // The noisy Pod refills at 1/300 s: one more write after five minutes, not before.
    budget.takeDue();
    c.advance(299_000);
    expect(budget.admit(input('noisy', 100))).to.equal(false);
    budget.takeDue();
    c.advance(301_000);
    budget.takeDue();
    expect(budget.admit(input('noisy', 101))).to.equal(true);
  });

  it('writes a Pod\'s aggregate at most once per fold interval', function () {
    const c = clock();
    const budget = new EventBudget<number>({ qps: 100, burst: 100, podQps: 1 / 300, podBurst: 1, foldIntervalMs: 10_000, now: c.now });
    expect(budget.admit(input('noisy', 0))).to.equal(true);
    budget.admit(input('noisy', 1));
    expect(budget.takeDue()).to.have.length(1);
    for (let i = 2; i < 10; i++) budget.admit(input('noisy', i));
    c.advance(9_999);
    expect(budget.takeDue()).to.deep.equal([]);
    c.advance(1);
    expect(budget.takeDue().map((f) => [f.drops, f.last])).to.deep.equal([[8, 9]]);
  });
});

describe('event budget: aggregates', function () {
  it('adds up drops and packets, widens the times, keeps the last drop; a failed write goes back merged', function () {
    const c = clock();
    const budget = new EventBudget<number>({ qps: 1, burst: 1, podQps: 1, podBurst: 1000, now: c.now });
    budget.admit(input('a', 0));
    budget.admit(input('a', 1, 3, T0 + 2000));
    budget.admit(input('a', 2, 4, T0 + 1000));
    c.advance(1000);
    const [fold] = budget.takeDue() as [Fold<number>];
    expect({ drops: fold.drops, packets: fold.packets, reason: fold.reason, last: fold.last }).to.deep.equal({ drops: 2, packets: 7, reason: 'global_budget', last: 2 });
    expect([fold.firstSeen, fold.lastSeen]).to.deep.equal([new Date(T0 + 1000).toISOString(), new Date(T0 + 2000).toISOString()]);
    budget.admit(input('a', 3, 5, T0 + 3000));
    budget.restore(fold);
    c.advance(20_000);
    const [again] = budget.takeDue() as [Fold<number>];
    expect([again.drops, again.packets, again.last, again.lastSeen]).to.deep.equal([3, 12, 3, new Date(T0 + 3000).toISOString()]);
  });

  it('forgets the aggregates of a deleted DropTail', function () {
    const budget = new EventBudget<number>({ qps: 1, burst: 1, podQps: 1, podBurst: 10, now: () => T0 });
    budget.admit(input('a', 0));
    budget.admit(input('a', 1));
    expect(budget.pendingCount).to.equal(1);
    budget.forget('dt');
    expect(budget.pendingCount).to.equal(0);
  });

  it('says in the Event what was folded, the way client-go\'s aggregator starts it', function () {
    expect(aggregateMessage(4210, 5000, 'Packet dropped when sending traffic to unknown (IP: 198.18.0.1, UDP/53)')).to.equal(
      '(combined from similar events): 4210 drops (5000 packets) on this Pod were over the event budget and are counted here, not in Events of their own; the last: Packet dropped when sending traffic to unknown (IP: 198.18.0.1, UDP/53)',
    );
  });

  it('counts suppressed Events in status, continuing from the stored number after a restart', function () {
    const stats = new DropStats({ publishIntervalMs: 0 });
    const stored = { apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'dt', uid: 'u1' }, spec: {}, status: { eventsSuppressed: 40 } } as unknown as DropTail;
    stats.suppressed(stored, 2);
    expect(stats.statusFields(stored, 5).fields.eventsSuppressed).to.equal(42);
    stats.forget('dt');
  });
});

describe('TokenBucket.hasToken', function () {
  it('tells whether take() would succeed without taking', function () {
    const bucket = new TokenBucket(1, 1, T0);
    expect(bucket.hasToken(T0)).to.equal(true);
    expect(bucket.hasToken(T0)).to.equal(true);
    expect(bucket.take(T0)).to.equal(true);
    expect(bucket.hasToken(T0 + 999)).to.equal(false);
    expect(bucket.hasToken(T0 + 1000)).to.equal(true);
  });
});
