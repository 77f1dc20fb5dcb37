import { expect } from 'chai';
import { kubeConfigFor } from './support/fakeapi.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type KubernetesObject, type V1ManagedFieldsEntry, type V1Pod } from '@kubernetes/client-node';
import { CachedPod } from '../../src/runtime/cachedpod.js';
import { cachedPodInformer, customResourceInformer, type Informer } from '../../src/runtime/informer.js';
import { ListError, listAllPages } from '../../src/runtime/pager.js';
import { dropManagedFields, keepFields } from '../../src/runtime/transform.js';

const POD_FIELDS = ['metadata.labels', 'spec.nodeName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.podIPs'];

const managedFields: V1ManagedFieldsEntry[] = [
  { manager: 'kube-controller-manager', operation: 'Apply', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:containers': {} } } },
  { manager: 'kubelet', operation: 'Apply', apiVersion: 'v1', subresource: 'status', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': {} } },
];

function realisticPod(): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web-1',
      namespace: 'shop',
      uid: 'u-1',
      resourceVersion: '42',
      labels: { app: 'web' },
      annotations: { 'prometheus.io/scrape': 'true' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d', uid: 'rs-1', controller: true }],
      managedFields,
    },
    spec: {
      nodeName: 'node-a',
      hostNetwork: false,
      containers: [{ name: 'server', image: 'x', env: [{ name: 'A', value: 'b' }], livenessProbe: { httpGet: { path: '/healthz', port: 8080 } } }],
    },
    status: { phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

describe('informer transforms', () => {
  it('keepFields keeps identity, resourceVersion and the asked paths, and drops the rest (managedFields included)', () => {
    const slim = keepFields<V1Pod>(POD_FIELDS)(realisticPod());
    expect(slim).to.deep.equal({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', resourceVersion: '42', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', hostNetwork: false },
      status: { phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }] },
    });
  });

  it('keepFields shares equal values of shared paths across objects, frozen, and keeps unequal ones apart', () => {
    const slim = keepFields<V1Pod>(POD_FIELDS, { shared: ['metadata.labels'] });
    const pod = (name: string, labels: Record<string, string>): V1Pod => ({ ...realisticPod(), metadata: { ...realisticPod().metadata, name, labels } });
    const a = slim(pod('web-1', { app: 'web', 'pod-template-hash': '5d8f' }));
    const b = slim(pod('web-2', { app: 'web', 'pod-template-hash': '5d8f' }));
    const c = slim(pod('db-0', { app: 'db', 'statefulset.kubernetes.io/pod-name': 'db-0' }));
    expect(b.metadata!.labels).to.equal(a.metadata!.labels); // one object
    expect(Object.isFrozen(a.metadata!.labels)).to.equal(true);
    expect(c.metadata!.labels).to.deep.equal({ app: 'db', 'statefulset.kubernetes.io/pod-name': 'db-0' });
    expect(c.metadata!.labels).not.to.equal(a.metadata!.labels);
    // The rest of each object is its own.
    expect([a.metadata!.name, b.metadata!.name]).to.deep.equal(['web-1', 'web-2']);
    expect(Object.isFrozen(a.metadata)).to.equal(false);
  });

  it('keepFields adds nothing for paths the object does not have', () => {
    const slim = keepFields<V1Pod>(POD_FIELDS)({ metadata: { name: 'pending', namespace: 'shop', resourceVersion: '7' }, spec: { containers: [] } });
    expect(slim).to.deep.equal({ metadata: { name: 'pending', namespace: 'shop', resourceVersion: '7' } });
  });

  it('dropManagedFields removes managedFields and nothing else', () => {
    const pod = realisticPod();
    const expected = realisticPod();
    delete expected.metadata!.managedFields;
    expect(dropManagedFields(pod)).to.deep.equal(expected);
  });
});

// A cluster-scoped collection that pages its list (limit/continue), can expire a continue token
// once (410 Gone, as after an etcd compaction), streams given watch events, and offers watch-list
// (sendInitialEvents) or refuses it with 422 as a server without the WatchList feature does.
class PagingApi {
  objects: KubernetesObject[] = [];
  expireNextContinue = false;
  offersWatchList = false;
  watchListRequests = 0;
  /** resourceVersion of each plain watch. */
  watchFrom: string[] = [];
  listRequests: string[] = [];
  watchEvents: Array<{ type: string; object: KubernetesObject }> = [];
  /** The collection it serves. */
  path = '/apis/x/v1/things';
  /** Plain watches end after their events (the informer then re-lists, as after a 410). */
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
    if (url.pathname !== this.path) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'the server could not find the requested resource' }));
      return;
    }
    if (url.searchParams.get('watch') === 'true' && url.searchParams.get('sendInitialEvents') === 'true') {
      this.watchListRequests++;
      if (!this.offersWatchList) {
        res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 422, reason: 'Invalid', message: 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const object of this.objects) res.write(JSON.stringify({ type: 'ADDED', object }) + '\n');
      res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Thing', apiVersion: 'x/v1', metadata: { resourceVersion: '100', annotations: { 'k8s.io/initial-events-end': 'true' } } } }) + '\n');
      return; // stays open, as a real watch does
    }
    if (url.searchParams.get('watch') === 'true') {
      this.watchFrom.push(url.searchParams.get('resourceVersion') ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const e of this.watchEvents) res.write(JSON.stringify(e) + '\n');
      if (this.endWatches) res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }) + '\n');
      return; // stays open
    }
    this.listRequests.push(url.search);
    const limit = Number(url.searchParams.get('limit') ?? this.objects.length);
    const token = url.searchParams.get('continue');
    if (token && this.expireNextContinue) {
      this.expireNextContinue = false;
      res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'The provided continue parameter is too old' }));
      return;
    }
    const start = token ? Number(token) : 0;
    const items = this.objects.slice(start, start + limit);
    const more = start + limit < this.objects.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'x/v1', kind: 'ThingList', metadata: { resourceVersion: '100', ...(more ? { continue: String(start + limit) } : {}) }, items }));
  }
}

function thing(i: number): KubernetesObject & { data: string; bulk: string } {
  return { apiVersion: 'x/v1', kind: 'Thing', metadata: { name: `t${i}`, resourceVersion: String(i + 1), managedFields: [{ manager: 'm', operation: 'Apply' }] }, data: `d${i}`, bulk: 'x'.repeat(100) };
}

const THINGS = { group: 'x', version: 'v1', kind: 'Thing', plural: 'things', namespaced: false };

describe('paginated lists', () => {
  let api: PagingApi;
  beforeEach(async () => {
    api = new PagingApi();
    await api.listen();
    api.objects = Array.from({ length: 7 }, (_, i) => thing(i));
  });
  afterEach(() => api.close());

  it('reads every page with limit/continue and transforms each object', async () => {
    const pages: number[] = [];
    const list = await listAllPages(kubeConfigFor(api.port), '/apis/x/v1/things', keepFields(['data']), { pageSize: 3, onPage: (n) => pages.push(n) });
    expect(pages).to.deep.equal([3, 3, 1]);
    expect(api.listRequests.map((q) => new URLSearchParams(q).get('limit'))).to.deep.equal(['3', '3', '3']);
    expect(list.items.map((o) => o.metadata?.name)).to.deep.equal(['t0', 't1', 't2', 't3', 't4', 't5', 't6']);
    expect(list.items[0]).to.deep.equal({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: 't0', resourceVersion: '1' }, data: 'd0' });
    expect(list.metadata?.resourceVersion).to.equal('100');
  });

  it('starts over from a fresh list when a continue token has expired (410), without duplicates', async () => {
    api.expireNextContinue = true;
    const restarts: boolean[] = [];
    const list = await listAllPages(kubeConfigFor(api.port), '/apis/x/v1/things', dropManagedFields, { pageSize: 3, onPage: (_, restarted) => restarts.push(restarted) });
    expect(list.items.map((o) => o.metadata?.name)).to.deep.equal(['t0', 't1', 't2', 't3', 't4', 't5', 't6']);
    expect(restarts).to.deep.equal([false, true, true, true]);
    expect(api.listRequests.map((q) => new URLSearchParams(q).get('continue'))).to.deep.equal([null, '3', null, '3', '6']);
  });

  it('throws other answers with their status code and the server message', async () => {
    const err = await listAllPages(kubeConfigFor(api.port), '/apis/x/v1/others', dropManagedFields).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(ListError);
    expect((err as ListError).statusCode).to.equal(404);
    expect((err as ListError).message).to.contain('the server could not find the requested resource');
  });
});

describe('informer caches only what the transform keeps', () => {
  let api: PagingApi;
  let inf: Informer<KubernetesObject> | undefined;
  beforeEach(async () => {
    api = new PagingApi();
    await api.listen();
  });
  afterEach(async () => {
    await inf?.stop();
    await api.close();
  });

  it('drops managedFields of listed and watched custom resources by default', async () => {
    api.objects = [thing(0), thing(1)];
    api.watchEvents = [{ type: 'ADDED', object: thing(2) }];
    inf = customResourceInformer(kubeConfigFor(api.port), THINGS, { pageSize: 1 });
    const seen: KubernetesObject[] = [];
    inf.on('add', (o) => seen.push(o));
    await inf.start();
    while (seen.length < 3) await new Promise((r) => setTimeout(r, 20));
    expect(api.listRequests.length).to.equal(2);
    for (const o of inf.list()) {
      expect(o.metadata).to.not.have.property('managedFields');
      expect(o).to.have.property('bulk');
    }
    expect(seen.map((o) => o.metadata?.name)).to.deep.equal(['t0', 't1', 't2']);
  });

  it('keeps only the asked fields of listed and watched objects, in the cache and in handlers', async () => {
    api.objects = [thing(0)];
    api.watchEvents = [{ type: 'ADDED', object: thing(1) }, { type: 'MODIFIED', object: { ...thing(0), data: 'changed', metadata: { ...thing(0).metadata, resourceVersion: '50' } } }];
    inf = customResourceInformer(kubeConfigFor(api.port), THINGS, { keep: ['data'] });
    const updates: KubernetesObject[] = [];
    inf.on('update', (o) => updates.push(o));
    await inf.start();
    while (updates.length < 1 || !inf.get('t1')) await new Promise((r) => setTimeout(r, 20));
    expect(inf.get('t1')).to.deep.equal({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: 't1', resourceVersion: '2' }, data: 'd1' });
    expect(updates[0]).to.deep.equal({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: 't0', resourceVersion: '50' }, data: 'changed' });
    expect(inf.get('t0')).to.deep.equal(updates[0]);
  });
});

describe('informer initial state by watch-list', () => {
  let api: PagingApi;
  let inf: Informer<KubernetesObject> | undefined;
  beforeEach(async () => {
    api = new PagingApi();
    await api.listen();
    api.objects = [thing(0), thing(1), thing(2)];
  });
  afterEach(async () => {
    await inf?.stop();
    await api.close();
  });

  it('reads the initial state as a stream of events up to the initial-events-end bookmark, then watches from its resourceVersion', async () => {
    api.offersWatchList = true;
    const via: string[] = [];
    inf = customResourceInformer(kubeConfigFor(api.port), THINGS, { keep: ['data'], onList: (v) => via.push(v) });
    await inf.start();
    expect(via).to.deep.equal(['watch-list']);
    expect(api.listRequests).to.deep.equal([]);
    expect(inf.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['t0', 't1', 't2']);
    expect(inf.get('t2')).to.deep.equal({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: 't2', resourceVersion: '3' }, data: 'd2' });
    while (api.watchFrom.length === 0) await new Promise((r) => setTimeout(r, 20));
    expect(api.watchFrom[0]).to.equal('100');
  });

  it('falls back to a paginated list when the server refuses watch-list', async () => {
    const via: string[] = [];
    inf = customResourceInformer(kubeConfigFor(api.port), THINGS, { pageSize: 2, onList: (v) => via.push(v) });
    await inf.start();
    expect(api.watchListRequests).to.equal(1);
    expect(via).to.deep.equal(['pages']);
    expect(api.listRequests.length).to.equal(2);
    expect(inf.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['t0', 't1', 't2']);
  });
});

describe('the Pod cache of the controller (CachedPod)', () => {
  const pod = (name: string, over: { rv?: string; phase?: string; labels?: Record<string, string>; ips?: string[] } = {}): V1Pod => {
    const base = realisticPod();
    const ips = over.ips ?? ['10.1.0.5'];
    return {
      ...base,
      metadata: { ...base.metadata, name, uid: `u-${name}`, resourceVersion: over.rv ?? '42', labels: over.labels ?? { app: 'web' } },
      status: { ...base.status, phase: over.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
    };
  };

  it('keeps what the controller reads, flat, and answers as a KubernetesObject', () => {
    const cached = CachedPod.from(pod('web-1', { ips: ['10.1.0.5', 'fd00::5'] }));
    expect({ name: cached.name, namespace: cached.namespace, uid: cached.uid, nodeName: cached.nodeName, hostNetwork: cached.hostNetwork, phase: cached.phase, podIP: cached.podIP }).to.deep.equal({
      name: 'web-1',
      namespace: 'shop',
      uid: 'u-web-1',
      nodeName: 'node-a',
      hostNetwork: false,
      phase: 'Running',
      podIP: '10.1.0.5',
    });
    expect(cached.podIPs).to.deep.equal(['10.1.0.5', 'fd00::5']);
    expect(cached.labels).to.deep.equal({ app: 'web' });
    expect([cached.apiVersion, cached.kind]).to.deep.equal(['v1', 'Pod']);
    expect(cached.metadata).to.deep.equal({ name: 'web-1', namespace: 'shop', uid: 'u-web-1', resourceVersion: '42', labels: { app: 'web' } });
  });

  it('reads back any resourceVersion as it was given, decimal or not', () => {
    for (const rv of ['42', '0', '007', '123456789012345678901', 'opaque-v3', '']) expect(CachedPod.from(pod('p', { rv })).metadata.resourceVersion).to.equal(rv);
  });

  it('shares equal labels between Pods, frozen', () => {
    const a = CachedPod.from(pod('a', { labels: { app: 'web', hash: '5d' } }));
    const b = CachedPod.from(pod('b', { labels: { app: 'web', hash: '5d' } }));
    const c = CachedPod.from(pod('c', { labels: { app: 'db' } }));
    expect(b.labels).to.equal(a.labels);
    expect(Object.isFrozen(a.labels)).to.equal(true);
    expect(c.labels).to.deep.equal({ app: 'db' });
  });

  it('a Pod without status or labels: no IPs, no labels', () => {
    const cached = CachedPod.from({ metadata: { name: 'pending', namespace: 'shop', resourceVersion: '7' }, spec: { containers: [] } });
    expect([cached.podIP, cached.podIPs, cached.labels, cached.phase, cached.nodeName]).to.deep.equal([undefined, [], {}, undefined, undefined]);
  });

  describe('through the informer', () => {
    let api: PagingApi;
    let inf: Informer<CachedPod> | undefined;
    beforeEach(async () => {
      api = new PagingApi();
      api.path = '/api/v1/pods';
      await api.listen();
    });
    afterEach(async () => {
      await inf?.stop();
      await api.close();
    });

    it('caches listed and watched Pods as CachedPods, applies a change once, and skips an event of the version it has', async () => {
      api.objects = [pod('web-1', { rv: '10' }), pod('web-2', { rv: '11' })];
      api.watchEvents = [
        { type: 'MODIFIED', object: pod('web-2', { rv: '11' }) },
        { type: 'MODIFIED', object: pod('web-1', { rv: '12', phase: 'Succeeded' }) },
        { type: 'DELETED', object: pod('web-2', { rv: '13' }) },
      ];
      inf = cachedPodInformer(kubeConfigFor(api.port));
      const events: string[] = [];
      inf.on('add', (p) => events.push(`add ${p.name}`));
      inf.on('update', (p) => events.push(`update ${p.name} ${p.phase}`));
      inf.on('delete', (p) => events.push(`delete ${p.name}`));
      await inf.start();
      while (events.length < 4) await new Promise((r) => setTimeout(r, 20));
      expect(events).to.deep.equal(['add web-1', 'add web-2', 'update web-1 Succeeded', 'delete web-2']);
      const cached = inf.get('web-1', 'shop');
      expect(cached).to.be.instanceOf(CachedPod);
      expect(cached?.phase).to.equal('Succeeded');
      expect(inf.list().map((p) => p.name)).to.deep.equal(['web-1']);
      expect(api.watchFrom[0]).to.equal('100');
    });

    it('keeps the cached Pod on a re-list when its resourceVersion is unchanged, and takes the new one when it changed', async () => {
      api.objects = [pod('web-1', { rv: '10' }), pod('web-2', { rv: '11' })];
      api.endWatches = true;
      inf = cachedPodInformer(kubeConfigFor(api.port));
      const updates: string[] = [];
      inf.on('update', (p) => updates.push(p.name));
      await inf.start();
      const before = [inf.get('web-1', 'shop'), inf.get('web-2', 'shop')];
      api.objects = [pod('web-1', { rv: '10' }), pod('web-2', { rv: '12', phase: 'Failed' })];
      const lists = api.listRequests.length;
      while (api.listRequests.length === lists || updates.length === 0) await new Promise((r) => setTimeout(r, 20));
      expect(inf.get('web-1', 'shop')).to.equal(before[0]);
      expect(inf.get('web-2', 'shop')).to.not.equal(before[1]);
      expect(inf.get('web-2', 'shop')?.phase).to.equal('Failed');
      expect(updates).to.deep.equal(['web-2']);
    });
  });
});
