import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import type { Condition } from '../../src/apis/meta.js';
import { PacketCaptureType, DropTailType } from '../../src/apis/meta.js';
import { applyStatus, findCondition, mergePatchStatus, removeCondition, setCondition } from '../../src/runtime/status.js';
import { ensureFinalizer, removeFinalizer } from '../../src/runtime/finalizers.js';

const T0 = '2025-01-01T00:00:00Z';
const T1 = '2025-01-01T00:05:00Z';

describe('setCondition', () => {
  it('adds a new condition with lastTransitionTime = now', () => {
    const out = setCondition([], { type: 'Ready', status: 'True', reason: 'Ok', message: 'fine' }, T0);
    expect(out).to.deep.equal([{ type: 'Ready', status: 'True', reason: 'Ok', message: 'fine', lastTransitionTime: T0 }]);
  });

  it('keeps lastTransitionTime when the status did not change, but updates reason and message', () => {
    const start = setCondition([], { type: 'Ready', status: 'True', reason: 'Ok', message: 'a' }, T0);
    const out = setCondition(start, { type: 'Ready', status: 'True', reason: 'StillOk', message: 'b', observedGeneration: 3 }, T1);
    expect(out[0]).to.deep.equal({ type: 'Ready', status: 'True', reason: 'StillOk', message: 'b', lastTransitionTime: T0, observedGeneration: 3 });
  });

  it('moves lastTransitionTime when the status changes', () => {
    const start = setCondition([], { type: 'Ready', status: 'True', reason: 'Ok', message: '' }, T0);
    const out = setCondition(start, { type: 'Ready', status: 'False', reason: 'Broken', message: 'x' }, T1);
    expect(out[0]!.lastTransitionTime).to.equal(T1);
    expect(out[0]!.status).to.equal('False');
  });

  it('does not modify the input and leaves other conditions alone', () => {
    const start: Condition[] = [
      { type: 'A', status: 'True', reason: 'r', message: '', lastTransitionTime: T0 },
      { type: 'B', status: 'False', reason: 'r', message: '', lastTransitionTime: T0 },
    ];
    const copy = structuredClone(start);
    const out = setCondition(start, { type: 'B', status: 'True', reason: 'r2', message: '' }, T1);
    expect(start).to.deep.equal(copy);
    expect(out[0]).to.deep.equal(start[0]);
    expect(findCondition(out, 'B')!.lastTransitionTime).to.equal(T1);
    expect(findCondition(out, 'C')).to.equal(undefined);
    expect(removeCondition(out, 'A').map((c) => c.type)).to.deep.equal(['B']);
  });

  it('formats Date times without milliseconds', () => {
    const out = setCondition(undefined, { type: 'Ready', status: 'Unknown', reason: 'r', message: '' }, new Date('2025-02-03T04:05:06.789Z'));
    expect(out[0]!.lastTransitionTime).to.equal('2025-02-03T04:05:06Z');
  });
});

describe('status and finalizer requests (fake server)', () => {
  let server: http.Server;
  let kc: KubeConfig;
  let seen: Array<{ method: string; url: string; contentType: string; body: unknown }>;

  before(async () => {
    seen = [];
    server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: String(req.headers['content-type']), body: data ? JSON.parse(data) : undefined });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
      currentContext: 'c',
    });
  });

  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => (seen = []));

  it('applyStatus sends a server-side apply to /status with fieldManager and force', async () => {
    await applyStatus(kc, PacketCaptureType, { namespace: 'ns1', name: 'cap' }, { phase: 'Running' }, 'netwarden');
    expect(seen).to.have.length(1);
    const r = seen[0]!;
    expect(r.method).to.equal('PATCH');
    expect(r.contentType).to.equal('application/apply-patch+yaml');
    const url = new URL(r.url, 'http://x');
    expect(url.pathname).to.equal('/apis/netwarden.io/v1alpha1/namespaces/ns1/packetcaptures/cap/status');
    expect(url.searchParams.get('fieldManager')).to.equal('netwarden');
    expect(url.searchParams.get('force')).to.equal('true');
    expect(r.body).to.deep.equal({
      apiVersion: 'netwarden.io/v1alpha1',
      kind: 'PacketCapture',
      metadata: { name: 'cap', namespace: 'ns1' },
      status: { phase: 'Running' },
    });
  });

  it('mergePatchStatus sends a merge patch to a cluster-scoped /status', async () => {
    await mergePatchStatus(kc, DropTailType, { name: 'dt' }, { phase: 'Ready' });
    const r = seen[0]!;
    expect(r.contentType).to.equal('application/merge-patch+json');
    expect(new URL(r.url, 'http://x').pathname).to.equal('/apis/netwarden.io/v1alpha1/droptails/dt/status');
    expect(r.body).to.deep.equal({ status: { phase: 'Ready' } });
  });

  it('ensureFinalizer / removeFinalizer patch finalizers guarded by resourceVersion, only when needed', async () => {
    const obj = { metadata: { name: 'dt', resourceVersion: '42', finalizers: ['other'] } };
    expect(await ensureFinalizer(kc, DropTailType, obj, 'netwarden.io/cleanup')).to.equal(true);
    expect(seen[0]!.contentType).to.equal('application/merge-patch+json');
    expect(new URL(seen[0]!.url, 'http://x').pathname).to.equal('/apis/netwarden.io/v1alpha1/droptails/dt');
    expect(seen[0]!.body).to.deep.equal({ metadata: { finalizers: ['other', 'netwarden.io/cleanup'], resourceVersion: '42' } });
    expect(await ensureFinalizer(kc, DropTailType, { metadata: { name: 'dt', finalizers: ['netwarden.io/cleanup'] } }, 'netwarden.io/cleanup')).to.equal(false);
    expect(await removeFinalizer(kc, DropTailType, obj, 'absent')).to.equal(false);
    expect(seen).to.have.length(1);
    expect(await removeFinalizer(kc, DropTailType, obj, 'other')).to.equal(true);
    expect(seen[1]!.body).to.deep.equal({ metadata: { finalizers: [], resourceVersion: '42' } });
  });
});
