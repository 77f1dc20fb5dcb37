// The agent's path from drops to the controller: aggregation, the bounded queue with its checkpoint
// marks, backoff, and the sender against a real HTTPS server (self-signed certificate) that answers
// 202, 503, 401 and 403 as the controller's intake does.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AggregatedDrop, DropBatch, PacketDrop } from '../../src/apis/drops.js';
import { DropAggregator } from '../../src/nodeagent/droptail/aggregator.js';
import { Backoff } from '../../src/util/backoff.js';
import { DropBatchClient } from '../../src/nodeagent/droptail/client.js';
import { DropQueue, type CheckpointMark } from '../../src/nodeagent/droptail/queue.js';
import { DropSender } from '../../src/nodeagent/droptail/sender.js';

function drop(over: Partial<PacketDrop> = {}): PacketDrop {
  return { time: '2026-11-23T01:00:00.000Z', timeSource: 'nflog', prefix: 'nwtest:', family: 'ipv4', src: '10.244.1.1', dst: '10.244.1.2', protocol: 'UDP', srcPort: 40000, dstPort: 53, ...over };
}

function aggregated(dst: string, count = 1): AggregatedDrop {
  const d = drop({ dst });
  return { drop: d, count, firstSeen: d.time, lastSeen: d.time, source: 'file' };
}

/** A mark whose commit records its label in `log`. */
function mark(label: string, log: string[]): CheckpointMark {
  return new Map([['src', () => Promise.resolve(void log.push(label))]]);
}

describe('droptail agent: aggregation', () => {
  it('counts identical drops (source ports differ) as one entry and keeps distinct ones apart', () => {
    const agg = new DropAggregator();
    for (let i = 0; i < 5; i++) agg.add(drop({ srcPort: 40000 + i, time: `2026-11-23T01:00:0${i}.000Z` }), 'nflog');
    agg.add(drop({ dstPort: 54 }), 'nflog');
    agg.add(drop(), 'journal');
    const out = agg.flush();
    expect(out.map((e) => [e.source, e.drop.dstPort, e.count])).to.deep.equal([
      ['nflog', 53, 5],
      ['nflog', 54, 1],
      ['journal', 53, 1],
    ]);
    expect(out[0]).to.include({ firstSeen: '2026-11-23T01:00:00.000Z', lastSeen: '2026-11-23T01:00:04.000Z' });
    expect(agg.flush()).to.deep.equal([]);
  });

  it('asks for an early flush once it holds maxKeys distinct drops', () => {
    const agg = new DropAggregator({ maxKeys: 3 });
    expect(agg.add(drop({ dst: '10.244.0.1' }), 'file')).to.equal(false);
    expect(agg.add(drop({ dst: '10.244.0.1' }), 'file')).to.equal(false);
    expect(agg.add(drop({ dst: '10.244.0.2' }), 'file')).to.equal(false);
    expect(agg.add(drop({ dst: '10.244.0.3' }), 'file')).to.equal(true);
    expect(agg.size).to.equal(3);
  });
});

describe('droptail agent: bounded queue', () => {
  it('sheds the oldest drops past maxDrops and reports their packet counts', () => {
    const queue = new DropQueue({ maxDrops: 3 });
    const shed = queue.push([aggregated('10.244.0.1', 7), aggregated('10.244.0.2', 2), aggregated('10.244.0.3'), aggregated('10.244.0.4'), aggregated('10.244.0.5')]);
    expect(shed).to.deep.equal({ entries: 2, drops: 9 });
    expect(queue.drops).to.equal(3);
    expect(queue.take(10, 1 << 20)!.drops.map((d) => d.drop.dst)).to.deep.equal(['10.244.0.3', '10.244.0.4', '10.244.0.5']);
  });

  it('sheds by bytes as well', () => {
    const queue = new DropQueue({ maxDrops: 1000, maxBytes: 2048 });
    const shed = queue.push(Array.from({ length: 20 }, (_, i) => aggregated(`10.244.0.${i}`)));
    expect(shed.entries).to.be.greaterThan(0);
    expect(queue.bytes).to.be.at.most(2048);
    expect(queue.take(100, 1 << 20)!.drops.at(-1)!.drop.dst).to.equal('10.244.0.19');
  });

  it('commits a checkpoint mark only when everything ahead of it has been settled', () => {
    const committed: string[] = [];
    const queue = new DropQueue({}, (m) => void [...m.values()].forEach((fn) => void fn()));
    queue.push([aggregated('10.244.0.1')], mark('after-1', committed));
    queue.push([aggregated('10.244.0.2')], mark('after-2', committed));
    const first = queue.take(1, 1 << 20)!;
    // a window without drops while the first batch is in flight: its mark must wait
    queue.push([], mark('idle', committed));
    expect(committed).to.deep.equal([]);
    queue.putBack(first);
    expect(committed).to.deep.equal([]);
    const again = queue.take(10, 1 << 20)!;
    expect(again.drops).to.have.length(2);
    queue.settle(again);
    // in queue order; 'idle' superseded 'after-2' (adjacent marks of one source merge, the later wins)
    expect(committed).to.deep.equal(['after-1', 'idle']);
  });

  it('commits marks passed while shedding, and at once when nothing is queued', () => {
    const committed: string[] = [];
    const queue = new DropQueue({ maxDrops: 1 }, (m) => void [...m.values()].forEach((fn) => void fn()));
    queue.push([aggregated('10.244.0.1')], mark('a', committed));
    expect(committed).to.deep.equal([]);
    queue.push([aggregated('10.244.0.2')], mark('b', committed));
    expect(committed).to.deep.equal(['a']); // drop 1 was shed: its mark is free
    queue.settle(queue.take(10, 1 << 20)!);
    expect(committed).to.deep.equal(['a', 'b']);
    queue.push([], mark('c', committed));
    expect(committed).to.deep.equal(['a', 'b', 'c']);
  });
});

describe('droptail agent: backoff', () => {
  it('doubles its ceiling per failure up to the maximum, with full jitter below it', () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).to.deep.equal([100, 200, 400, 800, 1000, 1000]);
    const bottom = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect([1, 2, 3].map(() => bottom.next())).to.deep.equal([0, 0, 0]);
    const middle = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.5 });
    expect([1, 2, 3, 4, 5].map(() => middle.next())).to.deep.equal([50, 100, 200, 400, 500]);
    top.reset();
    expect(top.next()).to.equal(100);
  });
});

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** A real HTTPS intake: records every request and answers from a script (the last answer repeats). */
class FakeIntake {
  readonly received: Array<{ auth: string | undefined; batch: DropBatch }> = [];
  connections = 0;
  answers: Answer[] = [];
  private server: Server | undefined;

  constructor(private readonly tls: { key: Buffer; cert: Buffer }) {}

  async start(port = 0): Promise<string> {
    this.server = createServer(this.tls, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ auth: req.headers.authorization, batch: JSON.parse(Buffer.concat(chunks).toString('utf8')) as DropBatch });
        const answer = this.answers.length > 1 ? this.answers.shift()! : (this.answers[0] ?? { status: 202 });
        const text = JSON.stringify(answer.body ?? { accepted: 1 });
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end(text);
      });
    });
    this.server.on('secureConnection', () => (this.connections += 1));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}/droptail/unit/drops`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe('droptail agent: sender against a real HTTPS server', function () {
  let dir: string;
  let tls: { key: Buffer; cert: Buffer };
  let caFile: string;
  let intake: FakeIntake;
  let url: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nw-droptail-sender-'));
    caFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', caFile], { stdio: 'ignore' });
    tls = { key: readFileSync(keyFile), cert: readFileSync(caFile) };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    intake = new FakeIntake(tls);
    url = await intake.start();
  });
  afterEach(() => intake.stop());

  function sender(queue: DropQueue, errors: Array<string | undefined> = []): DropSender {
    const poster = new DropBatchClient({ url, caFile, token: () => Promise.resolve('token-123') });
    return new DropSender({ name: 'unit', node: 'node-u', queue, poster, onError: (e) => errors.push(e), retryBackoff: { initialMs: 50, maxMs: 200 }, refusedBackoff: { initialMs: 5_000 } });
  }

  it('POSTs a DropBatch with the bearer token; a 202 empties the queue', async () => {
    const queue = new DropQueue();
    const s = sender(queue);
    s.enqueue([aggregated('10.244.0.1', 3), aggregated('10.244.0.2')]);
    expect(await s.sendOnce()).to.equal(0);
    expect(queue.drops).to.equal(0);
    expect(intake.received).to.have.length(1);
    const { auth, batch } = intake.received[0]!;
    expect(auth).to.equal('Bearer token-123');
    expect(batch).to.include({ node: 'node-u', sequence: 1, shedSinceLastBatch: 0 });
    expect(batch.drops.map((d) => [d.drop.dst, d.count])).to.deep.equal([['10.244.0.1', 3], ['10.244.0.2', 1]]);
    expect(Date.parse(batch.sentAt)).to.be.closeTo(Date.now(), 10_000);
  });

  it('retries a 503 (standby replica) on a new connection, honouring Retry-After, and keeps the batch number', async () => {
    intake.answers = [{ status: 503, headers: { 'retry-after': '0' }, body: { message: 'not the leader' } }, { status: 202 }];
    const queue = new DropQueue();
    const errors: Array<string | undefined> = [];
    const s = sender(queue, errors);
    s.enqueue([aggregated('10.244.0.1')]);
    const delay = await s.sendOnce();
    expect(delay).to.be.within(25, 200);
    expect(queue.drops).to.equal(1);
    expect(s.error).to.equal('controller answered 503: not the leader');
    expect(await s.sendOnce()).to.equal(0);
    expect(queue.drops).to.equal(0);
    expect(intake.connections).to.equal(2);
    expect(intake.received.map((r) => r.batch.sequence)).to.deep.equal([1, 1]);
    expect(errors).to.deep.equal(['controller answered 503: not the leader', undefined]);
  });

  for (const status of [401, 403]) {
    it(`reports a ${status} with the controller's reason and backs off for seconds, keeping the drops`, async () => {
      intake.answers = [{ status, body: { status: 'Failure', code: status, message: `refused with ${status}: agent may not create droptails/drops` } }];
      const queue = new DropQueue();
      const s = sender(queue);
      s.enqueue([aggregated('10.244.0.1')]);
      const delay = await s.sendOnce();
      expect(delay).to.be.at.least(2_500);
      expect(s.error).to.equal(`controller answered ${status}: refused with ${status}: agent may not create droptails/drops`);
      expect(queue.drops).to.equal(1);
      expect(intake.received).to.have.length(1);
    });
  }

  it('gives up a batch the controller refuses as malformed (400) instead of retrying it', async () => {
    intake.answers = [{ status: 400, body: { message: 'drops[0].count: must be at least 1' } }];
    const queue = new DropQueue();
    const s = sender(queue);
    s.enqueue([aggregated('10.244.0.1')]);
    expect(await s.sendOnce()).to.equal(0);
    expect(queue.drops).to.equal(0);
    expect(s.error).to.contain('400: drops[0].count');
  });

  it('while the controller is unreachable, sheds the oldest past the bound and reports them in the next batch', async () => {
    const port = Number(new URL(url).port);
    await intake.stop();
    const queue = new DropQueue({ maxDrops: 10 });
    const s = sender(queue);
    s.enqueue(Array.from({ length: 5 }, (_, i) => aggregated(`10.244.0.${i}`, 2)));
    expect(await s.sendOnce()).to.be.greaterThan(0);
    expect(s.error).to.match(/controller unreachable at https:\/\/127\.0\.0\.1:\d+\/droptail\/unit\/drops: .*ECONNREFUSED/);
    s.enqueue(Array.from({ length: 20 }, (_, i) => aggregated(`10.244.1.${i}`, 1)));
    expect(queue.drops).to.equal(10);
    expect(s.shed).to.equal(5 * 2 + 10);

    intake = new FakeIntake(tls);
    await intake.start(port);
    expect(await s.sendOnce()).to.equal(0);
    const batch = intake.received[0]!.batch;
    // batch 1 never arrived (its drops were shed): the controller sees the gap in the numbers
    expect(batch.sequence).to.equal(2);
    expect(batch.shedSinceLastBatch).to.equal(20);
    expect(batch.drops.map((d) => d.drop.dst)).to.deep.equal(Array.from({ length: 10 }, (_, i) => `10.244.1.${10 + i}`));
    s.enqueue([aggregated('10.244.2.1')]);
    await s.sendOnce();
    expect(intake.received[1]!.batch.shedSinceLastBatch).to.equal(0);
    expect(intake.received[1]!.batch.sequence).to.equal(3);
  });
});
