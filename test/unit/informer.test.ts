import { expect } from 'chai';
import { kubeConfigFor } from './support/fakeapi.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type KubernetesObject } from '@kubernetes/client-node';
import { Informer } from '../../src/runtime/informer.js';

// A tiny fake API server for one cluster-scoped collection: list, watch from a resourceVersion,
// 410 for versions older than the compaction point, and it can go down and come back.
class FakeApi {
  rv = 1;
  compactedBelow = 0;
  objects = new Map<string, KubernetesObject>();
  events: Array<{ rv: number; type: string; object: KubernetesObject }> = [];
  watchers = new Set<http.ServerResponse>();
  lists = 0;
  server: http.Server;
  port = 0;

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    for (const w of this.watchers) w.destroy();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  put(name: string, data: string): void {
    const type = this.objects.has(name) ? 'MODIFIED' : 'ADDED';
    const obj = { apiVersion: 'x/v1', kind: 'Thing', metadata: { name, resourceVersion: String(++this.rv) }, data } as KubernetesObject;
    this.objects.set(name, obj);
    this.record(type, obj);
  }

  remove(name: string): void {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    this.record('DELETED', { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  private record(type: string, object: KubernetesObject): void {
    const rv = Number(object.metadata!.resourceVersion);
    this.events.push({ rv, type, object });
    for (const w of this.watchers) w.write(JSON.stringify({ type, object }) + '\n');
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/apis/x/v1/things') {
      res.writeHead(404).end();
      return;
    }
    if (url.searchParams.get('watch') !== 'true') {
      this.lists++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'x/v1', kind: 'ThingList', metadata: { resourceVersion: String(this.rv) }, items: [...this.objects.values()] }));
      return;
    }
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json' });
    if (from < this.compactedBelow) {
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }) + '\n');
      return;
    }
    for (const e of this.events) if (e.rv > from) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
    this.watchers.add(res);
    res.on('close', () => this.watchers.delete(res));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('Informer against a fake API server', () => {
  let api: FakeApi;
  let inf: Informer<KubernetesObject>;
  let events: string[];

  beforeEach(async () => {
    api = new FakeApi();
    await api.listen();
    api.put('a', '1');
    api.put('b', '1');
    const kc = kubeConfigFor(api.port);
    inf = new Informer<KubernetesObject>(kc, {
      name: 'things',
      path: '/apis/x/v1/things',
      list: async () => {
        const r = await fetch(`http://127.0.0.1:${api.port}/apis/x/v1/things`);
        if (!r.ok) throw new Error(`list ${r.status}`);
        return (await r.json()) as { items: KubernetesObject[] };
      },
      minBackoffMs: 50,
      maxBackoffMs: 200,
    });
    events = [];
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, (o) => events.push(`${ev}:${o.metadata!.name}`));
  });

  afterEach(async () => {
    await inf.stop();
    await api.down();
  });

  it('start() resolves after the first list, then follows watch events', async () => {
    expect(inf.hasSynced()).to.equal(false);
    await inf.start();
    expect(inf.hasSynced()).to.equal(true);
    expect(inf.list().map((o) => o.metadata!.name).sort()).to.deep.equal(['a', 'b']);
    api.put('c', '1');
    api.put('a', '2');
    api.remove('b');
    await until(() => events.length >= 5);
    expect(events).to.deep.equal(['add:a', 'add:b', 'add:c', 'update:a', 'delete:b']);
    expect(inf.get('b')).to.equal(undefined);
  });

  it('re-lists on 410 Gone and reports a delete that happened while not watching', async () => {
    await inf.start();
    await api.down();
    api.remove('a');
    api.put('c', '1');
    api.compactedBelow = api.rv + 1; // everything before now is compacted
    await api.listen(api.port);
    await until(() => events.includes('delete:a') && events.includes('add:c'));
    expect(api.lists).to.be.greaterThan(1);
    expect(inf.list().map((o) => o.metadata!.name).sort()).to.deep.equal(['b', 'c']);
  });

  it('survives the API server being down for a while and misses nothing', async () => {
    await inf.start();
    await api.down();
    await sleep(600); // several failed reconnects: ListWatch alone would have given up
    api.put('b', '2');
    api.put('d', '1');
    api.remove('a');
    await api.listen(api.port);
    await until(() => events.includes('delete:a') && events.includes('add:d') && events.includes('update:b'));
    api.put('e', '1');
    await until(() => events.includes('add:e'));
  });

  it('start() keeps retrying until the first list succeeds', async () => {
    await api.down();
    let done = false;
    const started = inf.start().then(() => (done = true));
    await sleep(300);
    expect(done).to.equal(false);
    await api.listen(api.port);
    await started;
    expect(inf.hasSynced()).to.equal(true);
  });

  it('resync replays cached objects to update handlers', async () => {
    await inf.stop();
    const kc = kubeConfigFor(api.port);
    inf = new Informer<KubernetesObject>(kc, {
      name: 'things-resync',
      path: '/apis/x/v1/things',
      list: async () => (await (await fetch(`http://127.0.0.1:${api.port}/apis/x/v1/things`)).json()) as { items: KubernetesObject[] },
      resyncMs: 100,
    });
    const updates: string[] = [];
    inf.on('update', (o) => updates.push(o.metadata!.name!));
    await inf.start();
    await sleep(250);
    expect(updates.filter((n) => n === 'a').length).to.be.greaterThanOrEqual(2);
    expect(updates.filter((n) => n === 'b').length).to.be.greaterThanOrEqual(2);
  });
});
