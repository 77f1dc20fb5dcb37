// The controller's memory of node reports (src/reconcilers/nodereports): staleness, forgetting,
// the newest 10 problems, the leader's grace period and the per-object write limit; and the
// agent's reporter (src/nodeagent/report.ts): on change at most once per interval, heartbeats,
// retries, nothing after stop.
import { expect } from 'chai';
import { parseNodeReport, ReportError, type DropTailNodeReport } from '../../src/apis/nodereport.js';
import type { SendOutcome } from '../../src/nodeagent/droptail/client.js';
import { NodeReporter } from '../../src/nodeagent/report.js';
import { NodeReportStore } from '../../src/reconcilers/nodereports/store.js';
import { dropTailProblems, dropTailReportDiffers, dropTailTotals, StatusWriteLimiter, summarize } from '../../src/reconcilers/nodereports/summary.js';

const T0 = Date.parse('2026-12-02T08:00:00Z');

function report(node: string, healthy = true, extra: Partial<DropTailNodeReport> = {}): DropTailNodeReport {
  return { node, sources: [{ type: 'nflog', healthy, ...(healthy ? {} : { message: 'cannot open nflog:100: Operation not permitted' }) }], dropsSeen: 0, ...extra };
}

function newStore() {
  let now = T0;
  const changed: string[] = [];
  const store = new NodeReportStore<DropTailNodeReport>({ problemsOf: dropTailProblems, differs: dropTailReportDiffers, onChange: (n) => changed.push(n), now: () => now });
  return { store, changed, advance: (ms: number) => (now += ms), now: () => now };
}

describe('node reports: the controller store', function () {
  it('enqueues on a new node and on a change, not on a heartbeat that changes nothing', function () {
    const { store, changed, advance } = newStore();
    store.put('dt', report('n1'));
    advance(30_000);
    store.put('dt', report('n1'));
    expect(changed).to.deep.equal(['dt']);
    store.put('dt', report('n1', false));
    store.put('dt', report('n1', false, { dropsSeen: 3 }));
    expect(changed).to.deep.equal(['dt', 'dt', 'dt']);
  });

  it('counts a node silent for 3 heartbeats as unhealthy ("no report since"), forgets it after 10 minutes', function () {
    const { store, advance } = newStore();
    store.put('dt', report('quiet'));
    store.put('dt', report('busy'));
    advance(60_000);
    store.put('dt', report('busy'));
    advance(30_001); // quiet: 90 s and a bit
    let { summary } = summarize(store, store.reports('dt'));
    expect(summary).to.deep.equal({ nodeCount: 2, unhealthyNodes: 1, problems: [{ node: 'quiet', time: '2026-12-02T08:01:30Z', message: 'no report since 2026-12-02T08:00:00Z' }] });
    expect(store.nextTransitionMs('dt')).to.equal(60_000 - 1 + 1); // busy turns stale next
    // It reports again: healthy at once.
    store.put('dt', report('quiet'));
    ({ summary } = summarize(store, store.reports('dt')));
    expect(summary.unhealthyNodes).to.equal(0);
    advance(10 * 60_000 + 1);
    expect(store.reports('dt')).to.deep.equal([]);
  });

  it('forgets a node at once when it is no longer selected, and everything of a deleted object', function () {
    const { store } = newStore();
    store.put('dt', report('a'));
    store.put('dt', report('b'));
    expect(store.reports('dt', (n) => n !== 'b').map((r) => r.node)).to.deep.equal(['a']);
    expect(store.reports('dt').map((r) => r.node)).to.deep.equal(['a']);
    store.forget('dt');
    expect(store.reports('dt')).to.deep.equal([]);
  });

  it('keeps the newest 10 problems, newest first, each with the time it was first reported', function () {
    const { store, advance } = newStore();
    for (let i = 0; i < 15; i++) {
      store.put('dt', report(`n${String(i).padStart(2, '0')}`, false));
      advance(1_000);
    }
    // The same problem again keeps its first time: an unchanged state writes nothing new.
    store.put('dt', report('n00', false));
    const { summary, fresh } = summarize(store, store.reports('dt'));
    expect(fresh).to.have.length(15);
    expect(summary.nodeCount).to.equal(15);
    expect(summary.unhealthyNodes).to.equal(15);
    expect(summary.problems).to.have.length(10);
    expect(summary.problems.map((p) => p.node)).to.deep.equal(['n14', 'n13', 'n12', 'n11', 'n10', 'n09', 'n08', 'n07', 'n06', 'n05']);
    expect(summary.problems[0]).to.deep.equal({ node: 'n14', time: '2026-12-02T08:00:14Z', message: 'nflog source unhealthy: cannot open nflog:100: Operation not permitted' });
  });

  it('lists a past gap with its own time without making the node unhealthy, and sums dropsSeen and gaps', function () {
    const { store } = newStore();
    const gap = '2026-12-01T22:00:00.000Z: rotated file deleted before it was read: /var/log/kern.log.1';
    store.put('dt', { node: 'g', sources: [{ type: 'file', healthy: true, message: 'following /var/log/kern.log', gaps: 2, lastGap: gap }], dropsSeen: 5 });
    store.put('dt', { ...report('h'), dropsSeen: 7, lastError: 'controller answered 503: not the leader' });
    const entries = store.reports('dt');
    const { summary } = summarize(store, entries);
    expect(summary.unhealthyNodes).to.equal(1);
    expect(summary.problems).to.deep.equal([
      { node: 'h', time: '2026-12-02T08:00:00Z', message: 'sending drops: controller answered 503: not the leader' },
      { node: 'g', time: '2026-12-01T22:00:00Z', message: `file source skipped lines (2 gap(s)); last: ${gap}` },
    ]);
    expect(dropTailTotals(entries)).to.deep.equal({ dropsSeen: 12, gaps: 2 });
  });

  it('gives a new leader one heartbeat before a summary may drop nodes, and empties on losing the lead', function () {
    const { store, advance } = newStore();
    store.leading(true);
    expect(store.graceLeftMs()).to.equal(30_000);
    store.put('dt', report('a'));
    advance(30_000);
    expect(store.graceLeftMs()).to.equal(0);
    store.leading(false);
    expect(store.reports('dt')).to.deep.equal([]);
    store.leading(true);
    expect(store.graceLeftMs()).to.equal(30_000);
  });
});

describe('node reports: status write limit', function () {
  it('allows one write per object per 10 s', function () {
    let now = T0;
    const limiter = new StatusWriteLimiter(10_000, () => now);
    expect(limiter.waitMs('a')).to.equal(0);
    limiter.wrote('a');
    now += 4_000;
    expect(limiter.waitMs('a')).to.equal(6_000);
    expect(limiter.waitMs('b')).to.equal(0);
    now += 6_000;
    expect(limiter.waitMs('a')).to.equal(0);
    limiter.forget('a');
    expect(limiter.waitMs('a')).to.equal(0);
  });
});

describe('node reports: the wire format', function () {
  it('takes a valid report and names the first wrong field of another', function () {
    expect(parseNodeReport('droptail', JSON.stringify(report('worker-1')))).to.deep.equal(report('worker-1'));
    const bad = () => parseNodeReport('droptail', JSON.stringify({ node: 'worker-1', sources: [{ type: 'nflog', healthy: 'yes' }], dropsSeen: 0 }));
    expect(bad).to.throw(ReportError, '$.sources[0].healthy: Invalid value: "yes": must be of type boolean, not string');
    expect(() => parseNodeReport('auditforwarder', '{"node":"Bad_Name"}')).to.throw(ReportError, /^\$\.node: Invalid value/);
    expect(() => parseNodeReport('auditforwarder', '{"node":"a","extra":1}')).to.throw(ReportError, '$.extra: unknown field');
    expect(() => parseNodeReport('droptail', 'not json')).to.throw(ReportError, /^body is not JSON/);
  });
});

/** A poster that answers from a script and records what it got. */
class FakePoster {
  readonly bodies: Array<{ at: number; report: DropTailNodeReport }> = [];
  answers: SendOutcome[] = [];
  post(body: Buffer): Promise<SendOutcome> {
    this.bodies.push({ at: Date.now(), report: JSON.parse(body.toString('utf8')) as DropTailNodeReport });
    return Promise.resolve(this.answers.shift() ?? { kind: 'accepted' });
  }
  resetConnections(): void {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('node reports: the agent reporter', function () {
  this.timeout(10_000);

  it('sends a change at most once per interval, the latest state, and a heartbeat without change', async function () {
    const poster = new FakePoster();
    let current = report('n1');
    const reporter = new NodeReporter({ name: 'dt', component: 'test', poster, snapshot: () => current, minIntervalMs: 200, heartbeatMs: 600, jitter: 0, firstDelayMs: 10 });
    reporter.start();
    await sleep(50);
    expect(poster.bodies).to.have.length(1);
    // Three changes in quick succession: one report, at the next slot, with the last of them.
    for (const dropsSeen of [1, 2, 3]) {
      current = { ...current, dropsSeen };
      reporter.poke();
    }
    await sleep(100);
    expect(poster.bodies).to.have.length(1);
    await sleep(150);
    expect(poster.bodies.map((b) => b.report.dropsSeen)).to.deep.equal([0, 3]);
    expect(poster.bodies[1]!.at - poster.bodies[0]!.at).to.be.at.least(195);
    // Nothing changes: the heartbeat comes after heartbeatMs.
    await sleep(700);
    expect(poster.bodies.map((b) => b.report.dropsSeen)).to.deep.equal([0, 3, 3]);
    await reporter.stop();
  });

  it('retries a failed report with backoff and Retry-After, and sends nothing after stop', async function () {
    const poster = new FakePoster();
    poster.answers = [{ kind: 'retry', message: 'controller answered 503', retryAfterMs: 150 }, { kind: 'refused', status: 403, message: 'no create droptails/reports' }];
    const reporter = new NodeReporter({
      name: 'dt', component: 'test', poster, snapshot: () => report('n1'), minIntervalMs: 50, heartbeatMs: 10_000, firstDelayMs: 0,
      retryBackoff: { initialMs: 20, maxMs: 1_000, minMs: 10 }, refusedBackoff: { initialMs: 100, maxMs: 100, minMs: 100 }, random: () => 0,
    });
    reporter.start();
    await sleep(100);
    expect(poster.bodies).to.have.length(1); // waiting for Retry-After (150 ms), not the 10 ms backoff
    await sleep(100);
    expect(poster.bodies).to.have.length(2); // refused: 100 ms
    await sleep(150);
    expect(poster.bodies).to.have.length(3);
    expect(reporter.accepted).to.equal(1);
    await reporter.stop();
    reporter.poke();
    await sleep(200);
    expect(poster.bodies).to.have.length(3);
  });
});
