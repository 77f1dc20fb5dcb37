// watch-list is given up for good only when the server refuses it, not when it asks to retry:
// found on the real node, where the agent starts seconds after `kubectl apply -k config/` made
// the CRDs and the API server answered its first watch-list of droptails with 429 (the new
// resource's watch cache was still initializing), and the agent listed in pages from then on.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { KubernetesObject } from '@kubernetes/client-node';
import { watchListAll, WatchListUnsupported } from '../../src/runtime/watchlist.js';
import { kubeConfigFor } from './support/fakeapi.js';

describe('watch-list: a refusal versus a retry', () => {
  let server: http.Server;
  let status = 429;

  before(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: status, message: 'storage is (re)initializing', reason: 'TooManyRequests' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const attempt = async (): Promise<unknown> => {
    const kc = kubeConfigFor((server.address() as AddressInfo).port);
    try {
      await watchListAll<KubernetesObject>(kc, '/apis/netwarden.io/v1alpha1/droptails', (o) => o);
    } catch (err) {
      return err;
    }
    throw new Error('watch-list succeeded against a server that only refuses');
  };

  it('takes 429 as "not now": the informer tries watch-list again at its next list', async () => {
    status = 429;
    const err = await attempt();
    expect(err).to.be.instanceOf(Error);
    expect(err).to.not.be.instanceOf(WatchListUnsupported);
  });

  it('takes 403 and 404 as "not offered": paginated lists from then on', async () => {
    for (const s of [403, 404]) {
      status = s;
      const err = await attempt();
      expect(err, String(s)).to.be.instanceOf(WatchListUnsupported);
      expect((err as WatchListUnsupported).statusCode).to.equal(s);
    }
  });
});
