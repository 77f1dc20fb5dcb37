// Watch-list is given up for good only where the server does not offer it. Found on the real node:
// the agent started seconds after `kubectl apply -k config/` made the CRDs, the API server answered
// its first watch-list of droptails with 429 and Retry-After: 1 (the new resource's watch cache was
// still initializing), and the informer listed in pages for the rest of its life. Now a 429, a 5xx
// or a cut stream is tried again after the Retry-After or the backoff, as client-go's reflector
// does; a refusal that says "not here" (422 with the WatchList feature off, 400, 403, 501, a plain
// list for an answer) still switches to paginated lists, once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { KubernetesObject } from '@kubernetes/client-node';
import { customResourceInformer, type Informer, type ListVia } from '../../src/runtime/informer.js';
import { registry } from '../../src/runtime/metrics.js';
import { watchListAll, WatchListFailed, WatchListRetry, WatchListUnsupported } from '../../src/runtime/watchlist.js';
import { kubeConfigFor } from './support/fakeapi.js';

const PATH = '/apis/x/v1/things';
const THINGS = { group: 'x', version: 'v1', kind: 'Thing', plural: 'things', namespaced: false };

/** What the fake server does with one watch-list request. */
type WatchListAnswer =
  | { status: number; retryAfter?: string; reason?: string; message?: string }
  | 'stream'
  | 'cut' // some events, then the connection is reset before the bookmark
  | 'plain-list' // 200 with a List, as a server that ignores the watch-list parameters
  | 'silent'; // 200, then nothing

const thing = (i: number): KubernetesObject => ({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: `t${i}`, resourceVersion: String(10 + i) } });

class WatchListApi {
  objects = [thing(0), thing(1), thing(2)];
  /** Answers to the next watch-list requests, in order; 'stream' once they are used up. */
  script: WatchListAnswer[] = [];
  watchListAt: number[] = [];
  lists = 0;
  /** Plain watches end with a 410 ERROR event, so the informer re-lists. */
  endWatches = false;
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = { 'content-type': 'application/json' };
    const list = { apiVersion: 'x/v1', kind: 'ThingList', metadata: { resourceVersion: '100' }, items: this.objects };
    if (url.searchParams.get('watch') === 'true' && url.searchParams.get('sendInitialEvents') === 'true') {
      this.watchListAt.push(Date.now());
      const answer = this.script.shift() ?? 'stream';
      if (typeof answer === 'object') {
        const headers: Record<string, string> = { ...json, ...(answer.retryAfter ? { 'retry-after': answer.retryAfter } : {}) };
        res.writeHead(answer.status, headers).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: answer.status, reason: answer.reason, message: answer.message ?? 'no' }));
        return;
      }
      if (answer === 'plain-list') {
        res.writeHead(200, json).end(JSON.stringify(list));
        return;
      }
      res.writeHead(200, json);
      if (answer === 'silent') return;
      for (const object of this.objects) res.write(JSON.stringify({ type: 'ADDED', object }) + '\n');
      if (answer === 'cut') {
        setTimeout(() => res.destroy(), 20);
        return;
      }
      res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Thing', apiVersion: 'x/v1', metadata: { resourceVersion: '100', annotations: { 'k8s.io/initial-events-end': 'true' } } } }) + '\n');
      return; // stays open, as a real watch does
    }
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, json);
      if (this.endWatches) res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }) + '\n');
      return;
    }
    this.lists++;
    res.writeHead(200, json).end(JSON.stringify(list));
  }
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function listsMetric(informer: string, via: ListVia): Promise<number> {
  const metric = (await registry.getSingleMetric('netwarden_informer_lists_total')?.get())?.values ?? [];
  return metric.find((v) => v.labels.informer === informer && v.labels.via === via)?.value ?? 0;
}

describe('informer: watch-list after a 429 and other answers', () => {
  let api: WatchListApi;
  let inf: Informer<KubernetesObject> | undefined;
  let via: ListVia[];
  const start = async (): Promise<void> => {
    inf = customResourceInformer(kubeConfigFor(api.port), THINGS, { onList: (v) => via.push(v) });
    await inf.start();
  };

  beforeEach(async () => {
    api = new WatchListApi();
    await api.listen();
    via = [];
  });
  afterEach(async () => {
    await inf?.stop();
    inf = undefined;
    await api.close();
  });

  it('waits out the Retry-After of a 429 and syncs by watch-list, not by pages; a later re-list is by watch-list too', async () => {
    api.script = [{ status: 429, retryAfter: '1', reason: 'TooManyRequests', message: 'storage is (re)initializing' }];
    api.endWatches = true;
    const before = await listsMetric('things', 'watch-list');
    await start();
    expect(via[0]).to.equal('watch-list');
    expect(api.lists).to.equal(0);
    expect(inf!.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['t0', 't1', 't2']);
    // The restart backoff alone would have come back within 500 ms; the server asked for 1 s.
    expect(api.watchListAt[1] - api.watchListAt[0]).to.be.greaterThanOrEqual(950);
    // Each plain watch ends with 410: the re-lists ask for watch-list again.
    await until(() => via.length >= 3);
    expect(via.slice(0, 3)).to.deep.equal(['watch-list', 'watch-list', 'watch-list']);
    expect(api.lists).to.equal(0);
    expect((await listsMetric('things', 'watch-list')) - before).to.be.greaterThanOrEqual(3);
  });

  it('tries watch-list again after a 503 and after a stream cut before its bookmark', async () => {
    api.script = [{ status: 503, message: 'the server is shutting down' }, 'cut'];
    await start();
    expect(via).to.deep.equal(['watch-list']);
    expect(api.watchListAt.length).to.equal(3);
    expect(api.lists).to.equal(0);
  });

  for (const [answer, label] of [
    [{ status: 422, reason: 'Invalid', message: 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled' }, '422 (WatchList off)'],
    [{ status: 400, reason: 'BadRequest' }, '400'],
    [{ status: 403, reason: 'Forbidden' }, '403'],
    [{ status: 501, reason: 'NotImplemented' }, '501'],
    ['plain-list', 'a plain list for an answer'],
  ] as const) {
    it(`lists in pages for good where the server does not offer watch-list: ${label}`, async () => {
      api.script = [answer];
      api.endWatches = true;
      await start();
      expect(via[0]).to.equal('pages');
      expect(inf!.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['t0', 't1', 't2']);
      await until(() => via.length >= 3);
      expect(via.slice(0, 3)).to.deep.equal(['pages', 'pages', 'pages']);
      expect(api.watchListAt.length).to.equal(1);
    });
  }

  it('lists in pages once after another refusal (404) and tries watch-list again at the next list', async () => {
    api.script = [{ status: 404, reason: 'NotFound', message: 'the server could not find the requested resource' }];
    api.endWatches = true;
    await start();
    expect(via[0]).to.equal('pages');
    await until(() => via.length >= 2);
    expect(via.slice(0, 2)).to.deep.equal(['pages', 'watch-list']);
    expect(api.watchListAt.length).to.be.greaterThanOrEqual(2);
  });
});

describe('watchListAll: what each failure is', () => {
  let api: WatchListApi;
  beforeEach(async () => {
    api = new WatchListApi();
    await api.listen();
  });
  afterEach(() => api.close());

  const attempt = async (answer: WatchListAnswer, inactivityTimeoutMs?: number): Promise<unknown> => {
    api.script = [answer];
    return watchListAll<KubernetesObject>(kubeConfigFor(api.port), PATH, (o) => o, { inactivityTimeoutMs }).then(
      () => {
        throw new Error('watch-list succeeded');
      },
      (err: unknown) => err,
    );
  };

  it('a 429 is "retry", with the Retry-After in ms and the server\'s message', async () => {
    const err = await attempt({ status: 429, retryAfter: '2', reason: 'TooManyRequests', message: 'storage is (re)initializing' });
    expect(err).to.be.instanceOf(WatchListRetry);
    expect((err as WatchListRetry).retryAfterMs).to.equal(2000);
    expect((err as WatchListRetry).statusCode).to.equal(429);
    expect((err as Error).message).to.contain('HTTP 429: storage is (re)initializing');
  });

  it('an unreachable server is "retry"; a stream silent before its bookmark is neither: pages this time', async () => {
    expect(await attempt('silent', 150)).to.be.instanceOf(WatchListFailed).with.property('message').that.contains('nothing received for 150 ms');
    const port = api.port;
    await api.close();
    api = new WatchListApi(); // afterEach closes this one
    await api.listen();
    const err = await watchListAll<KubernetesObject>(kubeConfigFor(port), PATH, (o) => o).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(WatchListRetry).with.property('message').that.contains('ECONNREFUSED');
  });

  it('a 404 is neither: pages this time', async () => {
    const err = await attempt({ status: 404 });
    expect(err).to.be.instanceOf(WatchListFailed);
    expect(err).to.not.be.instanceOf(WatchListUnsupported);
  });

  it('a plain list is "not offered"', async () => {
    expect(await attempt('plain-list')).to.be.instanceOf(WatchListUnsupported).with.property('statusCode', 200);
  });
});
