// What a pod can do to Netwarden's endpoints, against the real API server: read /metrics (not
// without a token allowed get /metrics), and flood the TokenReview path with random tokens (it
// costs a bounded number of reviews and a scraper whose token was verified keeps being served).
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { cluster } from './hooks.js';
import { readAuditEvents } from '../env/controlplane.js';
import { createNode, kubeconfigForToken, requestToken, waitFor } from '../env/fixtures.js';
import {
  METRICS_SCRAPER, ensureInstalled, getLocal, metricsScraperToken, mustKubectl, netwardenCaFile, nextNodeIP, startAgent, startController, type NetwardenProcess,
} from '../env/netwarden.js';
import { AccessReviewer } from '../../src/runtime/auth.js';
import { registry } from '../../src/runtime/metrics.js';
import { HealthServer, metricsServing } from '../../src/runtime/server.js';

const NS = 'hardening-e2e';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET; over HTTPS when `ca` is given, verifying the certificate against it and the name 127.0.0.1. */
function get(port: number, urlPath: string, opts: { token?: string; ca?: Buffer; agent?: http.Agent; localAddress?: string } = {}): Promise<Answer> {
  const headers = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const options = { host: '127.0.0.1', port, path: urlPath, headers, agent: opts.agent, localAddress: opts.localAddress };
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = opts.ca ? https.get({ ...options, ca: opts.ca }, onResponse) : http.get(options, onResponse);
    req.on('error', reject);
  });
}

const randomToken = () => randomBytes(32).toString('base64url');

/** netwarden_token_reviews_total summed over its results, from a /metrics text. */
function reviewsIn(metricsText: string): number {
  return [...metricsText.matchAll(/^netwarden_token_reviews_total\{result="[a-z]+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

async function serviceAccountToken(name: string, clusterRole?: string): Promise<string> {
  const cp = cluster();
  const binding = clusterRole
    ? `\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: ${NS}-${name}}\n` +
      `roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ${clusterRole}}\nsubjects: [{kind: ServiceAccount, name: ${name}, namespace: ${NS}}]`
    : '';
  await mustKubectl(cp, ['apply', '--server-side', '-f', '-'], `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${name}, namespace: ${NS}}${binding}`);
  return requestToken(cp.kubeConfig(), NS, name);
}

describe('hardening: /metrics access and TokenReview floods', function () {
  this.timeout(180_000);
  let scraperToken: string;
  let nosyToken: string;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    await mustKubectl(cp, ['apply', '--server-side', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}`);
    scraperToken = await metricsScraperToken(cp);
    nosyToken = await serviceAccountToken('nosy');
  });

  describe('the controller', function () {
    let controller: NetwardenProcess | undefined;
    afterEach(async () => {
      await controller?.kill();
      controller = undefined;
    });

    it('serves /metrics over HTTPS only to tokens allowed get /metrics, says why to others, and leaves the probes open', async function () {
      controller = await startController(cluster(), 'controller-hardening');
      const port = controller.metricsPort;
      // Its metrics port serves its serving certificate, from the CA it publishes.
      const ca = readFileSync(await netwardenCaFile(cluster()));
      await waitFor(async () => (await get(port, '/healthz', { ca })).status === 200, { timeoutMs: 60_000, description: 'the controller serving /healthz over HTTPS, without a token' });
      expect((await get(port, '/readyz', { ca })).status).to.be.oneOf([200, 503]);

      const anonymous = await get(port, '/metrics', { ca });
      expect([anonymous.status, anonymous.body]).to.deep.equal([401, 'no bearer token: send "Authorization: Bearer <token>"\n']);
      const bogus = await get(port, '/metrics', { ca, token: randomToken() });
      expect(bogus.status).to.equal(401);
      expect(bogus.body).to.match(/^invalid token/);
      const nosy = await get(port, '/metrics', { ca, token: nosyToken });
      expect(nosy.status).to.equal(403);
      expect(nosy.body).to.match(new RegExp(`^system:serviceaccount:${NS}:nosy may not get /metrics`));

      const scraped = await get(port, '/metrics', { ca, token: scraperToken });
      expect(scraped.status, scraped.body).to.equal(200);
      expect(scraped.body).to.match(/^netwarden_token_reviews_total\{result="authenticated"\} [1-9]/m);
      // Plain HTTP on the same port is no way around it.
      const plain = await get(port, '/metrics', { token: scraperToken }).catch((err: Error) => err);
      expect(plain instanceof Error || plain.status !== 200, 'plain HTTP gets no metrics').to.equal(true);
    });

    it('answers a flood of unknown tokens from one address with 429 and Retry-After, within its TokenReview budget', async function () {
      controller = await startController(cluster(), 'controller-hardening-flood');
      const port = controller.metricsPort;
      const ca = readFileSync(await netwardenCaFile(cluster()));
      await waitFor(async () => (await get(port, '/metrics', { ca, token: scraperToken })).status === 200, { timeoutMs: 60_000, description: 'the scraper served' });
      const reviewsBefore = reviewsIn((await get(port, '/metrics', { ca, token: scraperToken })).body);
      // Fewer sockets than the metrics port's 16 connections per client.
      const agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca });
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: 1000 }, () => get(port, '/metrics', { ca, token: randomToken(), agent })));
      const seconds = (Date.now() - started) / 1000;
      agent.destroy();
      const throttled = answers.filter((a) => a.status === 429);
      expect(answers.filter((a) => a.status !== 429 && a.status !== 401), 'only 401 and 429').to.deep.equal([]);
      expect(throttled.length).to.be.greaterThan(0);
      expect(Number(throttled[0]!.headers['retry-after'])).to.be.at.least(1);
      const after = await get(port, '/metrics', { ca, token: scraperToken });
      expect(after.status, 'the scraper, verified before, still served').to.equal(200);
      // The defaults: 25 at once and 5 a second from one address.
      expect(reviewsIn(after.body) - reviewsBefore).to.equal(answers.length - throttled.length);
      expect(answers.length - throttled.length).to.be.at.most(25 + Math.ceil(5 * seconds) + 1);
    });

    it('serves /metrics to anyone over plain HTTP with --metrics-insecure, as before', async function () {
      controller = await startController(cluster(), 'controller-hardening-insecure', ['--metrics-insecure']);
      const port = controller.metricsPort;
      const scraped = await waitFor(async () => {
        const answer = await get(port, '/metrics');
        return answer.status === 200 && answer;
      }, { timeoutMs: 60_000, description: 'open /metrics over HTTP' });
      expect(scraped.body).to.contain('netwarden_workqueue_depth');
    });
  });

  it("guards an agent's /metrics on the host network the same way", async function () {
    const cp = cluster();
    const nodeName = 'hardening-agent';
    await createNode(cp.kubeConfig(), nodeName, { internalIP: nextNodeIP() });
    const agent = await startAgent(cp, nodeName);
    try {
      await waitFor(async () => (await getLocal(agent.metricsPort, '/healthz')).status === 200, { timeoutMs: 60_000, description: 'the agent up' });
      // An agent without the file API has no serving certificate: its metrics port serves the
      // self-signed stand-in, and the token is what guards it.
      const agentCa = { rejectUnauthorized: false };
      const anonymous = await new Promise<number>((resolve, reject) =>
        https.get({ host: '127.0.0.1', port: agent.metricsPort, path: '/metrics', ...agentCa }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
      expect(anonymous).to.equal(401);
      const scraped = await getLocal(agent.metricsPort, '/metrics');
      expect(scraped.status).to.equal(200);
      expect(scraped.body).to.contain('netwarden_token_reviews_total');
    } finally {
      await agent.kill();
    }
  });

  it('makes a bounded number of TokenReviews for 10,000 random tokens and keeps serving a cached good token without a review', async function () {
    const cp = cluster();
    // A reviewer of its own (system:auth-delegator: create tokenreviews and subjectaccessreviews),
    // so the audit log tells its reviews from everyone else's.
    const reviewerToken = await serviceAccountToken('flood-reviewer', 'system:auth-delegator');
    const kc = new KubeConfig();
    kc.loadFromFile(await kubeconfigForToken(cp, reviewerToken, path.join(cp.dir, 'kubeconfig-flood-reviewer')));
    const limits = { tokenReviewBurst: 100, tokenReviewsPerSecond: 20, tokenReviewBurstPerClient: 25, tokenReviewsPerSecondPerClient: 5 };
    // The verified token must outlive the flood however slow the machine: it is the cache under test, not its TTL.
    const reviewer = new AccessReviewer(kc, { ...limits, tokenCacheTtlMs: 3_600_000, cacheTtlMs: 3_600_000 });
    const server = new HealthServer({ healthPort: 0, metricsPort: 0, host: '127.0.0.1', readiness: () => undefined, ...metricsServing({ insecure: false, reviewer }), tls: false });
    await server.start();
    const port = server.ports().metrics;
    const reviewsMade = async () => {
      const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'netwarden_token_reviews_total');
      return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
    };
    try {
      expect((await get(port, '/metrics', { token: scraperToken })).status).to.equal(200);
      const before = await reviewsMade();
      const floodStart = new Date();
      const started = Date.now();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      const statuses = new Map<number, number>();
      for (let sent = 0; sent < 10_000; sent += 500) {
        const batch = await Promise.all(Array.from({ length: 500 }, () => get(port, '/metrics', { token: randomToken(), agent })));
        for (const a of batch) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      }
      agent.destroy();
      const seconds = (Date.now() - started) / 1000;
      const reviewed = (await reviewsMade()) - before;
      expect([...statuses.keys()].sort()).to.deep.equal([401, 429]);
      expect(statuses.get(401), 'each review a 401').to.equal(reviewed);
      expect(reviewed, `reviews for the flood of ${seconds.toFixed(1)} s`).to.be.at.most(limits.tokenReviewBurstPerClient + Math.ceil(limits.tokenReviewsPerSecondPerClient * seconds) + 1);

      // The scraper's verified token: served, and no review for it.
      expect((await get(port, '/metrics', { token: scraperToken })).status).to.equal(200);
      expect(await reviewsMade()).to.equal(before + reviewed);
      // A good token never seen, from another address: reviewed at once, since one address's flood cannot spend the whole budget.
      const fresh = await requestToken(cp.kubeConfig(), METRICS_SCRAPER.namespace, METRICS_SCRAPER.name);
      expect((await get(port, '/metrics', { token: fresh, localAddress: '127.0.0.2' })).status).to.equal(200);
      expect(await reviewsMade()).to.equal(before + reviewed + 1);

      // The API server saw the same number: its audit log, for this reviewer's identity only.
      const user = `system:serviceaccount:${NS}:flood-reviewer`;
      const audited = async () =>
        (await readAuditEvents(cp)).filter((e) => {
          const ref = e.objectRef as { resource?: string } | undefined;
          return ref?.resource === 'tokenreviews' && (e.user as { username?: string } | undefined)?.username === user && new Date(String(e.requestReceivedTimestamp)) >= floodStart;
        }).length;
      await waitFor(async () => (await audited()) === reviewed + 1, { timeoutMs: 30_000, description: `${reviewed + 1} TokenReviews by ${user} in the audit log` });
    } finally {
      await server.stop();
    }
  });
});
