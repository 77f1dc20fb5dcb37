import { expect } from 'chai';
import { ExponentialBackoffRateLimiter, WorkQueue } from '../../src/runtime/workqueue.js';
import { backoffCeiling, backoffDelay } from '../../src/util/backoff.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  let q: WorkQueue;
  afterEach(async () => {
    await q.shutDown();
  });

  it('merges duplicate adds while a key waits', async () => {
    q = new WorkQueue({ name: 't-dedup' });
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.len()).to.equal(2);
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
    expect(q.len()).to.equal(0);
    q.done('a');
    q.done('b');
  });

  it('never hands one key to two workers; an add during processing requeues it after done', async () => {
    q = new WorkQueue({ name: 't-exclusive' });
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    q.run(async (key) => {
      expect(key).to.equal('k');
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      if (runs === 1) {
        // Added twice while being processed: marked dirty once, not handed to the idle workers.
        q.add('k');
        q.add('k');
        await sleep(30);
      }
      active--;
    }, 4);
    q.add('k');
    await sleep(100);
    expect(maxActive).to.equal(1);
    expect(runs).to.equal(2);
  });

  it('get/done: a key added while processing is not handed out before done', async () => {
    q = new WorkQueue({ name: 't-dirty' });
    q.add('x');
    const k = await q.get();
    q.add('x');
    expect(q.len()).to.equal(0);
    let second: string | undefined;
    void q.get().then((v) => (second = v));
    await sleep(10);
    expect(second).to.equal(undefined);
    q.done(k!);
    await sleep(0);
    expect(second).to.equal('x');
    q.done('x');
  });

  it('addAfter delays the add and keeps the earliest time for a key', async () => {
    q = new WorkQueue({ name: 't-after' });
    q.addAfter('d', 200);
    q.addAfter('d', 30);
    q.addAfter('d', 500);
    expect(q.len()).to.equal(0);
    await sleep(60);
    expect(q.len()).to.equal(1);
    await sleep(250);
    expect(q.len()).to.equal(1);
  });

  it('addRateLimited backs off exponentially per key and forget resets it', async () => {
    q = new WorkQueue({ name: 't-rl', baseDelayMs: 10, maxDelayMs: 1000, jitter: false });
    q.addRateLimited('r'); // 10ms
    expect(q.numRequeues('r')).to.equal(1);
    await sleep(40);
    expect(q.len()).to.equal(1);
    expect(await q.get()).to.equal('r');
    q.done('r');
    // The second failure waits twice as long: not there after 12ms, there after 40ms.
    q.addRateLimited('r'); // 20ms
    await sleep(12);
    expect(q.len()).to.equal(0);
    await sleep(30);
    expect(q.len()).to.equal(1);
    expect(await q.get()).to.equal('r');
    q.done('r');
    q.addRateLimited('r'); // 40ms
    q.addRateLimited('r'); // 80ms (earlier 40ms timer stays)
    expect(q.numRequeues('r')).to.equal(4);
    q.forget('r');
    expect(q.numRequeues('r')).to.equal(0);
    q.addRateLimited('other');
    expect(q.numRequeues('other')).to.equal(1);
  });

  it('runs N workers concurrently on different keys', async () => {
    q = new WorkQueue({ name: 't-n' });
    let active = 0;
    let maxActive = 0;
    q.run(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await sleep(40);
      active--;
    }, 3);
    for (const k of ['1', '2', '3', '4', '5']) q.add(k);
    await sleep(20);
    expect(maxActive).to.equal(3);
    expect(q.len()).to.equal(2);
    await sleep(100);
  });

  it('shutDown waits for in-flight work and ignores later adds', async () => {
    q = new WorkQueue({ name: 't-shutdown' });
    let finished = false;
    q.run(async () => {
      await sleep(80);
      finished = true;
    }, 1);
    q.add('slow');
    q.add('dropped');
    await sleep(10);
    await q.shutDown();
    expect(finished).to.equal(true);
    q.add('late');
    expect(q.len()).to.equal(0);
    expect(await q.get()).to.equal(undefined);
  });

  it('a handler error does not kill the worker', async () => {
    q = new WorkQueue({ name: 't-err' });
    const seen: string[] = [];
    q.run(async (key) => {
      seen.push(key);
      if (key === 'bad') throw new Error('boom');
    }, 1);
    q.add('bad');
    q.add('good');
    await sleep(20);
    expect(seen).to.deep.equal(['bad', 'good']);
  });
});

describe('backoff', () => {
  it('doubles from base and caps at max (client-go defaults 5ms..1000s)', () => {
    expect(backoffCeiling(0, 5, 1_000_000)).to.equal(5);
    expect(backoffCeiling(1, 5, 1_000_000)).to.equal(10);
    expect(backoffCeiling(10, 5, 1_000_000)).to.equal(5120);
    expect(backoffCeiling(30, 5, 1_000_000)).to.equal(1_000_000);
    expect(backoffCeiling(5000, 5, 1_000_000)).to.equal(1_000_000);
  });

  it('jitters over the whole window (full jitter) and never exceeds max', () => {
    expect(backoffDelay(2, 5, 1000, () => 0.5)).to.be.closeTo(10, 1e-9);
    expect(backoffDelay(2, 5, 1000, () => 0.999)).to.be.below(20);
    expect(backoffDelay(2, 5, 1000, () => 0)).to.equal(0);
    expect(backoffDelay(20, 5, 1000, () => 0.999)).to.be.below(1000);
  });

  it('rate limiter counts failures per key', () => {
    const rl = new ExponentialBackoffRateLimiter({ jitter: false });
    expect([rl.when('a'), rl.when('a'), rl.when('a')]).to.deep.equal([5, 10, 20]);
    expect(rl.when('b')).to.equal(5);
    rl.forget('a');
    expect(rl.when('a')).to.equal(5);
    const jittered = new ExponentialBackoffRateLimiter({ baseDelayMs: 100, random: () => 0.5 });
    expect(jittered.when('x')).to.equal(50);
  });
});
